//! Email: account activation and password reset (Djoser's flows), through an outbox.
//!
//! - [`compose`] builds the mails from templates; [`links`] makes and checks the tokens in
//!   their links; [`transport`] sends (the log, or SMTP); [`sender`] delivers the outbox.
//! - A mail is written to the outbox in the same transaction as what caused it (registration with
//!   `users.require_activation`: the user and the mail together), then sent by the sender of
//!   any instance, retried with back-off while the server is down.
//! - `reset_password` and `resend_activation` answer the same for every well-formed address:
//!   the request path only validates the address, counts the client's requests (429 past
//!   `email.requests_per_client`) and queues the request in memory; looking the address up,
//!   its own limit (`email.mails_per_address`: past it, nothing is sent) and the outbox write
//!   happen off the request path, so neither the answer nor its time says who has an account.

pub mod compose;
pub mod links;
pub mod sender;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

pub use compose::Mails;
pub use links::{LinkPurpose, LinkTokens, decode_uid, encode_uid};
pub use sender::OutboxSender;

use crate::accounts::{AccountError, AccountService, validate_email, validate_password};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, EmailSettings, Settings};
use crate::outage::Outage;
use crate::store::outbox::OutboxRepository;
use crate::store::users::Credentials;
use crate::throttle::{LoginThrottle, ThrottleError, hashed_key};

/// Address requests waiting to be handled off the request path; past this, 503.
const REQUEST_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// A bad, used or expired token, or a `uid` of nobody: the same answer for each.
    #[error("Invalid token for given user.")]
    InvalidToken,
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<Outage> for EmailError {
    fn from(err: Outage) -> EmailError {
        EmailError::Account(err.into())
    }
}

impl From<ThrottleError> for EmailError {
    fn from(err: ThrottleError) -> EmailError {
        EmailError::Account(err.into())
    }
}

/// Which mail an address asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailRequest {
    PasswordReset,
    Activation,
}

struct Job {
    kind: MailRequest,
    email: String,
}

pub struct EmailService {
    pub(crate) accounts: Arc<AccountService>,
    pub(crate) mails: Arc<Mails>,
    pub outbox: OutboxRepository,
    pub(crate) throttle: Arc<LoginThrottle>,
    pub(crate) settings: EmailSettings,
    pub(crate) require_activation: bool,
    jobs: mpsc::Sender<Job>,
    job_queue: Mutex<Option<mpsc::Receiver<Job>>>,
    handled: AtomicU64,
    pub sender: OutboxSender,
}

/// What [`EmailService::new`] is built from.
pub struct EmailDeps {
    pub accounts: Arc<AccountService>,
    pub mails: Arc<Mails>,
    pub outbox: OutboxRepository,
    pub throttle: Arc<LoginThrottle>,
    pub settings: EmailSettings,
    pub require_activation: bool,
    pub sender: OutboxSender,
}

impl EmailService {
    pub fn new(deps: EmailDeps) -> EmailService {
        let (jobs, queue) = mpsc::channel(REQUEST_QUEUE);
        EmailService {
            accounts: deps.accounts,
            mails: deps.mails,
            outbox: deps.outbox,
            throttle: deps.throttle,
            settings: deps.settings,
            require_activation: deps.require_activation,
            jobs,
            job_queue: Mutex::new(Some(queue)),
            handled: AtomicU64::new(0),
            sender: deps.sender,
        }
    }

    /// The background work of a serving instance: address requests and the outbox sender, until
    /// the future is dropped.
    pub async fn run(&self) {
        let queue = self.job_queue.lock().await.take();
        let requests = async {
            let Some(mut queue) = queue else { return };
            while let Some(job) = queue.recv().await {
                if let Err(err) = self.handle(&job).await {
                    let error = crate::outage::chain(&err);
                    tracing::warn!(kind = ?job.kind, %error, "email request not handled");
                }
                self.handled.fetch_add(1, Ordering::Release);
            }
        };
        tokio::join!(requests, self.sender.run());
    }

    /// `reset_password` / `resend_activation` from `client`: validates the address, counts the
    /// client's request, and queues the rest (see the module's documentation).
    pub async fn request(
        &self,
        kind: MailRequest,
        email: &str,
        client: &str,
    ) -> Result<(), EmailError> {
        let email = email.trim();
        let mut problems = validate_email(email);
        if email.is_empty() {
            problems.push("This field may not be blank.".into());
        }
        if !problems.is_empty() {
            return Err(invalid("email", problems));
        }
        let limit = self.settings.requests_per_client;
        let key = format!("ec:{client}");
        self.throttle
            .admit(&key, limit, self.settings.request_window)
            .await?;
        let job = Job {
            kind,
            email: email.to_owned(),
        };
        self.jobs
            .try_send(job)
            .map_err(|_| Outage::busy("the email request queue is full"))?;
        Ok(())
    }

    /// How many address requests were handled off the request path (tests wait on it).
    pub fn requests_handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// Looks the address up and queues the mail it gets, if any, within the address's limit.
    async fn handle(&self, job: &Job) -> Result<(), Outage> {
        let user = self.accounts.users.credentials_by_email(&job.email).await?;
        let mail = match (job.kind, user) {
            (MailRequest::PasswordReset, Some(user)) if user.user.is_active => {
                self.mails.password_reset(&user)
            }
            (MailRequest::Activation, Some(user))
                if user.awaiting_activation && !user.user.is_active && self.require_activation =>
            {
                self.mails.activation(&user)
            }
            _ => return Ok(()),
        };
        let key = hashed_key("ea", &job.email.to_lowercase());
        let (limit, window) = (self.settings.mails_per_address, self.settings.mail_window);
        match self.throttle.admit(&key, limit, window).await {
            Ok(()) => {}
            Err(ThrottleError::Throttled { .. }) => {
                tracing::info!(kind = ?job.kind, "mail limit of an address reached: not sent");
                return Ok(());
            }
            Err(ThrottleError::Store(outage)) => return Err(outage),
        }
        self.outbox.enqueue(mail, self.accounts.clock.now()).await?;
        self.mails.queued();
        Ok(())
    }

    /// `POST /api/users/activation/`: activates the user of a valid activation link, once.
    pub async fn activate(&self, uid: &str, token: &str) -> Result<(), EmailError> {
        let user = self.link_user(LinkPurpose::Activation, uid, token).await?;
        // Of two uses at once, one activates; the other finds the user active: a used link.
        if !self.accounts.users.activate(user.user.id).await? {
            return Err(EmailError::InvalidToken);
        }
        self.accounts.active_users.user_changed(user.user.id).await;
        Ok(())
    }

    /// `POST /api/users/reset_password_confirm/`: sets the password of a valid reset link's
    /// user, once, and revokes every token of theirs.
    pub async fn confirm_reset(
        &self,
        uid: &str,
        token: &str,
        new_password: String,
    ) -> Result<(), EmailError> {
        let user = self
            .link_user(LinkPurpose::PasswordReset, uid, token)
            .await?;
        if !user.user.is_active {
            return Err(EmailError::InvalidToken);
        }
        let account = &user.user;
        let problems = validate_password(&new_password, &account.username, &account.email);
        if !problems.is_empty() {
            return Err(invalid("new_password", problems));
        }
        let accounts = &self.accounts;
        let hash = accounts
            .passwords
            .hash(new_password)
            .await
            .map_err(AccountError::from)?;
        // The link signs the old hash: of two uses at once, one replaces it.
        let replaced = accounts
            .users
            .replace_password_hash(account.id, &user.password_hash, hash)
            .await?;
        if !replaced {
            return Err(EmailError::InvalidToken);
        }
        accounts.active_users.user_changed(account.id).await;
        accounts
            .revocation
            .revoke_all_of_user(account.id)
            .await
            .map_err(AccountError::from)?;
        Ok(())
    }

    /// `jwtd users send-reset`: queues a reset mail to `username`, outside every limit.
    pub async fn send_reset_to(&self, username: &str) -> Result<String, EmailError> {
        let users = &self.accounts.users;
        let id = users.id_by_username(username).await?;
        let user = match id {
            Some(id) => users.credentials_by_id(id).await?,
            None => None,
        };
        let user = user.ok_or(AccountError::NotFound)?;
        if user.user.email.is_empty() || !user.user.is_active {
            let why = "The user has no email address or is inactive.";
            return Err(invalid("username", vec![why.into()]));
        }
        let mail = self.mails.password_reset(&user);
        self.outbox.enqueue(mail, self.accounts.clock.now()).await?;
        Ok(user.user.email)
    }

    /// The user a link names, if its token is theirs for `purpose` as they are now.
    async fn link_user(
        &self,
        purpose: LinkPurpose,
        uid: &str,
        token: &str,
    ) -> Result<Credentials, EmailError> {
        let id: Option<Uuid> = decode_uid(uid);
        let user = match id {
            Some(id) => self.accounts.users.credentials_by_id(id).await?,
            None => None,
        };
        match user {
            Some(user) if self.mails.tokens.check(purpose, token, &user) => Ok(user),
            _ => Err(EmailError::InvalidToken),
        }
    }
}

/// The secret links are signed with: `email.link_secret`, else the JWT signing key (the HMAC
/// secret, or the private key file's contents), which `LinkTokens` derives a key of its own from.
pub fn link_secret(settings: &Settings) -> Result<Vec<u8>, ConfigError> {
    if let Some(secret) = &settings.email.link_secret {
        return Ok(secret.expose_secret().as_bytes().to_vec());
    }
    let jwt = &settings.jwt;
    match &jwt.private_key_file {
        Some(path) if !jwt.algorithm.is_hmac() => std::fs::read(path).map_err(|err| {
            ConfigError::Invalid(format!("jwt.private_key_file {}: {err}", path.display()))
        }),
        _ => Ok(jwt.hmac_secret().to_vec()),
    }
}

fn invalid(field: &str, problems: Vec<String>) -> EmailError {
    let fields = BTreeMap::from([(field.to_owned(), problems)]);
    EmailError::Account(AccountError::Invalid(fields))
}
