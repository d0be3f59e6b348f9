//! The exchanges and queues the adapter declares, and their names.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use super::RabbitConfig;
use tidings_core::topic::Topic;

/// The header naming the delay queue a delayed retry goes through.
pub(super) const DELAY_HEADER: &str = "tidings-delay";
/// The header carrying the attempt a delayed retry is delivered at.
pub(super) const ATTEMPT_HEADER: &str = "tidings-attempt";

fn text(value: impl AsRef<[u8]>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_ref()))
}

fn table<const N: usize>(entries: [(&str, AMQPValue); N]) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in entries {
        table.insert(ShortString::from(name), value);
    }
    table
}

/// The exchange delayed retries are published to.
pub(super) fn delay_exchange(config: &RabbitConfig) -> String {
    format!("{}.delay", config.exchange)
}

/// The exchange requests are published to, routed by their topic to the queues of the groups
/// that serve it.
pub(super) fn rpc_exchange(config: &RabbitConfig) -> String {
    format!("{}.rpc", config.exchange)
}

/// The topic exchange, the delay exchange and the rpc exchange.
pub(super) async fn declare_exchanges(
    channel: &Channel,
    config: &RabbitConfig,
) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    // A direct exchange of its own: a binding on the topic exchange (`#`, an audit queue's)
    // would otherwise take requests too, and a request nobody serves would not come back
    // unroutable.
    channel
        .exchange_declare(
            rpc_exchange(config).into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            delay_exchange(config).into(),
            ExchangeKind::Headers,
            durable,
            FieldTable::default(),
        )
        .await
}

/// The queue of `group` on `topic`. Topics have no `:`, so no two pairs share a name.
pub(super) fn group_queue(topic: &Topic, group: &str) -> String {
    format!("{topic}:{group}")
}

/// The durable queue of a group, bound to its topic, dead-lettering to the topic's dead-letter
/// queue. Returns its name.
pub(super) async fn declare_group(
    channel: &Channel,
    config: &RabbitConfig,
    topic: &Topic,
    group: &str,
) -> Result<String, lapin::Error> {
    let name = group_queue(topic, group);
    let mut arguments = table([("x-queue-type", text("quorum"))]);
    if let Ok(dead_letters) = topic.dead_letter() {
        declare_dead_letters(channel, config, &dead_letters).await?;
        arguments.insert("x-dead-letter-exchange".into(), text(&config.exchange));
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            text(dead_letters.as_str()),
        );
    }
    if let Some(limit) = config.delivery_limit {
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(limit)),
        );
    }
    if let Some(expiry) = config.group_expiry {
        let millis = i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX).max(1);
        arguments.insert("x-expires".into(), AMQPValue::LongLongInt(millis));
    }
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.as_str().into(), durable, arguments)
        .await?;
    bind(channel, config, &name, topic.as_str()).await?;
    Ok(name)
}

/// How long the queue of a group that serves a topic outlives its last server when it was not
/// deleted with it (a broker restart keeps it, with no consumer): while it exists, requests go
/// to it and wait for their deadline instead of coming back unroutable at once.
const RPC_QUEUE_EXPIRY: Duration = Duration::from_secs(10);

/// The queue of the servers of `group` on `topic`. A topic has no `:` and `rpc` is no topic, so
/// it shares no name with a group queue.
pub(super) fn rpc_queue(topic: &Topic, group: &str) -> String {
    format!("rpc:{topic}:{group}")
}

/// The queue the servers of `group` take the requests of `topic` from, bound to the rpc
/// exchange. A classic queue deleted with its last consumer: requests are worth nothing once
/// their deadline passed, so none waits for a server that is gone, and a request with nobody to
/// serve it comes back unroutable. Durable only so that it is allowed where transient shared
/// queues are not; requests are published transient and expire with their deadline, so a
/// broker restart leaves none behind. Returns its name.
pub(super) async fn declare_rpc(
    channel: &Channel,
    config: &RabbitConfig,
    topic: &Topic,
    group: &str,
) -> Result<String, lapin::Error> {
    let name = rpc_queue(topic, group);
    let expiry = i64::try_from(RPC_QUEUE_EXPIRY.as_millis()).unwrap_or(i64::MAX);
    let arguments = table([
        ("x-queue-type", text("classic")),
        ("x-expires", AMQPValue::LongLongInt(expiry)),
    ]);
    let options = QueueDeclareOptions {
        durable: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.as_str().into(), options, arguments)
        .await?;
    channel
        .queue_bind(
            name.as_str().into(),
            rpc_exchange(config).into(),
            topic.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(name)
}

/// A queue of a plain subscriber's own, named by the server, gone with its connection.
pub(super) async fn declare_fan_out(
    channel: &Channel,
    config: &RabbitConfig,
    topic: &Topic,
) -> Result<String, lapin::Error> {
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await?;
    let name = queue.name().as_str().to_owned();
    bind(channel, config, &name, topic.as_str()).await?;
    Ok(name)
}

/// The durable queue that keeps the dead letters of a topic, named after the dead-letter topic.
pub(super) async fn declare_dead_letters(
    channel: &Channel,
    config: &RabbitConfig,
    dead_letters: &Topic,
) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let name = dead_letters.as_str();
    channel
        .queue_declare(name.into(), durable, FieldTable::default())
        .await?;
    bind(channel, config, name, name).await
}

async fn bind(
    channel: &Channel,
    config: &RabbitConfig,
    queue: &str,
    routing_key: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            config.exchange.as_str().into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// The delay a retry waits: at least the one asked, rounded up to a power of two milliseconds
/// so that a few queues serve every delay.
pub(super) fn delay_bucket(delay: Duration) -> u64 {
    let millis = u64::try_from(delay.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1);
    millis.checked_next_power_of_two().unwrap_or(1 << 63)
}

/// The name of the queue delayed retries of `millis` wait in.
pub(super) fn delay_queue(config: &RabbitConfig, millis: u64) -> String {
    format!("{}.{millis}", delay_exchange(config))
}

/// The queue messages wait `millis` in before they go back, by the default exchange and their
/// routing key, to the queue they came from.
pub(super) async fn declare_delay(
    channel: &Channel,
    config: &RabbitConfig,
    millis: u64,
) -> Result<(), lapin::Error> {
    let name = delay_queue(config, millis);
    let arguments = table([
        (
            "x-message-ttl",
            AMQPValue::LongLongInt(i64::try_from(millis).unwrap_or(i64::MAX)),
        ),
        ("x-dead-letter-exchange", text("")),
    ]);
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.as_str().into(), durable, arguments)
        .await?;
    let matching = table([
        ("x-match", text("all")),
        (DELAY_HEADER, text(millis.to_string())),
    ]);
    channel
        .queue_bind(
            name.as_str().into(),
            delay_exchange(config).into(),
            "".into(),
            QueueBindOptions::default(),
            matching,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_a_power_of_two_milliseconds() {
        assert_eq!(delay_bucket(Duration::ZERO), 1);
        assert_eq!(delay_bucket(Duration::from_millis(100)), 128);
        assert_eq!(delay_bucket(Duration::from_millis(128)), 128);
        assert_eq!(delay_bucket(Duration::from_micros(128_001)), 256);
        assert_eq!(delay_bucket(Duration::from_secs(10)), 16_384);
    }

    #[test]
    fn group_queues_cannot_collide() {
        let a = Topic::new("events.a.v1").unwrap();
        assert_eq!(group_queue(&a, "billing"), "events.a.v1:billing");
        assert_eq!(rpc_queue(&a, "billing"), "rpc:events.a.v1:billing");
        assert!(Topic::new("rpc").is_err());
    }
}
