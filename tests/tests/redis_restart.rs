//! Redis killed and started again mid-stream, losing nothing a publish confirmed.
//!
//! The shared server on 6379 runs without persistence (`--appendonly no`), so the adapter
//! declares it not durable and the suite skips the restart case there. Each test here starts a
//! server of its own on a free port with the append-only file on and synced on every write, so
//! a confirmed `XADD` survives `SIGKILL`; restarting it disturbs nobody else.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tidings::broker::redis::{RedisBroker, RedisConfig};
use tidings::{
    Broker, BrokerError, Bus, DedupError, DedupStore, HandlerError, MemoryDedup, Received, Topic,
};
use tidings_conformance::probe::{Restart, probe_message, run_id};
use tidings_conformance::{self as conformance, BrokerFactory, Outcome};

/// A `redis-server` of the test's own, with the append-only file on.
struct DurableRedis {
    port: u16,
    dir: PathBuf,
    server: Mutex<Option<Child>>,
}

impl DurableRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("tidings-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a data folder for the test's Redis");
        let redis = DurableRedis {
            port,
            dir,
            server: Mutex::new(None),
        };
        redis.spawn();
        redis
    }

    fn spawn(&self) {
        let server = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server (is Redis installed?)");
        *self.server.lock().unwrap() = Some(server);
        wait_for_port(self.port);
    }

    fn kill(&self) {
        if let Some(mut server) = self.server.lock().unwrap().take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    fn config(&self) -> RedisConfig {
        RedisConfig::new(format!("redis://127.0.0.1:{}", self.port))
            .claim_idle(Duration::from_secs(1))
    }
}

impl Drop for DurableRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until something listens on `port`, at most ten seconds.
fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not listen on 127.0.0.1:{port} within 10 s");
}

impl BrokerFactory for DurableRedis {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(RedisBroker::connect(self.config()).await?))
    }

    fn can_restart(&self) -> bool {
        true
    }

    async fn restart(&self) -> Result<(), String> {
        // SIGKILL, not SHUTDOWN: only what was fsynced before a confirm may count.
        self.kill();
        self.spawn();
        Ok(())
    }

    fn patience(&self) -> Duration {
        Duration::from_secs(30)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn conformance_broker_restart_with_append_only_file() {
    let redis = DurableRedis::start();
    let broker = redis
        .connect()
        .await
        .expect("connecting to the test's Redis");
    assert!(
        broker.capabilities().durable,
        "appendonly yes must be declared durable"
    );
    let outcome = conformance::broker_restart(&redis).await;
    assert_eq!(outcome, Outcome::Passed);
}

/// A dedup store that counts the duplicates it removes.
struct Counting {
    store: MemoryDedup,
    duplicates: AtomicU64,
}

#[async_trait]
impl DedupStore for Counting {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        let seen = self.store.seen(scope, id).await?;
        if seen {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        Ok(seen)
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        self.store.record(scope, id).await
    }
}

const EVENTS: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn ten_thousand_events_survive_a_restart_and_dedup_removes_the_repeats() {
    let redis = DurableRedis::start();
    let broker = redis
        .connect()
        .await
        .expect("connecting to the test's Redis");
    let bus = Bus::from_arc(broker.clone()).with_source("redis-restart");
    let run = run_id();
    let topic = Topic::of::<Restart>().expect("a valid topic");

    let handled: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let dedup = Arc::new(Counting {
        store: MemoryDedup::new(2 * EVENTS as usize),
        duplicates: AtomicU64::new(0),
    });
    let (done, mut all_handled) = tokio::sync::watch::channel(0usize);
    let handler = {
        let (handled, run) = (handled.clone(), run.clone());
        move |event: Received<Restart>| {
            let mut handled = handled.lock().unwrap();
            if event.run == run {
                *handled.entry(event.seq).or_default() += 1;
                let _ = done.send(handled.len());
            }
            std::future::ready(Ok::<(), HandlerError>(()))
        }
    };
    // One at a time, so a repeat never races its original past the dedup check.
    let subscription = bus
        .subscribe(handler)
        .group(format!("restart_{run}"))
        .dedup(dedup.clone())
        .await
        .expect("joining the group");

    // The server is killed a third of the way through and comes back half a second later,
    // while the publisher keeps going and the subscriber keeps consuming.
    let published = AtomicU64::new(0);
    let restarter = async {
        while published.load(Ordering::Relaxed) < EVENTS / 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        redis.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        redis.spawn();
    };
    let publisher = async {
        let mut retries = 0u32;
        for seq in 0..EVENTS {
            // The same message (same event id) until Redis confirms it: a confirm lost in
            // the restart makes a repeat that only the dedup step can remove.
            let message = probe_message::<Restart>(&run, seq);
            let mut tries = 0;
            while let Err(e) = broker.publish(&topic, message.clone()).await {
                tries += 1;
                assert!(tries < 600, "publishing {seq} across the restart: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            retries += tries;
            published.store(seq + 1, Ordering::Relaxed);
        }
        retries
    };
    let ((), publish_retries) = tokio::join!(restarter, publisher);

    let everything = tokio::time::timeout(
        Duration::from_secs(120),
        all_handled.wait_for(|n| *n as u64 == EVENTS),
    )
    .await;
    subscription.shutdown().await;
    let handled = handled.lock().unwrap();
    assert!(
        everything.is_ok(),
        "handled {} of {EVENTS} events",
        handled.len()
    );
    let repeated: Vec<_> = handled.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "the handler saw repeats the dedup step should have removed: {repeated:?}"
    );
    let duplicates = dedup.duplicates.load(Ordering::Relaxed);
    let line = format!(
        "redis restart: {EVENTS} events handled once each; {duplicates} duplicate deliveries \
         removed by dedup; {publish_retries} publish retries while Redis was away\n"
    );
    // Past the harness's capture, so the counts show in every run.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}
