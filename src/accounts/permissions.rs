//! Django's authorisation model: permissions are `app_label.codename` strings, groups hold
//! permissions, users are in groups and have permissions of their own. A user's effective
//! permissions are theirs and their groups'. Access tokens may carry them
//! (`jwt.access_token_extra_claims`), with `app_metadata`, a staff-set JSON object.
//!
//! Taking anything away (a permission from a group, a user from a group, a permission from a
//! user, a whole group) revokes every token of each user concerned, through the same "revoke
//! all" as a password change (`users.revoke_on_permission_loss`), so no token keeps a
//! permission the final state does not grant. The order is what makes that hold under
//! concurrent edits:
//!
//! 1. the edit commits (one transaction, which locks the group or the user first, and reads
//!    a group's members under that lock: see `store::groups`);
//! 2. every affected user's version entry (`{user}:v`) moves, so no instance serves a cached
//!    copy read before the commit ([`ActiveUsers::publish_change`]);
//! 3. on a loss, each affected user's sessions are revoked: every session started before this
//!    moment, which includes every session whose tokens were minted from a read made before
//!    the commit (a login starts its session before it reads the user; a refresh's session
//!    is older still). A session started after it reads the committed state, and its
//!    refreshes find the new version.
//!
//! A gain needs no revocation: the version moves, and the next refresh on any instance shows it.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{StreamExt, stream};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{AccountError, FieldErrors, User};
use crate::config::JwtSettings;
use crate::flows::{ActiveUsers, RevocationFlow};
use crate::outage::Outage;
use crate::store::groups::{GroupRepository, WriteGrantsError, WriteGroupError};
use crate::store::leases;
use crate::store::users::UserRepository;

/// The largest `app_metadata`, as compact JSON.
pub const MAX_APP_METADATA_BYTES: usize = 4096;
pub const MAX_GROUP_NAME_CHARS: usize = 150;
pub const MAX_PERMISSION_CHARS: usize = 255;
/// The most permissions or groups one request may set.
pub const MAX_GRANTS_PER_REQUEST: usize = 1000;

/// Claim names an access token already uses, or that verifiers give a meaning; an
/// `app_metadata` key may be none of them (nor the configured user-id and token-type names).
pub const RESERVED_CLAIMS: [&str; 20] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "sid",
    "scope",
    "client_id",
    "azp",
    "auth_time",
    "nonce",
    "cnf",
    "act",
    "username",
    "is_staff",
    "groups",
    "perms",
    "app_metadata",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    /// Sorted.
    pub permissions: Vec<String>,
}

/// A user's group names and effective permissions, each sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub groups: Vec<String>,
    pub permissions: Vec<String>,
}

/// A user with their grants: what an access token is minted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedUser {
    pub user: User,
    pub grants: Grants,
}

/// Django's permission string: `app_label.codename`, each part letters, digits and
/// underscores, not starting with a digit.
pub fn validate_permission(permission: &str) -> Vec<String> {
    let part_ok = |part: &str| {
        part.chars().next().is_some_and(|c| !c.is_ascii_digit())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let valid = permission.len() <= MAX_PERMISSION_CHARS
        && permission
            .split_once('.')
            .is_some_and(|(app, codename)| part_ok(app) && part_ok(codename));
    if valid {
        Vec::new()
    } else {
        vec![format!(
            "{permission:?} is not a permission: write app_label.codename (letters, digits and \
             underscores, at most {MAX_PERMISSION_CHARS} characters), e.g. orders.change."
        )]
    }
}

/// Django's group names: 1 to 150 characters, here without control characters or surrounding
/// whitespace.
pub fn validate_group_name(name: &str) -> Vec<String> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_GROUP_NAME_CHARS
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if valid {
        Vec::new()
    } else {
        vec![format!(
            "Enter a group name of 1 to {MAX_GROUP_NAME_CHARS} characters, without control \
             characters or surrounding spaces."
        )]
    }
}

/// A list of permissions, each valid, as a set; or the field's messages.
pub fn permission_set(permissions: Vec<String>) -> Result<BTreeSet<String>, Vec<String>> {
    if permissions.len() > MAX_GRANTS_PER_REQUEST {
        return Err(vec![format!(
            "Ensure this field has no more than {MAX_GRANTS_PER_REQUEST} elements."
        )]);
    }
    let problems: Vec<String> = permissions
        .iter()
        .flat_map(|p| validate_permission(p))
        .collect();
    if problems.is_empty() {
        Ok(permissions.into_iter().collect())
    } else {
        Err(problems)
    }
}

/// `app_metadata` as staff may set it: a JSON object of at most [`MAX_APP_METADATA_BYTES`]
/// whose keys are no reserved claim name. Returns it as the text to store.
pub fn validate_app_metadata(value: &Value, jwt: &JwtSettings) -> Result<String, Vec<String>> {
    let Value::Object(map) = value else {
        return Err(vec!["Expected a JSON object.".into()]);
    };
    let text = serde_json::to_string(map).map_err(|err| vec![err.to_string()])?;
    if text.len() > MAX_APP_METADATA_BYTES {
        return Err(vec![format!(
            "Ensure this object is at most {MAX_APP_METADATA_BYTES} bytes as JSON (it is {}).",
            text.len()
        )]);
    }
    let reserved: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|key| is_reserved_claim(key, jwt))
        .collect();
    if !reserved.is_empty() {
        return Err(vec![format!(
            "These keys are reserved claim names and cannot be set: {}.",
            reserved.join(", ")
        )]);
    }
    Ok(text)
}

/// Whether an access token's claim called `name` may not come from `app_metadata`.
pub fn is_reserved_claim(name: &str, jwt: &JwtSettings) -> bool {
    RESERVED_CLAIMS.contains(&name) || name == jwt.user_id_claim || name == jwt.token_type_claim
}

impl From<WriteGroupError> for AccountError {
    fn from(err: WriteGroupError) -> AccountError {
        match err {
            WriteGroupError::NameTaken => AccountError::GroupNameTaken,
            WriteGroupError::NotFound => AccountError::NotFound,
            WriteGroupError::Store(outage) => outage.into(),
        }
    }
}

impl From<WriteGrantsError> for AccountError {
    fn from(err: WriteGrantsError) -> AccountError {
        match err {
            WriteGrantsError::UserNotFound => AccountError::NotFound,
            WriteGrantsError::UnknownGroups(ids) => {
                let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                AccountError::field(
                    "groups",
                    vec![format!("Unknown groups: {}.", ids.join(", "))],
                )
            }
            WriteGrantsError::Store(outage) => outage.into(),
        }
    }
}

/// Groups and users' grants, for the staff API and the command line.
pub struct GrantService {
    pub(crate) groups: GroupRepository,
    pub(crate) users: UserRepository,
    pub(crate) revocation: Arc<RevocationFlow>,
    pub(crate) active_users: Arc<ActiveUsers>,
    /// `users.revoke_on_permission_loss`.
    pub(crate) revoke_on_loss: bool,
    /// For the reserved claim names `app_metadata` may not use.
    pub(crate) jwt: JwtSettings,
}

/// A group's name and permissions as asked for, before validation.
#[derive(Debug, Default)]
pub struct GroupChange {
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
}

impl GrantService {
    pub async fn groups(&self) -> Result<Vec<Group>, AccountError> {
        Ok(self.groups.list().await?)
    }

    pub async fn group(&self, id: Uuid) -> Result<Group, AccountError> {
        self.groups.find(id).await?.ok_or(AccountError::NotFound)
    }

    pub async fn group_named(&self, name: &str) -> Result<Group, AccountError> {
        let id = self.groups.id_by_name(name).await?;
        self.group(id.ok_or(AccountError::NotFound)?).await
    }

    pub async fn create_group(
        &self,
        name: String,
        permissions: Vec<String>,
    ) -> Result<Group, AccountError> {
        let (name, permissions) = validated(GroupChange {
            name: Some(name),
            permissions: Some(permissions),
        })?;
        let (name, permissions) = (name.unwrap_or_default(), permissions.unwrap_or_default());
        Ok(self.groups.create(name, permissions).await?)
    }

    /// Renames a group or replaces its permissions. Its members' cached copies are dropped
    /// everywhere, and on a loss their tokens are revoked.
    pub async fn update_group(&self, id: Uuid, change: GroupChange) -> Result<Group, AccountError> {
        let (name, permissions) = validated(change)?;
        let edit = self.groups.update(id, name, permissions).await?;
        self.after_change(&edit.members, edit.lost).await?;
        Ok(edit.group)
    }

    /// Deletes a group: a loss for each of its members.
    pub async fn delete_group(&self, id: Uuid) -> Result<(), AccountError> {
        let members = self
            .groups
            .delete(id)
            .await?
            .ok_or(AccountError::NotFound)?;
        self.after_change(&members, true).await
    }

    /// Replaces the user's groups; returns the user with their grants.
    pub async fn set_user_groups(
        &self,
        user_id: Uuid,
        groups: Vec<Uuid>,
    ) -> Result<GrantedUser, AccountError> {
        if groups.len() > MAX_GRANTS_PER_REQUEST {
            return Err(AccountError::field(
                "groups",
                vec![format!(
                    "Ensure this field has no more than {MAX_GRANTS_PER_REQUEST} elements."
                )],
            ));
        }
        let edit = self
            .groups
            .set_user_groups(user_id, groups.into_iter().collect())
            .await?;
        self.after_change(&[user_id], edit.lost).await?;
        self.granted(user_id).await
    }

    /// Replaces the user's own permissions; returns the user with their grants.
    pub async fn set_user_permissions(
        &self,
        user_id: Uuid,
        permissions: Vec<String>,
    ) -> Result<GrantedUser, AccountError> {
        let permissions =
            permission_set(permissions).map_err(|p| AccountError::field("permissions", p))?;
        let edit = self
            .groups
            .set_user_permissions(user_id, permissions)
            .await?;
        self.after_change(&[user_id], edit.lost).await?;
        self.granted(user_id).await
    }

    /// Adds a group to a user's (the command line's `users grant --group`).
    pub async fn add_user_group(&self, user_id: Uuid, group_id: Uuid) -> Result<(), AccountError> {
        self.groups.add_user_group(user_id, group_id).await?;
        self.after_change(&[user_id], false).await
    }

    /// Adds a permission to a user's own (the command line's `users grant --perm`).
    pub async fn add_user_permission(
        &self,
        user_id: Uuid,
        permission: String,
    ) -> Result<(), AccountError> {
        let problems = validate_permission(&permission);
        if !problems.is_empty() {
            return Err(AccountError::field("perm", problems));
        }
        self.groups.add_user_permission(user_id, permission).await?;
        self.after_change(&[user_id], false).await
    }

    /// `app_metadata` checked (see [`validate_app_metadata`]), as the text to store.
    pub fn app_metadata_text(&self, value: Map<String, Value>) -> Result<String, AccountError> {
        validate_app_metadata(&Value::Object(value), &self.jwt)
            .map_err(|problems| AccountError::field("app_metadata", problems))
    }

    /// The user with their groups and effective permissions.
    pub async fn granted(&self, user_id: Uuid) -> Result<GrantedUser, AccountError> {
        let user = self
            .users
            .find_by_id(user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        Ok(self.with_grants(vec![user]).await?.remove(0))
    }

    /// Each user with their grants, in the same order (one query for all).
    pub async fn with_grants(&self, users: Vec<User>) -> Result<Vec<GrantedUser>, Outage> {
        let ids: Vec<Uuid> = users.iter().map(|user| user.id).collect();
        let mut grants = self.groups.grants_of(&ids).await?;
        Ok(users
            .into_iter()
            .map(|user| GrantedUser {
                grants: grants.remove(&user.id).unwrap_or_default(),
                user,
            })
            .collect())
    }

    /// After a committed edit: every affected user's version moves (no cached copy from before
    /// the commit is served again, on any instance), then, on a loss, their sessions are
    /// revoked. See the module's notes for why this order. The work runs on a task of its own,
    /// so a caller that goes away (a closed connection, the request timeout) does not stop it
    /// half way.
    async fn after_change(&self, users: &[Uuid], lost: bool) -> Result<(), AccountError> {
        let revoke = lost && self.revoke_on_loss;
        let work = publish_all(
            users.to_vec(),
            Arc::clone(&self.active_users),
            Arc::clone(&self.revocation),
            revoke,
        );
        tokio::spawn(work)
            .await
            .unwrap_or_else(|panicked| Err(Outage::internal(panicked).into()))
    }
}

/// Moves each user's version and, if `revoke`, revokes their sessions, [`FAN_OUT`] users at a
/// time; every user is done before it returns, even when one of them failed (the first error).
/// The writes wait out the revocation leases once, together ([`leases::waiting_once`]), not
/// once per user.
async fn publish_all(
    users: Vec<Uuid>,
    active_users: Arc<ActiveUsers>,
    revocation: Arc<RevocationFlow>,
    revoke: bool,
) -> Result<(), AccountError> {
    let publish = |user_id| {
        let (active_users, revocation) = (&active_users, &revocation);
        async move {
            active_users.publish_change(user_id).await?;
            if revoke {
                revocation.revoke_all_of_user(user_id).await?;
            }
            Ok::<(), AccountError>(())
        }
    };
    let all = stream::iter(users).map(publish).buffer_unordered(FAN_OUT);
    let results: Vec<_> = leases::waiting_once(all.collect()).await;
    results
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), Err)
}

/// Users whose version and revocation entries are written at once after a group edit.
const FAN_OUT: usize = 16;

/// The change's name and permissions, validated, with every problem named.
fn validated(
    change: GroupChange,
) -> Result<(Option<String>, Option<BTreeSet<String>>), AccountError> {
    let mut errors = FieldErrors::new();
    if let Some(name) = &change.name {
        let problems = validate_group_name(name);
        if !problems.is_empty() {
            errors.insert("name".into(), problems);
        }
    }
    let permissions = match change.permissions.map(permission_set).transpose() {
        Ok(permissions) => permissions,
        Err(problems) => {
            errors.insert("permissions".into(), problems);
            None
        }
    };
    if errors.is_empty() {
        Ok((change.name, permissions))
    } else {
        Err(AccountError::Invalid(errors))
    }
}

/// `app_metadata` claims: `app_metadata`'s keys minus any reserved name (a key stored before
/// the claim names were configured otherwise is left out, never written over a claim).
pub fn metadata_claims(app_metadata: &Map<String, Value>, jwt: &JwtSettings) -> Map<String, Value> {
    app_metadata
        .iter()
        .filter(|(key, _)| !is_reserved_claim(key, jwt))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExtraClaim;
    use crate::flows::AuthError;
    use crate::flows::testing::Harness;
    use crate::token::TokenError;

    /// The order, step by step: a refresh reads the user with a permission, the loss commits
    /// and revokes, then the refresh mints from what it read. That token is refused (its
    /// session started before the cut-off); the next login carries the smaller set.
    #[tokio::test]
    async fn a_token_minted_from_a_read_before_a_loss_is_refused_after_it() {
        let harness =
            Harness::with(|jwt| jwt.access_token_extra_claims = vec![ExtraClaim::Perms]).await;
        let alice = harness.user("alice").await;
        let grants = &harness.state.grants;
        let perms = vec!["x.a".to_owned(), "x.b".to_owned()];
        let group = grants.create_group("g".into(), perms).await.unwrap();
        grants.add_user_group(alice.id, group.id).await.unwrap();
        let pair = harness.login("alice").await;
        let minter = harness.minter();
        let session = minter.codec().decode(&pair.refresh).unwrap().sid;
        let flows = &harness.state.flows;
        let read_before = flows.active_users.read(alice.id).await.unwrap().unwrap();

        let change = GroupChange {
            name: None,
            permissions: Some(vec!["x.b".into()]),
        };
        grants.update_group(group.id, change).await.unwrap();

        let stale = minter.access_claims(&read_before, session, minter.now().secs(), None);
        assert_eq!(
            stale.perms.as_deref(),
            Some(&["x.a".into(), "x.b".into()][..])
        );
        let token = minter.sign_access(&stale).unwrap();
        let refused = flows.verify.verify(&token).await;
        assert!(matches!(
            refused,
            Err(AuthError::Token(TokenError::Blacklisted))
        ));
        let next = harness.login("alice").await;
        let claims = minter.codec().decode(&next.access).unwrap();
        assert!(flows.verify.verify(&next.access).await.is_ok());
        let granted = flows.active_users.read(alice.id).await.unwrap().unwrap();
        assert_eq!(granted.grants.permissions, ["x.b"]);
        assert_eq!(claims.user_id, alice.id.to_string());
    }

    /// A gain revokes nothing: the session lives on, and the next refresh carries the gain.
    #[tokio::test]
    async fn a_gain_keeps_the_session_and_shows_in_the_next_refresh() {
        let harness =
            Harness::with(|jwt| jwt.access_token_extra_claims = vec![ExtraClaim::Perms]).await;
        let bob = harness.user("bob").await;
        let pair = harness.login("bob").await;
        let flows = &harness.state.flows;
        // The refresh caches bob without permissions.
        let first = flows.refresh.refresh(&pair.refresh).await.unwrap();
        let grants = &harness.state.grants;
        grants
            .add_user_permission(bob.id, "x.a".into())
            .await
            .unwrap();
        assert!(flows.verify.verify(&first.access).await.is_ok());
        let second = flows
            .refresh
            .refresh(&first.refresh.unwrap())
            .await
            .unwrap();
        let token = harness.minter().codec().decode(&second.access).unwrap();
        assert!(flows.verify.verify(&second.access).await.is_ok());
        let payload = second.access.split('.').nth(1).unwrap();
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap();
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(payload["perms"], serde_json::json!(["x.a"]));
        assert_eq!(
            token.sid,
            harness.minter().codec().decode(&pair.access).unwrap().sid
        );
    }

    #[test]
    fn permissions_are_app_label_dot_codename() {
        for good in ["orders.change", "auth.add_user", "a.b", "_x.y_2"] {
            assert!(validate_permission(good).is_empty(), "{good}");
        }
        for bad in [
            "orders", "orders.", ".change", "a.b.c", "1x.y", "a.-b", "a b.c", "",
        ] {
            assert_eq!(validate_permission(bad).len(), 1, "{bad}");
        }
        assert_eq!(
            validate_permission(&format!("a.{}", "b".repeat(254))).len(),
            1
        );
    }

    #[test]
    fn group_names_are_trimmed_printable_and_short() {
        assert!(validate_group_name("Order managers").is_empty());
        for bad in ["", " x", "x ", "a\nb", &"g".repeat(151)] {
            assert_eq!(validate_group_name(bad).len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn app_metadata_is_a_small_object_without_reserved_names() {
        let jwt = crate::config::Settings::defaults().jwt;
        let ok = serde_json::json!({"tenant": "acme", "plan": {"seats": 5}});
        assert_eq!(
            validate_app_metadata(&ok, &jwt).unwrap(),
            r#"{"plan":{"seats":5},"tenant":"acme"}"#
        );
        for reserved in ["exp", "sub", "user_id", "token_type", "perms"] {
            let value = serde_json::json!({ reserved: 1 });
            assert!(validate_app_metadata(&value, &jwt).is_err(), "{reserved}");
        }
        assert!(validate_app_metadata(&serde_json::json!([1]), &jwt).is_err());
        let big = serde_json::json!({"x": "y".repeat(MAX_APP_METADATA_BYTES)});
        assert!(validate_app_metadata(&big, &jwt).is_err());
    }
}
