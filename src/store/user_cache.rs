//! Users as a refresh needs them (active? username? staff? their groups, effective permissions
//! and `app_metadata`, when access tokens carry them), cached per instance so that a refresh
//! costs no SQL.
//!
//! A cached copy is used only while the user's version entry in the revocation store
//! (`{user}:v`, read in the same round trip as the revocation entries) is still the one seen
//! when the copy was loaded, and never for longer than [`MAX_AGE`]. Every change to what a
//! refresh reads (`AccountService`'s profile and staff updates call
//! `ActiveUsers::user_changed`; every grant edit, `GrantService`, moves the version of each user
//! it concerns, a group edit every member's) writes a new version; password changes, deactivation and
//! deletion revoke the user's sessions instead. The version entry lives [`VERSION_TTL`],
//! longer than any copy, so a change made through any instance is seen by every instance's
//! next refresh.
//!
//! The version is read before the database, so a copy can be tagged with a version older than
//! its data (harmless: it is reloaded once more), never with one newer than its data.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use uuid::Uuid;

use crate::accounts::GrantedUser;
use crate::clock::{SharedClock, UnixMillis};

/// The longest a cached copy is trusted, whatever the store says.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// How long a version entry is kept: longer than any copy cached before it was written.
pub const VERSION_TTL: Duration = Duration::from_secs(2 * MAX_AGE.as_secs());
const _: () = assert!(VERSION_TTL.as_millis() > MAX_AGE.as_millis());
/// Past this many users the expired copies are dropped, then, if still full, all of them.
const CAPACITY: usize = 100_000;

struct Cached {
    user: Arc<GrantedUser>,
    version: Option<String>,
    loaded: UnixMillis,
}

pub struct UserCache {
    entries: RwLock<HashMap<Uuid, Cached>>,
    clock: SharedClock,
}

impl UserCache {
    pub fn new(clock: SharedClock) -> UserCache {
        UserCache {
            entries: RwLock::new(HashMap::new()),
            clock,
        }
    }

    /// The cached user, if it was loaded under `version` and is young enough.
    pub fn get(&self, id: Uuid, version: Option<&str>) -> Option<Arc<GrantedUser>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let cached = entries.get(&id)?;
        let fresh = self.clock.now() < cached.loaded + MAX_AGE;
        (fresh && cached.version.as_deref() == version).then(|| Arc::clone(&cached.user))
    }

    /// The cached user, young enough, with the version it was loaded under (whatever the
    /// store's entry says now: the caller checks that).
    pub fn peek(&self, id: Uuid) -> Option<(Arc<GrantedUser>, Option<String>)> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let cached = entries.get(&id)?;
        let fresh = self.clock.now() < cached.loaded + MAX_AGE;
        fresh.then(|| (Arc::clone(&cached.user), cached.version.clone()))
    }

    /// Caches `user` as read from the database after `version` was read from the store.
    pub fn insert(&self, user: GrantedUser, version: Option<String>) -> Arc<GrantedUser> {
        let user = Arc::new(user);
        let now = self.clock.now();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.retain(|_, cached| now < cached.loaded + MAX_AGE);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        let cached = Cached {
            user: Arc::clone(&user),
            version,
            loaded: now,
        };
        entries.insert(user.user.id, cached);
        user
    }

    pub fn forget(&self, id: Uuid) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::accounts::User;
    use crate::clock::ManualClock;

    fn user() -> GrantedUser {
        let user = User {
            id: Uuid::new_v4(),
            username: "alice".into(),
            email: String::new(),
            is_active: true,
            is_staff: false,
            date_joined: chrono::Utc::now(),
            last_login: None,
            app_metadata: Default::default(),
        };
        GrantedUser {
            user,
            grants: Default::default(),
        }
    }

    #[test]
    fn a_copy_serves_only_its_own_version() {
        let cache = UserCache::new(ManualClock::starting_now());
        let alice = user();
        cache.insert(alice.clone(), None);
        assert!(cache.get(alice.user.id, None).is_some());
        assert!(cache.get(alice.user.id, Some("v2")).is_none());
        cache.insert(alice.clone(), Some("v2".into()));
        assert!(cache.get(alice.user.id, Some("v2")).is_some());
        assert!(cache.get(alice.user.id, None).is_none());
        cache.forget(alice.user.id);
        assert!(cache.get(alice.user.id, Some("v2")).is_none());
    }

    #[test]
    fn a_copy_expires_even_if_the_version_never_changes() {
        let clock = ManualClock::starting_now();
        let cache = UserCache::new(clock.clone());
        let alice = user();
        cache.insert(alice.clone(), None);
        clock.advance(MAX_AGE - Duration::from_millis(1));
        assert!(cache.get(alice.user.id, None).is_some());
        clock.advance(Duration::from_millis(1));
        assert!(cache.get(alice.user.id, None).is_none());
    }
}
