//! The SimpleJWT flows: obtain, refresh (with atomic rotation and reuse detection), verify and
//! blacklist. Everything that touches time reads the injected clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::TokenError;
use super::claims::{Claims, SessionId, TokenType, new_jti};
use super::codec::{SignError, TokenCodec};
use super::scope::Scope;
use crate::clock::SharedClock;
use crate::config::{ExtraClaim, JwtSettings};
use crate::metrics::{Grant, LoginFailure, Metrics, Revocation};
use crate::password::{PasswordError, Passwords, Verified};
use crate::store::revocation::{JtiState, RevocationEntries, SpendOutcome, SpendRecord, TokenKeys};
use crate::store::sessions::{LoginContext, Session, SessionRepository};
use crate::store::user_cache::{self, UserCache};
use crate::store::users::{User, UserRepository};
use crate::store::{RevocationStore, StoreError};
use crate::throttle::{LoginThrottle, ThrottleError};

/// Why an obtain / refresh / verify / blacklist did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("No active account found with the given credentials")]
    InvalidCredentials,
    #[error("No active account found for the given token.")]
    TokenUserInactive,
    /// A valid access token whose user no longer exists (bearer authentication).
    #[error("User not found")]
    UserNotFound,
    /// A valid access token whose user is inactive (bearer authentication).
    #[error("User is inactive")]
    UserInactive,
    #[error("Not found.")]
    SessionNotFound,
    /// An OAuth client presented a token issued to another client (or to no client).
    #[error("The token was not issued to this client")]
    WrongClient,
    /// An OAuth refresh asked for a scope the original grant did not include.
    #[error("The requested scope exceeds the scope originally granted: {0}")]
    ScopeNotGranted(String),
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Too many logins from this client address.
    #[error("Too many login attempts; retry in {retry_after_secs} seconds")]
    Throttled { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// Every password-hashing slot stayed busy: a flood of logins, not a failing store.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Internal(String),
}

impl From<ThrottleError> for AuthError {
    fn from(err: ThrottleError) -> AuthError {
        match err {
            ThrottleError::Throttled { retry_after_secs } => {
                AuthError::Throttled { retry_after_secs }
            }
            ThrottleError::Store(err) => err.into(),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> AuthError {
        match err {
            StoreError::Unavailable(e) => AuthError::Unavailable(e),
            StoreError::Internal(e) => AuthError::Internal(e),
        }
    }
}

impl From<PasswordError> for AuthError {
    fn from(err: PasswordError) -> AuthError {
        match err {
            PasswordError::Busy(_) => AuthError::Busy(err.to_string()),
            PasswordError::Hashing(e) => AuthError::Internal(e),
        }
    }
}

impl From<SignError> for AuthError {
    fn from(err: SignError) -> AuthError {
        AuthError::Internal(err.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    /// Seconds until the access token expires (OAuth's `expires_in`).
    pub expires_in: i64,
}

#[derive(Debug, Clone)]
pub struct Refreshed {
    pub access: String,
    /// Present when rotation is on.
    pub refresh: Option<String>,
    pub expires_in: i64,
    /// The new access token's scope (OAuth sessions only).
    pub scope: Option<String>,
}

/// A client-credentials access token.
#[derive(Debug, Clone)]
pub struct ClientToken {
    pub access: String,
    pub expires_in: i64,
}

/// The OAuth 2.0 side of a session: the client its tokens are issued to, and the scope granted.
#[derive(Debug, Clone)]
pub struct ClientGrant {
    pub client_id: String,
    pub scope: Scope,
}

/// Who presents a refresh token.
#[derive(Debug, Clone, Copy)]
pub enum RefreshBy<'a> {
    /// SimpleJWT's endpoint: anyone holding a token that was not issued to an OAuth client.
    Anyone,
    /// An authenticated OAuth client. `allowed` is what the client may hold today; `requested`
    /// narrows the new access token (RFC 6749 §6) and may not exceed the original grant.
    Client {
        client_id: &'a str,
        allowed: &'a Scope,
        requested: Option<&'a Scope>,
    },
}

/// A refresh token being exchanged, and the scope its new access token gets.
struct Presented {
    claims: Claims,
    access_scope: Option<String>,
}

/// The lifetimes and switches of `[jwt]`, in the units the flows use.
#[derive(Debug, Clone)]
struct Policy {
    access_secs: i64,
    refresh_secs: i64,
    session_secs: i64,
    leeway_secs: i64,
    rotate: bool,
    spend_on_rotation: bool,
    reuse_grace_ms: i64,
    update_last_login: bool,
    extra_claims: Vec<ExtraClaim>,
}

impl Policy {
    fn from_settings(jwt: &JwtSettings) -> Policy {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4);
        Policy {
            access_secs: secs(jwt.access_token_lifetime),
            refresh_secs: secs(jwt.refresh_token_lifetime),
            session_secs: secs(jwt.session_lifetime),
            leeway_secs: secs(jwt.leeway),
            rotate: jwt.rotate_refresh_tokens,
            spend_on_rotation: jwt.blacklist_after_rotation,
            reuse_grace_ms: i64::try_from(jwt.refresh_reuse_grace.as_millis()).unwrap_or(i64::MAX),
            update_last_login: jwt.update_last_login,
            extra_claims: jwt.access_token_extra_claims.clone(),
        }
    }
}

/// Where the token service keeps its state.
pub struct TokenStores {
    pub revocation: Arc<dyn RevocationStore>,
    pub users: UserRepository,
    pub sessions: SessionRepository,
}

pub struct TokenService {
    codec: TokenCodec,
    store: Arc<dyn RevocationStore>,
    users: UserRepository,
    user_cache: UserCache,
    sessions: SessionRepository,
    passwords: Passwords,
    throttle: LoginThrottle,
    clock: SharedClock,
    policy: Policy,
    metrics: Arc<Metrics>,
}

impl TokenService {
    pub fn new(
        codec: TokenCodec,
        stores: TokenStores,
        passwords: Passwords,
        throttle: LoginThrottle,
        clock: SharedClock,
        jwt: &JwtSettings,
        metrics: Arc<Metrics>,
    ) -> TokenService {
        TokenService {
            codec,
            store: stores.revocation,
            users: stores.users,
            user_cache: UserCache::new(clock.clone()),
            sessions: stores.sessions,
            passwords,
            throttle,
            clock,
            policy: Policy::from_settings(jwt),
            metrics,
        }
    }

    pub fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.store
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// Username and password → a new session's token pair.
    pub async fn obtain(
        &self,
        username: &str,
        password: String,
        context: LoginContext,
    ) -> Result<TokenPair, AuthError> {
        self.obtain_for(username, password, context, None).await
    }

    /// As [`TokenService::obtain`], for an OAuth client when `grant` is given: both tokens carry
    /// its `client_id` and `scope`, and only that client may refresh or revoke them.
    pub async fn obtain_for(
        &self,
        username: &str,
        password: String,
        context: LoginContext,
        grant: Option<ClientGrant>,
    ) -> Result<TokenPair, AuthError> {
        let (user, verified) = self
            .check_credentials(username, password, &context)
            .await
            .inspect_err(|err| self.count_login_failure(err))?;
        self.after_login(&user, verified).await?;
        let user_id = user.id.to_string();
        let now_ms = self.clock.now_ms();
        let sid = SessionId::start(self.session_start(&user_id, now_ms).await?);
        let now = now_ms.div_euclid(1000);
        let started = from_ms(sid.started_ms());
        let ends = from_ms(self.session_end(sid) * 1000);
        self.sessions
            .create(sid.uuid(), user.id, started, ends, context)
            .await?;
        let client_id = grant.as_ref().map(|grant| grant.client_id.clone());
        let scope = grant.map(|grant| grant.scope.to_string());
        let mut access = self.access_claims(&user, sid, now);
        let mut refresh = self.claims_for(TokenType::Refresh, &user_id, sid, now);
        for claims in [&mut access, &mut refresh] {
            claims.client_id.clone_from(&client_id);
            claims.scope.clone_from(&scope);
        }
        let pair = TokenPair {
            access: self.sign(&access)?,
            refresh: self.sign(&refresh)?,
            expires_in: access.exp - now,
        };
        self.metrics.issued(Grant::Password);
        Ok(pair)
    }

    fn count_login_failure(&self, err: &AuthError) {
        match err {
            AuthError::InvalidCredentials => {
                self.metrics.login_failed(LoginFailure::InvalidCredentials);
            }
            AuthError::Throttled { .. } => self.metrics.login_failed(LoginFailure::Throttled),
            _ => {}
        }
    }

    /// The user behind a username and password, through login throttling: the client address
    /// is rate limited first; a locked account is refused like a wrong password, after the
    /// same hashing work so the timing does not tell either.
    async fn check_credentials(
        &self,
        username: &str,
        password: String,
        context: &LoginContext,
    ) -> Result<(User, Verified), AuthError> {
        self.throttle.admit_client(&context.client_address).await?;
        let account = self.throttle.account(username);
        let (user, locked) = tokio::join!(
            self.users.find_by_username(username),
            self.throttle.is_locked(&account)
        );
        let (user, locked) = (user?, locked?);
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.passwords.verify(password, stored_hash).await?;
        let password_ok = matches!(verified, Verified::Correct | Verified::CorrectRehashed(_));
        if !password_ok {
            self.throttle.record_failure(&account).await?;
            return Err(AuthError::InvalidCredentials);
        }
        match user {
            Some(user) if user.is_active && !locked => {
                self.throttle.record_success(&account).await?;
                Ok((user, verified))
            }
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// A client's own access token (client-credentials grant): `sub` is the client, there is no
    /// user, no session row and no refresh token. Deleting the client revokes it.
    pub async fn issue_to_client(
        &self,
        client_id: &str,
        scope: &Scope,
    ) -> Result<ClientToken, AuthError> {
        let sid = SessionId::start(self.session_start(client_id, self.clock.now_ms()).await?);
        let now = self.clock.now_secs();
        let mut claims = self.claims_for(TokenType::Access, client_id, sid, now);
        claims.subject_is_client = true;
        claims.client_id = Some(client_id.to_owned());
        claims.scope = Some(scope.to_string());
        let token = ClientToken {
            access: self.sign(&claims)?,
            expires_in: claims.exp - now,
        };
        self.metrics.issued(Grant::ClientCredentials);
        Ok(token)
    }

    /// A new session must start after the user's latest "revoke all", even when that was written
    /// in this very millisecond or by an instance whose clock runs ahead.
    async fn session_start(&self, user_id: &str, now_ms: i64) -> Result<i64, AuthError> {
        let revoked_before = self.store.user_revoked_before(user_id).await?;
        Ok(revoked_before.map_or(now_ms, |before| now_ms.max(before.saturating_add(1))))
    }

    async fn after_login(&self, user: &User, verified: Verified) -> Result<(), AuthError> {
        if let Verified::CorrectRehashed(hash) = verified {
            // Best effort: the login stands even if the upgrade has to wait for the next one.
            if let Err(err) = self.users.set_password_hash(user.id, hash).await {
                tracing::warn!(user_id = %user.id, error = %err, "password hash upgrade failed");
            }
        }
        if self.policy.update_last_login {
            self.users
                .set_last_login(
                    user.id,
                    chrono::DateTime::from_timestamp_millis(self.clock.now_ms())
                        .unwrap_or_default(),
                )
                .await?;
        }
        Ok(())
    }

    /// A refresh token → a new access token, and with rotation a new refresh token.
    pub async fn refresh(&self, token: &str) -> Result<Refreshed, AuthError> {
        self.refresh_by(token, RefreshBy::Anyone).await
    }

    /// As [`TokenService::refresh`], checking that the presenter may use this token.
    pub async fn refresh_by(&self, token: &str, by: RefreshBy<'_>) -> Result<Refreshed, AuthError> {
        let claims = self.decode_as(token, TokenType::Refresh)?;
        let presented = presented_by(claims, by)?;
        let refreshed = self.refresh_presented(&presented).await?;
        self.sessions.touch(presented.claims.sid.uuid(), self.now());
        self.metrics.refreshed();
        Ok(refreshed)
    }

    async fn refresh_presented(&self, presented: &Presented) -> Result<Refreshed, AuthError> {
        if self.policy.rotate && self.policy.spend_on_rotation {
            self.rotate(presented).await
        } else {
            self.refresh_without_spending(presented).await
        }
    }

    /// Without rotation (or without blacklisting after it) nothing is spent: read and issue.
    async fn refresh_without_spending(
        &self,
        presented: &Presented,
    ) -> Result<Refreshed, AuthError> {
        let claims = &presented.claims;
        let sid = claims.sid.to_string();
        let entries = self.store.entries(token_keys(claims, &sid)).await?;
        self.ensure_session_live(claims, &entries)?;
        if entries.jti == Some(JtiState::Revoked) {
            return Err(TokenError::Blacklisted.into());
        }
        let user = self
            .active_user_of(claims, entries.user_version.as_deref())
            .await?;
        let now = self.clock.now_secs();
        if self.policy.rotate {
            let successor = self.successor_of(claims, now);
            return self.refreshed_with(presented, &user, &successor, now);
        }
        let access = self.access_for(presented, &user, now);
        Ok(Refreshed {
            access: self.sign(&access)?,
            refresh: None,
            expires_in: access.exp - now,
            scope: access.scope,
        })
    }

    /// Spends the presented token (atomically: one winner) and issues its successor. The spend
    /// and every revocation check are one store round trip; a spent token whose session turns
    /// out revoked is refused all the same.
    async fn rotate(&self, presented: &Presented) -> Result<Refreshed, AuthError> {
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let claims = &presented.claims;
        let successor = self.successor_of(claims, now);
        let record = SpendRecord {
            spent_at_ms: now_ms,
            successor_jti: successor.jti.clone(),
            successor_iat: successor.iat,
            successor_exp: successor.exp,
        };
        let until = claims.exp + self.policy.leeway_secs;
        let sid = claims.sid.to_string();
        let (entries, outcome) = self
            .store
            .spend_checked(token_keys(claims, &sid), &record, until)
            .await?;
        self.ensure_session_live(claims, &entries)?;
        let user = self
            .active_user_of(claims, entries.user_version.as_deref())
            .await?;
        match outcome {
            SpendOutcome::Spent => self.refreshed_with(presented, &user, &successor, now),
            SpendOutcome::AlreadyUsed(JtiState::Spent(record)) => {
                self.spent_again(presented, &user, record).await
            }
            SpendOutcome::AlreadyUsed(JtiState::Revoked) => Err(TokenError::Blacklisted.into()),
        }
    }

    /// The next refresh token of a session: same session, same client and scope (RFC 6749 §6).
    fn successor_of(&self, presented: &Claims, now: i64) -> Claims {
        let mut successor =
            self.claims_for(TokenType::Refresh, &presented.user_id, presented.sid, now);
        successor.client_id.clone_from(&presented.client_id);
        successor.scope.clone_from(&presented.scope);
        successor
    }

    /// Any live token of ours (access or refresh), checked against revocation.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.codec.decode(token)?;
        self.ensure_not_revoked(&claims).await?;
        Ok(claims)
    }

    /// Bearer authentication: a live, unrevoked access token and its active user. Tokens issued
    /// to OAuth clients are for their resource servers, limited by scope; jwtd's own account API
    /// has no scopes, so it takes only first-party tokens from `/api/token/`.
    pub async fn authenticate(&self, token: &str) -> Result<(Claims, User), AuthError> {
        let claims = self.decode_as(token, TokenType::Access)?;
        if claims.client_id.is_some() {
            return Err(TokenError::Invalid.into());
        }
        let user_id = Uuid::try_parse(&claims.user_id).map_err(|_| AuthError::UserNotFound)?;
        let (user, revocation) = tokio::join!(
            self.users.find_by_id(user_id),
            self.ensure_not_revoked(&claims)
        );
        revocation?;
        match user? {
            None => Err(AuthError::UserNotFound),
            Some(user) if !user.is_active => Err(AuthError::UserInactive),
            Some(user) => Ok((claims, user)),
        }
    }

    /// Logs out the refresh token's session: its refresh and access tokens are refused at once.
    pub async fn blacklist(&self, token: &str) -> Result<(), AuthError> {
        let claims = self.decode_as(token, TokenType::Refresh)?;
        self.ensure_not_revoked(&claims).await?;
        self.revoke_session(&claims, Revocation::Logout).await
    }

    /// One store round trip: neither the token (blacklisted or spent), nor its session, nor
    /// its user's sessions are revoked.
    async fn ensure_not_revoked(&self, claims: &Claims) -> Result<(), AuthError> {
        let entries = self
            .store
            .entries(token_keys(claims, &claims.sid.to_string()))
            .await?;
        self.ensure_session_live(claims, &entries)?;
        if entries.jti.is_some() {
            return Err(TokenError::Blacklisted.into());
        }
        Ok(())
    }

    fn decode_as(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let claims = self.codec.decode(token)?;
        if claims.token_type != expected {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }

    /// The token's user, if active: from the cache while `version` (the user's version entry,
    /// read with the revocation entries) is unchanged, else from the database.
    async fn active_user_of(
        &self,
        claims: &Claims,
        version: Option<&str>,
    ) -> Result<Arc<User>, AuthError> {
        let id = Uuid::try_parse(&claims.user_id).map_err(|_| AuthError::TokenUserInactive)?;
        let user = match self.user_cache.get(id, version) {
            Some(user) => user,
            None => match self.users.find_by_id(id).await? {
                Some(user) => self.user_cache.insert(user, version.map(str::to_owned)),
                None => return Err(AuthError::TokenUserInactive),
            },
        };
        if user.is_active {
            Ok(user)
        } else {
            Err(AuthError::TokenUserInactive)
        }
    }

    /// Call after any change to a user's record: every instance's cached copy is dropped
    /// (this one at once, the others at their next read of the user's version entry). The
    /// change itself is already stored, so a store failure here is logged, not returned: other
    /// instances then serve their copy until it ages out (`user_cache::MAX_AGE_MS`).
    pub async fn user_changed(&self, user_id: Uuid) {
        self.user_cache.forget(user_id);
        let version = Uuid::new_v4().simple().to_string();
        let until = self.clock.now_secs() + user_cache::VERSION_TTL_SECS;
        let marked = self
            .store
            .mark_user_changed(&user_id.to_string(), &version, until)
            .await;
        if let Err(err) = marked {
            tracing::warn!(%user_id, error = %err, "publishing a user change failed; other instances may use their cached copy for up to a minute");
        }
    }

    /// The session is neither revoked itself nor covered by a "revoke all" of its user.
    fn ensure_session_live(
        &self,
        claims: &Claims,
        entries: &RevocationEntries,
    ) -> Result<(), TokenError> {
        let revoked_with_user = entries
            .user_revoked_before_ms
            .is_some_and(|before| claims.sid.started_ms() <= before);
        if entries.session_revoked || revoked_with_user {
            return Err(TokenError::Blacklisted);
        }
        Ok(())
    }

    /// A spent refresh token came back. Within the grace period, and while its successor is
    /// still unused, it gets that same successor again; otherwise this is reuse: the whole
    /// session is revoked.
    async fn spent_again(
        &self,
        presented: &Presented,
        user: &User,
        record: SpendRecord,
    ) -> Result<Refreshed, AuthError> {
        let claims = &presented.claims;
        let now_ms = self.clock.now_ms();
        // Strictly inside the window: a grace of 0s means none, even within the same millisecond.
        let within_grace = now_ms - record.spent_at_ms < self.policy.reuse_grace_ms;
        if within_grace
            && self
                .store
                .jti_state(&claims.user_id, &record.successor_jti)
                .await?
                .is_none()
        {
            let successor = Claims {
                jti: record.successor_jti,
                iat: record.successor_iat,
                exp: record.successor_exp,
                ..claims.clone()
            };
            return self.refreshed_with(presented, user, &successor, now_ms.div_euclid(1000));
        }
        tracing::warn!(user_id = %claims.user_id, sid = %claims.sid, "refresh token reuse detected: session revoked");
        self.metrics.reuse_detected();
        self.revoke_session(claims, Revocation::Reuse).await?;
        Err(TokenError::Blacklisted.into())
    }

    fn refreshed_with(
        &self,
        presented: &Presented,
        user: &User,
        successor: &Claims,
        now: i64,
    ) -> Result<Refreshed, AuthError> {
        let access = self.access_for(presented, user, now);
        Ok(Refreshed {
            access: self.sign(&access)?,
            refresh: Some(self.sign(successor)?),
            expires_in: access.exp - now,
            scope: access.scope,
        })
    }

    async fn revoke_session(&self, claims: &Claims, reason: Revocation) -> Result<(), AuthError> {
        self.revoke_session_of(&claims.user_id, claims.sid, claims.exp, reason)
            .await
    }

    /// Ends a session: its tokens are refused from now on, and it leaves the user's list.
    async fn revoke_session_of(
        &self,
        user_id: &str,
        sid: SessionId,
        latest_exp: i64,
        reason: Revocation,
    ) -> Result<(), AuthError> {
        let until = self.session_end(sid).max(latest_exp) + self.policy.leeway_secs;
        self.store
            .revoke_session(user_id, &sid.to_string(), until)
            .await?;
        self.metrics.revoked(reason);
        self.sessions.end(sid.uuid(), self.now()).await?;
        Ok(())
    }

    /// The user's live sessions, newest first.
    pub async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<Session>, AuthError> {
        Ok(self.sessions.live_of(user_id, self.now()).await?)
    }

    /// Logs one of the user's sessions out; another user's session is "not found".
    pub async fn end_session_of(&self, user_id: Uuid, sid: Uuid) -> Result<(), AuthError> {
        let session = self.sessions.find_live(sid, user_id, self.now()).await?;
        let sid = session
            .and_then(|session| SessionId::from_uuid(session.id))
            .ok_or(AuthError::SessionNotFound)?;
        self.revoke_session_of(&user_id.to_string(), sid, 0, Revocation::SessionEnded)
            .await
    }

    /// Revokes every session of the user that exists now (password change, deactivation).
    pub async fn revoke_all_of_user(&self, user_id: Uuid) -> Result<(), AuthError> {
        let now_ms = self.clock.now_ms();
        let until = now_ms.div_euclid(1000) + self.policy.session_secs + self.policy.leeway_secs;
        self.store
            .revoke_user(&user_id.to_string(), now_ms, until)
            .await?;
        self.metrics.revoked(Revocation::AllSessions);
        self.sessions.end_all_of(user_id, from_ms(now_ms)).await?;
        Ok(())
    }

    /// Revokes every token issued to an OAuth client as itself (client credentials).
    pub async fn revoke_all_of_client(&self, client_id: &str) -> Result<(), AuthError> {
        let now_ms = self.clock.now_ms();
        let until = now_ms.div_euclid(1000) + self.policy.access_secs + self.policy.leeway_secs;
        self.store.revoke_user(client_id, now_ms, until).await?;
        self.metrics.revoked(Revocation::ClientDeleted);
        Ok(())
    }

    /// RFC 7009: an OAuth client revokes a token. A token that is not ours, or no longer valid,
    /// needs nothing; a token not issued to this client (to another, or to none) is refused.
    /// Revoking a refresh token ends its session (its access tokens too); revoking an access
    /// token revokes just it.
    pub async fn revoke_by_client(&self, token: &str, client_id: &str) -> Result<(), AuthError> {
        let Ok(claims) = self.codec.decode(token) else {
            return Ok(());
        };
        if claims.client_id.as_deref() != Some(client_id) {
            return Err(AuthError::WrongClient);
        }
        match claims.token_type {
            TokenType::Refresh => self.revoke_session(&claims, Revocation::OAuthRevoke).await,
            TokenType::Access => {
                let until = claims.exp + self.policy.leeway_secs;
                self.store
                    .revoke_token(&claims.user_id, &claims.jti, until)
                    .await?;
                self.metrics.revoked(Revocation::OAuthRevoke);
                Ok(())
            }
        }
    }

    pub fn codec(&self) -> &TokenCodec {
        &self.codec
    }

    /// The access token a refresh returns: the session's client, the (possibly narrowed) scope.
    fn access_for(&self, presented: &Presented, user: &User, now: i64) -> Claims {
        let mut access = self.access_claims(user, presented.claims.sid, now);
        access.client_id.clone_from(&presented.claims.client_id);
        access.scope.clone_from(&presented.access_scope);
        access
    }

    /// An access token's claims, with the extra claims configured for other services.
    fn access_claims(&self, user: &User, sid: SessionId, now: i64) -> Claims {
        let mut claims = self.claims_for(TokenType::Access, &user.id.to_string(), sid, now);
        let extras = &self.policy.extra_claims;
        claims.username = extras
            .contains(&ExtraClaim::Username)
            .then(|| user.username.clone());
        claims.is_staff = extras
            .contains(&ExtraClaim::IsStaff)
            .then_some(user.is_staff);
        claims
    }

    /// No token outlives its session: `exp` is capped at login + `session_lifetime`.
    fn claims_for(&self, token_type: TokenType, user_id: &str, sid: SessionId, now: i64) -> Claims {
        let lifetime = match token_type {
            TokenType::Access => self.policy.access_secs,
            TokenType::Refresh => self.policy.refresh_secs,
        };
        Claims {
            token_type,
            exp: now.saturating_add(lifetime).min(self.session_end(sid)),
            iat: now,
            jti: new_jti(),
            user_id: user_id.to_owned(),
            subject_is_client: false,
            sid,
            iss: self.codec.issuer().map(str::to_owned),
            aud: self.codec.audience().map(str::to_owned),
            username: None,
            is_staff: None,
            scope: None,
            client_id: None,
        }
    }

    fn session_end(&self, sid: SessionId) -> i64 {
        sid.started_ms()
            .div_euclid(1000)
            .saturating_add(self.policy.session_secs)
    }

    fn now(&self) -> DateTime<Utc> {
        from_ms(self.clock.now_ms())
    }

    fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        self.codec.sign(claims)
    }
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Checks the presenter may use the token, and works out the new access token's scope.
fn presented_by(claims: Claims, by: RefreshBy<'_>) -> Result<Presented, AuthError> {
    let RefreshBy::Client {
        client_id,
        allowed,
        requested,
    } = by
    else {
        // A token issued to an OAuth client is refreshed by that client, authenticated.
        if claims.client_id.is_some() {
            return Err(TokenError::Invalid.into());
        }
        return Ok(Presented {
            access_scope: claims.scope.clone(),
            claims,
        });
    };
    if claims.client_id.as_deref() != Some(client_id) {
        return Err(AuthError::WrongClient);
    }
    let granted = Scope::parse(claims.scope.as_deref().unwrap_or_default())
        .map_err(|_| TokenError::Invalid)?;
    let wanted = requested.unwrap_or(&granted);
    let beyond = wanted.beyond(&granted);
    if !beyond.is_empty() {
        return Err(AuthError::ScopeNotGranted(beyond.join(" ")));
    }
    Ok(Presented {
        access_scope: Some(wanted.intersection(allowed).to_string()),
        claims,
    })
}

fn token_keys<'a>(claims: &'a Claims, sid: &'a str) -> TokenKeys<'a> {
    TokenKeys {
        user_id: &claims.user_id,
        jti: &claims.jti,
        sid,
    }
}
