//! Password hashing with argon2id on blocking threads, at most N at once so logins can never
//! starve the rest of the server; unknown users still cost a full verify.

use std::sync::Arc;
use std::time::Duration;

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier,
    Version,
};
use tokio::sync::Semaphore;

use crate::config::{Argon2Settings, PasswordSettings};

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords are refused before hashing: hashing cost must not be the attacker's choice.
pub const MAX_PASSWORD_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("every password-hashing slot stayed busy for {0:?}")]
    Busy(Duration),
    #[error("argon2: {0}")]
    Hashing(String),
}

/// The result of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Wrong,
    Correct,
    /// Correct, and the stored hash used other parameters: store this one instead.
    CorrectRehashed(String),
}

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    slots: Semaphore,
    queue_timeout: Duration,
    /// Verified against when the user does not exist, so timing does not tell who does.
    dummy_hash: String,
}

impl Passwords {
    pub fn new(settings: &PasswordSettings) -> Result<Passwords, PasswordError> {
        let params = argon2_params(&settings.argon2)?;
        let slots = match settings.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let dummy_hash = hash_now(&params, "jwtd dummy password for unknown users")?;
        Ok(Passwords {
            inner: Arc::new(Inner {
                params,
                slots: Semaphore::new(slots),
                queue_timeout: settings.hash_queue_timeout,
                dummy_hash,
            }),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        self.on_blocking_slot(move || hash_now(&params, &password))
            .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, PasswordError> {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let params = self.inner.params.clone();
        let verified = self
            .on_blocking_slot(move || verify_now(&params, &password, &stored))
            .await??;
        Ok(if exists { verified } else { Verified::Wrong })
    }

    async fn on_blocking_slot<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let timeout = self.inner.queue_timeout;
        let _slot = tokio::time::timeout(timeout, self.inner.slots.acquire())
            .await
            .map_err(|_| PasswordError::Busy(timeout))?
            .expect("the semaphore is never closed");
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PasswordError::Hashing(format!("hashing task failed: {e}")))
    }
}

fn argon2_params(settings: &Argon2Settings) -> Result<Params, PasswordError> {
    Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        None,
    )
    .map_err(|e| PasswordError::Hashing(format!("password.argon2 parameters: {e}")))
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_now(params: &Params, password: &str) -> Result<String, PasswordError> {
    hasher(params)
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

fn verify_now(params: &Params, password: &str, stored: &str) -> Result<Verified, PasswordError> {
    // An unparsable stored hash cannot match anything; it is not the caller's fault.
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Ok(Verified::Wrong);
    };
    if hasher(params)
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Ok(Verified::Wrong);
    }
    if uses_params(&parsed, params) {
        Ok(Verified::Correct)
    } else {
        Ok(Verified::CorrectRehashed(hash_now(params, password)?))
    }
}

fn uses_params(hash: &PasswordHash, wanted: &Params) -> bool {
    hash.algorithm.as_str() == ARGON2ID_IDENT.as_str()
        && hash.version == Some(Version::V0x13.into())
        && Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() == wanted.m_cost()
                && p.t_cost() == wanted.t_cost()
                && p.p_cost() == wanted.p_cost()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory_kib: u32) -> PasswordSettings {
        PasswordSettings {
            argon2: Argon2Settings {
                memory_kib,
                iterations: 1,
                parallelism: 1,
            },
            max_concurrent_hashes: 1,
            hash_queue_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let passwords = Passwords::new(&settings(1024)).unwrap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert_eq!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verified::Correct
        );
        assert_eq!(
            passwords
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap(),
            Verified::Wrong
        );
    }

    #[tokio::test]
    async fn old_parameters_are_upgraded_on_a_correct_password() {
        let old = Passwords::new(&settings(1024))
            .unwrap()
            .hash("pw12345678".into())
            .await
            .unwrap();
        let current = Passwords::new(&settings(2048)).unwrap();
        let Verified::CorrectRehashed(new) = current
            .verify("pw12345678".into(), Some(old))
            .await
            .unwrap()
        else {
            panic!("expected a rehash");
        };
        assert!(new.contains("m=2048"), "{new}");
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let passwords = Passwords::new(&settings(1024)).unwrap();
        let dummy = passwords.inner.dummy_hash.clone();
        assert_eq!(
            passwords
                .verify("jwtd dummy password for unknown users".into(), None)
                .await
                .unwrap(),
            Verified::Wrong
        );
        assert!(dummy.starts_with("$argon2id$"));
    }
}
