//! The metrics of the typed layer, through the [`metrics`] facade, named by the OpenTelemetry
//! messaging semantic conventions where they name one, under `messaging.tidings.` otherwise.
//!
//! They are recorded by a bus made [`with_metrics`](crate::Bus::with_metrics), into whatever
//! recorder the application installed (Prometheus, StatsD, OpenTelemetry...). Off by default:
//! the two durations read the clock twice per message, which the in-process path would feel.
//!
//! Every metric carries `messaging.system`, `messaging.destination.name` (the topic),
//! `messaging.operation.name` (`publish` or `process`) and, for a consumer in a group,
//! `messaging.consumer.group.name`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, Label, Unit};
use pin_project_lite::pin_project;

use crate::bus::PublishError;
use crate::receipt::Receipt;
use crate::topic::Topic;

/// The metrics' names.
pub mod name {
    /// Counter: events published, with `error.type` (`timeout`, `broker_error`, `not_sent`)
    /// when the publish failed.
    pub const SENT: &str = "messaging.client.sent.messages";
    /// Histogram, seconds: how long a publish took, encoding to the broker's confirmation, with
    /// `error.type` when it failed.
    pub const OPERATION_DURATION: &str = "messaging.client.operation.duration";
    /// Counter: deliveries taken by a subscription (each redelivery counts again).
    pub const CONSUMED: &str = "messaging.client.consumed.messages";
    /// Histogram, seconds: how long a delivery took, decoding, handler and settling.
    pub const PROCESS_DURATION: &str = "messaging.process.duration";
    /// Counter: failed attempts handed back to the broker to be tried again.
    pub const RETRIED: &str = "messaging.tidings.retried.messages";
    /// Counter: messages moved to their dead-letter topic, by `error.type`: the kind of the
    /// failure that sent them there (`refused`, `handler_error`, `handler_panic`,
    /// `handler_timeout`, `redelivered_past_bound`).
    pub const DEAD_LETTERED: &str = "messaging.tidings.dead_lettered.messages";
    /// Gauge: deliveries being processed now.
    pub const IN_FLIGHT: &str = "messaging.tidings.in_flight.messages";
}

const SYSTEM: &str = "messaging.system";
const DESTINATION: &str = "messaging.destination.name";
const OPERATION: &str = "messaging.operation.name";
const GROUP: &str = "messaging.consumer.group.name";
const ERROR_TYPE: &str = "error.type";

/// Gives the installed recorder the unit and meaning of each metric.
pub(crate) fn describe() {
    metrics::describe_counter!(name::SENT, Unit::Count, "Events published");
    metrics::describe_histogram!(
        name::OPERATION_DURATION,
        Unit::Seconds,
        "Duration of a publish, to the broker's confirmation"
    );
    metrics::describe_counter!(name::CONSUMED, Unit::Count, "Deliveries taken");
    metrics::describe_histogram!(
        name::PROCESS_DURATION,
        Unit::Seconds,
        "Duration of processing a delivery: decoding, handler, settling"
    );
    metrics::describe_counter!(name::RETRIED, Unit::Count, "Failed attempts to be retried");
    metrics::describe_counter!(name::DEAD_LETTERED, Unit::Count, "Messages dead-lettered");
    metrics::describe_gauge!(name::IN_FLIGHT, Unit::Count, "Deliveries being processed");
}

/// Records one publish of an event of `topic` over `system`, begun at `started`.
pub(crate) fn published(
    system: &'static str,
    topic: &'static str,
    started: Instant,
    result: &Result<Receipt, PublishError>,
) {
    let mut labels = vec![
        Label::from_static_parts(SYSTEM, system),
        Label::from_static_parts(DESTINATION, topic),
        Label::from_static_parts(OPERATION, "publish"),
    ];
    if let Err(error) = result {
        let kind = match error {
            PublishError::Timeout { .. } => "timeout",
            PublishError::Broker(_) => "broker_error",
            // Refused here, before the broker saw it.
            _ => "not_sent",
        };
        labels.push(Label::from_static_parts(ERROR_TYPE, kind));
    }
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!(name::SENT, labels.clone()).increment(1);
    metrics::histogram!(name::OPERATION_DURATION, labels).record(elapsed);
}

/// The metrics of one subscription, registered once when it starts.
pub(crate) struct ConsumerMetrics {
    labels: Vec<Label>,
    consumed: Counter,
    duration: Histogram,
    retried: Counter,
    in_flight: Gauge,
}

impl ConsumerMetrics {
    pub(crate) fn new(system: &'static str, topic: &Topic, group: Option<&str>) -> Self {
        let mut labels = vec![
            Label::from_static_parts(SYSTEM, system),
            Label::new(DESTINATION, topic.as_str().to_owned()),
            Label::from_static_parts(OPERATION, "process"),
        ];
        if let Some(group) = group {
            labels.push(Label::new(GROUP, group.to_owned()));
        }
        ConsumerMetrics {
            consumed: metrics::counter!(name::CONSUMED, labels.clone()),
            duration: metrics::histogram!(name::PROCESS_DURATION, labels.clone()),
            retried: metrics::counter!(name::RETRIED, labels.clone()),
            in_flight: metrics::gauge!(name::IN_FLIGHT, labels.clone()),
            labels,
        }
    }

    /// Counts a delivery taken; the timer records its duration once dropped.
    pub(crate) fn start(&self) -> ProcessTimer<'_> {
        self.consumed.increment(1);
        self.in_flight.increment(1.0);
        ProcessTimer {
            metrics: self,
            started: Instant::now(),
        }
    }

    pub(crate) fn retried(&self) {
        self.retried.increment(1);
    }

    /// Counts a dead letter, by the `kind` of failure that sent it there (a rare path, so its
    /// counter is looked up each time).
    pub(crate) fn dead_lettered(&self, kind: &'static str) {
        let mut labels = self.labels.clone();
        labels.push(Label::from_static_parts(ERROR_TYPE, kind));
        metrics::counter!(name::DEAD_LETTERED, labels).increment(1);
    }
}

/// One delivery being processed: its duration is recorded when it is dropped, done or not.
pub(crate) struct ProcessTimer<'a> {
    metrics: &'a ConsumerMetrics,
    started: Instant,
}

impl Drop for ProcessTimer<'_> {
    fn drop(&mut self) {
        let metrics = self.metrics;
        metrics
            .duration
            .record(self.started.elapsed().as_secs_f64());
        metrics.in_flight.decrement(1.0);
    }
}

pin_project! {
    /// A delivery's processing with its timer, when the subscription records metrics.
    pub(crate) struct Timed<'a, F> {
        #[pin]
        future: F,
        timer: Option<ProcessTimer<'a>>,
    }
}

impl<'a, F> Timed<'a, F> {
    pub(crate) fn new(future: F, timer: Option<ProcessTimer<'a>>) -> Self {
        Timed { future, timer }
    }
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}
