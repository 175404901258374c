//! At start-up: does this Redis keep what jwtd writes? Revocations live only in Redis. A server
//! without an append-only file forgets them when it restarts, and one with an evicting
//! `maxmemory-policy` drops them when it is full: either way blacklisted tokens, ended sessions
//! and spent refresh tokens work again until they expire. That is a loud warning everywhere, and
//! production refuses to start on it unless `redis.allow_volatile` accepts the loss.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;

use super::connection::Redis;
use crate::outage;

const APPENDONLY: &str = "appendonly";
const MAXMEMORY_POLICY: &str = "maxmemory-policy";

/// A Redis that can lose revocations, in production without `redis.allow_volatile`.
#[derive(Debug, thiserror::Error)]
#[error(
    "JWTD_ENV=production refuses a Redis that can lose revocations ({losses}): run Redis with \
     `appendonly yes` and `maxmemory-policy noeviction`, or set JWTD__REDIS__ALLOW_VOLATILE=true \
     (redis.allow_volatile) to accept that revoked tokens may work again"
)]
pub struct VolatileRedis {
    losses: String,
}

/// How one server keeps its data, as `CONFIG GET` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Persistence {
    appendonly: String,
    maxmemory_policy: String,
}

impl Persistence {
    /// From `CONFIG GET appendonly maxmemory-policy` (a flat array, or a map over RESP3).
    fn from_answer(answer: Value) -> Result<Persistence, String> {
        let mut config: HashMap<String, String> =
            redis::from_redis_value(answer).map_err(|e| e.to_string())?;
        let mut take = |name: &str| {
            config
                .remove(name)
                .ok_or_else(|| format!("CONFIG GET did not answer {name}"))
        };
        Ok(Persistence {
            appendonly: take(APPENDONLY)?,
            maxmemory_policy: take(MAXMEMORY_POLICY)?,
        })
    }

    /// What these settings lose, and how; empty when nothing.
    fn losses(&self) -> Vec<String> {
        let mut losses = Vec::new();
        if !self.appendonly.eq_ignore_ascii_case("yes") {
            losses.push(format!(
                "appendonly is {}: blacklisted tokens come back after a Redis restart",
                self.appendonly
            ));
        }
        // Every jwtd key has an expiry, so the volatile-* policies evict them as well.
        if !self.maxmemory_policy.eq_ignore_ascii_case("noeviction") {
            losses.push(format!(
                "maxmemory-policy is {}: blacklisted tokens come back when Redis evicts them",
                self.maxmemory_policy
            ));
        }
        losses
    }
}

/// Reads the persistence settings of the server, or of every master of a cluster, within
/// `budget`, and warns about each that can lose revocations; with `refuse`, that is an error
/// instead. A server that cannot be asked (down, or `CONFIG` renamed or forbidden, as managed
/// Redis services often do) is a warning only: jwtd still starts and fails closed while Redis
/// is down.
pub(super) async fn check(
    redis: &Redis,
    refuse: bool,
    budget: Duration,
) -> Result<(), VolatileRedis> {
    let cmd = redis::cmd("CONFIG")
        .arg("GET")
        .arg(APPENDONLY)
        .arg(MAXMEMORY_POLICY)
        .to_owned();
    let answers = match tokio::time::timeout(budget, redis.on_every_master(&cmd)).await {
        Ok(Ok(answers)) => answers,
        Ok(Err(err)) => {
            warn_unchecked("redis.url", &outage::chain(&err));
            return Ok(());
        }
        Err(_) => {
            warn_unchecked("redis.url", &format!("no answer within {budget:?}"));
            return Ok(());
        }
    };
    let mut volatile = Vec::new();
    for (node, answer) in answers {
        let persistence = answer
            .map_err(|e| e.to_string())
            .and_then(Persistence::from_answer);
        match persistence {
            Ok(persistence) => {
                let losses = persistence.losses();
                if !losses.is_empty() {
                    volatile.push((node, persistence, losses.join("; ")));
                }
            }
            Err(why) => warn_unchecked(&node, &why),
        }
    }
    if refuse && !volatile.is_empty() {
        let losses = volatile
            .iter()
            .map(|(node, _, losses)| format!("{node}: {losses}"));
        return Err(VolatileRedis {
            losses: losses.collect::<Vec<_>>().join("; "),
        });
    }
    for (node, persistence, losses) in volatile {
        tracing::warn!(
            redis = %node,
            appendonly = %persistence.appendonly,
            maxmemory_policy = %persistence.maxmemory_policy,
            "Redis can lose revocations, and revoked tokens then work again until they expire: \
             {losses}. Run it with appendonly yes and maxmemory-policy noeviction \
             (production refuses to start otherwise, unless redis.allow_volatile = true)"
        );
    }
    Ok(())
}

fn warn_unchecked(node: &str, why: &str) {
    tracing::warn!(
        redis = %node,
        reason = %why,
        "could not check whether Redis keeps revocations (CONFIG GET appendonly \
         maxmemory-policy): make sure it runs with appendonly yes and maxmemory-policy \
         noeviction, or blacklisted tokens come back after a restart or an eviction"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn persistence(appendonly: &str, maxmemory_policy: &str) -> Persistence {
        Persistence {
            appendonly: appendonly.into(),
            maxmemory_policy: maxmemory_policy.into(),
        }
    }

    #[test]
    fn the_answer_is_read_as_an_array_or_a_map() {
        let resp2 = Value::Array(vec![
            bulk("appendonly"),
            bulk("yes"),
            bulk("maxmemory-policy"),
            bulk("noeviction"),
        ]);
        let resp3 = Value::Map(vec![
            (bulk("maxmemory-policy"), bulk("allkeys-lru")),
            (bulk("appendonly"), bulk("no")),
        ]);
        assert_eq!(
            Persistence::from_answer(resp2),
            Ok(persistence("yes", "noeviction"))
        );
        assert_eq!(
            Persistence::from_answer(resp3),
            Ok(persistence("no", "allkeys-lru"))
        );
        // A server that hides a parameter answers without it.
        let partial = Value::Array(vec![bulk("appendonly"), bulk("yes")]);
        let err = Persistence::from_answer(partial).unwrap_err();
        assert!(err.contains("did not answer maxmemory-policy"), "{err}");
    }

    #[test]
    fn only_an_append_only_file_and_noeviction_lose_nothing() {
        assert!(persistence("yes", "noeviction").losses().is_empty());
        let no_aof = persistence("no", "noeviction").losses();
        assert_eq!(no_aof.len(), 1);
        assert!(no_aof[0].contains("appendonly is no"), "{no_aof:?}");
        assert!(no_aof[0].contains("after a Redis restart"), "{no_aof:?}");
        for policy in [
            "allkeys-lru",
            "volatile-ttl",
            "volatile-lru",
            "allkeys-random",
        ] {
            let losses = persistence("yes", policy).losses();
            assert_eq!(losses.len(), 1, "{policy}");
            assert!(losses[0].contains(&format!("maxmemory-policy is {policy}")));
            assert!(losses[0].contains("evicts"), "{losses:?}");
        }
        assert_eq!(persistence("no", "allkeys-lfu").losses().len(), 2);
    }
}
