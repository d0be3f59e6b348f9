//! The conformance suite every broker adapter passes, written once over a [`BrokerFactory`].
//!
//! Each case is an async function taking the factory and returning an [`Outcome`]; a case
//! fails by panicking with what went wrong. A case is skipped only when the broker's
//! [`Capabilities`](tidings::Capabilities) say it does not promise what the case checks, and the
//! skip is reported on the terminal (see [`report`]), never counted silently.
//!
//! The cases share a real broker with other runs and keep no state of their own on it: topics on
//! the broker seam are unique per run, groups are named per run, and typed events (whose topic is
//! a constant) carry the run's id, so each case ignores what other runs left behind. Every wait
//! is bounded by [`BrokerFactory::patience`], so a broken broker fails a case instead of hanging.
//!
//! An adapter's test file is one line:
//!
//! ```ignore
//! tidings_tests::conformance_tests!(NatsFactory::new());
//! ```

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tidings::{Broker, BrokerError};

mod delivery;
mod failure;
mod flow;
pub mod probe;
mod redelivery;
mod support;

pub use delivery::{
    fan_out, groups, many_publishers_and_subscribers, order_per_key, publish_subscribe,
    start_from_oldest, topic_isolation,
};
pub use failure::{
    dead_letter_after_bound, handler_panic_is_isolated, handler_timeout,
    refusals_are_dead_lettered, retry_then_success,
};
pub use flow::{concurrency_limit, dedup_by_event_id, graceful_shutdown};
pub use redelivery::{
    broker_restart, close_and_resubscribe, redelivery_after_consumer_dies, redelivery_after_nack,
};

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
}

/// How a case ended, when it did not fail.
#[must_use = "report the outcome, so a skipped case is seen"]
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

/// Reports a case's outcome: a skip is written straight to the terminal's standard error, past
/// the test harness's output capture, so it shows up in every run.
pub fn report(case: &str, outcome: &Outcome) {
    if let Outcome::Skipped { reason } = outcome {
        let line = format!("conformance case `{case}` SKIPPED: {reason}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each calling the case with a factory
/// made by `$factory` (evaluated once per test) and reporting its outcome. Attributes after the
/// factory go on every test, e.g.
/// `#[cfg_attr(not(tidings_broker = "nats"), ignore = "not asked to run: set TIDINGS_BROKERS=nats")]`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_tests!(@cases [$(#[$attr])*] $factory;
            publish_subscribe,
            many_publishers_and_subscribers,
            topic_isolation,
            fan_out,
            groups,
            order_per_key,
            start_from_oldest,
            redelivery_after_nack,
            redelivery_after_consumer_dies,
            close_and_resubscribe,
            broker_restart,
            dead_letter_after_bound,
            refusals_are_dead_lettered,
            retry_then_success,
            handler_panic_is_isolated,
            handler_timeout,
            concurrency_limit,
            graceful_shutdown,
            dedup_by_event_id,
        );
    };
    (@cases $attrs:tt $factory:expr; $($case:ident,)*) => {$(
        $crate::conformance_tests!(@case $attrs $factory; $case);
    )*};
    (@case [$(#[$attr:meta])*] $factory:expr; $case:ident) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let factory = $factory;
            let outcome = $crate::conformance::$case(&factory).await;
            $crate::conformance::report(concat!(module_path!(), "::", stringify!($case)), &outcome);
        }
    };
}
