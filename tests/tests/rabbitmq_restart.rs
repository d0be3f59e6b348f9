//! The RabbitMQ server restarted with its service command while events flow: the conformance
//! case, then 10,000 events across a restart. Alone in this file, as a restart would break tests
//! running beside it.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes), against the server on 127.0.0.1:5672, which is
//! restarted with `rabbitmqctl stop_app` and `rabbitmqctl start_app`.

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tidings::broker::rabbitmq::{DEFAULT_URL, RabbitBroker, RabbitConfig};
use tidings::{Broker, BrokerError};
use tidings_conformance::restart::events_survive_restart;
use tidings_conformance::{self as conformance, BrokerFactory, Outcome};

struct RabbitService(RabbitConfig);

impl BrokerFactory for RabbitService {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(RabbitBroker::connect(self.0.clone()).await?))
    }

    fn can_restart(&self) -> bool {
        // The service command restarts the local server only.
        self.0.url() == DEFAULT_URL
    }

    async fn restart(&self) -> Result<(), String> {
        tokio::task::spawn_blocking(restart_server)
            .await
            .map_err(|e| e.to_string())?
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(90)
    }
}

fn rabbitmqctl(command: &str) -> Result<(), String> {
    let output = Command::new("rabbitmqctl")
        .arg(command)
        .output()
        .map_err(|e| format!("rabbitmqctl {command}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "rabbitmqctl {command} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// Stops and starts the RabbitMQ application; `start_app` returns once it is running.
fn restart_server() -> Result<(), String> {
    rabbitmqctl("stop_app")?;
    rabbitmqctl("start_app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ at TIDINGS_RABBITMQ_URL (default amqp://127.0.0.1:5672): run with --include-ignored, as the test command does"]
async fn restart_mid_stream_loses_nothing() {
    let factory =
        RabbitService(RabbitConfig::from_env().group_expiry(Some(Duration::from_secs(600))));
    assert!(
        factory.can_restart(),
        "the restart test needs the local server, {DEFAULT_URL}"
    );

    let outcome = conformance::broker_restart(&factory).await;
    assert_eq!(outcome, Outcome::Passed);

    let report = events_survive_restart(&factory, 10_000, factory.patience()).await;
    let line = format!(
        "rabbitmq restart: {} of 10000 events handled once; {} duplicates removed by dedup; {} \
         publishes retried\n",
        report.events, report.duplicates, report.publish_retries
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    assert_eq!(report.events, 10_000);
}
