//! The hashing threads: threads that do nothing but hash, at most one hash each, at a lower
//! priority than the request threads. Each keeps its argon2 working memory while hashes are
//! waiting, and gives it back as soon as none is.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::Block;
use tokio::sync::oneshot;

use super::memory::HashMemory;
use super::{PasswordError, Slot};

/// The nice value of the hashing threads. Under a flood of logins the scheduler then gives the
/// request threads (verify, refresh) the CPU first, and the hashes take whatever is left: one
/// hash costs as much CPU as thousands of verifies. Linux lets a thread lower its own priority
/// but not raise it again, so it is set once, when the thread starts.
const HASHING_NICE: i32 = 10;

type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// How long a thread keeps its memory for a hash that was waiting when its own ended: that hash
/// may have gone to another thread, or its caller away.
const MEMORY_GRACE: Duration = Duration::from_secs(1);

/// Threads that do nothing but hash, at most one hash each. A thread keeps its argon2 working
/// memory (see `memory`) while more hashes are waiting, so a flood of logins maps it once, and
/// gives it back as soon as none is: a server that is not hashing does not hold 19 MiB per
/// thread. The threads end when `Passwords` is dropped.
pub(super) struct HashingThreads {
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
pub(super) struct Waiting(Arc<Shared>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashingThreads {
    pub(super) fn start(count: usize, block_count: usize) -> Result<HashingThreads, PasswordError> {
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

    pub(super) fn waiting(&self) -> Waiting {
        self.shared.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(Arc::clone(&self.shared))
    }

    pub(super) async fn run<T: Send + 'static>(
        &self,
        slot: Slot,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::tests::{hold_a_slot, settings};
    use crate::password::{HashPurpose, Passwords};

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority() {
        let passwords = Passwords::new(&settings(1024)).unwrap();
        // SAFETY: getpriority only reads its integer arguments.
        let nice = passwords
            .on_hashing_thread(HashPurpose::Check, |_| unsafe {
                libc::getpriority(libc::PRIO_PROCESS, 0)
            })
            .await
            .unwrap();
        // SAFETY: as above.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, (ours + HASHING_NICE).min(19));
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
        let (held, release) = hold_a_slot(&passwords, HashPurpose::Check).await;
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
        let (first, release) = hold_a_slot(&passwords, HashPurpose::Check).await;
        first.abort();
        let _ = first.await;
        let waited = passwords.hash("password 1".into()).await;
        assert!(matches!(waited, Err(PasswordError::Busy(_))), "{waited:?}");
        release.send(()).unwrap();
        passwords.hash("password 2".into()).await.unwrap();
    }
}
