//! Accounts (the Djoser part): registration, profile and password changes, and staff
//! administration, with Django's validation rules and messages. The HTTP API and the command
//! line both go through [`AccountService`]: one validation, one hashing path.
//!
//! A registration costs a password hash, so it is throttled per client address, and a taken
//! username or email is refused before the hash (the unique indexes stay the guard against two
//! at once); new passwords hash within their share of the hashing slots (see `password`).

pub mod permissions;
mod user;
mod validation;

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

pub use permissions::{GrantService, GrantedUser, Grants, Group};
pub use user::User;
pub use validation::{
    MAX_EMAIL_CHARS, MAX_USERNAME_CHARS, normalize_username, validate_email, validate_password,
    validate_username,
};

use crate::clock::SharedClock;
use crate::email::Mails;
use crate::flows::{ActiveUsers, AuthError, RevocationFlow};
use crate::outage::Outage;
use crate::password::{PasswordError, Passwords, Verified};
use crate::store::leases;
use crate::store::users::{
    AdminChange, Credentials, NewUser, ProfileChange, Taken, UserFilter, UserRepository,
    WriteUserError,
};
use crate::throttle::{Attempt, LoginThrottle, ThrottleError};

/// Messages per field, as in a DRF 400.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{}", describe(.0))]
    Invalid(FieldErrors),
    #[error("Registration is closed.")]
    RegistrationClosed,
    #[error("Too many registrations from this client; retry in {retry_after_secs} seconds")]
    Throttled { retry_after_secs: u64 },
    #[error("Not found.")]
    NotFound,
    #[error("A group with that name already exists.")]
    GroupNameTaken,
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl AccountError {
    fn field(name: &str, messages: Vec<String>) -> AccountError {
        AccountError::Invalid(BTreeMap::from([(name.to_owned(), messages)]))
    }
}

impl From<WriteUserError> for AccountError {
    fn from(err: WriteUserError) -> AccountError {
        match err {
            WriteUserError::UsernameTaken => AccountError::field("username", vec![err.to_string()]),
            WriteUserError::EmailTaken => AccountError::field("email", vec![err.to_string()]),
            WriteUserError::Store(outage) => outage.into(),
        }
    }
}

impl From<ThrottleError> for AccountError {
    fn from(err: ThrottleError) -> AccountError {
        match err {
            ThrottleError::Throttled { retry_after_secs } => {
                AccountError::Throttled { retry_after_secs }
            }
            ThrottleError::Store(outage) => outage.into(),
        }
    }
}

impl From<Outage> for AccountError {
    fn from(err: Outage) -> AccountError {
        AccountError::Auth(err.into())
    }
}

impl From<PasswordError> for AccountError {
    fn from(err: PasswordError) -> AccountError {
        AccountError::Auth(err.into())
    }
}

/// A new account, as registration or an operator asks for it.
pub struct NewAccount {
    pub username: String,
    pub email: String,
    pub password: String,
    pub is_staff: bool,
}

/// Built once, in `AppState::build`, from the stores and flows it names.
pub struct AccountService {
    pub(crate) users: UserRepository,
    pub(crate) passwords: Passwords,
    pub(crate) revocation: Arc<RevocationFlow>,
    pub(crate) active_users: Arc<ActiveUsers>,
    pub(crate) throttle: Arc<LoginThrottle>,
    pub(crate) clock: SharedClock,
    pub(crate) allow_registration: bool,
    /// `users.require_activation`: registration makes an inactive user and mails a link.
    pub(crate) require_activation: bool,
    pub(crate) mails: Arc<Mails>,
}

impl AccountService {
    /// Self-service registration (`users.allow_registration`) from `client` (an IP address,
    /// counted against `throttle.registrations_per_address`); never staff.
    pub async fn register(
        &self,
        mut account: NewAccount,
        client: &str,
    ) -> Result<User, AccountError> {
        if !self.allow_registration {
            return Err(AccountError::RegistrationClosed);
        }
        self.throttle.admit_registration(client).await?;
        account.is_staff = false;
        if self.require_activation && account.email.trim().is_empty() {
            let required = "An email address is required to activate the account.";
            return Err(AccountError::field("email", vec![required.into()]));
        }
        let new = self.checked_new_user(account).await?;
        if self.require_activation {
            return self.create_inactive(new).await;
        }
        Ok(self.users.create(new, self.now()).await?)
    }

    /// Creates an account whatever `users.allow_registration` says (operators).
    pub async fn create(&self, account: NewAccount) -> Result<User, AccountError> {
        let new = self.checked_new_user(account).await?;
        Ok(self.users.create(new, self.now()).await?)
    }

    /// An inactive user and their activation mail, stored together.
    async fn create_inactive(&self, new: NewUser) -> Result<User, AccountError> {
        let id = Uuid::now_v7();
        let now = self.now();
        let future = Credentials {
            user: User {
                id,
                username: new.username.clone(),
                email: new.email.clone(),
                is_active: false,
                is_staff: new.is_staff,
                date_joined: now,
                last_login: None,
                app_metadata: Default::default(),
            },
            password_hash: new.password_hash.clone(),
            awaiting_activation: true,
        };
        let mail = self.mails.activation(&future);
        let user = self
            .users
            .create_inactive_with_mail(id, new, now, mail)
            .await?;
        self.mails.queued();
        Ok(user)
    }

    /// The validated account with its password hashed, ready to insert.
    async fn checked_new_user(&self, account: NewAccount) -> Result<NewUser, AccountError> {
        let NewAccount {
            username,
            email,
            password,
            is_staff,
        } = account;
        let mut errors = FieldErrors::new();
        collect(&mut errors, "username", validate_username(&username));
        collect(&mut errors, "email", validate_email(&email));
        collect(
            &mut errors,
            "password",
            validate_password(&password, &username, &email),
        );
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        refuse_taken(self.users.taken(&username, &email).await?)?;
        let password_hash = self.passwords.hash(password).await?;
        Ok(NewUser {
            username,
            email,
            password_hash,
            is_staff,
        })
    }

    pub async fn update_profile(
        &self,
        user: &User,
        change: ProfileChange,
    ) -> Result<User, AccountError> {
        let mut errors = FieldErrors::new();
        if let Some(username) = &change.username {
            collect(&mut errors, "username", validate_username(username));
        }
        if let Some(email) = &change.email {
            collect(&mut errors, "email", validate_email(email));
        }
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        let updated = self.users.update_profile(user.id, change).await?;
        self.active_users.user_changed(user.id).await;
        Ok(updated)
    }

    /// Checks the current password, then sets the new one (see [`AccountService::set_password`]).
    /// `client` is the caller's address: the check is throttled like a login (see
    /// [`AccountService::check_current_password`]).
    pub async fn change_password(
        &self,
        user: &User,
        current: String,
        new: String,
        client: &str,
    ) -> Result<(), AccountError> {
        let stored = self.check_current_password(user, current, client).await?;
        self.set_password(&stored, new, "new_password").await
    }

    /// The user's stored record if `current` is their password. A guess of it is a login
    /// attempt: it counts against the client address's limit and the account's back-off, the
    /// same counters as `POST /api/token/`, and reserves its place before any hashing. Refusals
    /// are 429 with `Retry-After`, decided before the password is looked at, so they say
    /// nothing about the guess (the caller already holds the account's token, so the lock
    /// itself is no secret to them); a wrong password while admitted is the 400 it always was.
    async fn check_current_password(
        &self,
        user: &User,
        current: String,
        client: &str,
    ) -> Result<User, AccountError> {
        let throttle = &self.throttle;
        throttle
            .admit_client(client)
            .await
            .map_err(AuthError::from)?;
        let account = throttle.account(&user.username);
        let (stored, attempt) = tokio::join!(
            self.users.credentials_by_id(user.id),
            throttle.reserve(&account)
        );
        if attempt? == Attempt::Locked {
            let retry_after_secs = throttle.lock_left_secs(&account).await?;
            return Err(AuthError::Throttled { retry_after_secs }.into());
        }
        let stored = stored?.ok_or(AccountError::NotFound)?;
        let verified = self
            .passwords
            .verify(current, Some(stored.password_hash))
            .await?;
        if verified == Verified::Wrong {
            return Err(AccountError::field(
                "current_password",
                vec!["Invalid password.".into()],
            ));
        }
        throttle.record_success(&account).await?;
        Ok(stored.user)
    }

    /// Validates and stores a new password, then revokes every existing token of the user.
    /// `field` names the password in a 400 (`new_password` for the API, `password` for the CLI).
    pub async fn set_password(
        &self,
        user: &User,
        new: String,
        field: &str,
    ) -> Result<(), AccountError> {
        let problems = validate_password(&new, &user.username, &user.email);
        if !problems.is_empty() {
            return Err(AccountError::field(field, problems));
        }
        let hash = self.passwords.hash(new).await?;
        self.users.set_password_hash(user.id, hash).await?;
        self.revocation.revoke_all_of_user(user.id).await?;
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> Result<User, AccountError> {
        self.users
            .find_by_id(id)
            .await?
            .ok_or(AccountError::NotFound)
    }

    pub async fn user_named(&self, username: &str) -> Result<User, AccountError> {
        self.users
            .find_by_username(username)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// One page (from 1) of users in joining order, and how many match in all.
    pub async fn list(
        &self,
        filter: UserFilter,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<User>, u64), AccountError> {
        Ok(self.users.list(filter, page, page_size).await?)
    }

    /// Staff changes. Deactivation revokes every token after the change is stored, so that a
    /// login that read the account while it was active is covered too. If the revocation
    /// fails, the user is inactive and every check of their tokens already refuses them.
    pub async fn admin_update(&self, id: Uuid, change: AdminChange) -> Result<User, AccountError> {
        if let Some(email) = &change.email {
            let problems = validate_email(email);
            if !problems.is_empty() {
                return Err(AccountError::field("email", problems));
            }
        }
        self.user(id).await?;
        let deactivating = change.is_active == Some(false);
        let updated = self.users.admin_update(id, change).await?;
        leases::waiting_once(async {
            self.active_users.user_changed(id).await;
            if deactivating {
                self.revocation.revoke_all_of_user(id).await?;
            }
            Ok(updated)
        })
        .await
    }

    /// Deletes a user, then revokes every token of theirs (a token of a user who no longer
    /// exists is refused anyway; the revocation also reaches the revocation feed's readers).
    pub async fn delete_user(&self, id: Uuid) -> Result<(), AccountError> {
        if !self.users.delete(id).await? {
            return Err(AccountError::NotFound);
        }
        leases::waiting_once(async {
            self.active_users.user_changed(id).await;
            self.revocation.revoke_all_of_user(id).await
        })
        .await?;
        Ok(())
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now().to_datetime()
    }
}

/// `field: message message; other: message`, for one line of text.
pub fn describe(fields: &FieldErrors) -> String {
    fields
        .iter()
        .map(|(name, messages)| format!("{name}: {}", messages.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The 400 an insert would get from the unique indexes, without the hash before it.
fn refuse_taken(taken: Taken) -> Result<(), AccountError> {
    let mut errors = FieldErrors::new();
    for (is_taken, field, error) in [
        (taken.username, "username", WriteUserError::UsernameTaken),
        (taken.email, "email", WriteUserError::EmailTaken),
    ] {
        if is_taken {
            collect(&mut errors, field, vec![error.to_string()]);
        }
    }
    if !errors.is_empty() {
        return Err(AccountError::Invalid(errors));
    }
    Ok(())
}

fn collect(errors: &mut FieldErrors, field: &str, problems: Vec<String>) {
    if !problems.is_empty() {
        errors.entry(field.to_owned()).or_default().extend(problems);
    }
}
