//! A run of failures of something an adapter retries by itself (a connection, a read loop, a
//! consumer), told once as it begins and once as it ends rather than on every attempt.

/// Whether something an adapter retries is failing: the first failure of a run and the first
/// success after it are the ones to report, so a broker down for an hour is one warning and
/// one note that it is back, not a warning per attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outage {
    failing: bool,
}

impl Outage {
    /// Records a failure; `true` when it begins a run of failures, the one to report.
    #[must_use = "report the failure when it begins a run"]
    pub fn failed(&mut self) -> bool {
        !std::mem::replace(&mut self.failing, true)
    }

    /// Records a success; `true` when it ends a run of failures, the one to report.
    #[must_use = "report the recovery when it ends a run"]
    pub fn recovered(&mut self) -> bool {
        std::mem::take(&mut self.failing)
    }
}

#[cfg(test)]
mod tests {
    use super::Outage;

    #[test]
    fn a_run_of_failures_is_told_once_as_it_begins_and_once_as_it_ends() {
        let mut outage = Outage::default();
        assert!(!outage.recovered(), "nothing failed yet");
        assert!(outage.failed());
        assert!(!outage.failed());
        assert!(!outage.failed());
        assert!(outage.recovered());
        assert!(!outage.recovered());
        assert!(outage.failed(), "a new run begins");
    }
}
