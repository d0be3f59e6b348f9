//! The NATS server restarted with its service command while events flow: the conformance case,
//! then 10,000 events across a restart. Alone in this file, as a restart would break tests
//! running beside it.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes), against the server on 127.0.0.1:4222 that this
//! machine runs with `start-stop-daemon` (see `.ci/run`): it is stopped by its pid and started
//! again with the same command.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tidings::broker::nats::{DEFAULT_URL, NatsBroker, NatsConfig};
use tidings::{Broker, BrokerError};
use tidings_conformance::restart::events_survive_restart;
use tidings_conformance::{self as conformance, BrokerFactory, Outcome};

struct NatsService(NatsConfig);

impl BrokerFactory for NatsService {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(NatsBroker::connect(self.0.clone()).await?))
    }

    fn can_restart(&self) -> bool {
        // The service command restarts the local server only.
        self.0.url() == DEFAULT_URL
    }

    async fn restart(&self) -> Result<(), String> {
        tokio::task::spawn_blocking(tidings_tests::nats_server::restart)
            .await
            .map_err(|e| e.to_string())?
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(60)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
async fn restart_mid_stream_loses_nothing() {
    let factory = NatsService(
        NatsConfig::from_env()
            .max_age(Duration::from_secs(3600))
            .group_expiry(Some(Duration::from_secs(600))),
    );
    assert!(
        factory.can_restart(),
        "the restart test needs the local server, {DEFAULT_URL}"
    );

    let outcome = conformance::broker_restart(&factory).await;
    assert_eq!(outcome, Outcome::Passed);

    let report = events_survive_restart(&factory, 10_000, factory.patience()).await;
    let line = format!(
        "nats restart: {} of 10000 events handled once; {} duplicates removed by dedup; {} \
         publishes retried\n",
        report.events, report.duplicates, report.publish_retries
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert_eq!(report.events, 10_000);
}
