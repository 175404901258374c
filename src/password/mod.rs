//! Password hashing with argon2id on a few dedicated threads, at most one hash per thread, so
//! logins can never starve the rest of the server; unknown users still cost a full verify.
//!
//! Here: [`Passwords`], what the rest of jwtd calls, with its slots and queue timeout. Argon2id
//! itself (parameters, PHC strings, checking and rehashing) is in `hashing`, the threads that
//! run the hashes in `threads`, and their working memory in `memory`.

mod hashing;
mod memory;
mod threads;

use std::sync::Arc;
use std::time::Duration;

use argon2::{Block, Params};
use tokio::sync::Semaphore;

use crate::config::PasswordSettings;
use crate::outage::Outage;
use hashing::{argon2_params, hash_now, unmatchable_hash, verify_now};
use threads::HashingThreads;

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

/// A busy queue is a flood of hashes (503), anything else a failure of ours (500).
impl From<PasswordError> for Outage {
    fn from(err: PasswordError) -> Outage {
        match err {
            PasswordError::Busy(_) => Outage::busy(err),
            PasswordError::Hashing(_) => Outage::internal(err),
        }
    }
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
    /// One permit per hashing thread. A permit is held until its hash is done, even when the
    /// request that asked for it has gone, so no more hashes are ever queued than threads.
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    threads: HashingThreads,
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
        let dummy_hash = unmatchable_hash(&params)?;
        Ok(Passwords {
            inner: Arc::new(Inner {
                threads: HashingThreads::start(slots, params.block_count())?,
                params,
                slots: Arc::new(Semaphore::new(slots)),
                queue_timeout: settings.hash_queue_timeout,
                dummy_hash,
            }),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        self.on_hashing_thread(move |memory| hash_now(&params, &password, memory))
            .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, PasswordError> {
        let exists = stored.is_some();
        let params = self.inner.params.clone();
        let stored = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let verified = self
            .on_hashing_thread(move |memory| verify_now(&params, &password, &stored, memory))
            .await??;
        Ok(if exists { verified } else { Verified::Wrong })
    }

    /// Runs `work` on a hashing thread, with that thread's memory, once a slot is free.
    async fn on_hashing_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let timeout = self.inner.queue_timeout;
        let waiting = self.inner.threads.waiting();
        let slot = tokio::time::timeout(timeout, Arc::clone(&self.inner.slots).acquire_owned())
            .await
            .map_err(|_| PasswordError::Busy(timeout))?
            .expect("the semaphore is never closed");
        self.inner.threads.run(slot, waiting, work).await
    }
}

#[cfg(test)]
mod tests {
    use argon2::{Argon2, PasswordHash};

    use super::*;
    use crate::config::Argon2Settings;

    pub(super) fn settings(memory_kib: u32) -> PasswordSettings {
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
            passwords.verify("any password".into(), None).await.unwrap(),
            Verified::Wrong
        );
        assert!(
            dummy.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{dummy}"
        );
        // Checked against like any stored hash: a full hash, and no match.
        assert_eq!(
            passwords
                .verify("any password".into(), Some(dummy))
                .await
                .unwrap(),
            Verified::Wrong
        );
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crate() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let passwords = Passwords::new(&settings(1024)).unwrap();
        let ours = passwords.hash("pw12345678".into()).await.unwrap();
        let upstream = Argon2::from(argon2_params(&settings(1024).argon2).unwrap());
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(upstream.verify_password(b"pw12345678", &parsed).is_ok());
        assert!(upstream.verify_password(b"pw12345679", &parsed).is_err());
        let theirs = upstream.hash_password(b"pw12345678").unwrap().to_string();
        assert_eq!(
            passwords
                .verify("pw12345678".into(), Some(theirs))
                .await
                .unwrap(),
            Verified::Correct
        );
    }
}
