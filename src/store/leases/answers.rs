//! The answers a lease lets an instance reuse: each token's revocation entries, by `jti`,
//! stamped with the generation they were read under (see `store::leases`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::store::revocation::{RevocationEntries, TokenKeys};

/// Answers kept at most, over all shards: about 300 bytes each.
const MAX_ANSWERS: usize = 16 * 1024;

/// One per hex digit: a `jti` is a random UUID in lowercase hex.
const SHARDS: usize = 16;

/// One token's answer, as read under `generation`.
struct Answer {
    generation: u64,
    user_id: Box<str>,
    sid: Box<str>,
    entries: RevocationEntries,
}

/// The answers, by `jti`.
pub(super) struct Answers {
    shards: Box<[RwLock<Shard>]>,
}

type Shard = HashMap<Box<str>, Arc<Answer>>;

impl Answers {
    pub(super) fn new() -> Answers {
        Answers {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    pub(super) fn get(&self, token: TokenKeys<'_>, generation: u64) -> Option<RevocationEntries> {
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

    pub(super) fn insert(&self, token: TokenKeys<'_>, generation: u64, entries: RevocationEntries) {
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

    /// By the `jti`'s last hex digit (any other last character: shard 0).
    fn shard(&self, jti: &str) -> &RwLock<Shard> {
        let last = jti.chars().next_back().and_then(|c| c.to_digit(16));
        &self.shards[last.unwrap_or(0) as usize % SHARDS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> TokenKeys<'static> {
        TokenKeys {
            user_id: "u1",
            jti: "0123456789abcdef0123456789abcdef",
            sid: "s1",
        }
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
