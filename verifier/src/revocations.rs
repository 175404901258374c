//! The revocations in memory: what the snapshot and the feed said, until each expires.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Deserialize;

use crate::claims::Claims;

/// One entry of the feed (`GET /api/revocations/`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Entry {
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) not_before: Option<i64>,
    pub(crate) expires_at: i64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    pub(crate) cursor: String,
    pub(crate) entries: Vec<Entry>,
}

/// Each map: id → (not_before for users and clients, else 0; expiry, unix seconds).
#[derive(Default)]
struct Held {
    tokens: HashMap<String, i64>,
    sessions: HashMap<String, i64>,
    users: HashMap<String, (i64, i64)>,
    clients: HashMap<String, (i64, i64)>,
}

#[derive(Default)]
pub(crate) struct Revocations(RwLock<Held>);

impl Revocations {
    /// Replaces everything with a snapshot's entries.
    pub(crate) fn replace(&self, entries: &[Entry]) {
        let mut held = Held::default();
        for entry in entries {
            held.apply(entry);
        }
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = held;
    }

    pub(crate) fn apply(&self, entries: &[Entry], now_secs: i64) {
        let mut held = self.0.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            held.apply(entry);
        }
        held.forget_expired(now_secs);
    }

    pub(crate) fn len(&self) -> usize {
        let held = self.0.read().unwrap_or_else(|e| e.into_inner());
        held.tokens.len() + held.sessions.len() + held.users.len() + held.clients.len()
    }

    /// Whether a held entry revokes the token. A `sid` that is not a UUIDv7 cannot be placed
    /// against a cut-off: refused when its subject has one (fail closed).
    pub(crate) fn refuses(&self, claims: &Claims) -> bool {
        let held = self.0.read().unwrap_or_else(|e| e.into_inner());
        if held.tokens.contains_key(&claims.jti) || held.sessions.contains_key(&claims.sid) {
            return true;
        }
        let cutoffs = if claims.subject_is_client {
            &held.clients
        } else {
            &held.users
        };
        match cutoffs.get(&claims.sub) {
            Some((not_before, _)) => claims
                .session_started_ms()
                .is_none_or(|started| started <= *not_before),
            None => false,
        }
    }
}

impl Held {
    fn apply(&mut self, entry: &Entry) {
        let later = |(nb, exp): (i64, i64), (nb2, exp2): (i64, i64)| (nb.max(nb2), exp.max(exp2));
        let cutoff = (entry.not_before.unwrap_or(i64::MAX), entry.expires_at);
        match entry.kind.as_str() {
            "token" => {
                self.tokens.insert(entry.id.clone(), entry.expires_at);
            }
            "session" => {
                self.sessions.insert(entry.id.clone(), entry.expires_at);
            }
            "client" => {
                let held = self.clients.entry(entry.id.clone()).or_insert(cutoff);
                *held = later(*held, cutoff);
            }
            // "user", and any kind this version does not know: the widest reading.
            _ => {
                let held = self.users.entry(entry.id.clone()).or_insert(cutoff);
                *held = later(*held, cutoff);
            }
        }
    }

    fn forget_expired(&mut self, now: i64) {
        self.tokens.retain(|_, exp| *exp >= now);
        self.sessions.retain(|_, exp| *exp >= now);
        self.users.retain(|_, (_, exp)| *exp >= now);
        self.clients.retain(|_, (_, exp)| *exp >= now);
    }
}
