//! Everything a request needs, built once from the settings.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::accounts::AccountService;
use crate::clock::SharedClock;
use crate::config::{RevocationBackend, Settings};
use crate::http::client_address::TrustedProxies;
use crate::metrics::Metrics;
use crate::oauth::{ClientService, OAuthService};
use crate::password::{PasswordError, Passwords};
use crate::store::clients::ClientRepository;
use crate::store::redis::RedisRevocationStore;
use crate::store::sessions::SessionRepository;
use crate::store::sql::SqlRevocationStore;
use crate::store::users::UserRepository;
use crate::store::{CounterStore, RevocationStore, StoreError, db};
use crate::throttle::LoginThrottle;
use crate::token::keys::KeyError;
use crate::token::service::TokenStores;
use crate::token::{KeySet, TokenCodec, TokenService};

/// How often refresh times reach the session list of other instances (and of the database).
const SESSION_TOUCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    #[error("revocation store: {0}")]
    Store(#[from] StoreError),
    #[error("passwords: {0}")]
    Password(#[from] PasswordError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

pub struct AppState {
    pub settings: Settings,
    pub db: DatabaseConnection,
    pub users: UserRepository,
    pub sessions: SessionRepository,
    pub passwords: Passwords,
    pub tokens: Arc<TokenService>,
    pub accounts: AccountService,
    pub oauth: OAuthService,
    pub clock: SharedClock,
    pub trusted_proxies: TrustedProxies,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Connects to the database (running the migrations) and the revocation store.
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<AppState, StartupError> {
        settings.validate()?;
        let keys = KeySet::from_settings(&settings.jwt)?;
        let db = db::connect(&settings.database).await?;
        db::migrate(&db).await?;
        let stores = stores(&settings, &db, &clock)?;
        let trusted_proxies = TrustedProxies::new(settings.server.trusted_proxies.clone());
        let throttle =
            LoginThrottle::new(stores.counters, clock.clone(), settings.throttle.clone());
        let users = UserRepository::new(db.clone());
        let sessions = SessionRepository::new(db.clone());
        sessions.clone().spawn_touch_writer(SESSION_TOUCH_INTERVAL);
        let passwords = Passwords::new(&settings.password)?;
        let codec = TokenCodec::new(keys, &settings.jwt, clock.clone());
        let metrics = Arc::new(Metrics::new());
        let tokens = Arc::new(TokenService::new(
            codec,
            TokenStores {
                revocation: stores.revocation,
                users: users.clone(),
                sessions: sessions.clone(),
            },
            passwords.clone(),
            throttle,
            clock.clone(),
            &settings.jwt,
            metrics.clone(),
        ));
        let accounts = AccountService::new(
            users.clone(),
            passwords.clone(),
            tokens.clone(),
            clock.clone(),
            settings.users.allow_registration,
        );
        let clients = ClientService::new(
            ClientRepository::new(db.clone()),
            tokens.clone(),
            clock.clone(),
        );
        let oauth = OAuthService::new(clients, tokens.clone());
        Ok(AppState {
            settings,
            db,
            users,
            sessions,
            passwords,
            tokens,
            accounts,
            oauth,
            clock,
            trusted_proxies,
            metrics,
        })
    }
}

/// The revocation store, and the throttling counters in the same backend.
struct Stores {
    revocation: Arc<dyn RevocationStore>,
    counters: Arc<dyn CounterStore>,
}

fn stores(
    settings: &Settings,
    db: &DatabaseConnection,
    clock: &SharedClock,
) -> Result<Stores, StoreError> {
    Ok(match settings.revocation.store {
        RevocationBackend::Database => {
            let store = SqlRevocationStore::new(db.clone(), clock.clone());
            store
                .clone()
                .spawn_purger(settings.revocation.purge_interval);
            Stores {
                revocation: Arc::new(store.clone()),
                counters: Arc::new(store),
            }
        }
        RevocationBackend::Redis => {
            let store = Arc::new(RedisRevocationStore::new(&settings.redis, clock.clone())?);
            Stores {
                revocation: store.clone(),
                counters: store,
            }
        }
    })
}
