//! Accounts (the Djoser part): registration, profile changes, password changes, with Django's
//! validation rules and messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::clock::SharedClock;
use crate::password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PasswordError, Passwords, Verified};
use crate::store::StoreError;
use crate::store::users::{
    AdminChange, NewUser, ProfileChange, User, UserRepository, WriteUserError,
};
use crate::token::TokenService;
use crate::token::service::AuthError;

/// Messages per field, as in a DRF 400.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

pub const MAX_USERNAME_CHARS: usize = 150;
pub const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("Registration is closed.")]
    RegistrationClosed,
    #[error("Not found.")]
    NotFound,
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl AccountError {
    fn field(name: &str, message: impl Into<String>) -> AccountError {
        AccountError::Invalid(BTreeMap::from([(name.to_owned(), vec![message.into()])]))
    }
}

impl From<WriteUserError> for AccountError {
    fn from(err: WriteUserError) -> AccountError {
        match err {
            WriteUserError::UsernameTaken => AccountError::field("username", err.to_string()),
            WriteUserError::EmailTaken => AccountError::field("email", err.to_string()),
            WriteUserError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for AccountError {
    fn from(err: StoreError) -> AccountError {
        AccountError::Auth(err.into())
    }
}

impl From<PasswordError> for AccountError {
    fn from(err: PasswordError) -> AccountError {
        AccountError::Auth(err.into())
    }
}

pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
}

pub struct AccountService {
    users: UserRepository,
    passwords: Passwords,
    tokens: Arc<TokenService>,
    clock: SharedClock,
    allow_registration: bool,
}

impl AccountService {
    pub fn new(
        users: UserRepository,
        passwords: Passwords,
        tokens: Arc<TokenService>,
        clock: SharedClock,
        allow_registration: bool,
    ) -> AccountService {
        AccountService {
            users,
            passwords,
            tokens,
            clock,
            allow_registration,
        }
    }

    pub async fn register(&self, registration: Registration) -> Result<User, AccountError> {
        if !self.allow_registration {
            return Err(AccountError::RegistrationClosed);
        }
        let Registration {
            username,
            email,
            password,
        } = registration;
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
        let password_hash = self.passwords.hash(password).await?;
        let new = NewUser {
            username,
            email,
            password_hash,
            is_staff: false,
        };
        Ok(self.users.create(new, self.now()).await?)
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
        self.tokens.user_changed(user.id).await;
        Ok(updated)
    }

    /// Checks the current password, stores the new one, and revokes every existing token.
    pub async fn change_password(
        &self,
        user: &User,
        current: String,
        new: String,
    ) -> Result<(), AccountError> {
        let verified = self
            .passwords
            .verify(current, Some(user.password_hash.clone()))
            .await?;
        if verified == Verified::Wrong {
            return Err(AccountError::field("current_password", "Invalid password."));
        }
        let problems = validate_password(&new, &user.username, &user.email);
        if !problems.is_empty() {
            return Err(AccountError::Invalid(BTreeMap::from([(
                "new_password".to_owned(),
                problems,
            )])));
        }
        let hash = self.passwords.hash(new).await?;
        self.users.set_password_hash(user.id, hash).await?;
        self.tokens.revoke_all_of_user(user.id).await?;
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> Result<User, AccountError> {
        self.users
            .find_by_id(id)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// Staff changes. Deactivation revokes every token first, so a failure half-way can only
    /// leave an active user logged out, never an inactive one logged in.
    pub async fn admin_update(&self, id: Uuid, change: AdminChange) -> Result<User, AccountError> {
        if let Some(email) = &change.email {
            let problems = validate_email(email);
            if !problems.is_empty() {
                return Err(AccountError::Invalid(BTreeMap::from([(
                    "email".to_owned(),
                    problems,
                )])));
            }
        }
        self.user(id).await?;
        if change.is_active == Some(false) {
            self.tokens.revoke_all_of_user(id).await?;
        }
        let updated = self.users.admin_update(id, change).await?;
        self.tokens.user_changed(id).await;
        Ok(updated)
    }

    /// Deletes a user, revoking every token of theirs first.
    pub async fn delete_user(&self, id: Uuid) -> Result<(), AccountError> {
        self.user(id).await?;
        self.tokens.revoke_all_of_user(id).await?;
        if !self.users.delete(id).await? {
            return Err(AccountError::NotFound);
        }
        Ok(())
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.clock.now_ms()).unwrap_or_default()
    }
}

fn collect(errors: &mut FieldErrors, field: &str, problems: Vec<String>) {
    if !problems.is_empty() {
        errors.entry(field.to_owned()).or_default().extend(problems);
    }
}

/// Django's `UnicodeUsernameValidator`: letters, digits and @ . + - _ only.
pub fn validate_username(username: &str) -> Vec<String> {
    let allowed = |c: char| c.is_alphanumeric() || "@.+-_".contains(c);
    if username.is_empty()
        || username.chars().count() > MAX_USERNAME_CHARS
        || !username.chars().all(allowed)
    {
        return vec![format!(
            "Enter a valid username of at most {MAX_USERNAME_CHARS} characters. This value may \
             contain only letters, numbers, and @/./+/-/_ characters."
        )];
    }
    Vec::new()
}

/// Empty means "no email"; otherwise a plausible single address.
pub fn validate_email(email: &str) -> Vec<String> {
    if email.is_empty() {
        return Vec::new();
    }
    let valid = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Vec::new()
    } else {
        vec!["Enter a valid email address.".into()]
    }
}

/// Django's default password validators, and the contract's 8..128 characters.
pub fn validate_password(password: &str, username: &str, email: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        problems.push(format!(
            "This password is too short. It must contain at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if length > MAX_PASSWORD_CHARS {
        problems.push(format!(
            "Ensure this field has no more than {MAX_PASSWORD_CHARS} characters."
        ));
    }
    if !password.is_empty() && password.chars().all(|c| c.is_ascii_digit()) {
        problems.push("This password is entirely numeric.".into());
    }
    let lowered = password.to_lowercase();
    let email_local = email.split('@').next().unwrap_or_default();
    if [username, email_local]
        .iter()
        .any(|attr| attr.chars().count() >= 3 && lowered.contains(&attr.to_lowercase()))
    {
        problems.push("The password is too similar to the username or email.".into());
    }
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        problems.push("This password is too common.".into());
    }
    problems
}

/// The most common passwords of at least 8 characters (from the lists Django's validator uses).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "12345678",
    "123456789",
    "1234567890",
    "password1",
    "password123",
    "qwerty123",
    "iloveyou",
    "11111111",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "abc12345",
    "qwertyuiop",
    "1q2w3e4r",
    "superman",
    "trustno1",
    "passw0rd",
    "letmein1",
    "starwars",
    "whatever",
    "dragon12",
    "michael1",
    "computer",
    "zaq12wsx",
    "master12",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_djangos_validators() {
        assert!(
            validate_password("a sensible passphrase", "alice", "alice@example.com").is_empty()
        );
        assert_eq!(validate_password("short", "bob", "").len(), 1);
        assert!(!validate_password("12345678901", "bob", "").is_empty());
        assert!(!validate_password("alice-is-great", "alice", "").is_empty());
        assert!(!validate_password("Password", "bob", "").is_empty());
        assert!(!validate_password(&"x".repeat(129), "bob", "").is_empty());
    }

    #[test]
    fn usernames_and_emails_are_checked() {
        assert!(validate_username("alice.b+c@d-e_f").is_empty());
        assert!(validate_username("ｊｏｓé").is_empty());
        assert!(!validate_username("has space").is_empty());
        assert!(!validate_username(&"a".repeat(151)).is_empty());
        assert!(validate_email("").is_empty());
        assert!(validate_email("a@example.com").is_empty());
        for bad in ["a", "a@b", "@b.c", "a@b@c.d", "a b@c.d", "a@.com"] {
            assert!(!validate_email(bad).is_empty(), "{bad}");
        }
    }
}
