//! Password hashing with argon2id on a few dedicated threads, at most one hash per thread, so
//! logins can never starve the rest of the server; unknown users still cost a full verify.

mod memory;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, Version, password_hash,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::config::{Argon2Settings, PasswordSettings};
use crate::outage::Outage;
use memory::HashMemory;

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords are refused before hashing: hashing cost must not be the attacker's choice.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// The nice value of the hashing threads. Under a flood of logins the scheduler then gives the
/// request threads (verify, refresh) the CPU first, and the hashes take whatever is left: one
/// hash costs as much CPU as thousands of verifies. Linux lets a thread lower its own priority
/// but not raise it again, so it is set once, when the thread starts.
const HASHING_NICE: i32 = 10;

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

type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// How long a thread keeps its memory for a hash that was waiting when its own ended: that hash
/// may have gone to another thread, or its caller away.
const MEMORY_GRACE: Duration = Duration::from_secs(1);

/// Threads that do nothing but hash, at most one hash each. A thread keeps its argon2 working
/// memory (see `memory`) while more hashes are waiting, so a flood of logins maps it once, and
/// gives it back as soon as none is: a server that is not hashing does not hold 19 MiB per
/// thread. The threads end when `Passwords` is dropped.
struct HashingThreads {
    jobs: flume::Sender<Job>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Hashes asked for and not yet started: waiting for a slot, or queued for a thread.
    waiting: AtomicUsize,
    /// Working memories mapped since the start, and those mapped now.
    mapped_total: AtomicUsize,
    mapped_now: AtomicUsize,
}

/// One waiting hash, counted in [`Shared::waiting`] until it starts or its caller gives up.
struct Waiting(Arc<Shared>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashingThreads {
    fn start(count: usize, block_count: usize) -> Result<HashingThreads, PasswordError> {
        let (jobs, queue) = flume::unbounded::<Job>();
        let shared = Arc::new(Shared::default());
        for n in 0..count {
            let (queue, shared) = (queue.clone(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name(format!("jwtd-argon2-{n}"))
                .spawn(move || hash_forever(&queue, &shared, block_count))
                .map_err(|e| PasswordError::Hashing(format!("starting a hashing thread: {e}")))?;
        }
        Ok(HashingThreads { jobs, shared })
    }

    fn waiting(&self) -> Waiting {
        self.shared.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(Arc::clone(&self.shared))
    }

    async fn run<T: Send + 'static>(
        &self,
        slot: OwnedSemaphorePermit,
        waiting: Waiting,
        work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            drop(waiting);
            let _ = answer.send(work(memory));
            drop(slot);
        });
        let stopped = || PasswordError::Hashing("the hashing thread stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())
    }
}

fn hash_forever(queue: &flume::Receiver<Job>, shared: &Shared, block_count: usize) {
    lower_own_priority();
    let mut memory: Option<HashMemory> = None;
    while let Some(job) = next_job(queue, shared, &mut memory) {
        if memory.is_none() {
            memory = shared.map(block_count);
        }
        // Unmapped (logged): the job is dropped unrun, its caller gets an error.
        let Some(held) = memory.as_mut() else {
            continue;
        };
        // A panicking hash answers its caller with an error (its sender is dropped); the
        // thread, and its slot, stay.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(held.blocks())));
        if shared.waiting.load(Ordering::Acquire) == 0 {
            shared.release(&mut memory);
        }
    }
}

/// The next job, or `None` once `Passwords` is gone. Memory still held is given back if no job
/// comes within [`MEMORY_GRACE`].
fn next_job(
    queue: &flume::Receiver<Job>,
    shared: &Shared,
    memory: &mut Option<HashMemory>,
) -> Option<Job> {
    if memory.is_some() {
        match queue.recv_timeout(MEMORY_GRACE) {
            Ok(job) => return Some(job),
            Err(flume::RecvTimeoutError::Disconnected) => return None,
            Err(flume::RecvTimeoutError::Timeout) => shared.release(memory),
        }
    }
    queue.recv().ok()
}

impl Shared {
    fn map(&self, block_count: usize) -> Option<HashMemory> {
        let mapped = HashMemory::map(block_count)
            .inspect_err(|err| tracing::error!(error = %err, "mapping argon2 memory failed"))
            .ok()?;
        self.mapped_total.fetch_add(1, Ordering::Relaxed);
        self.mapped_now.fetch_add(1, Ordering::Relaxed);
        Some(mapped)
    }

    fn release(&self, memory: &mut Option<HashMemory>) {
        if memory.take().is_some() {
            self.mapped_now.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_own_priority() {
    // On Linux PRIO_PROCESS with 0 names the calling thread, not the whole process.
    // SAFETY: setpriority only reads its integer arguments.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICE) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not lower the priority of a password-hashing thread"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_own_priority() {}

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
    phc_string(params, &salt, &output)
}

/// A well-formed hash that no password matches: a random salt and a random output. Checking a
/// password against it costs a full hash, like a real one, and computing it costs nothing (nor
/// 19 MiB of working memory at startup).
fn unmatchable_hash(params: &Params) -> Result<String, PasswordError> {
    let salt = password_hash::try_generate_salt().map_err(hashing_error)?;
    let mut output = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    aws_lc_rs::rand::fill(&mut output).map_err(|_| hashing_error("no system randomness"))?;
    phc_string(params, &salt, &output)
}

/// `$argon2id$v=19$m=…,t=…,p=…$<salt>$<output>`
fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> Result<String, PasswordError> {
    let hash = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(hashing_error)?,
        salt: Some(Salt::new(salt).map_err(hashing_error)?),
        hash: Some(Output::new(output).map_err(hashing_error)?),
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority() {
        let passwords = Passwords::new(&settings(1024)).unwrap();
        // SAFETY: getpriority only reads its integer arguments.
        let nice = passwords
            .on_hashing_thread(|_| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
            .await
            .unwrap();
        // SAFETY: as above.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, (ours + HASHING_NICE).min(19));
    }

    /// Starts a job that holds a slot (and its thread) until told to end; returns once it runs.
    async fn hold_a_slot(
        passwords: &Passwords,
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
                    .on_hashing_thread(move |_| {
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

    /// Waits (a real thread is releasing) until no working memory is mapped.
    async fn until_unmapped(passwords: &Passwords) {
        let shared = &passwords.inner.threads.shared;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while shared.mapped_now.load(Ordering::Relaxed) > 0 {
            assert!(std::time::Instant::now() < deadline, "memory still mapped");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn memory_is_kept_while_hashes_wait_and_given_back_after() {
        let passwords = Passwords::new(&settings(1024)).unwrap();
        let shared = Arc::clone(&passwords.inner.threads.shared);
        passwords.hash("password 0".into()).await.unwrap();
        until_unmapped(&passwords).await;
        assert_eq!(shared.mapped_total.load(Ordering::Relaxed), 1);

        // Eight queued on one slot behind a held job: each ends with others waiting, so the
        // memory mapped for the held job serves them all, and is given back after the last.
        let (held, release) = hold_a_slot(&passwords).await;
        let burst: Vec<_> = (1..=8)
            .map(|n| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.hash(format!("password {n}")).await })
            })
            .collect();
        while shared.waiting.load(Ordering::Acquire) < 8 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        for hashed in futures::future::join_all(burst).await {
            hashed.unwrap().unwrap();
        }
        until_unmapped(&passwords).await;
        // Nine jobs, one mapping (two if a hand-over outlasted MEMORY_GRACE on a loaded machine).
        let mapped = shared.mapped_total.load(Ordering::Relaxed) - 1;
        assert!((1..=2).contains(&mapped), "{mapped} mappings");
        assert_eq!(shared.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_slot_stays_taken_until_its_hash_ends_even_if_the_caller_left() {
        let mut short_queue = settings(1024);
        short_queue.hash_queue_timeout = Duration::from_millis(50);
        let passwords = Passwords::new(&short_queue).unwrap();
        let (first, release) = hold_a_slot(&passwords).await;
        first.abort();
        let _ = first.await;
        let waited = passwords.hash("password 1".into()).await;
        assert!(matches!(waited, Err(PasswordError::Busy(_))), "{waited:?}");
        release.send(()).unwrap();
        passwords.hash("password 2".into()).await.unwrap();
    }
}
