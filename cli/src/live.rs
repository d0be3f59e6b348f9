//! The verbs that work on a live broker: what they take, and how each is run.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use tidings::{ContentType, StartFrom, Topic};

use crate::connect::BrokerUrl;
use crate::error::CliError;
use crate::schemas::{Mapping, SchemaSource};
use crate::{dlq, publish, render, tail};

/// The verbs that work on a live broker.
#[derive(Subcommand)]
pub(crate) enum LiveCommand {
    /// Prints each event of some topics as it arrives on the broker, attributes and data as
    /// canonical proto3 JSON, from a subscription of its own: it takes nothing from any
    /// consumer group and acks nothing on anyone's behalf. A message that does not decode is
    /// shown with the reason.
    Tail {
        #[command(flatten)]
        live: Live,
        /// The topics to print.
        #[arg(value_name = "TOPIC", required = true)]
        topics: Vec<String>,
        /// Where to start: new events only, or the oldest the broker keeps (where it keeps
        /// history).
        #[arg(long, value_enum, default_value_t = Start::New)]
        from: Start,
        /// How to print each event: readable, or one JSON object per line.
        #[arg(long, value_enum, default_value_t)]
        format: render::Format,
        /// Stops after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Publishes events given as JSON (the canonical proto3 JSON mapping of the topic's
    /// message), each checked and encoded by the schema, with a full CloudEvents envelope;
    /// prints each id once the broker confirmed it.
    Publish {
        #[command(flatten)]
        live: Live,
        /// The topic of the event.
        #[arg(value_name = "TOPIC")]
        topic: String,
        /// The event as JSON, or `@FILE` to read it from a file; without it, one event per
        /// line of standard input.
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
        /// The codec the data is written in.
        #[arg(long, value_enum, default_value_t = Codec::Protobuf)]
        codec: Codec,
        /// The CloudEvents `source` of the events.
        #[arg(long, default_value = "tidings-cli")]
        source: String,
    },
    /// The dead letters of a topic, kept in `dlq.<topic>`: list them, or replay them.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

/// What `tidings dlq` does.
#[derive(Subcommand)]
pub(crate) enum DlqCommand {
    /// Prints the dead letters of a topic: id, original topic, reason, attempts, time, and
    /// the data decoded where it decodes. Leaves them where they are.
    List {
        #[command(flatten)]
        live: Live,
        /// The topic whose dead letters to print.
        #[arg(value_name = "TOPIC")]
        topic: String,
        /// Readable, or one JSON object per line.
        #[arg(long, value_enum, default_value_t)]
        format: render::Format,
    },
    /// Publishes dead letters again on their original topic, with their id and attributes
    /// (the dead-letter ones removed), and removes each from the dead letters only once the
    /// broker confirmed that publish: a replay stopped at any point loses nothing.
    Replay {
        #[command(flatten)]
        live: Live,
        /// The topic whose dead letters to replay.
        #[arg(value_name = "TOPIC")]
        topic: String,
        /// Replays the dead letter of this event id (repeatable).
        #[arg(long = "id", value_name = "ID", required_unless_present = "all")]
        ids: Vec<String>,
        /// Replays every dead letter of the topic.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Prints what would be replayed, and changes nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// What a broker verb works on: the schemas and the broker.
#[derive(Args)]
pub(crate) struct Live {
    #[command(flatten)]
    source: SchemaSource,
    #[command(flatten)]
    mapping: Mapping,
    #[command(flatten)]
    broker: BrokerUrl,
}

/// Where `tail` starts.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Start {
    /// Events published from now on.
    New,
    /// The oldest event the broker keeps (NATS JetStream, Redis Streams, Kafka).
    Oldest,
}

/// The codec `publish` writes.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Codec {
    /// Protobuf binary, `application/protobuf`.
    Protobuf,
    /// The canonical proto3 JSON mapping, `application/json`.
    Json,
}

/// Runs a broker verb.
pub(crate) fn run(command: LiveCommand) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            LiveCommand::Tail {
                live,
                topics,
                from,
                format,
                count,
            } => {
                let set = live.source.load(&live.mapping)?;
                let topics = topics
                    .iter()
                    .map(|t| publish::event_topic(&set, t))
                    .collect::<Result<Vec<Topic>, _>>()?;
                let broker = live.broker.connect().await?;
                let start = match from {
                    Start::New => StartFrom::New,
                    Start::Oldest => StartFrom::Oldest,
                };
                let tail = tail::Tail {
                    topics,
                    start,
                    format,
                    limit: count,
                };
                tail::run(&set, broker, tail).await
            }
            LiveCommand::Publish {
                live,
                topic,
                data,
                codec,
                source,
            } => {
                let set = live.source.load(&live.mapping)?;
                let topic = publish::event_topic(&set, &topic)?;
                let documents = documents(data)?;
                let broker = live.broker.connect().await?;
                let content_type = match codec {
                    Codec::Protobuf => ContentType::Protobuf,
                    Codec::Json => ContentType::Json,
                };
                let publish = publish::Publish {
                    topic,
                    documents,
                    content_type,
                    source,
                };
                publish::run(&set, broker, publish).await
            }
            LiveCommand::Dlq {
                command:
                    DlqCommand::List {
                        live,
                        topic,
                        format,
                    },
            } => {
                let set = live.source.load(&live.mapping)?;
                let topic = publish::event_topic(&set, &topic)?;
                let broker = live.broker.connect().await?;
                dlq::list(&set, broker, &topic, format).await
            }
            LiveCommand::Dlq {
                command:
                    DlqCommand::Replay {
                        live,
                        topic,
                        ids,
                        all: _,
                        dry_run,
                    },
            } => {
                let set = live.source.load(&live.mapping)?;
                let topic = publish::event_topic(&set, &topic)?;
                let broker = live.broker.connect().await?;
                dlq::replay(broker, &topic, dlq::Replay { ids, dry_run }).await
            }
        }
    })
}

/// The JSON documents to publish: `--data JSON`, `--data @FILE`, or one per non-empty line of
/// standard input.
fn documents(data: Option<String>) -> Result<Vec<String>, CliError> {
    match data {
        Some(data) => match data.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map(|text| vec![text])
                .map_err(|source| CliError::Read {
                    path: PathBuf::from(path),
                    source,
                }),
            None => Ok(vec![data]),
        },
        None => {
            let mut documents = Vec::new();
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                if !line.trim().is_empty() {
                    documents.push(line);
                }
            }
            Ok(documents)
        }
    }
}
