//! Everything a request needs, built once from the settings.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::accounts::{AccountService, GrantService};
use crate::clock::SharedClock;
use crate::config::{RevocationBackend, Settings};
use crate::email::transport::Transport;
use crate::email::{self, EmailDeps, EmailService, LinkTokens, Mails, OutboxSender};
use crate::feed::FeedService;
use crate::flows::{FlowDeps, Flows};
use crate::http::client_address::TrustedProxies;
use crate::metrics::Metrics;
use crate::oauth::{ClientService, OAuthService};
use crate::outage::Outage;
use crate::password::{PasswordError, Passwords};
use crate::store::clients::ClientRepository;
use crate::store::groups::GroupRepository;
use crate::store::outbox::OutboxRepository;
use crate::store::redis::{RedisRevocationStore, VolatileRedis};
use crate::store::sessions::SessionRepository;
use crate::store::sql::SqlRevocationStore;
use crate::store::users::UserRepository;
use crate::store::{CounterStore, RevocationFeed, RevocationStore, db};
use crate::throttle::LoginThrottle;
use crate::token::keys::KeyError;
use crate::token::{KeySet, TokenCodec};

/// How often refresh times reach the session list of other instances (and of the database).
const SESSION_TOUCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    // Each cause names what failed (a key, a URL, a setting) well enough on its own.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] Outage),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    VolatileRedis(#[from] VolatileRedis),
    #[error("cannot listen on {address}")]
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
    pub revocation_store: Arc<dyn RevocationStore>,
    pub throttle: Arc<LoginThrottle>,
    pub codec: Arc<TokenCodec>,
    pub flows: Flows,
    pub accounts: Arc<AccountService>,
    pub grants: Arc<GrantService>,
    pub clients: Arc<ClientService>,
    pub oauth: Arc<OAuthService>,
    pub email: Arc<EmailService>,
    pub clock: SharedClock,
    pub trusted_proxies: Arc<TrustedProxies>,
    pub metrics: Arc<Metrics>,
    pub feed: Arc<FeedService>,
}

impl AppState {
    /// Connects to the database (running the migrations) and the revocation store.
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<AppState, StartupError> {
        settings.validate()?;
        let keys = KeySet::from_settings(&settings.jwt)?;
        let db = db::connect_migrated(&settings.database).await?;
        db::spawn_wal_checkpointer(db.clone(), settings.database.sqlite_checkpoint_interval);
        let stores = stores(&settings, &db, &clock).await?;
        let trusted_proxies = TrustedProxies::new(settings.server.trusted_proxies.clone());
        let throttle = Arc::new(LoginThrottle::new(
            stores.counters,
            clock.clone(),
            settings.throttle.clone(),
        ));
        let users = UserRepository::new(db.clone());
        let groups = GroupRepository::new(db.clone());
        let sessions = SessionRepository::new(db.clone());
        sessions.clone().spawn_touch_writer(SESSION_TOUCH_INTERVAL);
        let passwords = Passwords::new(&settings.password)?;
        let codec = Arc::new(TokenCodec::new(keys, &settings.jwt, clock.clone()));
        let metrics = Arc::new(Metrics::new());
        let deps = FlowDeps {
            codec: codec.clone(),
            revocation_store: stores.revocation.clone(),
            users: users.clone(),
            groups: groups.clone(),
            sessions: sessions.clone(),
            passwords: passwords.clone(),
            throttle: throttle.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            revocation_lease: settings.revocation.lease,
        };
        let flows = Flows::new(deps, &settings.jwt);
        let tokens = LinkTokens::new(
            &email::link_secret(&settings)?,
            settings.email.password_reset_lifetime,
            clock.clone(),
        );
        let mails = Arc::new(Mails::new(&settings.email, tokens)?);
        let accounts = Arc::new(AccountService {
            users: users.clone(),
            passwords: passwords.clone(),
            revocation: flows.revocation.clone(),
            active_users: flows.active_users.clone(),
            throttle: throttle.clone(),
            clock: clock.clone(),
            allow_registration: settings.users.allow_registration,
            require_activation: settings.users.require_activation,
            mails: mails.clone(),
        });
        let email = Arc::new(email_service(
            &settings, &db, &accounts, &mails, &throttle, &metrics,
        )?);
        let grants = Arc::new(GrantService {
            groups,
            users: users.clone(),
            revocation: flows.revocation.clone(),
            active_users: flows.active_users.clone(),
            revoke_on_loss: settings.users.revoke_on_permission_loss,
            jwt: settings.jwt.clone(),
        });
        let clients = Arc::new(ClientService::new(
            ClientRepository::new(db.clone()),
            flows.revocation.clone(),
            clock.clone(),
        ));
        let oauth = Arc::new(OAuthService::new(clients.clone(), flows.clone()));
        Ok(AppState {
            settings,
            db,
            users,
            sessions,
            passwords,
            revocation_store: stores.revocation,
            throttle,
            codec,
            flows,
            accounts,
            grants,
            clients,
            oauth,
            email,
            clock,
            trusted_proxies: Arc::new(trusted_proxies),
            metrics,
            feed: Arc::new(FeedService::start(stores.feed)),
        })
    }
}

/// Activation and reset mails: the request flows and this instance's outbox sender.
fn email_service(
    settings: &Settings,
    db: &DatabaseConnection,
    accounts: &Arc<AccountService>,
    mails: &Arc<Mails>,
    throttle: &Arc<LoginThrottle>,
    metrics: &Arc<Metrics>,
) -> Result<EmailService, StartupError> {
    let email = &settings.email;
    let from = email.from.parse().map_err(|_| {
        crate::config::ConfigError::Invalid(format!(
            "email.from {:?} is not an address",
            email.from
        ))
    })?;
    let outbox = OutboxRepository::new(db.clone());
    let sender = OutboxSender {
        outbox: outbox.clone(),
        transport: Transport::from_settings(email)?,
        from,
        clock: accounts.clock.clone(),
        metrics: metrics.clone(),
        queued: mails.queued_signal(),
        poll_interval: email.poll_interval,
        retry_backoff: email.retry_backoff,
        retry_backoff_max: email.retry_backoff_max,
        claim_lease: email.claim_lease,
    };
    Ok(EmailService::new(EmailDeps {
        accounts: accounts.clone(),
        mails: mails.clone(),
        outbox,
        throttle: throttle.clone(),
        settings: email.clone(),
        require_activation: settings.users.require_activation,
        sender,
    }))
}

/// The revocation store, and the throttling counters in the same backend.
struct Stores {
    revocation: Arc<dyn RevocationStore>,
    counters: Arc<dyn CounterStore>,
    feed: Arc<dyn RevocationFeed>,
}

async fn stores(
    settings: &Settings,
    db: &DatabaseConnection,
    clock: &SharedClock,
) -> Result<Stores, StartupError> {
    let retention =
        crate::store::feed::retention(settings.jwt.session_lifetime, settings.jwt.leeway);
    Ok(match settings.revocation.store {
        RevocationBackend::Database => {
            let store = SqlRevocationStore::new(db.clone(), clock.clone())
                .with_feed_retention(retention)
                .with_lease(settings.revocation.lease);
            store
                .clone()
                .spawn_purger(settings.revocation.purge_interval);
            Stores {
                revocation: Arc::new(store.clone()),
                counters: Arc::new(store.clone()),
                feed: Arc::new(store),
            }
        }
        RevocationBackend::Redis => {
            let store = RedisRevocationStore::new(&settings.redis, clock.clone())?
                .with_feed_retention(retention)
                .with_lease(settings.revocation.lease);
            let store = Arc::new(store);
            store
                .check_persistence(&settings.redis, settings.is_production())
                .await?;
            Stores {
                revocation: store.clone(),
                counters: store.clone(),
                feed: store,
            }
        }
    })
}
