//! The conformance suite every tidings broker adapter passes, written once over a
//! [`BrokerFactory`], for adapters in this repository and outside it alike.
//!
//! Each case is an async function taking the factory and returning an [`Outcome`]; a case
//! fails by panicking with what went wrong. A case is skipped only when the broker's
//! [`Capabilities`](tidings_core::Capabilities) say it does not promise what the case checks, or
//! the factory cannot make what the case needs (a foreign message, on the in-process broker), and
//! the skip is shown as an ignored test with its reason (see [`conformance_tests!`]), never
//! counted as a pass.
//!
//! The cases share a real broker with other runs and keep no state of their own on it: topics on
//! the broker seam are unique per run, groups are named per run, and typed events (whose topic is
//! a constant) carry the run's id, so each case ignores what other runs left behind. Every wait
//! is bounded by [`BrokerFactory::patience`], so a broken broker fails a case instead of hanging.
//!
//! An adapter's conformance test file is a factory and one macro call:
//!
//! ```ignore
//! use std::sync::Arc;
//! use tidings_conformance::BrokerFactory;
//! use tidings_core::{Broker, BrokerError};
//!
//! struct Factory;
//!
//! impl BrokerFactory for Factory {
//!     async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
//!         Ok(Arc::new(MyBroker::connect("my://127.0.0.1").await?))
//!     }
//! }
//!
//! tidings_conformance::conformance_tests!(
//!     Factory,
//!     // Cases the broker's capabilities exclude: shown as ignored, and checked to be excluded.
//!     not_promised [broker_restart],
//!     // On every case that needs the server, so a plain `cargo test` needs none.
//!     #[ignore = "needs a server: run with --include-ignored"]
//! );
//! ```
//!
//! Beside the cases, [`seam`] drives a broker below the typed layer for adapter tests of their
//! own, [`restart`] publishes thousands of events across a restart of the server, and
//! [`answered_client`] makes a request-reply client whose reply topic an adapter that removes
//! topics checks is gone once the client is dropped.

#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tidings_core::{Broker, BrokerError, Topic};

mod causation;
pub mod dedup;
mod delivery;
mod failure;
mod flow;
pub mod probe;
mod redelivery;
mod request_reply;
pub mod restart;
pub mod seam;
mod size;
mod support;

pub use causation::causation_bound;
pub use delivery::{
    fan_out, groups, many_publishers_and_subscribers, order_per_key, publish_subscribe,
    start_from_oldest, topic_isolation,
};
pub use failure::{
    dead_letter_after_bound, foreign_messages_are_dead_lettered, handler_panic_is_isolated,
    handler_timeout, refusals_are_dead_lettered, retry_then_success,
};
pub use flow::{concurrency_limit, dedup_by_event_id, graceful_shutdown};
pub use redelivery::{
    broker_restart, close_and_resubscribe, redelivery_after_consumer_dies, redelivery_after_nack,
};
pub use request_reply::{
    answered_client, request_deadline, request_groups, request_refusal, request_reply,
    request_status, request_without_server,
};
pub use size::size_limit;

/// What the test functions that [`conformance_tests!`] expands to need; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use tokio;
}

/// Makes connections to the broker under test.
pub trait BrokerFactory: Send + Sync {
    /// A new connection to the broker. A case may call it several times (a consumer that dies,
    /// members of a group): every connection must reach the same broker.
    fn connect(&self) -> impl Future<Output = Result<Arc<dyn Broker>, BrokerError>> + Send;

    /// Whether [`BrokerFactory::restart`] can restart the server in this environment.
    fn can_restart(&self) -> bool {
        false
    }

    /// Restarts the broker server and returns once it accepts connections again.
    fn restart(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Err("this factory cannot restart its broker".to_owned()) }
    }

    /// How long a case waits for something the broker should do before it fails.
    fn patience(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// Publishes `payload` to `topic` through the broker's own client, as a producer that knows
    /// nothing of tidings does: no CloudEvents attributes at all. `None` where no such message
    /// can exist (the in-process broker carries only what tidings publishes).
    fn publish_foreign(
        &self,
        _topic: &Topic,
        _payload: Vec<u8>,
    ) -> impl Future<Output = Option<Result<(), String>>> + Send {
        async { None }
    }
}

/// How a case ended, when it did not fail.
#[must_use = "check the outcome, so a skipped case is never counted as a pass"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything the case checks held.
    Passed,
    /// The broker does not promise what the case checks.
    Skipped {
        /// What the broker does not promise.
        reason: String,
    },
}

impl Outcome {
    /// A skip, for the given reason.
    pub fn skipped(reason: impl Into<String>) -> Outcome {
        Outcome::Skipped {
            reason: reason.into(),
        }
    }
}

/// Fails the test unless the case passed: a case the file does not list as not promised must
/// run whole, so a skip is never counted as a pass.
pub fn expect_passed(case: &str, outcome: Outcome) {
    if let Outcome::Skipped { reason } = outcome {
        panic!(
            "conformance case `{case}` did not run ({reason}); list it under `not_promised` if the \
             broker's capabilities really exclude it"
        );
    }
}

/// Fails the test unless the case was skipped: a case listed as not promised must be excluded by
/// the broker's declared capabilities, not merely left out.
pub fn expect_not_promised(case: &str, outcome: Outcome) {
    if outcome == Outcome::Passed {
        panic!(
            "conformance case `{case}` is listed as not promised, but the broker's capabilities \
             promise it: remove it from `not_promised`"
        );
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each calling the case with a factory
/// made by `$factory` (evaluated once per test) and requiring it to pass.
///
/// Cases the broker does not promise, by its [`Capabilities`](tidings_core::Capabilities), are listed
/// after `not_promised`: their tests are marked ignored with that reason, so a run shows them as
/// ignored rather than passed, and one more test checks that the capabilities exclude each of
/// them. Attributes after that go on every test that needs the broker, e.g.
/// `#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(, not_promised [$($skip:ident),+ $(,)?])? $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_tests!(@define ($) [$(#[$attr])*] ($factory) [$($($skip)+)?]);
    };
    (@define ($d:tt) [$($attr:tt)*] ($factory:expr) [$($skip:ident)*]) => {
        macro_rules! conformance_case {
            $(($skip) => {
                #[ignore = "not run in this suite: the broker's capabilities exclude it, or it needs a server restart (see the broker's restart test)"]
                #[$crate::__private::tokio::test(flavor = "multi_thread", worker_threads = 2, crate = "::tidings_conformance::__private::tokio")]
                async fn $skip() {
                    let factory = $factory;
                    let outcome = $crate::$skip(&factory).await;
                    $crate::expect_not_promised(stringify!($skip), outcome);
                }
            };)*
            ($d case:ident) => {
                $($attr)*
                #[$crate::__private::tokio::test(flavor = "multi_thread", worker_threads = 2, crate = "::tidings_conformance::__private::tokio")]
                async fn $d case() {
                    let factory = $factory;
                    let outcome = $crate::$d case(&factory).await;
                    $crate::expect_passed(stringify!($d case), outcome);
                }
            };
        }
        conformance_case!(publish_subscribe);
        conformance_case!(many_publishers_and_subscribers);
        conformance_case!(topic_isolation);
        conformance_case!(fan_out);
        conformance_case!(groups);
        conformance_case!(order_per_key);
        conformance_case!(start_from_oldest);
        conformance_case!(redelivery_after_nack);
        conformance_case!(redelivery_after_consumer_dies);
        conformance_case!(close_and_resubscribe);
        conformance_case!(broker_restart);
        conformance_case!(dead_letter_after_bound);
        conformance_case!(refusals_are_dead_lettered);
        conformance_case!(foreign_messages_are_dead_lettered);
        conformance_case!(size_limit);
        conformance_case!(retry_then_success);
        conformance_case!(handler_panic_is_isolated);
        conformance_case!(handler_timeout);
        conformance_case!(concurrency_limit);
        conformance_case!(graceful_shutdown);
        conformance_case!(dedup_by_event_id);
        conformance_case!(causation_bound);
        conformance_case!(request_reply);
        conformance_case!(request_deadline);
        conformance_case!(request_without_server);
        conformance_case!(request_groups);
        conformance_case!(request_status);
        conformance_case!(request_refusal);
        $crate::conformance_tests!(@declared [$($attr)*] ($factory) [$($skip)*]);
    };
    (@declared [$($attr:tt)*] ($factory:expr) []) => {};
    (@declared [$($attr:tt)*] ($factory:expr) [$($skip:ident)+]) => {
        /// The cases listed as not promised are the ones the broker's capabilities exclude.
        $($attr)*
        #[$crate::__private::tokio::test(flavor = "multi_thread", worker_threads = 2, crate = "::tidings_conformance::__private::tokio")]
        async fn not_promised_cases_are_excluded_by_capabilities() {
            let factory = $factory;
            $(
                let outcome = $crate::$skip(&factory).await;
                $crate::expect_not_promised(stringify!($skip), outcome);
            )+
        }
    };
}
