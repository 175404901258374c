//! The active user behind a token, for a refresh: from this instance's cache while the user's
//! version entry is unchanged, else from the database (with their groups and effective
//! permissions when access tokens carry them). Any change to a user goes through
//! [`ActiveUsers::user_changed`] or [`ActiveUsers::publish_change`], which every instance sees
//! at its next read of that entry.

use std::sync::Arc;

use uuid::Uuid;

use super::AuthError;
use crate::accounts::{GrantedUser, User};
use crate::clock::SharedClock;
use crate::outage::Outage;
use crate::store::RevocationStore;
use crate::store::groups::GroupRepository;
use crate::store::user_cache::{self, UserCache};
use crate::store::users::UserRepository;
use crate::token::Claims;

/// A user, and the version entry that was current when it was read.
#[derive(Debug, Clone)]
pub struct VersionedUser {
    pub user: Arc<GrantedUser>,
    pub version: Option<String>,
}

pub struct ActiveUsers {
    users: UserRepository,
    /// Set when access tokens carry groups or permissions: they are loaded with the user.
    groups: Option<GroupRepository>,
    cache: UserCache,
    store: Arc<dyn RevocationStore>,
    clock: SharedClock,
}

impl ActiveUsers {
    pub fn new(
        users: UserRepository,
        groups: Option<GroupRepository>,
        store: Arc<dyn RevocationStore>,
        clock: SharedClock,
    ) -> ActiveUsers {
        ActiveUsers {
            users,
            groups,
            cache: UserCache::new(clock.clone()),
            store,
            clock,
        }
    }

    /// The token's user, if active. `version` is the user's version entry, read with the
    /// token's revocation entries.
    pub async fn of(
        &self,
        claims: &Claims,
        version: Option<&str>,
    ) -> Result<Arc<GrantedUser>, AuthError> {
        let id = user_id_of(claims)?;
        match self.cache.get(id, version) {
            Some(user) => active(user),
            None => Ok(self.load(claims, version.map(str::to_owned)).await?.user),
        }
    }

    /// This instance's copy of the token's active user, if it has a young enough one, and the
    /// version entry it was loaded under. Nothing is read: a refresh checks the version in the
    /// same store step that rotates, so a stale copy costs a reload, never a wrong token.
    pub fn cached(&self, claims: &Claims) -> Result<Option<VersionedUser>, AuthError> {
        let id = user_id_of(claims)?;
        let cached = self.cache.peek(id).filter(|(user, _)| user.user.is_active);
        Ok(cached.map(|(user, version)| VersionedUser { user, version }))
    }

    /// The token's user from the database, if active, cached under `version` (the user's
    /// version entry, read before this).
    pub async fn load(
        &self,
        claims: &Claims,
        version: Option<String>,
    ) -> Result<VersionedUser, AuthError> {
        let id = user_id_of(claims)?;
        let Some(user) = self.read(id).await? else {
            return Err(AuthError::TokenUserInactive);
        };
        let user = active(self.cache.insert(user, version.clone()))?;
        Ok(VersionedUser { user, version })
    }

    /// The user from the database, with their grants when tokens carry them.
    pub async fn read(&self, id: Uuid) -> Result<Option<GrantedUser>, Outage> {
        let Some(user) = self.users.find_by_id(id).await? else {
            return Ok(None);
        };
        self.with_grants(user).await.map(Some)
    }

    /// `user` with their grants when tokens carry them (else none: nothing would read them).
    pub async fn with_grants(&self, user: User) -> Result<GrantedUser, Outage> {
        let grants = match &self.groups {
            Some(groups) => groups.grants_of(&[user.id]).await?.remove(&user.id),
            None => None,
        };
        Ok(GrantedUser {
            grants: grants.unwrap_or_default(),
            user,
        })
    }

    /// Call after any change to a user's record: every instance's cached copy is dropped
    /// (this one at once, the others at their next read of the user's version entry). The
    /// change itself is already stored, so a store failure here is logged, not returned: other
    /// instances then serve their copy until it ages out (`user_cache::MAX_AGE`).
    pub async fn user_changed(&self, user_id: Uuid) {
        if let Err(err) = self.publish_change(user_id).await {
            tracing::warn!(%user_id, error = %crate::outage::chain(&err), "publishing a user change failed; other instances may use their cached copy for up to a minute");
        }
    }

    /// As [`ActiveUsers::user_changed`], failing if the new version could not be written: a
    /// change of permissions must not leave a copy from before it in any instance's cache.
    pub async fn publish_change(&self, user_id: Uuid) -> Result<(), Outage> {
        self.cache.forget(user_id);
        let version = Uuid::new_v4().simple().to_string();
        let until = self.clock.now().secs() + user_cache::VERSION_TTL;
        self.store
            .mark_user_changed(&user_id.to_string(), &version, until)
            .await
    }
}

fn user_id_of(claims: &Claims) -> Result<Uuid, AuthError> {
    Uuid::try_parse(&claims.user_id).map_err(|_| AuthError::TokenUserInactive)
}

fn active(user: Arc<GrantedUser>) -> Result<Arc<GrantedUser>, AuthError> {
    if user.user.is_active {
        Ok(user)
    } else {
        Err(AuthError::TokenUserInactive)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock;
    use crate::flows::testing::Harness;
    use crate::store::revocation::TokenKeys;
    use crate::store::users::ProfileChange;

    /// The username `active` serves for `claims` under the user's current version entry.
    async fn served_name(harness: &Harness, claims: &Claims) -> String {
        let sid = claims.sid.to_string();
        let keys = TokenKeys {
            user_id: &claims.user_id,
            jti: &claims.jti,
            sid: &sid,
        };
        let entries = harness.state.revocation_store.entries(keys).await.unwrap();
        let active = &harness.state.flows.active_users;
        let user = active.of(claims, entries.user_version.as_deref()).await;
        user.unwrap().user.username.clone()
    }

    #[tokio::test]
    async fn a_change_made_elsewhere_is_seen_through_the_version_entry() {
        let harness = Harness::new().await;
        let alice = harness.user("alice").await;
        let pair = harness.login("alice").await;
        let claims = harness.minter().codec().decode(&pair.refresh).unwrap();
        assert_eq!(served_name(&harness, &claims).await, "alice");
        // Another instance renames her: the database changes, then the version entry.
        let change = ProfileChange {
            username: Some("alicia".into()),
            email: None,
        };
        let users = &harness.state.users;
        users.update_profile(alice.id, change).await.unwrap();
        assert_eq!(served_name(&harness, &claims).await, "alice");
        let until = harness.clock.now().secs() + Duration::from_secs(60);
        let store = &harness.state.revocation_store;
        let user_id = alice.id.to_string();
        store
            .mark_user_changed(&user_id, "v2", until)
            .await
            .unwrap();
        assert_eq!(served_name(&harness, &claims).await, "alicia");
    }
}
