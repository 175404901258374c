//! Access tokens whose signature and claims this instance has already checked, by their exact
//! text, so verifying one again skips the signature and the JSON (as Envoy's `jwt_cache` does).
//!
//! A client sends the same access token with every call for its lifetime, so a resource server
//! verifies each token many times. The cache holds only what the token itself proves: a token
//! whose text equals a checked one carries the same signature over the same claims, under keys
//! that never change while the process runs. Expiry is still checked on every verify (by the
//! codec, against its clock), and revocation is not cached: every verify still asks the store.
//!
//! Bounded in bytes (`jwt.verified_cache_bytes`); the oldest entries go first. Refresh tokens
//! are not cached: with rotation each is presented once.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::Claims;

/// Independent locks, so inserts seldom wait for one another. Lookups share a read lock and
/// hold it only to take a reference: one mutex held while the claims were copied made every
/// verify of one hot token queue behind the others, and sleep on it (slower than no cache).
const SHARDS: usize = 16;

/// What an entry is charged beyond its token's bytes: the claims it decoded to (their strings
/// are copies of parts of the token), the map's and the queue's slots, the allocations' headers.
const ENTRY_OVERHEAD_BYTES: usize = 512;

pub struct VerifiedTokens {
    shards: Box<[RwLock<Shard>]>,
    shard_budget: usize,
    hasher: TailHash,
}

#[derive(Default)]
struct Shard {
    claims: HashMap<Arc<str>, Arc<Claims>, TailHash>,
    /// Oldest first.
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

impl VerifiedTokens {
    /// A cache of at most about `budget_bytes`; 0 caches nothing.
    pub fn new(budget_bytes: usize) -> VerifiedTokens {
        VerifiedTokens {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            shard_budget: budget_bytes / SHARDS,
            hasher: TailHash::default(),
        }
    }

    /// The claims `token` decoded to, when this exact text was checked before.
    pub fn get(&self, token: &str) -> Option<Claims> {
        if self.shard_budget == 0 {
            return None;
        }
        let claims = read(self.shard(token)).claims.get(token).cloned()?;
        Some(Claims::clone(&claims))
    }

    /// Remembers that `token` was checked and decoded to `claims`, forgetting the oldest
    /// entries to stay within the budget.
    pub fn insert(&self, token: &str, claims: &Claims) {
        let cost = charge(token);
        if cost > self.shard_budget {
            return;
        }
        let mut shard = write(self.shard(token));
        if shard.claims.contains_key(token) {
            return;
        }
        while shard.bytes + cost > self.shard_budget {
            let Some(oldest) = shard.order.pop_front() else {
                break;
            };
            shard.claims.remove(&oldest);
            shard.bytes -= charge(&oldest);
        }
        let token: Arc<str> = Arc::from(token);
        shard.claims.insert(token.clone(), Arc::new(claims.clone()));
        shard.order.push_back(token);
        shard.bytes += cost;
    }

    fn shard(&self, token: &str) -> &RwLock<Shard> {
        &self.shards[self.hasher.hash_one(token) as usize % SHARDS]
    }

    /// Bytes charged to the entries held (for tests and the budget's documentation).
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|shard| read(shard).bytes).sum()
    }
}

// Every change to a shard leaves it whole (a panic inside one could at worst lose entries), so
// a poisoned lock is simply taken.
fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    shard.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    shard.write().unwrap_or_else(PoisonError::into_inner)
}

/// Hashes a token by its last [`TAIL_BYTES`], which are its signature's: as random as a hash for
/// every token that can be in the cache (only checked ones are), so hashing the whole text (twice
/// per lookup, for the shard and in it) would buy nothing. Keyed per process, as `RandomState`.
#[derive(Clone, Default)]
struct TailHash(RandomState);

const TAIL_BYTES: usize = 32;

struct TailHasher(DefaultHasher);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;

    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(TAIL_BYTES)..]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

fn charge(token: &str) -> usize {
    2 * token.len() + ENTRY_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixSecs;

    fn claims() -> Claims {
        Claims::sample_access(UnixSecs(1_999_999_700))
    }

    fn token(n: usize) -> String {
        format!("header.payload-{n:06}.signature")
    }

    #[test]
    fn a_token_is_found_by_its_exact_text_only() {
        let cache = VerifiedTokens::new(1 << 20);
        let checked = claims();
        cache.insert(&token(1), &checked);
        assert_eq!(cache.get(&token(1)), Some(checked));
        assert_eq!(cache.get(&token(2)), None);
        assert_eq!(cache.get(&format!("{} ", token(1))), None);
        assert_eq!(cache.get(&token(1)[1..]), None);
    }

    #[test]
    fn the_oldest_tokens_go_first_and_the_budget_holds() {
        let entry = charge(&token(0));
        // Room for about three entries per shard.
        let cache = VerifiedTokens::new(SHARDS * 3 * entry + SHARDS * (entry / 2));
        for n in 0..1_000 {
            cache.insert(&token(n), &claims());
            assert!(cache.bytes() <= SHARDS * 3 * entry + SHARDS * (entry / 2));
        }
        // The newest of each shard stay, the first ones are gone.
        assert!(cache.get(&token(999)).is_some());
        assert!((0..10).all(|n| cache.get(&token(n)).is_none()));
        let held = (0..1_000).filter(|&n| cache.get(&token(n)).is_some());
        assert_eq!(held.count(), SHARDS * 3);
    }

    #[test]
    fn a_zero_budget_caches_nothing() {
        let cache = VerifiedTokens::new(0);
        cache.insert(&token(1), &claims());
        assert_eq!(cache.get(&token(1)), None);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn inserting_a_token_twice_charges_it_once() {
        let cache = VerifiedTokens::new(1 << 20);
        cache.insert(&token(1), &claims());
        cache.insert(&token(1), &claims());
        assert_eq!(cache.bytes(), charge(&token(1)));
    }
}
