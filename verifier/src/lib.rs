//! `jwtd-verifier`: verify jwtd's access tokens offline, and still refuse revoked ones within
//! moments.
//!
//! A [`Verifier`] keeps, in memory, jwtd's public keys (the JWKS, fetched again on an unknown
//! `kid`, at most once per [`VerifierBuilder::jwks_min_interval`]) and every revocation that can
//! still refuse a live token (the snapshot, then the long-polled feed, with an OAuth client's
//! `revocations:read` token). [`Verifier::verify`] answers from memory only; when the feed has
//! not answered for `max_staleness` it refuses every token until it has caught up (fail closed).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = jwtd_verifier::Verifier::builder("https://auth.example.com")
//!     .client_credentials("orders-service", "secret")
//!     .start()?;
//! verifier.ready(std::time::Duration::from_secs(10)).await;
//! let claims = verifier.verify("eyJ…")?;
//! claims.require("orders.change")?;
//! # Ok(()) }
//! ```

mod claims;
mod feed;
mod keys;
#[cfg(feature = "poem")]
pub mod poem;
mod revocations;
#[cfg(feature = "tower")]
pub mod tower;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use claims::Claims;
use keys::Keys;
use revocations::Revocations;

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The feed has not answered for `max_staleness`: every token is refused until it does.
    #[error("the revocation feed is stale; refusing every token until it catches up")]
    Stale,
    #[error("the token is malformed, badly signed, expired, or not an access token")]
    Invalid,
    #[error("the token is signed with a key not (yet) in the JWKS")]
    UnknownKey,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token lacks the permission {0:?}")]
    MissingPermission(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the base URL is not a URL")]
    BadUrl,
    #[error("client credentials are required (the feed wants a revocations:read token)")]
    NoCredentials,
    #[error("the HTTP client could not be built")]
    Http(#[source] reqwest::Error),
    #[error("Verifier::start needs a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
}

/// What a metrics exporter reads (see [`VerifierBuilder::on_update`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierMetrics {
    /// Since the feed last answered; `None` before the first snapshot.
    pub last_event_age: Option<Duration>,
    /// Revocations held in memory.
    pub revocations: usize,
    /// JWKS fetches so far.
    pub jwks_fetches: u64,
}

type UpdateHook = Arc<dyn Fn(&VerifierMetrics) + Send + Sync>;

pub struct VerifierBuilder {
    base_url: String,
    client: Option<(String, String)>,
    max_staleness: Duration,
    http_timeout: Duration,
    jwks_min_interval: Duration,
    jwks_refresh: Duration,
    hmac_secret: Option<Vec<u8>>,
    issuer: Option<String>,
    audience: Option<String>,
    user_id_claim: String,
    token_type_claim: String,
    on_update: Option<UpdateHook>,
}

impl VerifierBuilder {
    /// The OAuth client (registered with the scope `revocations:read`) the feed is read as.
    pub fn client_credentials(mut self, id: &str, secret: &str) -> Self {
        self.client = Some((id.to_owned(), secret.to_owned()));
        self
    }

    /// How long without an answer from the feed before every token is refused (default 5 s).
    pub fn max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = staleness;
        self
    }

    /// The budget of each HTTP request, beyond a long poll's own wait (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// The least time between two JWKS fetches for an unknown `kid` (default 10 s).
    pub fn jwks_min_interval(mut self, interval: Duration) -> Self {
        self.jwks_min_interval = interval;
        self
    }

    /// For an HS256/384/512 deployment: the shared secret (an HMAC key is never in the JWKS).
    pub fn hmac_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.hmac_secret = Some(secret.into());
        self
    }

    /// Requires `iss` (jwtd's `jwt.issuer`).
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Requires `aud` (jwtd's `jwt.audience`).
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = Some(audience.to_owned());
        self
    }

    /// jwtd's `jwt.user_id_claim` and `jwt.token_type_claim`, when not the defaults.
    pub fn claim_names(mut self, user_id: &str, token_type: &str) -> Self {
        self.user_id_claim = user_id.to_owned();
        self.token_type_claim = token_type.to_owned();
        self
    }

    /// Called after every answer of the feed and every JWKS fetch (a metrics exporter).
    pub fn on_update(mut self, hook: impl Fn(&VerifierMetrics) + Send + Sync + 'static) -> Self {
        self.on_update = Some(Arc::new(hook));
        self
    }

    /// Starts the JWKS and feed tasks on the current tokio runtime; they stop when the last
    /// clone of the verifier is dropped.
    pub fn start(self) -> Result<Verifier, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(BuildError::NoRuntime)?;
        let base = reqwest::Url::parse(&self.base_url).map_err(|_| BuildError::BadUrl)?;
        let (client_id, client_secret) = self.client.clone().ok_or(BuildError::NoCredentials)?;
        let http = reqwest::Client::builder()
            .timeout(self.http_timeout)
            .build()
            .map_err(BuildError::Http)?;
        let shared = Arc::new(Shared {
            started: Instant::now(),
            heard_at_ms: AtomicU64::new(0),
            revocations: Revocations::default(),
            keys: Keys::new(self.hmac_secret.as_deref()),
            max_staleness: self.max_staleness,
            checks: claims::Checks {
                issuer: self.issuer,
                audience: self.audience,
                user_id_claim: self.user_id_claim,
                token_type_claim: self.token_type_claim,
            },
            on_update: self.on_update,
        });
        let endpoints = feed::Endpoints {
            http,
            base,
            client_id,
            client_secret,
            http_timeout: self.http_timeout,
        };
        let jwks = runtime.spawn(keys::follow_jwks(
            Arc::downgrade(&shared),
            endpoints.clone(),
            self.jwks_refresh,
            self.jwks_min_interval,
        ));
        let feed = runtime.spawn(feed::follow_feed(Arc::downgrade(&shared), endpoints));
        Ok(Verifier {
            shared,
            _tasks: Arc::new(Tasks(vec![jwks, feed])),
        })
    }
}

/// What the tasks and `verify` share.
struct Shared {
    started: Instant,
    /// Milliseconds after `started` when the feed last answered, plus one (0: never).
    heard_at_ms: AtomicU64,
    revocations: Revocations,
    keys: Keys,
    max_staleness: Duration,
    checks: claims::Checks,
    on_update: Option<UpdateHook>,
}

impl Shared {
    fn heard(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_at_ms
            .store(ms.saturating_add(1), Ordering::Release);
        self.report();
    }

    fn last_event_age(&self) -> Option<Duration> {
        let at = self.heard_at_ms.load(Ordering::Acquire).checked_sub(1)?;
        Some(
            self.started
                .elapsed()
                .saturating_sub(Duration::from_millis(at)),
        )
    }

    fn metrics(&self) -> VerifierMetrics {
        VerifierMetrics {
            last_event_age: self.last_event_age(),
            revocations: self.revocations.len(),
            jwks_fetches: self.keys.fetches(),
        }
    }

    fn report(&self) {
        if let Some(hook) = &self.on_update {
            hook(&self.metrics());
        }
    }
}

/// Aborts the background tasks with the last clone of the verifier.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Verifies jwtd's access tokens from memory. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl Verifier {
    /// `base_url`: jwtd's address, e.g. `https://auth.example.com`.
    pub fn builder(base_url: &str) -> VerifierBuilder {
        VerifierBuilder {
            base_url: base_url.to_owned(),
            client: None,
            max_staleness: Duration::from_secs(5),
            http_timeout: Duration::from_secs(5),
            jwks_min_interval: Duration::from_secs(10),
            jwks_refresh: Duration::from_secs(300),
            hmac_secret: None,
            issuer: None,
            audience: None,
            user_id_claim: "user_id".into(),
            token_type_claim: "token_type".into(),
            on_update: None,
        }
    }

    /// A live, unrevoked access token's claims; never waits on the network.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let shared = &self.shared;
        match shared.last_event_age() {
            Some(age) if age <= shared.max_staleness => {}
            _ => return Err(VerifyError::Stale),
        }
        let claims = shared.keys.decode(token, &shared.checks)?;
        if shared.revocations.refuses(&claims) {
            return Err(VerifyError::Revoked);
        }
        Ok(claims)
    }

    /// Waits until the verifier has its first snapshot (at most `patience`); `true` if it has.
    pub async fn ready(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if self.shared.last_event_age().is_some() && self.shared.keys.loaded() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub fn metrics(&self) -> VerifierMetrics {
        self.shared.metrics()
    }
}
