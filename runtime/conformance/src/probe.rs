//! The events the conformance cases send: one small protobuf message, one event type per case.
//!
//! Event types carry their topic as a constant, so typed cases cannot get a topic per run;
//! instead each payload carries the run's id and every handler ignores other runs' events, and
//! groups get names unique per run. Cases on the broker seam use topics unique per run.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use tidings_core::broker::Message;
use tidings_core::envelope::SCHEMA_PREFIX;
use tidings_core::{ContentType, Envelope, Event, Topic};

/// The schema every probe event claims.
pub const PROBE_SCHEMA: &str = "tidings.conformance.v1.Probe";

/// The source conformance cases publish as.
pub const SOURCE: &str = "tidings-conformance";

/// What every probe event carries: the run it belongs to, a sequence number, a key, and
/// padding to make it as large as a case needs.
pub trait Probe: Event + prost::Message + Default {
    /// A probe of run `run`, number `seq`, with partition key `key` (empty: none).
    fn new(run: &str, seq: u64, key: &str) -> Self;
    /// The run it belongs to.
    fn run(&self) -> &str;
    /// Its number within the run.
    fn seq(&self) -> u64;
    /// Its padding, empty unless a case sets it.
    fn padding_mut(&mut self) -> &mut Vec<u8>;
}

macro_rules! probes {
    ($($(#[$doc:meta])* $name:ident => $topic:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct $name {
            /// The run it belongs to.
            #[prost(string, tag = "1")]
            pub run: String,
            /// Its number within the run.
            #[prost(uint64, tag = "2")]
            pub seq: u64,
            /// The partition key, empty for none.
            #[prost(string, tag = "3")]
            pub key: String,
            /// Bytes that make it larger, empty unless a case sets them.
            #[prost(bytes = "vec", tag = "4")]
            pub padding: Vec<u8>,
        }

        impl Event for $name {
            const TOPIC: &'static str = $topic;
            const SCHEMA: &'static str = PROBE_SCHEMA;
            const DATA_SCHEMA: &'static str = "proto:tidings.conformance.v1.Probe";
            type Codec = tidings_core::Protobuf;
            fn key(&self) -> Option<String> {
                (!self.key.is_empty()).then(|| self.key.clone())
            }
        }

        impl Probe for $name {
            fn new(run: &str, seq: u64, key: &str) -> Self {
                $name { run: run.to_owned(), seq, key: key.to_owned(), padding: Vec::new() }
            }
            fn run(&self) -> &str {
                &self.run
            }
            fn seq(&self) -> u64 {
                self.seq
            }
            fn padding_mut(&mut self) -> &mut Vec<u8> {
                &mut self.padding
            }
        }
    )*};
}

probes! {
    /// For `publish_subscribe`.
    PublishSubscribe => "conformance.publish_subscribe.probe.v1";
    /// For `many_publishers_and_subscribers`.
    ManyAtOnce => "conformance.many_at_once.probe.v1";
    /// For `fan_out`.
    FanOut => "conformance.fan_out.probe.v1";
    /// For `groups`.
    Groups => "conformance.groups.probe.v1";
    /// For `order_per_key`.
    OrderPerKey => "conformance.order_per_key.probe.v1";
    /// For `start_from_oldest`.
    StartOldest => "conformance.start_oldest.probe.v1";
    /// For `dead_letter_after_bound`.
    DeadLetterBound => "conformance.dead_letter_bound.probe.v1";
    /// For `refusals_are_dead_lettered`: the subscribed type.
    Refusals => "conformance.refusals.probe.v1";
    /// For `refusals_are_dead_lettered`: the same event one major later.
    RefusalsV2 => "conformance.refusals.probe.v2";
    /// For `size_limit`.
    SizeLimit => "conformance.size_limit.probe.v1";
    /// For `foreign_messages_are_dead_lettered`.
    Foreign => "conformance.foreign.probe.v1";
    /// For `retry_then_success`.
    RetryThenSuccess => "conformance.retry_then_success.probe.v1";
    /// For `handler_panic_is_isolated`.
    HandlerPanic => "conformance.handler_panic.probe.v1";
    /// For `handler_timeout`.
    HandlerTimeout => "conformance.handler_timeout.probe.v1";
    /// For `concurrency_limit`.
    Concurrency => "conformance.concurrency.probe.v1";
    /// For `graceful_shutdown`.
    Shutdown => "conformance.shutdown.probe.v1";
    /// For `dedup_by_event_id`.
    Dedup => "conformance.dedup.probe.v1";
    /// For `close_and_resubscribe`.
    Resubscribe => "conformance.resubscribe.probe.v1";
    /// For `broker_restart`.
    Restart => "conformance.restart.probe.v1";
    /// For `causation_bound`.
    CausationLoop => "conformance.causation_loop.probe.v1";
    /// For the request-reply cases: a request.
    RpcRequest => "conformance.rpc_request.probe.v1";
    /// For `request_refusal`: the request one major later.
    RpcRequestV2 => "conformance.rpc_request.probe.v2";
    /// For the request-reply cases: a reply.
    RpcReply => "conformance.rpc_reply.probe.v1";
}

/// An id unique to this process and call: lower-case letters and digits, so it fits inside a
/// topic segment and a group name on every broker.
pub fn run_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = nanos
        ^ (u128::from(std::process::id()) << 64)
        ^ (u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 96);
    let mut n = mixed % 36u128.pow(12);
    let mut id = String::with_capacity(13);
    id.push('r');
    for _ in 0..12 {
        id.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
    }
    id
}

/// A topic unique to this run, for cases on the broker seam: `conformance.<case><run>.probe.v1`.
pub fn run_topic(case: &str, run: &str) -> Topic {
    Topic::new(format!("conformance.{case}{run}.probe.v1"))
        .expect("conformance topics follow the topic rule")
}

/// A message as the typed layer would publish probe `seq` of type `E`, marked with `run` as its
/// correlation id so dead letters can be told apart by run.
pub fn probe_message<E: Probe>(run: &str, seq: u64) -> Message {
    let data = E::new(run, seq, "").encode_to_vec();
    let mut envelope = Envelope::new(
        Arc::from(SOURCE),
        Cow::Borrowed(E::TOPIC),
        ContentType::Protobuf,
        Some(Cow::Owned(format!("{SCHEMA_PREFIX}{}", E::SCHEMA))),
    );
    envelope.correlation_id = Some(run.to_owned());
    Message::new(envelope, Bytes::from(data))
}

/// Reads a probe's run and number back from raw data.
pub fn decode_probe(data: &[u8]) -> Option<(String, u64)> {
    let probe = PublishSubscribe::decode(data).ok()?;
    Some((probe.run, probe.seq))
}
