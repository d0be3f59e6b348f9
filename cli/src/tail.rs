//! `tidings tail`: prints each event of some topics as it arrives, from a subscription of its
//! own (no group, so it takes nothing from any consumer group, and acks only its own
//! deliveries).

use std::sync::Arc;

use tidings::broker::{Delivery, SubscribeRequest};
use tidings::{Broker, BrokerError, StartFrom, Topic};
use tidings_codegen::SchemaSet;
use tokio::sync::{mpsc, watch};

use crate::error::CliError;
use crate::render::{Format, malformed_json, message_json, print};

/// What `tail` was asked.
pub(crate) struct Tail {
    pub(crate) topics: Vec<Topic>,
    pub(crate) start: StartFrom,
    pub(crate) format: Format,
    /// Stop after this many messages.
    pub(crate) limit: Option<u64>,
}

/// Subscribes to every topic, then prints what arrives until Ctrl-C, the limit, or a
/// subscription ending.
pub(crate) async fn run(
    set: &SchemaSet,
    broker: Arc<dyn Broker>,
    tail: Tail,
) -> Result<(), CliError> {
    let (tx, mut rx) = mpsc::channel::<(Topic, Result<Delivery, BrokerError>)>(64);
    let (stop, stopped) = watch::channel(false);
    let mut readers = Vec::new();
    for topic in &tail.topics {
        let mut stream = broker
            .subscribe(SubscribeRequest {
                topic: topic.clone(),
                group: None,
                start: tail.start,
                prefetch: 64,
            })
            .await?;
        let tx = tx.clone();
        let topic = topic.clone();
        let mut stopped = stopped.clone();
        readers.push(tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    _ = stopped.changed() => None,
                };
                let Some(next) = next else { break };
                if tx.send((topic.clone(), next)).await.is_err() {
                    break;
                }
            }
            // Closing removes what the broker keeps for this subscription (an ephemeral
            // consumer, a temporary queue) at once.
            stream.close().await;
        }));
    }
    drop(tx);
    let names: Vec<&str> = tail.topics.iter().map(Topic::as_str).collect();
    eprintln!("tailing {} (Ctrl-C to stop)", names.join(", "));
    let mut seen = 0u64;
    let outcome = loop {
        if tail.limit.is_some_and(|limit| seen >= limit) {
            break Ok(());
        }
        let next = tokio::select! {
            next = rx.recv() => next,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let Some((topic, next)) = next else {
            break Ok(());
        };
        let delivery = match next {
            Ok(delivery) => delivery,
            Err(error) => break Err(CliError::Broker(error)),
        };
        seen += 1;
        let (title, object) = match &delivery.message {
            Ok(message) => (
                format!("{topic} {}", message.envelope.id),
                message_json(set, message, topic.as_str()),
            ),
            Err(malformed) => (format!("{topic} (malformed)"), malformed_json(malformed)),
        };
        print(tail.format, &title, &object);
        // The subscription is this command's own: acking tells only its own consumer.
        if let Err(error) = delivery.acker.ack().await {
            eprintln!("warning: could not ack a message on the tail's own subscription: {error}");
        }
    };
    stop.send_replace(true);
    // Deliveries still queued go back to the tail's own subscription, which is closing.
    drop(rx);
    for reader in readers {
        if let Err(error) = reader.await {
            eprintln!("warning: a subscription of the tail did not close cleanly: {error}");
        }
    }
    outcome
}
