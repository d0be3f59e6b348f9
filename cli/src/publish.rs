//! `tidings publish`: a JSON document checked and encoded by the event's schema, published with
//! a full CloudEvents envelope; its id printed once the broker confirmed it.

use std::borrow::Cow;
use std::sync::Arc;

use tidings::broker::Message;
use tidings::envelope::SCHEMA_PREFIX;
use tidings::{Broker, BrokerError, ContentType, DEFAULT_PUBLISH_TIMEOUT, Envelope, Topic};
use tidings_codegen::SchemaSet;

use crate::by_schema::encode;
use crate::error::CliError;
use crate::progress::Progress;

/// The event of `topic` in `set`, or the error naming the topic.
pub(crate) fn event_topic(set: &SchemaSet, topic: &str) -> Result<Topic, CliError> {
    let unknown = || CliError::UnknownTopic {
        topic: topic.to_owned(),
    };
    set.event(topic).ok_or_else(unknown)?;
    Topic::new(topic.to_owned()).map_err(|_| unknown())
}

/// What `publish` was asked.
pub(crate) struct Publish {
    pub(crate) topic: Topic,
    /// One JSON document per event.
    pub(crate) documents: Vec<String>,
    pub(crate) content_type: ContentType,
    pub(crate) source: String,
}

/// Checks and encodes every document first, so that a bad one publishes nothing, then
/// publishes them in order, printing each id once the broker confirmed it.
pub(crate) async fn run(
    set: &SchemaSet,
    broker: Arc<dyn Broker>,
    publish: Publish,
) -> Result<(), CliError> {
    let topic = publish.topic;
    let event = set
        .event(topic.as_str())
        .ok_or_else(|| CliError::UnknownTopic {
            topic: topic.to_string(),
        })?;
    let schema = event.schema().to_owned();
    let descriptor = set
        .message(topic.as_str())
        .ok_or_else(|| CliError::UnknownTopic {
            topic: topic.to_string(),
        })?;
    let source: Arc<str> = Arc::from(publish.source.as_str());
    let mut messages = Vec::with_capacity(publish.documents.len());
    for (n, document) in publish.documents.iter().enumerate() {
        let data =
            encode(descriptor.clone(), document, publish.content_type).map_err(|reason| {
                CliError::Data {
                    schema: schema.clone(),
                    reason: if publish.documents.len() > 1 {
                        format!("document {}: {reason}", n + 1)
                    } else {
                        reason
                    },
                }
            })?;
        let envelope = Envelope::new(
            source.clone(),
            Cow::Owned(topic.to_string()),
            publish.content_type,
            Some(Cow::Owned(format!("{SCHEMA_PREFIX}{schema}"))),
        );
        let message = Message::new(envelope, data);
        let limit = broker.max_message_size();
        if message.size() > limit {
            return Err(CliError::Data {
                schema: schema.clone(),
                reason: format!(
                    "the event is {} bytes, above the broker's limit of {limit}",
                    message.size()
                ),
            });
        }
        messages.push(message);
    }
    let progress = Progress::new("published", Some(messages.len() as u64));
    for message in messages {
        let id = message.envelope.id.clone();
        tokio::time::timeout(DEFAULT_PUBLISH_TIMEOUT, broker.publish(&topic, message))
            .await
            .map_err(|_| BrokerError::Timeout {
                broker: broker.name(),
                timeout: DEFAULT_PUBLISH_TIMEOUT,
            })??;
        progress.inc();
        progress.println(id.as_str());
    }
    progress.finish();
    Ok(())
}
