//! tidings against ruststream, the closest Rust peer, on the same work in one process.
//!
//! Both sides carry the shop's `events.order.v1.Created` (two line items, about 106 bytes of
//! protobuf, prost on both sides) and handle each event by decoding it and counting it. Each
//! scenario runs a warm-up pair, then `PEER_ROUNDS` pairs of one round per side, the side that
//! goes first alternating; a round is timed from its first publish to its last handled event.
//! Per scenario it prints the median events/s of each side, the median of the pairs' own ratios
//! (tidings/ruststream), and per event the allocation calls of the whole process (clients
//! included) and this process's CPU time, then a Markdown table of all scenarios.
//!
//! * `memory`: the in-process brokers as they ship; one task publishes, one subscriber handles
//!   one event at a time, on a current-thread runtime. `memory-matched`: tidings' queue bound
//!   raised and its history off, as ruststream's broker is.
//! * `nats`: JetStream file streams, a durable pull consumer per round (new messages only,
//!   64 unacked, 64 handlers), ack after the handler; 4 tasks publish, each publish awaiting the
//!   server's ack and carrying a `Nats-Msg-Id`.
//! * `rabbitmq`: topic exchanges, a durable quorum queue per round, prefetch 64, 64 handlers,
//!   ack after the handler; 4 tasks publish persistent messages, each awaiting its confirm.
//! * `memory-ce`, `nats-ce`, `rabbitmq-ce`: the same, ruststream also sending the CloudEvents
//!   headers tidings sends, made per message.
//!
//! What stays unequal: tidings sends and checks CloudEvents attributes on every event, which
//! ruststream does not unless a `-ce` scenario makes it send them; tidings' in-process queue is
//! bounded, ruststream's is not.
//!
//! ```text
//! cargo bench -p tidings-peer-bench --bench peer
//! ```
//!
//! Environment: `PEER_SCENARIOS` (comma-separated, default `memory,nats,rabbitmq`),
//! `PEER_ROUNDS` (pairs, default 7), `PEER_MEMORY_EVENTS` (200,000), `PEER_NATS_EVENTS`
//! (20,000), `PEER_RABBITMQ_EVENTS` (4,000), `TIDINGS_NATS_URL` (`nats://127.0.0.1:4222`, with
//! JetStream), `TIDINGS_RABBITMQ_URL` (`amqp://guest:guest@127.0.0.1:5672/%2f`). Streams,
//! consumers, exchanges and queues are named after the run and deleted at its end; run one at a
//! time.

#![forbid(unsafe_code)]

mod measure;
mod order;
mod ours;
mod peer;
mod report;
mod scenarios;

use std::alloc::System;
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// The system allocator, counting every call.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The `source` both sides name: tidings' CloudEvents source, ruststream's application.
const SOURCE: &str = "peer-bench";
/// Tasks publishing at once on a broker, each awaiting its confirmation before the next.
const PUBLISHERS: u64 = 4;
/// Deliveries unacked and handlers at work at once, per consumer on a broker.
const IN_FLIGHT: usize = 64;
/// How long a round may go without a handled event before it is given up.
const PATIENCE: Duration = Duration::from_secs(30);

/// Publishes `events` events from [`PUBLISHERS`] tasks, each awaiting its own publishes one
/// after the other.
async fn publish_from_tasks<F, Fut>(events: u64, publish: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|task| {
            let publish = publish.clone();
            let share = events / PUBLISHERS + u64::from(task < events % PUBLISHERS);
            tokio::spawn(async move {
                for _ in 0..share {
                    publish().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a publishing task");
    }
}

/// The run's settings, from the environment.
struct Settings {
    /// Names what this run makes on the servers.
    run: String,
    scenarios: Vec<String>,
    rounds: usize,
    memory_events: u64,
    nats_events: u64,
    rabbitmq_events: u64,
    nats_url: String,
    rabbitmq_url: String,
}

/// `name`'s value, or `default` when it is not set.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().unwrap_or_else(|_| {
            panic!("{name}={value:?} cannot be read; unset it for the default")
        }),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        let rounds: usize = setting("PEER_ROUNDS", 7);
        assert!(rounds > 0, "PEER_ROUNDS must be at least 1 (7 by default)");
        let events = |name, default| {
            let events: u64 = setting(name, default);
            assert!(events > 0, "{name} must be at least 1");
            events
        };
        Settings {
            // The random tail of a v7 id: short, and apart from any other run's.
            run: uuid::Uuid::now_v7().simple().to_string()[20..].to_owned(),
            scenarios: setting("PEER_SCENARIOS", "memory,nats,rabbitmq".to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            rounds,
            memory_events: events("PEER_MEMORY_EVENTS", 200_000),
            nats_events: events("PEER_NATS_EVENTS", 20_000),
            rabbitmq_events: events("PEER_RABBITMQ_EVENTS", 4_000),
            nats_url: setting("TIDINGS_NATS_URL", "nats://127.0.0.1:4222".to_owned()),
            rabbitmq_url: setting(
                "TIDINGS_RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            ),
        }
    }
}

const SCENARIOS: &str = "memory, memory-matched, memory-ce, nats, nats-ce, rabbitmq, rabbitmq-ce";

fn main() {
    let settings = Settings::from_env();
    if let Some(unknown) = settings
        .scenarios
        .iter()
        .find(|s| !SCENARIOS.split(", ").any(|known| known == s.as_str()))
    {
        panic!("PEER_SCENARIOS names {unknown:?}; the scenarios are {SCENARIOS}");
    }
    // The broker scenarios on two workers, the machine's cores; the in-process ones on one
    // thread, where the publisher and the subscriber take turns.
    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    };
    let two_workers = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a multi-thread runtime")
    };
    println!(
        "peer bench, run {}: events.order.v1.Created, two line items, {} bytes of protobuf",
        settings.run,
        prost::Message::encoded_len(&order::order())
    );
    let mut all = Vec::new();
    for scenario in &settings.scenarios {
        let figures = match scenario.as_str() {
            "memory" => current_thread().block_on(scenarios::memory(&settings, false, false)),
            "memory-matched" => {
                current_thread().block_on(scenarios::memory(&settings, true, false))
            }
            "memory-ce" => current_thread().block_on(scenarios::memory(&settings, false, true)),
            "nats" => two_workers().block_on(scenarios::nats(&settings, false)),
            "nats-ce" => two_workers().block_on(scenarios::nats(&settings, true)),
            "rabbitmq" => two_workers().block_on(scenarios::rabbitmq(&settings, false)),
            "rabbitmq-ce" => two_workers().block_on(scenarios::rabbitmq(&settings, true)),
            other => unreachable!("{other} was checked above"),
        };
        all.push(figures);
    }
    report::table(&all);
}
