//! The notification service: a member of a consumer group (`notifications` by default) that
//! tells customers about their orders. Run it twice and the two share the orders, each notified
//! by one of them; run another with `--group audit` and it gets every order as well.
//!
//! ```sh
//! cargo run -p tidings-examples --bin notification_service
//! cargo run -p tidings-examples --bin notification_service -- --group audit --exit-after 3
//! ```
//!
//! It prints `ready: ...` once subscribed, then one line per order, and runs until Ctrl-C (or
//! SIGTERM), or until `--exit-after N` events were handled; either way it stops taking events,
//! lets those in flight finish and be acked, then exits with 0. A broker it cannot reach, a
//! subscription it cannot make or one that ends on its own makes it exit with 1.
//!
//! `--metrics 127.0.0.1:9464` serves its metrics for Prometheus at `http://127.0.0.1:9464/metrics`
//! (events consumed, processing durations, retries, dead letters, deliveries in flight).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use tidings::{HandlerError, Received, SubscribeOptions, Subscriptions};
use tidings_examples::events::order::v1::{self as order, Cancelled, Created};
use tidings_examples::services::BrokerArgs;
use tokio::sync::Notify;

/// Notifies customers of their orders (`events.order.created.v1`, `events.order.cancelled.v1`).
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// The consumer group to join: its members share the events, each handled by one member.
    #[arg(long, value_name = "NAME", default_value = "notifications")]
    group: String,
    /// Stops taking events once this many were handled (default: run until Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    exit_after: Option<u64>,
    /// Serves metrics for Prometheus on this address, at `/metrics`.
    #[arg(long, value_name = "ADDRESS")]
    metrics: Option<std::net::SocketAddr>,
}

/// The handler: prints a notification per event and counts them.
struct Notifier {
    handled: Arc<AtomicU64>,
    exit_after: Option<u64>,
    /// Told once `exit_after` events were handled.
    enough: Arc<Notify>,
}

impl Notifier {
    fn count(&self) {
        let handled = self.handled.fetch_add(1, Ordering::Relaxed) + 1;
        if self.exit_after == Some(handled) {
            self.enough.notify_one();
        }
    }
}

impl order::Handler for Notifier {
    async fn created(&self, order: Received<Created>) -> Result<(), HandlerError> {
        // A real service would send an email here; an error returned from it would be retried.
        println!(
            "notified customer {} of order {} (event {})",
            order.customer_id,
            order.order_id,
            order.envelope().id
        );
        self.count();
        Ok(())
    }

    async fn cancelled(&self, order: Received<Cancelled>) -> Result<(), HandlerError> {
        println!(
            "notified the customer of order {} that it was cancelled: {:?} (event {})",
            order.order_id,
            order.reason(),
            order.envelope().id
        );
        self.count();
        Ok(())
    }
}

/// Waits for Ctrl-C, for SIGTERM (what a container runtime sends), for `enough`, or for a
/// subscription that ended on its own; `Ok` says what was asked, `Err` what went wrong.
async fn stop(
    subscriptions: &Subscriptions,
    enough: &Notify,
    exit_after: Option<u64>,
) -> Result<&'static str, String> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    #[cfg(unix)]
    let terminated = terminate.recv();
    #[cfg(not(unix))]
    let terminated = std::future::pending::<Option<()>>();
    // The adapters reconnect by themselves; a consumer stops only on a failure they could not
    // recover from, which must not leave the service running idle.
    let ended = async {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            if let Some(ended) = subscriptions.iter().find(|s| !s.is_running()) {
                let reason = ended
                    .ended_by()
                    .map_or_else(|| "no reason given".to_owned(), ToString::to_string);
                return format!("the subscription to {} ended: {reason}", ended.topic());
            }
        }
    };
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted
            .map(|()| "Ctrl-C")
            .map_err(|e| format!("cannot listen for Ctrl-C: {e}")),
        _ = terminated => Ok("SIGTERM"),
        () = enough.notified(), if exit_after.is_some() => Ok("--exit-after"),
        reason = ended => Err(reason),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notification_service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut bus = args.broker.connect("/shop/notification-service").await?;
    if let Some(listen) = args.metrics {
        tidings_examples::metrics::install_prometheus(listen)?;
        bus = bus.with_metrics();
        println!("metrics: http://{listen}/metrics");
    }
    let enough = Arc::new(Notify::new());
    let handled = Arc::new(AtomicU64::new(0));
    let notifier = Notifier {
        handled: handled.clone(),
        exit_after: args.exit_after,
        enough: enough.clone(),
    };
    let options = SubscribeOptions::default().group(args.group.clone());
    let subscriptions = order::subscribe(&bus, notifier, options).await?;
    // Only now is the group's consumer in place: a new group receives what is published from
    // here on (an existing one goes on where it left off), so whoever waits for this line may
    // start publishing.
    println!(
        "ready: group {} on {}, {} topic(s)",
        args.group,
        args.broker.shown(),
        subscriptions.len()
    );
    let stopped = stop(&subscriptions, &enough, args.exit_after).await;
    // Whatever stopped it, the events in flight finish and are acked before the exit.
    subscriptions.shutdown().await;
    println!(
        "stopped ({}) after {} event(s)",
        stopped?,
        handled.load(Ordering::Relaxed)
    );
    Ok(())
}
