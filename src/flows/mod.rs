//! The token flows, one room each (as ory/fosite has a handler per grant):
//!
//! - [`minter`]: the policy (lifetimes, switches) and the claims of every token, signed;
//! - [`login`]: username and password → a new session (throttling, rehash on login);
//! - [`client_credentials`]: an OAuth client's own access token;
//! - [`refresh`]: a refresh token → new tokens (rotation, reuse detection, grace);
//! - [`verify`]: is this token ours, live and unrevoked; bearer authentication;
//! - [`active_users`]: the user behind a token, cached per instance, and cache invalidation;
//! - [`revocation`]: ending sessions, users' and clients' tokens, OAuth revoke, session lists.
//!
//! Accounts, OAuth and the HTTP handlers call these; none of them reaches into a store.

pub mod active_users;
pub mod client_credentials;
pub mod login;
pub mod minter;
pub mod refresh;
pub mod revocation;
pub mod verify;

#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;
use std::time::Duration;

pub use active_users::ActiveUsers;
pub use client_credentials::{ClientCredentialsFlow, ClientToken};
pub use login::{ClientGrant, LoginFlow, TokenPair};
pub use minter::{ForClient, Minter};
pub use refresh::{RefreshBy, RefreshFlow, Refreshed};
pub use revocation::RevocationFlow;
pub use verify::VerifyFlow;

use crate::clock::SharedClock;
use crate::config::JwtSettings;
use crate::metrics::Metrics;
use crate::outage::Outage;
use crate::password::{PasswordError, Passwords};
use crate::store::RevocationStore;
use crate::store::groups::GroupRepository;
use crate::store::leases::LeasedLookups;
use crate::store::revocation::{RevocationEntries, TokenKeys};
use crate::store::sessions::SessionRepository;
use crate::store::users::UserRepository;
use crate::throttle::{LoginThrottle, ThrottleError};
use crate::token::codec::SignError;
use crate::token::{Claims, TokenCodec, TokenError};

/// Why an obtain / refresh / verify / revocation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("No active account found with the given credentials")]
    InvalidCredentials,
    /// The account's back-off refused the attempt before any password check. Answered exactly
    /// like [`AuthError::InvalidCredentials`]; apart only for the metrics.
    #[error("No active account found with the given credentials")]
    AccountLocked,
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
    /// The user's claims would make the access token longer than `jwt.max_access_token_bytes`.
    #[error(
        "The access token for this user would be {bytes} bytes, over the {max}-byte limit \
         (jwt.max_access_token_bytes): an administrator must reduce the user's groups, \
         permissions or app_metadata"
    )]
    AccessTokenTooLarge { bytes: usize, max: usize },
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Too many logins from this client address.
    #[error("Too many login attempts; retry in {retry_after_secs} seconds")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Outage(#[from] Outage),
}

impl From<ThrottleError> for AuthError {
    fn from(err: ThrottleError) -> AuthError {
        match err {
            ThrottleError::Throttled { retry_after_secs } => {
                AuthError::Throttled { retry_after_secs }
            }
            ThrottleError::Store(outage) => outage.into(),
        }
    }
}

impl From<PasswordError> for AuthError {
    fn from(err: PasswordError) -> AuthError {
        Outage::from(err).into()
    }
}

impl From<SignError> for AuthError {
    fn from(err: SignError) -> AuthError {
        Outage::internal(err).into()
    }
}

/// What the flows are built from.
pub struct FlowDeps {
    pub codec: Arc<TokenCodec>,
    pub revocation_store: Arc<dyn RevocationStore>,
    pub users: UserRepository,
    pub groups: GroupRepository,
    pub sessions: SessionRepository,
    pub passwords: Passwords,
    pub throttle: Arc<LoginThrottle>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// How long an instance may reuse a revocation lookup (`revocation.lease`; zero: never).
    pub revocation_lease: Duration,
}

/// Every flow, wired together once.
#[derive(Clone)]
pub struct Flows {
    pub minter: Arc<Minter>,
    pub login: Arc<LoginFlow>,
    pub client_credentials: Arc<ClientCredentialsFlow>,
    pub refresh: Arc<RefreshFlow>,
    pub verify: Arc<VerifyFlow>,
    pub active_users: Arc<ActiveUsers>,
    pub revocation: Arc<RevocationFlow>,
}

impl Flows {
    pub fn new(deps: FlowDeps, jwt: &JwtSettings) -> Flows {
        let FlowDeps {
            codec,
            revocation_store: store,
            users,
            groups,
            sessions,
            passwords,
            throttle,
            clock,
            metrics,
            revocation_lease,
        } = deps;
        let minter = Arc::new(Minter::new(
            codec.clone(),
            jwt,
            clock.clone(),
            metrics.clone(),
        ));
        // Groups and permissions are read with the user only when tokens carry them.
        let groups = minter.policy().needs_grants().then_some(groups);
        let active_users = Arc::new(ActiveUsers::new(
            users.clone(),
            groups,
            store.clone(),
            clock,
        ));
        let verify = Arc::new(VerifyFlow {
            codec,
            leased: LeasedLookups::new(&store, revocation_lease, &metrics),
            store: store.clone(),
            users: users.clone(),
            active_users: active_users.clone(),
        });
        let revocation = Arc::new(RevocationFlow {
            store: store.clone(),
            sessions: sessions.clone(),
            minter: minter.clone(),
            verify: verify.clone(),
            metrics: metrics.clone(),
        });
        let login = Arc::new(LoginFlow {
            throttle,
            users,
            passwords,
            sessions: sessions.clone(),
            revocation: revocation.clone(),
            minter: minter.clone(),
            active_users: active_users.clone(),
            metrics: metrics.clone(),
        });
        let client_credentials = Arc::new(ClientCredentialsFlow {
            revocation: revocation.clone(),
            minter: minter.clone(),
            metrics: metrics.clone(),
        });
        let refresh = Arc::new(RefreshFlow {
            store,
            sessions,
            minter: minter.clone(),
            active_users: active_users.clone(),
            revocation: revocation.clone(),
            metrics,
        });
        Flows {
            minter,
            login,
            client_credentials,
            refresh,
            verify,
            active_users,
            revocation,
        }
    }
}

/// The session is neither revoked itself nor covered by a "revoke all" of its user.
fn ensure_session_live(claims: &Claims, entries: &RevocationEntries) -> Result<(), TokenError> {
    let revoked_with_user = entries
        .user_revoked_before
        .is_some_and(|before| claims.sid.started() <= before);
    if entries.session_revoked || revoked_with_user {
        return Err(TokenError::Blacklisted);
    }
    Ok(())
}

fn token_keys<'a>(claims: &'a Claims, sid: &'a str) -> TokenKeys<'a> {
    TokenKeys {
        user_id: &claims.user_id,
        jti: &claims.jti,
        sid,
    }
}
