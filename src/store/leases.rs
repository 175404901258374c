//! Revocation answers held for a short lease, so a token verified again skips the store and
//! revocation stays immediate.
//!
//! Every write that can revoke a token (or change a user) bumps the store's *revision* in the
//! same atomic step, and then waits out the longest lease any instance holds before it returns.
//! An instance asks for the revision every fifth of its lease (`revocation.lease`); an answer
//! lets it use its cached lookups stamped with that revision until its lease, counted from
//! when it *asked*, ends. So a cached answer outlives a revocation only while the revocation
//! has not returned:
//!
//! - an answer stamped `r` is used only while the instance's newest revision is `r`, and its
//!   lease comes from a poll that the store answered before any bump past `r`;
//! - that poll was asked before the bump, so the lease ends before the bump plus a lease;
//! - the revocation returns only after the bump plus the longest lease registered, and each
//!   instance registers its lease before its first poll that grants one.
//!
//! (Answers carry a local generation that moves on whenever the revision seen changes, so a
//! store whose revision starts again from 0 never revives an older answer.)
//!
//! Nothing else is trusted: no message has to arrive, no clocks have to agree (only the rate of
//! each machine's monotonic clock), and a store that stops answering ends every lease within
//! one, after which lookups go to the store again (and fail closed with 503 while it is down).
//! Chubby's and memcache's leases rest on the same argument. The price is on the write side:
//! a revocation (logout, blacklist, password change, …) takes a lease longer.
//!
//! Any revision bump drops every instance's answers at its next poll: leases pay off for the
//! tokens verified again and again within a few milliseconds (a client's burst of calls, a
//! resource server behind a gateway), and cost one lookup per token per revocation otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once, PoisonError, RwLock, Weak};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use super::RevocationStore;
use super::revocation::{RevocationEntries, TokenKeys};
use crate::metrics::Metrics;

/// Answers kept at most, over all shards: about 300 bytes each.
const MAX_ANSWERS: usize = 16 * 1024;

const SHARDS: usize = 16;

/// How often an instance asks for the revision, in parts of its lease: a lease is renewed
/// several times before it ends, so one slow poll does not end it.
const POLLS_PER_LEASE: u32 = 5;

/// A registration outlives the lease it covers by this much at least (and by a second): a
/// writer must see every lease that may still be in use.
const REGISTRATION_LEASES: u32 = 4;

/// How long a store should keep a registration of `lease` (see [`RevocationStore::revision`]).
pub(crate) fn registration_lifetime(lease: Duration) -> Duration {
    lease * REGISTRATION_LEASES + Duration::from_secs(1)
}

/// Waits out a lease of `lease_ms` (the longest registered), after a write that bumped the
/// revision: no instance uses an answer from before the write once this returns.
pub(crate) async fn outlast(lease_ms: u64) {
    if lease_ms > 0 {
        // A millisecond more for the timer's and the clocks' rounding.
        tokio::time::sleep(Duration::from_millis(lease_ms + 1)).await;
    }
}

/// The revision this instance may use, and until when.
struct Lease {
    length: Duration,
    start: Instant,
    /// The store's revision at the last poll (written by the one polling task only).
    store_revision: AtomicU64,
    /// What answers are stamped with: one more each time the store's revision is seen to
    /// change, so a stamp never comes back even if the store's revision does (a flushed Redis
    /// starts again from 0).
    generation: AtomicU64,
    /// Nanoseconds after `start`; 0 while no poll granted a lease.
    valid_until: AtomicU64,
}

impl Lease {
    fn new(length: Duration) -> Lease {
        Lease {
            length,
            start: Instant::now(),
            store_revision: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            valid_until: AtomicU64::new(0),
        }
    }

    /// The generation to stamp and accept answers with, while the lease lasts.
    fn current(&self) -> Option<u64> {
        self.current_at(Instant::now())
    }

    fn current_at(&self, now: Instant) -> Option<u64> {
        // The end first: a poll stores its generation before the end it grants (`renew`), so
        // an end seen here comes with its generation or a newer one.
        let until = self.valid_until.load(Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        (self.nanos_since_start(now) < until).then_some(generation)
    }

    /// The store answered `revision` to a poll asked at `asked`.
    fn renew(&self, revision: u64, asked: Instant) {
        if self.store_revision.swap(revision, Ordering::SeqCst) != revision
            || self.generation.load(Ordering::SeqCst) == 0
        {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        // A tenth off, for the machines' clocks running at slightly different rates.
        let until = self.nanos_since_start(asked + self.length - self.length / 10);
        self.valid_until.store(until, Ordering::SeqCst);
    }

    fn nanos_since_start(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One token's answer, as read under `generation`.
struct Answer {
    generation: u64,
    user_id: Box<str>,
    sid: Box<str>,
    entries: RevocationEntries,
}

/// The answers, by `jti`.
struct Answers {
    shards: Box<[RwLock<Shard>]>,
}

type Shard = HashMap<Box<str>, Arc<Answer>>;

impl Answers {
    fn new() -> Answers {
        Answers {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    fn get(&self, token: TokenKeys<'_>, generation: u64) -> Option<RevocationEntries> {
        let shard = self
            .shard(token.jti)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let answer = shard.get(token.jti)?;
        let same = answer.generation == generation
            && *answer.user_id == *token.user_id
            && *answer.sid == *token.sid;
        same.then(|| answer.entries.clone())
    }

    fn insert(&self, token: TokenKeys<'_>, generation: u64, entries: RevocationEntries) {
        let answer = Arc::new(Answer {
            generation,
            user_id: token.user_id.into(),
            sid: token.sid.into(),
            entries,
        });
        let mut shard = self
            .shard(token.jti)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= MAX_ANSWERS / SHARDS {
            // Answers of an older generation are of no use any more; if that frees nothing, the
            // tokens verified recently will come back soon enough.
            shard.retain(|_, answer| answer.generation == generation);
            if shard.len() >= MAX_ANSWERS / SHARDS {
                shard.clear();
            }
        }
        shard.insert(token.jti.into(), answer);
    }

    fn shard(&self, jti: &str) -> &RwLock<Shard> {
        // A jti is random (a UUID): its last bytes spread evenly.
        let last = jti.as_bytes().last().copied().unwrap_or(0);
        &self.shards[usize::from(last) % SHARDS]
    }
}

/// Lookups answered from a lease where one is held, from the store otherwise.
pub struct LeasedLookups {
    store: Weak<dyn RevocationStore>,
    lease: Arc<Lease>,
    polling: Once,
    answers: Answers,
    /// Lookups answered under the lease, and by the store (`jwtd_revocation_lookups_total`).
    counters: (Counter, Counter),
}

impl LeasedLookups {
    /// `None` when `lease` is zero or the store keeps no revision. Polling starts with the
    /// first lookup (so a command-line run registers no lease), on the current tokio runtime,
    /// and lasts as long as both the store and the returned value.
    pub fn new(
        store: &Arc<dyn RevocationStore>,
        lease: Duration,
        metrics: &Metrics,
    ) -> Option<Arc<LeasedLookups>> {
        (!lease.is_zero() && store.keeps_revision()).then(|| {
            Arc::new(LeasedLookups {
                store: Arc::downgrade(store),
                lease: Arc::new(Lease::new(lease)),
                polling: Once::new(),
                answers: Answers::new(),
                counters: metrics.revocation_lookup_counters(),
            })
        })
    }

    /// The token's entries: as answered before under the current lease, or read now.
    pub async fn entries(
        &self,
        store: &dyn RevocationStore,
        token: TokenKeys<'_>,
    ) -> Result<RevocationEntries, crate::outage::Outage> {
        self.polling.call_once(|| {
            tokio::spawn(keep_renewing(
                self.store.clone(),
                Arc::downgrade(&self.lease),
            ));
        });
        // The generation before the read: an answer read after a bump is stamped older than
        // it could be, and is dropped at the next poll (never the other way round).
        let generation = self.lease.current();
        if let Some(generation) = generation
            && let Some(entries) = self.answers.get(token, generation)
        {
            self.counters.0.inc();
            return Ok(entries);
        }
        self.counters.1.inc();
        let entries = store.entries(token).await?;
        if let Some(generation) = generation {
            self.answers.insert(token, generation, entries.clone());
        }
        Ok(entries)
    }
}

/// Asks the store for its revision every fifth of the lease until the store or the lease is
/// dropped. A failed or slow poll renews nothing, so the lease runs out by itself.
async fn keep_renewing(store: Weak<dyn RevocationStore>, lease: Weak<Lease>) {
    let mut failing = false;
    loop {
        let (Some(store), Some(lease)) = (store.upgrade(), lease.upgrade()) else {
            return;
        };
        let asked = Instant::now();
        let polled = tokio::time::timeout(lease.length, store.revision(lease.length)).await;
        match polled {
            Ok(Ok(Some(revision))) => {
                lease.renew(revision, asked);
                if std::mem::take(&mut failing) {
                    tracing::info!("revocation lease renewed again");
                }
            }
            Ok(Ok(None)) => {} // registered just now: the next poll grants the lease
            Ok(Err(err)) if !failing => {
                failing = true;
                tracing::warn!(error = %err, "cannot renew the revocation lease; every verify asks the store");
            }
            Err(_) if !failing => {
                failing = true;
                tracing::warn!(
                    "the revocation lease's poll timed out; every verify asks the store"
                );
            }
            _ => {}
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
        let (lease, store) = metrics.revocation_lookup_counters();
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
        while store.revision(long).await.unwrap().is_none() {
            polls += 1;
            assert!(polls < 3, "the registration is stored by the first poll");
        }
        store.revision(LEASE).await.unwrap();
        let started = Instant::now();
        let until = UnixSecs(i64::from(u32::MAX));
        store.revoke_token("u1", "j1", until).await.unwrap();
        assert!(started.elapsed() >= long, "{:?}", started.elapsed());
    }

    #[test]
    fn a_lease_ends_a_lease_after_the_poll_that_granted_it() {
        let lease = Lease::new(LEASE);
        let asked = Instant::now() + Duration::from_millis(10);
        assert_eq!(lease.current_at(asked), None);
        lease.renew(7, asked);
        // Counted from when the poll was asked, less a tenth.
        let ms = |n| asked + Duration::from_millis(n);
        assert_eq!(lease.current_at(ms(0)), Some(1));
        assert_eq!(lease.current_at(ms(44)), Some(1));
        assert_eq!(lease.current_at(ms(45)), None);
        lease.renew(7, ms(40));
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
        for revision in [0, 0, 5, 0, 5] {
            lease.renew(revision, asked);
            generations.push(lease.current_at(asked).unwrap());
        }
        assert_eq!(generations, [1, 1, 2, 3, 4]);
    }

    #[test]
    fn an_answer_is_reused_only_under_its_revision_and_for_its_own_token() {
        let answers = Answers::new();
        let revoked = RevocationEntries {
            session_revoked: true,
            ..RevocationEntries::default()
        };
        answers.insert(token(), 3, revoked.clone());
        assert_eq!(answers.get(token(), 3), Some(revoked));
        assert_eq!(answers.get(token(), 4), None);
        let other_session = TokenKeys {
            sid: "s2",
            ..token()
        };
        assert_eq!(answers.get(other_session, 3), None);
    }

    #[test]
    fn the_answers_stay_within_their_bound() {
        let answers = Answers::new();
        for i in 0..3 * MAX_ANSWERS {
            let jti = format!("{i:032x}");
            let token = TokenKeys {
                jti: &jti,
                ..token()
            };
            answers.insert(token, 1, RevocationEntries::default());
        }
        let held: usize = answers.shards.iter().map(|s| s.read().unwrap().len()).sum();
        assert!(held <= MAX_ANSWERS, "{held}");
        assert!(held > 0);
    }
}
