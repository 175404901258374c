//! Password hashing with argon2id on a few dedicated threads, at most one hash per thread, so
//! logins can never starve the rest of the server; unknown users still cost a full verify.
//! Hashes of new passwords (registration, password change, the CLI) may hold only part of the
//! slots, so they can never starve logins either.
//!
//! Here: [`Passwords`], what the rest of jwtd calls, with its slots and queue timeout. Argon2id
//! itself (parameters, PHC strings, checking and rehashing) is in `hashing`, the threads that
//! run the hashes in `threads`, and their working memory in `memory`.

mod hashing;
mod memory;
mod threads;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::{Block, Params};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// What a hash is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPurpose {
    /// Checking a password: a login, or the current password of a password change.
    Check,
    /// Hashing a new password: registration, password change, `jwtd users`.
    NewPassword,
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
    /// Taken by a new password's hash before it queues for a slot, and held with it: at most
    /// this many of them are ever running or ahead of a login in the (first come, first served)
    /// queue. Fewer than the slots when there are two or more, so a flood of registrations
    /// always leaves logins a slot; with one slot a login waits for at most one of them.
    new_passwords: Arc<Semaphore>,
    queue_timeout: Duration,
    threads: HashingThreads,
    /// Verified against when the user does not exist, so timing does not tell who does.
    dummy_hash: String,
    /// Hashes asked for since the start: checks, then new passwords.
    asked: [AtomicU64; 2],
}

/// What a hash holds until it ends: its slot, and a new password's permit.
pub(super) struct Slot {
    // Fields drop in order: the slot goes to the next in its queue (a login, say) before the
    // permit lets another new password queue behind it.
    _slot: OwnedSemaphorePermit,
    _new_password: Option<OwnedSemaphorePermit>,
}

impl Passwords {
    pub fn new(settings: &PasswordSettings) -> Result<Passwords, PasswordError> {
        let params = argon2_params(&settings.argon2)?;
        let slots = match settings.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let new_passwords = new_password_slots(settings.max_new_password_hashes, slots);
        let dummy_hash = unmatchable_hash(&params)?;
        Ok(Passwords {
            inner: Arc::new(Inner {
                threads: HashingThreads::start(slots, params.block_count())?,
                params,
                slots: Arc::new(Semaphore::new(slots)),
                new_passwords: Arc::new(Semaphore::new(new_passwords)),
                queue_timeout: settings.hash_queue_timeout,
                dummy_hash,
                asked: Default::default(),
            }),
        })
    }

    /// Hashes a new password, within the share of the slots new passwords may hold.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        let work = move |memory: &mut [Block]| hash_now(&params, &password, memory);
        self.on_hashing_thread(HashPurpose::NewPassword, work)
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
        let work = move |memory: &mut [Block]| verify_now(&params, &password, &stored, memory);
        let verified = self.on_hashing_thread(HashPurpose::Check, work).await??;
        Ok(if exists { verified } else { Verified::Wrong })
    }

    /// How many hashes for `purpose` were asked for since the start (tests, operators).
    pub fn asked(&self, purpose: HashPurpose) -> u64 {
        self.inner.asked[purpose as usize].load(Ordering::Relaxed)
    }

    /// Runs `work` on a hashing thread, with that thread's memory, once a slot is free.
    async fn on_hashing_thread<T: Send + 'static>(
        &self,
        purpose: HashPurpose,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        self.inner.asked[purpose as usize].fetch_add(1, Ordering::Relaxed);
        let timeout = self.inner.queue_timeout;
        let waiting = self.inner.threads.waiting();
        let slot = tokio::time::timeout(timeout, self.slot_for(purpose))
            .await
            .map_err(|_| PasswordError::Busy(timeout))?;
        self.inner.threads.run(slot, waiting, work).await
    }

    /// A slot; for a new password, its permit first.
    async fn slot_for(&self, purpose: HashPurpose) -> Slot {
        let new_password = match purpose {
            HashPurpose::Check => None,
            HashPurpose::NewPassword => Some(acquire(&self.inner.new_passwords).await),
        };
        Slot {
            _slot: acquire(&self.inner.slots).await,
            _new_password: new_password,
        }
    }
}

async fn acquire(semaphore: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    Arc::clone(semaphore)
        .acquire_owned()
        .await
        .expect("the semaphore is never closed")
}

/// How many of `slots` new passwords may hold: `configured` (0: half), at least one, and never
/// all of them when there are two or more.
fn new_password_slots(configured: usize, slots: usize) -> usize {
    let wanted = match configured {
        0 => slots / 2,
        n => n,
    };
    wanted.min(slots.saturating_sub(1)).max(1)
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
            max_new_password_hashes: 0,
            hash_queue_timeout: Duration::from_secs(5),
        }
    }

    /// Starts a job for `purpose` that holds a slot (and its thread) until told to end;
    /// returns once it runs.
    pub(super) async fn hold_a_slot(
        passwords: &Passwords,
        purpose: HashPurpose,
    ) -> (
        tokio::task::JoinHandle<Result<(), PasswordError>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started, has_started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let held = tokio::spawn({
            let passwords = passwords.clone();
            async move {
                passwords
                    .on_hashing_thread(purpose, move |_| {
                        started.send(()).unwrap();
                        released.recv().unwrap();
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || has_started.recv().unwrap())
            .await
            .unwrap();
        (held, release)
    }

    #[test]
    fn new_passwords_get_part_of_the_slots_and_never_all_of_two_or_more() {
        // (configured, slots) → the share of new passwords.
        for (configured, slots, share) in [
            (0, 1, 1),
            (0, 2, 1),
            (0, 3, 1),
            (0, 4, 2),
            (0, 16, 8),
            (3, 4, 3),
            (4, 4, 3),
            (9, 2, 1),
            (5, 1, 1),
        ] {
            assert_eq!(
                new_password_slots(configured, slots),
                share,
                "{configured} of {slots}"
            );
        }
    }

    #[tokio::test]
    async fn a_check_takes_the_slot_new_passwords_may_not() {
        let mut two_slots = settings(1024);
        two_slots.max_concurrent_hashes = 2;
        two_slots.hash_queue_timeout = Duration::from_millis(50);
        let passwords = Passwords::new(&two_slots).unwrap();
        let (held, release) = hold_a_slot(&passwords, HashPurpose::NewPassword).await;
        // A slot is free, but not to a second new password.
        let waited = passwords.hash("password 1".into()).await;
        assert!(matches!(waited, Err(PasswordError::Busy(_))), "{waited:?}");
        let checked = passwords.verify("password 2".into(), None).await;
        assert_eq!(checked.unwrap(), Verified::Wrong);
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        passwords.hash("password 3".into()).await.unwrap();
        assert_eq!(passwords.asked(HashPurpose::NewPassword), 3);
        assert_eq!(passwords.asked(HashPurpose::Check), 1);
    }

    #[tokio::test]
    async fn with_one_slot_a_check_waits_for_at_most_one_queued_new_password() {
        let passwords = Passwords::new(&settings(1024)).unwrap();
        let (held, release) = hold_a_slot(&passwords, HashPurpose::Check).await;
        let hashed = Arc::new(AtomicU64::new(0));
        let flood: Vec<_> = (0..6)
            .map(|n| {
                let (passwords, hashed) = (passwords.clone(), Arc::clone(&hashed));
                tokio::spawn(async move {
                    passwords.hash(format!("password {n}")).await.unwrap();
                    hashed.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        // One runtime thread: once counted, each hash has queued (it does so in the same poll).
        while passwords.asked(HashPurpose::NewPassword) < 6 {
            tokio::task::yield_now().await;
        }
        let check = tokio::spawn({
            let (passwords, hashed) = (passwords.clone(), Arc::clone(&hashed));
            async move {
                let verified = passwords.verify("password x".into(), None).await;
                (verified, hashed.load(Ordering::Relaxed))
            }
        });
        tokio::task::yield_now().await;
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let (verified, hashed_first) = check.await.unwrap();
        assert_eq!(verified.unwrap(), Verified::Wrong);
        assert!(
            hashed_first <= 1,
            "{hashed_first} new passwords hashed first"
        );
        for hash in flood {
            hash.await.unwrap();
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
