//! The flows' unit tests run on the real wiring (`AppState::build`) over a real SQLite store in
//! a temporary file, with a clock the test moves instead of sleeping.

use std::sync::Arc;

use crate::accounts::{NewAccount, User};
use crate::clock::ManualClock;
use crate::config::{JwtSettings, Settings};
use crate::state::AppState;
use crate::store::sessions::LoginContext;

use super::{ClientGrant, Minter, TokenPair};
use crate::token::Scope;

pub const PASSWORD: &str = "a sensible passphrase";

pub struct Harness {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with(|_| {}).await
    }

    /// With `[jwt]` adjusted by `adjust`.
    pub async fn with(adjust: impl FnOnce(&mut JwtSettings)) -> Harness {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = Settings::defaults();
        let url = format!("sqlite://{}/jwtd.db?mode=rwc", dir.path().display());
        settings.database.url = url.into();
        adjust(&mut settings.jwt);
        let clock = ManualClock::starting_now();
        let state = AppState::build(settings, clock.clone())
            .await
            .expect("the app state builds on SQLite");
        Harness {
            state,
            clock,
            _dir: dir,
        }
    }

    pub fn minter(&self) -> &Minter {
        &self.state.flows.minter
    }

    /// A new active user with [`PASSWORD`].
    pub async fn user(&self, username: &str) -> User {
        let account = NewAccount {
            username: username.into(),
            email: String::new(),
            password: PASSWORD.into(),
            is_staff: false,
        };
        self.state.accounts.create(account).await.unwrap()
    }

    /// A new session of `username` for OAuth client `client_id`, granted `scope`.
    pub async fn oauth_login(&self, username: &str, client_id: &str, scope: &str) -> TokenPair {
        let grant = ClientGrant {
            client_id: client_id.into(),
            scope: Scope::parse(scope).unwrap(),
        };
        let login = &self.state.flows.login;
        let pair = login.obtain_for(username, PASSWORD.into(), context(), Some(grant));
        pair.await.unwrap()
    }

    /// A new session of `username`.
    pub async fn login(&self, username: &str) -> TokenPair {
        self.state
            .flows
            .login
            .obtain(username, PASSWORD.into(), context())
            .await
            .unwrap()
    }
}

pub fn context() -> LoginContext {
    LoginContext {
        user_agent: "unit test".into(),
        client_address: "127.0.0.1".into(),
    }
}
