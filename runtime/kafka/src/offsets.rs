//! Where a group's deliveries stand on each partition, and what may be committed.
//!
//! Kafka keeps one number per group and partition: the offset to resume from. A delivery is
//! settled out of order (handlers run concurrently, a nacked one waits for its retry), so the
//! committed offset is the lowest offset handed out and not yet settled, or, with nothing
//! unsettled, the offset after the last one handed out. It never passes an unsettled offset,
//! so a consumer that dies loses nothing: its successor resumes at that offset.
//!
//! Kafka does not count deliveries. So a successor can still tell a redelivery, each
//! subscription also records, in a second group (the *attempts* group), how far it handed
//! records out and how often it handed out the one the group resumes at; see [`Mark`].

use std::collections::BTreeMap;

/// How far a partition's records were handed out, and how often the first unsettled one was:
/// what a successor needs to count attempts. Stored as the committed offset of the attempts
/// group, packed as `handed * 1024 + attempts` (attempts capped at 1023).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Mark {
    /// Every offset below this one was handed out at least once.
    pub(super) handed: i64,
    /// How often the record at the group's committed offset was handed out (0: never).
    pub(super) attempts: u32,
}

const ATTEMPT_BITS: u32 = 10;
const MAX_ATTEMPTS: u32 = (1 << ATTEMPT_BITS) - 1;

impl Mark {
    /// The mark as an offset the attempts group can commit.
    pub(super) fn pack(self) -> i64 {
        (self.handed << ATTEMPT_BITS) | i64::from(self.attempts.min(MAX_ATTEMPTS))
    }

    /// A committed offset of the attempts group read back.
    pub(super) fn unpack(packed: i64) -> Mark {
        Mark {
            handed: packed >> ATTEMPT_BITS,
            attempts: u32::try_from(packed & i64::from(MAX_ATTEMPTS)).unwrap_or(0),
        }
    }
}

/// What to commit for one partition: the group's offset and the attempts mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Snapshot {
    pub(super) offset: i64,
    pub(super) mark: Mark,
}

/// One assigned partition.
#[derive(Debug)]
pub(super) struct Partition {
    /// Which assignment this is; a settlement from an earlier one is ignored, since the
    /// partition was given up meanwhile and whoever has it now delivers again what was open.
    pub(super) epoch: u64,
    /// The offset after the last record handed out (at assignment: where fetching starts).
    next: Option<i64>,
    /// Handed out and not settled yet: offset to attempts so far.
    open: BTreeMap<i64, u32>,
    /// What the previous holder left: records below `inherited.handed` were handed out before.
    inherited: Mark,
    /// Where the inherited mark applies: the committed offset at assignment.
    start: Option<i64>,
    /// What was last committed, so unchanged partitions are not committed again.
    committed: Option<Snapshot>,
}

impl Partition {
    /// A partition assigned at `start` (the group's committed offset, or where a new group
    /// begins; `None` when unknown), with what the previous holder left.
    pub(super) fn new(epoch: u64, start: Option<i64>, inherited: Option<Mark>) -> Self {
        Partition {
            epoch,
            next: start,
            open: BTreeMap::new(),
            inherited: inherited.unwrap_or_default(),
            start,
            committed: None,
        }
    }

    /// A record at `offset` is handed out: its attempt number.
    pub(super) fn hand_out(&mut self, offset: i64) -> u32 {
        let attempt = if self.start == Some(offset) && self.inherited.handed > offset {
            self.inherited.attempts.max(1) + 1
        } else if offset < self.inherited.handed {
            // Handed out by a holder that is gone, without being settled.
            2
        } else {
            1
        };
        self.open.insert(offset, attempt);
        self.next = Some(self.next.map_or(offset + 1, |next| next.max(offset + 1)));
        attempt
    }

    /// The record at `offset` is handed out again after a nack: its new attempt number, or
    /// `None` when it is not open (settled already).
    pub(super) fn again(&mut self, offset: i64) -> Option<u32> {
        let attempts = self.open.get_mut(&offset)?;
        *attempts += 1;
        Some(*attempts)
    }

    /// The record at `offset` is settled (acked, terminated or dead-lettered).
    pub(super) fn settle(&mut self, offset: i64) {
        self.open.remove(&offset);
    }

    /// What to commit now: the lowest open offset, or the next one when none is open. `None`
    /// when where fetching starts is unknown and nothing was handed out yet.
    pub(super) fn snapshot(&self) -> Option<Snapshot> {
        let (offset, attempts) = match self.open.first_key_value() {
            Some((&offset, &attempts)) => (offset, attempts),
            None => (self.next?, 0),
        };
        let handed = self.next.unwrap_or(offset).max(self.inherited.handed);
        // What the previous holder handed out and this one has not reached yet stays counted.
        let attempts =
            if attempts == 0 && self.start == Some(offset) && self.inherited.handed > offset {
                self.inherited.attempts
            } else {
                attempts
            };
        Some(Snapshot {
            offset,
            mark: Mark { handed, attempts },
        })
    }

    /// The snapshot when it differs from what was last committed.
    pub(super) fn changed(&self) -> Option<Snapshot> {
        self.snapshot().filter(|s| self.committed != Some(*s))
    }

    /// Forgets what was last committed (the commit failed), so it is committed again.
    pub(super) fn forget_commit(&mut self) {
        self.committed = None;
    }

    /// Records that `snapshot` was committed.
    pub(super) fn committed(&mut self, snapshot: Snapshot) {
        self.committed = Some(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_pack_and_unpack() {
        let mark = Mark {
            handed: 123_456_789,
            attempts: 7,
        };
        assert_eq!(Mark::unpack(mark.pack()), mark);
        assert_eq!(
            Mark::unpack(
                Mark {
                    handed: 5,
                    attempts: 5000
                }
                .pack()
            )
            .attempts,
            MAX_ATTEMPTS
        );
        assert_eq!(Mark::unpack(0), Mark::default());
    }

    #[test]
    fn the_commit_never_passes_an_unsettled_offset() {
        let mut p = Partition::new(1, Some(10), None);
        assert_eq!(
            p.snapshot().unwrap().offset,
            10,
            "nothing handed out: resume where it starts"
        );
        for offset in 10..15 {
            assert_eq!(p.hand_out(offset), 1);
        }
        p.settle(11);
        p.settle(12);
        assert_eq!(p.snapshot().unwrap().offset, 10, "10 is still open");
        p.settle(10);
        assert_eq!(p.snapshot().unwrap().offset, 13);
        p.settle(14);
        assert_eq!(p.snapshot().unwrap().offset, 13);
        p.settle(13);
        let all = p.snapshot().unwrap();
        assert_eq!(all.offset, 15, "all settled: resume after the last");
        assert_eq!(
            all.mark,
            Mark {
                handed: 15,
                attempts: 0
            }
        );
    }

    #[test]
    fn a_retry_counts_attempts_on_the_open_record() {
        let mut p = Partition::new(1, Some(0), None);
        p.hand_out(0);
        assert_eq!(p.again(0), Some(2));
        assert_eq!(p.again(0), Some(3));
        assert_eq!(
            p.snapshot().unwrap().mark,
            Mark {
                handed: 1,
                attempts: 3
            }
        );
        p.settle(0);
        assert_eq!(p.again(0), None, "a settled record is not handed out again");
    }

    #[test]
    fn a_successor_counts_what_its_predecessor_handed_out() {
        let mut first = Partition::new(1, Some(0), None);
        for offset in 0..4 {
            first.hand_out(offset);
        }
        first.again(0);
        first.settle(1);
        let left = first.snapshot().unwrap();
        assert_eq!(
            left,
            Snapshot {
                offset: 0,
                mark: Mark {
                    handed: 4,
                    attempts: 2
                }
            }
        );

        // The successor resumes at the committed offset, with the mark read back.
        let mut next = Partition::new(2, Some(left.offset), Some(Mark::unpack(left.mark.pack())));
        assert_eq!(
            next.snapshot().unwrap().mark,
            left.mark,
            "nothing lost before it hands out"
        );
        assert_eq!(
            next.hand_out(0),
            3,
            "the record at the committed offset: third attempt"
        );
        assert_eq!(
            next.hand_out(1),
            2,
            "acked by the predecessor but not committed: a redelivery"
        );
        assert_eq!(next.hand_out(3), 2);
        assert_eq!(next.hand_out(4), 1, "never handed out before");
    }

    #[test]
    fn unchanged_partitions_are_not_committed_again() {
        let mut p = Partition::new(1, Some(3), None);
        let first = p.changed().unwrap();
        p.committed(first);
        assert_eq!(p.changed(), None);
        p.hand_out(3);
        assert!(p.changed().is_some(), "the mark moved");
    }

    #[test]
    fn an_unknown_start_commits_nothing_until_a_record_arrives() {
        let mut p = Partition::new(1, None, None);
        assert_eq!(p.snapshot(), None);
        p.hand_out(42);
        p.settle(42);
        assert_eq!(p.snapshot().unwrap().offset, 43);
    }
}
