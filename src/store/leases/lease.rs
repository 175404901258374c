//! A lease on the store's revision: which generation of answers this instance may reuse, and
//! until when (see `store::leases`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How often an instance asks for the revision, in parts of its lease: a lease is renewed
/// several times before it ends, so one slow poll does not end it.
pub(super) const POLLS_PER_LEASE: u32 = 5;

/// Polling stops after this many leases without a lookup (an idle instance does not poll the
/// store a hundred times a second); the next lookup starts it again.
const IDLE_LEASES: u32 = 20;

/// The generation this instance may reuse answers of, and until when.
pub(super) struct Lease {
    pub(super) length: Duration,
    start: Instant,
    /// The store's revision at the last poll that answered (written by the one polling task).
    store_revision: AtomicU64,
    /// What answers are stamped with (see the module's documentation); 0 before any lease.
    generation: AtomicU64,
    /// Nanoseconds after `start`; 0 while no poll granted a lease.
    valid_until: AtomicU64,
    /// When a lookup last asked for the lease, in nanoseconds after `start`, to a fifth of a
    /// lease: polling stops while nobody asks.
    last_asked: AtomicU64,
}

impl Lease {
    pub(super) fn new(length: Duration) -> Lease {
        Lease {
            length,
            start: Instant::now(),
            store_revision: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            valid_until: AtomicU64::new(0),
            last_asked: AtomicU64::new(0),
        }
    }

    /// The generation to stamp and accept answers with, while the lease lasts; notes that a
    /// lookup asked.
    pub(super) fn current(&self) -> Option<u64> {
        let now = Instant::now();
        let nanos = self.nanos_since_start(now);
        // Written once a tick at most, so lookups on every core seldom write the same line.
        if nanos.saturating_sub(self.last_asked.load(Ordering::Relaxed)) > self.tick_nanos() {
            self.last_asked.store(nanos, Ordering::Relaxed);
        }
        self.current_at(now)
    }

    /// Whether no lookup asked for [`IDLE_LEASES`] leases.
    pub(super) fn idle(&self) -> bool {
        let since = self.nanos_since_start(Instant::now());
        let idle_for = since.saturating_sub(self.last_asked.load(Ordering::Relaxed));
        idle_for > self.tick_nanos() * u64::from(POLLS_PER_LEASE * IDLE_LEASES)
    }

    pub(super) fn tick_nanos(&self) -> u64 {
        u64::try_from((self.length / POLLS_PER_LEASE).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn current_at(&self, now: Instant) -> Option<u64> {
        // The end first: a poll stores its generation before the end it grants (`renew`), so
        // an end seen here comes with its generation or a newer one.
        let until = self.valid_until.load(Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        (self.nanos_since_start(now) < until).then_some(generation)
    }

    /// The store answered `revision` to a poll asked at `asked`. A new generation when the
    /// revision changed, or if `new_generation` (polling has just started, or the poll before
    /// did not answer: bumps may have been lost in between).
    pub(super) fn renew(&self, revision: u64, asked: Instant, new_generation: bool) {
        let changed = self.store_revision.swap(revision, Ordering::SeqCst) != revision;
        if changed || new_generation {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        // A tenth off, for the machines' clocks running at slightly different rates.
        let until = self.nanos_since_start(asked + self.length - self.length / 10);
        self.valid_until.store(until, Ordering::SeqCst);
    }

    pub(super) fn nanos_since_start(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(50);

    #[test]
    fn a_lease_ends_a_lease_after_the_poll_that_granted_it() {
        let lease = Lease::new(LEASE);
        let asked = Instant::now() + Duration::from_millis(10);
        assert_eq!(lease.current_at(asked), None);
        lease.renew(7, asked, true);
        // Counted from when the poll was asked, less a tenth.
        let ms = |n| asked + Duration::from_millis(n);
        assert_eq!(lease.current_at(ms(0)), Some(1));
        assert_eq!(lease.current_at(ms(44)), Some(1));
        assert_eq!(lease.current_at(ms(45)), None);
        lease.renew(7, ms(40), false);
        assert_eq!(lease.current_at(ms(84)), Some(1));
    }

    /// Answers are stamped with a generation that moves on whenever the store's revision
    /// changes, even back to an earlier value: a store that lost its data (a flushed Redis
    /// counting from 0 again) never revives answers from before.
    #[test]
    fn a_revision_seen_again_is_a_new_generation() {
        let lease = Lease::new(LEASE);
        let asked = Instant::now();
        let mut generations = Vec::new();
        for (i, revision) in [0, 0, 5, 0, 5].into_iter().enumerate() {
            lease.renew(revision, asked, i == 0);
            generations.push(lease.current_at(asked).unwrap());
        }
        assert_eq!(generations, [1, 1, 2, 3, 4]);
        // And after a poll that did not answer, even with the same revision.
        lease.renew(5, asked, true);
        assert_eq!(lease.current_at(asked), Some(5));
    }
}
