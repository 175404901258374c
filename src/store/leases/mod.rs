//! Revocation answers reused for a short lease, so a token verified again skips the store,
//! and revocation stays immediate.
//!
//! Every write that can revoke a token (or change a user) bumps the store's *revision* in the
//! same atomic step, and then waits out the longest lease registered before it returns. An
//! instance registers its lease (`revocation.lease`) in the store and asks for the revision
//! every fifth of it; an answer lets it reuse the lookups made since the revision it saw last
//! until a lease after it *asked*. So a reused answer outlives a revocation only while the
//! revocation has not returned:
//!
//! - an answer is reused only while every poll since it was read saw one revision `r`, under a
//!   lease from a poll that the store answered before any bump past `r`;
//! - that poll was asked before the bump, so its lease ends less than a lease after the bump;
//! - the revocation returns a lease (the longest registered) after the bump. An instance
//!   registers before its first poll that grants a lease, and a registration lasts an hour by
//!   the store's one clock, renewed every half hour by the instance's monotonic clock: it
//!   outlives every lease granted under it.
//!
//! Answers are stamped with a local generation, not the revision itself: it moves on whenever
//! the revision seen changes and whenever a lease is granted after a failed poll, so a store
//! whose revision went back (a restored or failed-over Redis) does not revive older answers.
//!
//! Nothing else is trusted: no message has to arrive, and no two clocks have to agree (only the
//! rates of the monotonic clocks, and the store's clock not jumping by half an hour). A store
//! that stops answering ends every lease within one, after which lookups go to the store again
//! (and fail closed with 503 while it is down). These are Gray and Cheriton's leases (1989),
//! held by the readers of a single value. The price is on the write side: a revocation (logout,
//! blacklist, password change, …) takes a lease longer, and many written together wait once
//! ([`waiting_once`]).
//!
//! Any bump drops every instance's answers at its next poll: leases pay off for tokens verified
//! again and again within milliseconds (a client's burst of calls, a resource server behind a
//! gateway), and cost one lookup per token per revocation otherwise.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

mod answers;
mod lease;

use answers::Answers;
use lease::{Lease, POLLS_PER_LEASE};

use super::RevocationStore;
use super::revocation::{RevocationEntries, TokenKeys};
use crate::metrics::Metrics;
use crate::outage::Outage;

/// A poll that takes longer is given up (a later answer would grant little or nothing).
const MIN_POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a registration lasts, by the store's clock; an instance renews its own when half
/// of it has passed by its monotonic clock. Long, because it costs nothing but writers waiting
/// a lease no instance holds any more, for at most this long after the last one stopped.
pub(crate) const REGISTRATION: Duration = Duration::from_secs(3600);

/// A lease in whole milliseconds, rounded up (as registered, and waited out).
pub(crate) fn millis(lease: Duration) -> u64 {
    u64::try_from(lease.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
}

tokio::task_local! {
    /// The longest lease the writes of a [`waiting_once`] scope left to wait out.
    static DEFERRED: Cell<Duration>;
}

/// After a write that bumped the revision (or may have): waits out the longest lease
/// registered (`registered_ms`), and at least the writer's own (`own`), so that no instance
/// reuses an answer from before the write once this returns. Within [`waiting_once`], leaves
/// the wait to the end of the scope.
pub(crate) async fn outlast(registered_ms: u64, own: Duration) {
    let longest = Duration::from_millis(registered_ms).max(own);
    if longest.is_zero() {
        return;
    }
    // A millisecond more for the timer's and the clocks' rounding.
    let wait = longest.saturating_add(Duration::from_millis(1));
    let deferred = DEFERRED.try_with(|longest| longest.set(longest.get().max(wait)));
    if deferred.is_err() {
        tokio::time::sleep(wait).await;
    }
}

/// Runs `work`, whose writes each return without waiting out the leases, and then waits out
/// the longest of them once: for operations that revoke many tokens at once (a permission
/// taken from a group's members) or several entries of one user (a password change). Waits
/// even when `work` failed halfway: what it wrote must not be reused either.
pub async fn waiting_once<F: Future>(work: F) -> F::Output {
    let (output, longest) = DEFERRED
        .scope(Cell::new(Duration::ZERO), async {
            let output = work.await;
            (output, DEFERRED.with(Cell::get))
        })
        .await;
    if !longest.is_zero() {
        tokio::time::sleep(longest).await;
    }
    output
}

/// How the lookups of verifies were answered (`jwtd_revocation_lookups_total`), and whether
/// this instance holds a lease (`jwtd_revocation_lease_held`).
struct LeaseMetrics {
    from_lease: Counter,
    from_store: Counter,
    held: Gauge,
}

/// Lookups answered from a lease where one is held, from the store otherwise.
pub struct LeasedLookups {
    /// The store polled; [`LeasedLookups::entries`] is given the same one.
    store: Weak<dyn RevocationStore>,
    lease: Arc<Lease>,
    /// Whether a task polls now; a lookup that finds none starts one.
    polling: Arc<AtomicBool>,
    answers: Answers,
    metrics: LeaseMetrics,
}

impl LeasedLookups {
    /// `None` when `lease` is zero or the store keeps no revision. Polling starts with the
    /// first lookup (so a command-line run registers no lease), on the current tokio runtime;
    /// it lasts while lookups come and both the store and the returned value live.
    pub fn new(
        store: &Arc<dyn RevocationStore>,
        lease: Duration,
        metrics: &Metrics,
    ) -> Option<Arc<LeasedLookups>> {
        (!lease.is_zero() && store.keeps_revision()).then(|| {
            let (from_lease, from_store, held) = metrics.revocation_lease_metrics();
            Arc::new(LeasedLookups {
                store: Arc::downgrade(store),
                lease: Arc::new(Lease::new(lease)),
                polling: Arc::default(),
                answers: Answers::new(),
                metrics: LeaseMetrics {
                    from_lease,
                    from_store,
                    held,
                },
            })
        })
    }

    /// The token's entries: as answered before under the current lease, or read now from
    /// `store` (the one given to [`LeasedLookups::new`]).
    pub async fn entries(
        &self,
        store: &dyn RevocationStore,
        token: TokenKeys<'_>,
    ) -> Result<RevocationEntries, Outage> {
        if !self.polling.load(Ordering::Relaxed) && !self.polling.swap(true, Ordering::SeqCst) {
            let polling = keep_renewing(
                self.store.clone(),
                Arc::downgrade(&self.lease),
                self.polling.clone(),
                self.metrics.held.clone(),
            );
            tokio::spawn(polling);
        }
        // The generation before the read: an answer read after a bump is stamped older than
        // it could be, and is dropped at the next poll (never the other way round).
        let generation = self.lease.current();
        if let Some(generation) = generation
            && let Some(entries) = self.answers.get(token, generation)
        {
            self.metrics.from_lease.inc();
            return Ok(entries);
        }
        self.metrics.from_store.inc();
        let entries = store.entries(token).await?;
        if let Some(generation) = generation {
            self.answers.insert(token, generation, entries.clone());
        }
        Ok(entries)
    }
}

/// Asks the store for its revision every fifth of the lease until the store or the lease is
/// dropped, or no lookup came for twenty leases (`lease::IDLE_LEASES`). A poll that fails or takes too long
/// renews nothing, so the lease runs out by itself; the next one that answers starts a new
/// generation, as does the first (polling may have stopped for a while).
async fn keep_renewing(
    store: Weak<dyn RevocationStore>,
    lease: Weak<Lease>,
    polling: Arc<AtomicBool>,
    held: Gauge,
) {
    let mut new_generation = true;
    let mut failing = false;
    loop {
        let (Some(store), Some(lease)) = (store.upgrade(), lease.upgrade()) else {
            return;
        };
        if lease.idle() {
            held.set(0);
            polling.store(false, Ordering::SeqCst);
            return;
        }
        let asked = Instant::now();
        let timeout = lease.length.max(MIN_POLL_TIMEOUT);
        let failure = match tokio::time::timeout(timeout, store.poll_revision(lease.length)).await {
            Ok(Ok(Some(revision))) => {
                lease.renew(revision, asked, std::mem::take(&mut new_generation));
                held.set(1);
                None
            }
            // Registered just now: the next poll grants the lease.
            Ok(Ok(None)) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some("the poll timed out".to_owned()),
        };
        match failure {
            Some(why) => {
                held.set(0);
                new_generation = true;
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %why, "cannot renew the revocation lease; every verify asks the store");
                }
            }
            None if std::mem::take(&mut failing) => {
                tracing::info!("the revocation lease can be renewed again");
            }
            None => {}
        }
        let every = lease.length / POLLS_PER_LEASE;
        drop((store, lease));
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixSecs;
    use crate::flows::testing::Harness;
    use crate::store::sql::SqlRevocationStore;

    const LEASE: Duration = Duration::from_millis(50);

    fn token() -> TokenKeys<'static> {
        TokenKeys {
            user_id: "u1",
            jti: "0123456789abcdef0123456789abcdef",
            sid: "s1",
        }
    }

    /// Polls until a lease is held (the first poll may only register it).
    async fn leased(store: &Arc<dyn RevocationStore>, metrics: &Metrics) -> Arc<LeasedLookups> {
        let leased = LeasedLookups::new(store, LEASE, metrics).expect("SQL keeps a revision");
        leased.entries(&**store, token()).await.unwrap();
        for _ in 0..200 {
            if leased.lease.current().is_some() {
                return leased;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no lease within a second");
    }

    fn answered(metrics: &Metrics) -> (u64, u64) {
        let (lease, store, _) = metrics.revocation_lease_metrics();
        (lease.get(), store.get())
    }

    #[tokio::test]
    async fn a_lookup_is_reused_under_the_lease_until_a_revocation_returns() {
        let harness = Harness::new().await;
        let store = harness.state.revocation_store.clone();
        let metrics = Metrics::new();
        let leased = leased(&store, &metrics).await;
        let before = answered(&metrics);
        for _ in 0..2 {
            let entries = leased.entries(&*store, token()).await.unwrap();
            assert!(!entries.session_revoked);
        }
        // The first lookup under the lease goes to the store, the second is its answer again.
        assert_eq!(answered(&metrics), (before.0 + 1, before.1 + 1));

        // Revoked through another handle on the database, as another process would: it has no
        // lease of its own, and waits out this one's.
        let writer = SqlRevocationStore::new(harness.state.db.clone(), harness.state.clock.clone());
        let until = UnixSecs(i64::from(u32::MAX));
        let started = Instant::now();
        writer.revoke_session("u1", "s1", until).await.unwrap();
        assert!(started.elapsed() >= LEASE, "{:?}", started.elapsed());
        let entries = leased.entries(&*store, token()).await.unwrap();
        assert!(entries.session_revoked);
    }

    /// A writer waits out the longest lease registered and not ended, whoever registered it.
    #[tokio::test]
    async fn a_revocation_waits_out_the_longest_registered_lease() {
        let harness = Harness::new().await;
        let store = &harness.state.revocation_store;
        let long = Duration::from_millis(300);
        let mut polls = 0;
        while store.poll_revision(long).await.unwrap().is_none() {
            polls += 1;
            assert!(polls < 3, "the registration is stored by the first poll");
        }
        store.poll_revision(LEASE).await.unwrap();
        let started = Instant::now();
        let until = UnixSecs(i64::from(u32::MAX));
        store.revoke_token("u1", "j1", until).await.unwrap();
        assert!(started.elapsed() >= long, "{:?}", started.elapsed());
    }

    /// Writes within `waiting_once` return at once; the scope waits out the longest lease
    /// once, at its end.
    #[tokio::test]
    async fn writes_together_wait_out_the_lease_once() {
        let harness = Harness::new().await;
        let store = &harness.state.revocation_store;
        let long = Duration::from_millis(300);
        while store.poll_revision(long).await.unwrap().is_none() {}
        let until = UnixSecs(i64::from(u32::MAX));
        let started = Instant::now();
        let writes = waiting_once(async {
            for jti in ["j1", "j2", "j3"] {
                store.revoke_token("u1", jti, until).await.unwrap();
            }
            started.elapsed()
        });
        let written_after = writes.await;
        assert!(written_after < long, "{written_after:?}");
        assert!(started.elapsed() >= long, "{:?}", started.elapsed());
    }

    /// Polling stops once no lookup came for a while, and the next lookup starts it again.
    #[tokio::test]
    async fn polling_stops_while_idle_and_starts_again_with_a_lookup() {
        let harness = Harness::new().await;
        let store = harness.state.revocation_store.clone();
        let metrics = Metrics::new();
        let lease = Duration::from_millis(5);
        let leased = LeasedLookups::new(&store, lease, &metrics).unwrap();
        let until_polling_is = |wanted: bool| {
            let polling = leased.polling.clone();
            async move {
                for _ in 0..400 {
                    if polling.load(Ordering::SeqCst) == wanted {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                panic!("polling never became {wanted}");
            }
        };
        leased.entries(&*store, token()).await.unwrap();
        assert!(leased.polling.load(Ordering::SeqCst));
        until_polling_is(false).await;
        assert_eq!(leased.lease.current_at(Instant::now()), None);
        leased.entries(&*store, token()).await.unwrap();
        assert!(leased.polling.load(Ordering::SeqCst));
    }
}
