//! The minter: `[jwt]`'s policy (lifetimes and switches) and the claims of every token jwtd
//! issues, signed. No token outlives its session.

use std::sync::Arc;
use std::time::Duration;

use super::AuthError;
use crate::accounts::GrantedUser;
use crate::accounts::permissions::metadata_claims;
use crate::clock::{SharedClock, UnixMillis, UnixSecs};
use crate::config::{ExtraClaim, JwtSettings};
use crate::metrics::Metrics;
use crate::token::claims::new_jti;
use crate::token::{Claims, Scope, SessionId, TokenCodec, TokenType};

/// The lifetimes and switches of `[jwt]`, as the flows use them.
#[derive(Debug, Clone)]
pub struct Policy {
    pub access_lifetime: Duration,
    pub refresh_lifetime: Duration,
    pub session_lifetime: Duration,
    pub leeway: Duration,
    pub rotate: bool,
    pub spend_on_rotation: bool,
    pub reuse_grace: Duration,
    pub update_last_login: bool,
    pub extra_claims: Vec<ExtraClaim>,
    pub max_access_token_bytes: usize,
}

impl Policy {
    pub fn from_settings(jwt: &JwtSettings) -> Policy {
        Policy {
            access_lifetime: jwt.access_token_lifetime,
            refresh_lifetime: jwt.refresh_token_lifetime,
            session_lifetime: jwt.session_lifetime,
            leeway: jwt.leeway,
            rotate: jwt.rotate_refresh_tokens,
            spend_on_rotation: jwt.blacklist_after_rotation,
            reuse_grace: jwt.refresh_reuse_grace,
            update_last_login: jwt.update_last_login,
            extra_claims: jwt.access_token_extra_claims.clone(),
            max_access_token_bytes: jwt.max_access_token_bytes,
        }
    }

    /// Whether access tokens carry a user's groups or permissions (so they must be loaded).
    pub fn needs_grants(&self) -> bool {
        self.extra_claims
            .iter()
            .any(|claim| matches!(claim, ExtraClaim::Groups | ExtraClaim::Perms))
    }
}

/// An OAuth client an access token is issued to, and the scope granted to it.
#[derive(Debug, Clone, Copy)]
pub struct ForClient<'a> {
    pub client_id: &'a str,
    pub scope: &'a str,
}

/// The scope token that lets an OAuth access token carry the `groups` claim.
pub const GROUPS_SCOPE: &str = "groups";

pub struct Minter {
    codec: Arc<TokenCodec>,
    policy: Policy,
    /// For `app_metadata`'s claims: which names are reserved.
    jwt: JwtSettings,
    clock: SharedClock,
    metrics: Arc<Metrics>,
}

impl Minter {
    pub fn new(
        codec: Arc<TokenCodec>,
        jwt: &JwtSettings,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Minter {
        Minter {
            codec,
            policy: Policy::from_settings(jwt),
            jwt: jwt.clone(),
            clock,
            metrics,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn codec(&self) -> &TokenCodec {
        &self.codec
    }

    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    /// An access token's claims, with the extra claims configured for other services. For an
    /// OAuth client, `groups` and `perms` are narrowed by the scope (see [`scope_allows`]).
    pub fn access_claims(
        &self,
        granted: &GrantedUser,
        sid: SessionId,
        now: UnixSecs,
        client: Option<ForClient<'_>>,
    ) -> Claims {
        let GrantedUser { user, grants } = granted;
        let mut claims = self.claims_for(TokenType::Access, &user.id.to_string(), sid, now);
        let extras = &self.policy.extra_claims;
        let wants = |claim| extras.contains(&claim);
        claims.username = wants(ExtraClaim::Username).then(|| user.username.clone());
        claims.is_staff = wants(ExtraClaim::IsStaff).then_some(user.is_staff);
        let scope = client.map(|client| Scope::parse(client.scope).unwrap_or_default());
        let scope = scope.as_ref();
        claims.groups = (wants(ExtraClaim::Groups)
            && scope.is_none_or(|scope| scope.tokens().any(|t| t == GROUPS_SCOPE)))
        .then(|| grants.groups.clone());
        claims.perms = wants(ExtraClaim::Perms).then(|| {
            let allowed = |perm: &&String| scope.is_none_or(|scope| scope_allows(scope, perm));
            grants.permissions.iter().filter(allowed).cloned().collect()
        });
        if wants(ExtraClaim::AppMetadata) {
            claims.metadata = metadata_claims(&user.app_metadata, &self.jwt);
        }
        if let Some(client) = client {
            claims.client_id = Some(client.client_id.to_owned());
            claims.scope = Some(client.scope.to_owned());
        }
        claims
    }

    /// Signs an access token, refusing one longer than `jwt.max_access_token_bytes`.
    pub fn sign_access(&self, claims: &Claims) -> Result<String, AuthError> {
        let token = self.sign(claims)?;
        let max = self.policy.max_access_token_bytes;
        if token.len() > max {
            self.metrics.access_token_too_large();
            tracing::warn!(user_id = %claims.user_id, bytes = token.len(), max, "access token over jwt.max_access_token_bytes refused");
            return Err(AuthError::AccessTokenTooLarge {
                bytes: token.len(),
                max,
            });
        }
        Ok(token)
    }

    /// The next refresh token of a session: same session, same client and scope (RFC 6749 §6).
    pub fn successor_of(&self, presented: &Claims, now: UnixSecs) -> Claims {
        let mut successor =
            self.claims_for(TokenType::Refresh, &presented.user_id, presented.sid, now);
        successor.client_id.clone_from(&presented.client_id);
        successor.scope.clone_from(&presented.scope);
        successor
    }

    /// A token of `subject` (a user id, or a client id) in session `sid`. Its `exp` is capped at
    /// the session's end.
    pub fn claims_for(
        &self,
        token_type: TokenType,
        subject: &str,
        sid: SessionId,
        now: UnixSecs,
    ) -> Claims {
        let lifetime = match token_type {
            TokenType::Access => self.policy.access_lifetime,
            TokenType::Refresh => self.policy.refresh_lifetime,
        };
        Claims {
            token_type,
            exp: (now + lifetime).min(self.session_end(sid)),
            iat: now,
            jti: new_jti(),
            user_id: subject.to_owned(),
            subject_is_client: false,
            sid,
            iss: self.codec.issuer().map(str::to_owned),
            aud: self.codec.audience().map(str::to_owned),
            username: None,
            is_staff: None,
            groups: None,
            perms: None,
            metadata: serde_json::Map::new(),
            scope: None,
            client_id: None,
        }
    }

    /// Login + `session_lifetime`, in whole seconds.
    pub fn session_end(&self, sid: SessionId) -> UnixSecs {
        sid.started().secs() + self.policy.session_lifetime
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        Ok(self.codec.sign(claims)?)
    }
}

/// Whether an OAuth scope lets a token carry `permission` (`app_label.codename`): the scope
/// holds the permission itself, or `app_label.*` (every permission of that app).
pub fn scope_allows(scope: &Scope, permission: &str) -> bool {
    let app_wildcard = permission
        .split_once('.')
        .map(|(app, _)| format!("{app}.*"));
    scope
        .tokens()
        .any(|token| token == permission || Some(token) == app_wildcard.as_deref())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::flows::testing::Harness;

    #[tokio::test]
    async fn no_token_outlives_its_session() {
        let harness = Harness::with(|jwt| {
            jwt.refresh_token_lifetime = Duration::from_secs(3600);
            jwt.session_lifetime = Duration::from_secs(600);
        })
        .await;
        let minter = harness.minter();
        let now = minter.now().secs();
        let sid = SessionId::start(minter.now());
        let refresh = minter.claims_for(TokenType::Refresh, "u", sid, now);
        assert_eq!(refresh.exp, minter.session_end(sid));
        assert!(refresh.exp <= now + Duration::from_secs(600));
        let access = minter.claims_for(TokenType::Access, "u", sid, now);
        assert_eq!(access.exp, now + Duration::from_secs(300));
    }

    #[test]
    fn a_scope_names_a_permission_or_all_of_an_app() {
        let scope = Scope::parse("read orders.change billing.*").unwrap();
        assert!(scope_allows(&scope, "orders.change"));
        assert!(!scope_allows(&scope, "orders.delete"));
        assert!(scope_allows(&scope, "billing.view"));
        assert!(!scope_allows(&scope, "read.x"));
    }

    #[tokio::test]
    async fn a_successor_keeps_the_session_client_and_scope() {
        let harness = Harness::new().await;
        let minter = harness.minter();
        let now = minter.now().secs();
        let sid = SessionId::start(minter.now());
        let mut presented = minter.claims_for(TokenType::Refresh, "u", sid, now);
        presented.client_id = Some("client".into());
        presented.scope = Some("read".into());
        let successor = minter.successor_of(&presented, now + Duration::from_secs(5));
        assert_eq!(successor.sid, sid);
        assert_eq!(successor.client_id.as_deref(), Some("client"));
        assert_eq!(successor.scope.as_deref(), Some("read"));
        assert_ne!(successor.jti, presented.jti);
        let signed = minter.sign(&successor).unwrap();
        assert_eq!(minter.codec().decode(&signed).unwrap().jti, successor.jti);
    }
}
