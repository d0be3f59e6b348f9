//! The NATS server restarted with its service command while events flow: the conformance case,
//! then 10,000 events across a restart. Alone in this file, as a restart would break tests
//! running beside it.
//!
//! Ignored unless asked for (`--include-ignored`, as the test command passes), against the server on 127.0.0.1:4222 that this
//! machine runs with `start-stop-daemon` (see `.ci/run`): it is stopped by its pid and started
//! again with the same command.

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        tokio::task::spawn_blocking(restart_server)
            .await
            .map_err(|e| e.to_string())?
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(60)
    }
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn wait(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(format!("{what}: not within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Stops the server by its pid and starts it with the service command.
fn restart_server() -> Result<(), String> {
    let pid = run(Command::new("pidof").args(["-s", "nats-server"]))?;
    run(Command::new("kill").arg(&pid))?;
    let proc = format!("/proc/{pid}");
    wait("nats-server to stop", Duration::from_secs(30), || {
        !std::path::Path::new(&proc).exists()
    })?;
    run(Command::new("start-stop-daemon").args([
        "--start",
        "--oknodo",
        "--background",
        "--exec",
        "/usr/sbin/nats-server",
        "--",
        "-a",
        "127.0.0.1",
        "-p",
        "4222",
        "-js",
        "-sd",
        "/var/lib/nats-server",
        "-l",
        "/var/log/nats-server.log",
    ]))?;
    wait("nats-server to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect("127.0.0.1:4222").is_ok()
    })
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
