//! Several subscriptions kept and stopped as one: what a package's generated `subscribe`
//! returns, and what a service holds for all it consumes.

use futures_util::future::join_all;

use crate::subscription::Subscription;

/// Subscriptions stopped together. Dropping it stops each (those in flight finish in the
/// background); [`Subscriptions::shutdown`] also waits for them.
#[must_use = "dropping Subscriptions stops them; keep them while events should be handled"]
#[derive(Debug, Default)]
pub struct Subscriptions(Vec<Subscription>);

impl Subscriptions {
    /// None yet.
    pub fn new() -> Subscriptions {
        Subscriptions(Vec::new())
    }

    /// Adds one, to be stopped with the others.
    pub fn push(&mut self, subscription: Subscription) {
        self.0.push(subscription);
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each subscription, to ask its topic or whether it still runs.
    pub fn iter(&self) -> std::slice::Iter<'_, Subscription> {
        self.0.iter()
    }

    /// Stops taking new events on every subscription at once, then waits for the events in
    /// flight on each to be handled and settled.
    pub async fn shutdown(self) {
        join_all(self.0.into_iter().map(Subscription::shutdown)).await;
    }
}

impl From<Vec<Subscription>> for Subscriptions {
    fn from(subscriptions: Vec<Subscription>) -> Self {
        Subscriptions(subscriptions)
    }
}

impl FromIterator<Subscription> for Subscriptions {
    fn from_iter<I: IntoIterator<Item = Subscription>>(iter: I) -> Self {
        Subscriptions(iter.into_iter().collect())
    }
}

impl Extend<Subscription> for Subscriptions {
    fn extend<I: IntoIterator<Item = Subscription>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl IntoIterator for Subscriptions {
    type Item = Subscription;
    type IntoIter = std::vec::IntoIter<Subscription>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Subscriptions {
    type Item = &'a Subscription;
    type IntoIter = std::slice::Iter<'a, Subscription>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
