//! Password hashing with argon2id on blocking threads, at most N at once so logins can never
//! starve the rest of the server; unknown users still cost a full verify.

use std::sync::Arc;
use std::time::Duration;

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, Version, password_hash,
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
    memory: MemoryPool,
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
        let memory = MemoryPool::new(params.block_count());
        let dummy_hash = hash_now(
            &params,
            "jwtd dummy password for unknown users",
            &mut memory.take(),
        )?;
        Ok(Passwords {
            inner: Arc::new(Inner {
                params,
                slots: Semaphore::new(slots),
                queue_timeout: settings.hash_queue_timeout,
                memory,
                dummy_hash,
            }),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.on_blocking_slot(move |inner, memory| hash_now(&inner.params, &password, memory))
            .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no user.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, PasswordError> {
        let exists = stored.is_some();
        let verified = self
            .on_blocking_slot(move |inner, memory| {
                let stored = stored.as_deref().unwrap_or(&inner.dummy_hash);
                verify_now(&inner.params, &password, stored, memory)
            })
            .await??;
        Ok(if exists { verified } else { Verified::Wrong })
    }

    /// Runs `work` on a blocking thread once a hashing slot is free, with that slot's memory.
    async fn on_blocking_slot<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner, &mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let timeout = self.inner.queue_timeout;
        let _slot = tokio::time::timeout(timeout, self.inner.slots.acquire())
            .await
            .map_err(|_| PasswordError::Busy(timeout))?
            .expect("the semaphore is never closed");
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner, &mut inner.memory.take()))
            .await
            .map_err(|e| PasswordError::Hashing(format!("hashing task failed: {e}")))
    }
}

/// Argon2's working memory (19 MiB at the default parameters), kept for reuse. Allocating it
/// per hash leaves freed blocks in glibc's per-thread arenas: a burst of logins on tokio's
/// blocking threads once held 300-480 MB. The slot semaphore bounds how many are ever taken at
/// once, so the pool never holds more than one block per slot.
struct MemoryPool {
    block_count: usize,
    free: Mutex<Vec<Vec<Block>>>,
}

impl MemoryPool {
    fn new(block_count: usize) -> MemoryPool {
        MemoryPool {
            block_count,
            free: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> PooledMemory<'_> {
        let blocks = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| vec![Block::default(); self.block_count]);
        PooledMemory { pool: self, blocks }
    }
}

/// Memory taken from the pool; it goes back when dropped, even if hashing panicked.
struct PooledMemory<'a> {
    pool: &'a MemoryPool,
    blocks: Vec<Block>,
}

impl Deref for PooledMemory<'_> {
    type Target = [Block];
    fn deref(&self) -> &[Block] {
        &self.blocks
    }
}

impl DerefMut for PooledMemory<'_> {
    fn deref_mut(&mut self) -> &mut [Block] {
        &mut self.blocks
    }
}

impl Drop for PooledMemory<'_> {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        self.pool
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(blocks);
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

fn hashing_error(err: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hashing(err.to_string())
}

/// A new PHC string (`$argon2id$v=19$m=…`) for `password` with a fresh 128-bit salt.
fn hash_now(
    params: &Params,
    password: &str,
    memory: &mut [Block],
) -> Result<String, PasswordError> {
    let salt = password_hash::try_generate_salt().map_err(hashing_error)?;
    let mut output = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, memory)
        .map_err(hashing_error)?;
    let hash = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(hashing_error)?,
        salt: Some(Salt::new(&salt).map_err(hashing_error)?),
        hash: Some(Output::new(&output).map_err(hashing_error)?),
    };
    Ok(hash.to_string())
}

fn verify_now(
    params: &Params,
    password: &str,
    stored: &str,
    memory: &mut [Block],
) -> Result<Verified, PasswordError> {
    // An unparsable stored hash cannot match anything; it is not the caller's fault.
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Ok(Verified::Wrong);
    };
    if recompute_matches(&parsed, password, memory) != Some(true) {
        return Ok(Verified::Wrong);
    }
    if uses_params(&parsed, params) {
        Ok(Verified::Correct)
    } else {
        Ok(Verified::CorrectRehashed(hash_now(
            params, password, memory,
        )?))
    }
}

/// Hashes `password` with the stored hash's own algorithm, version, parameters and salt, and
/// compares in constant time (`Output`'s equality). `None` when the stored hash is unusable.
fn recompute_matches(stored: &PasswordHash, password: &str, memory: &mut [Block]) -> Option<bool> {
    let (salt, expected) = (stored.salt.as_ref()?, stored.hash.as_ref()?);
    let algorithm = Algorithm::try_from(stored.algorithm.as_str()).ok()?;
    let version = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let params = Params::try_from(stored).ok()?;
    let argon2 = Argon2::new(algorithm, version.ok()?, params.clone());
    let mut output = vec![0u8; expected.len()];
    let computed = if params.block_count() == memory.len() {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, memory)
    } else {
        // A hash from other parameters (about to be upgraded): its own, one-off memory.
        argon2.hash_password_into(password.as_bytes(), salt, &mut output)
    };
    computed.ok()?;
    Some(Output::new(&output).ok()? == *expected)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_reused_one_block_per_slot() {
        let mut two_slots = settings(1024);
        two_slots.max_concurrent_hashes = 2;
        let passwords = Passwords::new(&two_slots).unwrap();
        let hashes = (0..16).map(|n| passwords.hash(format!("password {n}")));
        for hash in futures::future::join_all(hashes).await {
            hash.unwrap();
        }
        let pooled = passwords.inner.memory.free.lock().unwrap().len();
        assert!((1..=2).contains(&pooled), "{pooled} blocks kept");
    }
}
