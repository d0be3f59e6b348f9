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
        // With dedup on: the envelope whose id is recorded, once the handler succeeded, before
        // the ack.
        dedup: Option<Arc<Envelope>>,
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
        let dedup = dedup.then(|| received.shared_envelope().clone());
        // Making the handler's future runs user code too, so it is guarded like its polling.
        let made = panic::catch_unwind(AssertUnwindSafe(|| self.handler.handle(received)));
        let (future, acker, rest) = match made {
            Ok(future) => (Some(future), Some(acker), None),
            Err(panic) => {
                let reason = format!("handler panicked: {}", panic_message(&*panic));
                let rest: Rest<'a> = Box::pin(self.fail(acker, reason, attempt));
                (None, None, Some(rest))
            }
        };
        Handling {
            future,
            consumer: self,
            acker,
            attempt,
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
                if let Some(envelope) = this.dedup.take() {
                    *this.rest = Some(Box::pin(consumer.record_and_ack(envelope, acker)));
                } else if acker.try_ack().is_some() {
                    return Poll::Ready(());
                } else {
                    // A failed ack is redelivered by the broker; nothing better to do.
                    *this.rest = Some(Box::pin(async move {
                        let _ = acker.ack().await;
                    }));
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
                let rest: Rest<'a> =
                    Box::pin(this.consumer.dead_letter(acker, reason, *this.attempt));
                return this.rest.insert(rest).as_mut().poll(cx);
            }
            Ok(Poll::Ready(Err(error))) => format!("handler failed: {error}"),
            Err(panic) => format!("handler panicked: {}", panic_message(&*panic)),
            Ok(Poll::Pending) => {
                let limit = this.consumer.handler_timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                format!("handler timed out after {limit:?}")
            }
        };
        // The handler is done with: drop its future before a backoff that may take a while.
        this.future.set(None);
        let acker = this.acker.take().expect("settled once");
        let rest: Rest<'a> = Box::pin(this.consumer.fail(acker, reason, *this.attempt));
        this.rest.insert(rest).as_mut().poll(cx)
    }
}
