//! Time limits that cost nothing when the work is already done.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::error::Elapsed;

/// Runs `future` for at most `limit`. The timer is armed only if the first poll does not finish
/// it, so a publish the broker confirms at once pays no clock read and no timer entry. (A
/// handler's limit works the same way inside the future written for it in
/// `subscription/handling.rs`, which keeps its state in one place.) The caller pins the future,
/// so it is not moved into this one.
pub(crate) async fn within<F: Future + ?Sized>(
    limit: Duration,
    mut future: Pin<&mut F>,
) -> Result<F::Output, Elapsed> {
    let first = poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => tokio::time::timeout(limit, future).await,
    }
}
