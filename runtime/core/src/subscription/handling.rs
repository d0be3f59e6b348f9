//! One handler call: its panics caught, its time limited, its delivery settled.
//!
//! Written as a future by hand rather than an `async fn` because it runs once per message: an
//! `async fn` would keep its arguments and each temporary in its state and copy that state
//! whole on every move, and the typed layer's overhead is mostly such copies.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::{Consumer, panic_message};
use crate::broker::Acker;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::handler::{Handler, HandlerError, Received};
use crate::telemetry::{consumer_event, kind};

type Rest<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pin_project! {
    /// Polls the handler's future until it ends, fails, panics or runs out of time, then
    /// settles the delivery: an ack at once when the broker can, otherwise a boxed `rest`.
    ///
    /// Kept small (rare states live in `rest`), as the consumer moves it once per message.
    pub(super) struct Handling<'a, E, H, F> {
        #[pin]
        future: Option<F>,
        consumer: &'a Consumer<E, H>,
        acker: Option<Box<dyn Acker>>,
        attempt: u32,
        // The event's envelope: its id goes into the events of a failure and, with dedup on,
        // is recorded once the handler succeeded, before the ack.
        envelope: Arc<Envelope>,
        dedup: bool,
        // Armed only once the handler waits, so a handler that does not costs no timer.
        timer: Option<Pin<Box<Sleep>>>,
        // What is left once the handler is done with: settling that has to wait.
        rest: Option<Rest<'a>>,
    }
}

impl<'a, E: Event, H: Handler<E>> Consumer<E, H> {
    /// Starts the handler on `received`; with `dedup`, the event's id is recorded once it
    /// succeeds.
    pub(super) fn handling(
        &'a self,
        received: Received<E>,
        acker: Box<dyn Acker>,
        dedup: bool,
    ) -> Handling<'a, E, H, impl Future<Output = Result<(), HandlerError>> + Send + 'a> {
        let attempt = received.attempt();
        let envelope = received.shared_envelope().clone();
        // Making the handler's future runs user code too, so it is guarded like its polling.
        let made = panic::catch_unwind(AssertUnwindSafe(|| self.handler.handle(received)));
        let (future, acker, rest) = match made {
            Ok(future) => (Some(future), Some(acker), None),
            Err(panic) => {
                let reason = format!("handler panicked: {}", panic_message(&*panic));
                self.attempt_failed(kind::HANDLER_PANIC, &reason, attempt, &envelope);
                let kind = kind::HANDLER_PANIC;
                let rest: Rest<'a> =
                    Box::pin(self.fail(acker, kind, reason, attempt, envelope.clone()));
                (None, None, Some(rest))
            }
        };
        Handling {
            future,
            consumer: self,
            acker,
            attempt,
            envelope,
            dedup,
            timer: None,
            rest,
        }
    }
}

impl<'a, E, H, F> Future for Handling<'a, E, H, F>
where
    E: Event,
    H: Handler<E>,
    F: Future<Output = Result<(), HandlerError>> + Send + 'a,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if let Some(rest) = this.rest.as_mut() {
            return rest.as_mut().poll(cx);
        }
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let reason = match panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(Ok(()))) => {
                this.future.set(None);
                let consumer = *this.consumer;
                let mut acker = this.acker.take().expect("settled once");
                if *this.dedup {
                    let envelope = this.envelope.clone();
                    *this.rest = Some(Box::pin(consumer.record_and_ack(envelope, acker)));
                } else {
                    match acker.try_ack() {
                        Some(Ok(())) => return Poll::Ready(()),
                        Some(Err(error)) => {
                            consumer.ack_failed(this.envelope, &error);
                            return Poll::Ready(());
                        }
                        None => {
                            let envelope = this.envelope.clone();
                            *this.rest = Some(Box::pin(async move {
                                consumer.ack(acker, &envelope).await;
                            }));
                        }
                    }
                }
                return this
                    .rest
                    .as_mut()
                    .map_or(Poll::Ready(()), |r| r.as_mut().poll(cx));
            }
            Ok(Poll::Ready(Err(error))) if error.is_permanent() => {
                // No retry can fix it: straight to the dead letters, after this one attempt.
                this.future.set(None);
                let acker = this.acker.take().expect("settled once");
                let reason = format!("handler refused the event for good: {error}");
                this.consumer.attempt_failed(
                    kind::HANDLER_ERROR,
                    &reason,
                    *this.attempt,
                    this.envelope,
                );
                let envelope = Some(this.envelope.clone());
                let rest: Rest<'a> = Box::pin(this.consumer.dead_letter(
                    acker,
                    kind::HANDLER_ERROR,
                    reason,
                    *this.attempt,
                    envelope,
                ));
                return this.rest.insert(rest).as_mut().poll(cx);
            }
            Ok(Poll::Ready(Err(error))) => {
                (kind::HANDLER_ERROR, format!("handler failed: {error}"))
            }
            Err(panic) => (
                kind::HANDLER_PANIC,
                format!("handler panicked: {}", panic_message(&*panic)),
            ),
            Ok(Poll::Pending) => {
                let limit = this.consumer.handler_timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                (
                    kind::HANDLER_TIMEOUT,
                    format!("handler timed out after {limit:?}"),
                )
            }
        };
        let (kind, reason) = reason;
        // The handler is done with: drop its future before a backoff that may take a while.
        this.future.set(None);
        let acker = this.acker.take().expect("settled once");
        let consumer = *this.consumer;
        consumer.attempt_failed(kind, &reason, *this.attempt, this.envelope);
        let envelope = this.envelope.clone();
        let rest: Rest<'a> = Box::pin(consumer.fail(acker, kind, reason, *this.attempt, envelope));
        this.rest.insert(rest).as_mut().poll(cx)
    }
}

impl<E: Event, H: Handler<E>> Consumer<E, H> {
    /// Reports a failed handling attempt: a panic at ERROR, an error or a timeout at WARN.
    fn attempt_failed(&self, kind: &'static str, reason: &str, attempt: u32, envelope: &Envelope) {
        let envelope = Some(envelope);
        if kind == kind::HANDLER_PANIC {
            consumer_event!(
                ERROR,
                self,
                envelope,
                kind,
                reason,
                messaging.tidings.attempt = attempt,
                "handler panicked",
            );
        } else if kind == kind::HANDLER_TIMEOUT {
            consumer_event!(
                WARN,
                self,
                envelope,
                kind,
                reason,
                messaging.tidings.attempt = attempt,
                "handler timed out",
            );
        } else {
            consumer_event!(
                WARN,
                self,
                envelope,
                kind,
                reason,
                messaging.tidings.attempt = attempt,
                "handler failed",
            );
        }
    }
}
