//! `tidings dlq list` and `tidings dlq replay`: the dead letters a topic keeps in
//! `dlq.<topic>`, read without a consumer group; a replay publishes each again on its topic
//! and removes it only once the broker confirmed that publish, so a replay stopped at any
//! point loses nothing (what it published and did not remove yet is published again by the
//! next replay: at least once).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use tidings::broker::{DeadLetter, Message};
use tidings::{Broker, BrokerError, DEFAULT_PUBLISH_TIMEOUT, Topic};
use tidings_codegen::SchemaSet;

use crate::error::CliError;
use crate::progress::Progress;
use crate::render::{Format, malformed_json, message_json, print};

/// One dead letter as `dlq list` shows it: `id`, `topic` (where it was first published),
/// `reason`, `attempts`, `time` (of the event), then `data` or why it does not decode.
fn letter_json(set: &SchemaSet, message: &Message, topic: &Topic) -> Value {
    let letter = DeadLetter::read(&message.envelope);
    let envelope = &message.envelope;
    let mut object = serde_json::Map::new();
    object.insert("id".to_owned(), Value::from(envelope.id.as_str()));
    let original = letter.as_ref().map_or(topic, |l| &l.topic);
    object.insert("topic".to_owned(), Value::from(original.as_str()));
    object.insert(
        "reason".to_owned(),
        letter
            .as_ref()
            .map_or(Value::Null, |l| Value::from(l.reason.as_str())),
    );
    object.insert(
        "attempts".to_owned(),
        letter
            .as_ref()
            .map_or(Value::Null, |l| Value::from(l.attempts)),
    );
    object.insert(
        "time".to_owned(),
        envelope.time.map_or(Value::Null, |t| {
            Value::from(tidings::envelope::format_time(t))
        }),
    );
    if let Value::Object(decoded) = message_json(set, message, original.as_str()) {
        for (key, value) in decoded {
            if key != "attributes" {
                object.insert(key, value);
            }
        }
    }
    Value::Object(object)
}

/// Prints every dead letter of `topic`, leaving them where they are.
pub(crate) async fn list(
    set: &SchemaSet,
    broker: Arc<dyn Broker>,
    topic: &Topic,
    format: Format,
) -> Result<(), CliError> {
    let mut letters = broker.browse(&dead_letters(topic)?).await?;
    let mut count = 0usize;
    let outcome = loop {
        let Some(next) = letters.next().await else {
            break Ok(());
        };
        let delivery = match next {
            Ok(delivery) => delivery,
            Err(error) => break Err(CliError::Broker(error)),
        };
        count += 1;
        match &delivery.message {
            Ok(message) => {
                let object = letter_json(set, message, topic);
                print(format, message.envelope.id.as_str(), &object);
            }
            Err(malformed) => print(format, "(malformed)", &malformed_json(malformed)),
        }
        // Dropped unsettled, the dead letter stays where it is.
    };
    letters.close().await;
    if format == Format::Text {
        eprintln!("{count} dead letters in {}", dead_letters(topic)?);
    }
    outcome
}

/// What `replay` was asked.
pub(crate) struct Replay {
    /// The dead letters to replay, by event id; every one when empty.
    pub(crate) ids: Vec<String>,
    pub(crate) dry_run: bool,
}

/// Publishes dead letters of `topic` again on their topic, with their id and attributes (the
/// dead-letter ones removed), and removes each once the broker confirmed its publish.
pub(crate) async fn replay(
    broker: Arc<dyn Broker>,
    topic: &Topic,
    replay: Replay,
) -> Result<(), CliError> {
    let mut wanted: BTreeSet<&str> = replay.ids.iter().map(String::as_str).collect();
    let all = wanted.is_empty();
    let dlq = dead_letters(topic)?;
    let mut letters = broker.browse(&dlq).await?;
    let progress = Progress::new("replayed", None);
    let mut replayed = 0usize;
    let outcome: Result<(), CliError> = async {
        while let Some(next) = letters.next().await {
            let delivery = next?;
            let mut message = match delivery.message {
                Ok(message) => message,
                Err(malformed) => {
                    progress.println(&format!(
                        "skipped a message of {dlq} that is not a CloudEvents message ({}); it stays there",
                        malformed.reason
                    ));
                    continue;
                }
            };
            let id = message.envelope.id.clone();
            if !all && !wanted.remove(id.as_str()) {
                continue;
            }
            let target = DeadLetter::read(&message.envelope).map_or_else(|| topic.clone(), |l| l.topic);
            if replay.dry_run {
                progress.println(&format!("would replay {id} to {target}"));
                continue;
            }
            DeadLetter::strip(message.envelope_mut());
            // The event keeps its id; the broker's publish dedup (JetStream's `Nats-Msg-Id`)
            // gets a key of this replay's own, or a replay inside the duplicate window of the
            // original publish would be dropped as a duplicate of it.
            let dedup_id = format!("{id}:replay:{}", uuid::Uuid::now_v7());
            tokio::time::timeout(
                DEFAULT_PUBLISH_TIMEOUT,
                broker.republish(&target, message, &dedup_id),
            )
            .await
            .map_err(|_| BrokerError::Timeout {
                broker: broker.name(),
                timeout: DEFAULT_PUBLISH_TIMEOUT,
            })??;
            delivery.acker.ack().await.inspect_err(|_| {
                progress.println(&format!(
                    "{id} was published again to {target} but could not be removed from {dlq}; a next replay publishes it again"
                ));
            })?;
            replayed += 1;
            progress.inc();
            progress.println(&format!("replayed {id} to {target}"));
        }
        Ok(())
    }
    .await;
    progress.finish();
    letters.close().await;
    outcome?;
    if !replay.dry_run {
        eprintln!("{replayed} dead letters replayed from {dlq}");
    }
    if let Some(missing) = wanted.first() {
        return Err(CliError::NotFound {
            id: (*missing).to_owned(),
            dead_letters: dlq.to_string(),
        });
    }
    Ok(())
}

/// The dead-letter topic of `topic`.
fn dead_letters(topic: &Topic) -> Result<Topic, CliError> {
    topic.dead_letter().map_err(|_| CliError::UnknownTopic {
        topic: topic.to_string(),
    })
}
