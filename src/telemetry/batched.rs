//! A log writer that gathers lines in memory and has one thread write them out in batches.
//!
//! Writing each access-log line with its own `write(2)`, or handing it to a thread that is woken
//! for it, costs a system call and often a context switch per request: at tens of thousands of
//! requests a second on two cores, that was a fifth of the server's time. Here a logging request
//! appends its line under a mutex (a copy, no system call, no wake-up); the writer thread wakes on
//! a timer, or early when a large batch waits, and writes everything in one call. Lines are never
//! dropped: past `limit` bytes waiting, a logging request waits for the writer.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in memory before it is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);

/// Lines waiting to be written, shared by every logging thread and the writer thread.
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer early (a large batch, or closing).
    flush_now: Condvar,
    /// Wakes logging threads waiting for room.
    drained: Condvar,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A thread that panicked while appending left whole lines or none: still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handle `tracing_subscriber` writes through; cheap to clone.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it has written every waiting line.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer of `out` that holds at most about `limit` bytes of waiting lines, and the guard that
/// writes out the rest when the process ends.
pub fn batched<W: Write + Send + 'static>(out: W, limit: usize) -> (BatchedWriter, WriterGuard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            bytes: Vec::with_capacity(64 * 1024),
            closed: false,
        }),
        flush_now: Condvar::new(),
        drained: Condvar::new(),
        limit,
    });
    let thread = std::thread::Builder::new()
        .name("jwtd-log".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, out)
        })
        .expect("the log writer thread starts");
    (
        BatchedWriter {
            shared: shared.clone(),
        },
        WriterGuard {
            shared,
            thread: Some(thread),
        },
    )
}

/// The writer thread: every `FLUSH_INTERVAL` (or when woken), takes what waits and writes it.
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let closed = {
            let mut pending = shared.lock();
            // Waits even when lines are there: writing as soon as one arrives would be a
            // system call per line again under load.
            if !pending.closed && pending.bytes.len() < shared.limit / 2 {
                pending = shared
                    .flush_now
                    .wait_timeout(pending, FLUSH_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.closed
        };
        shared.drained.notify_all();
        if !batch.is_empty() {
            // Nowhere to report a failing stderr; the lines are lost, the service goes on.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        if closed && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Write for &BatchedWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.shared.lock();
        while pending.bytes.len() >= self.shared.limit && !pending.closed {
            self.shared.flush_now.notify_one();
            pending = self
                .shared
                .drained
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        pending.bytes.extend_from_slice(line);
        if pending.bytes.len() >= self.shared.limit / 2 {
            self.shared.flush_now.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = &'a BatchedWriter;

    fn make_writer(&'a self) -> &'a BatchedWriter {
        self
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.flush_now.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer thread wrote, and how many writes it took.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorded {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut recorded = self.0.lock().unwrap();
            recorded.0.extend_from_slice(bytes);
            recorded.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_from_every_thread_is_written_whole_in_few_writes_by_the_guards_drop() {
        let out = Recorded::default();
        // A small limit, so logging threads also wait for room.
        let (writer, guard) = batched(out.clone(), 4096);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        (&writer)
                            .write_all(format!("t{t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = out.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let own: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|line| line.starts_with(&format!("t{t} ")))
                .collect();
            let expected: Vec<String> = (0..5000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(own, expected, "thread {t}'s lines, in order");
        }
        assert!(writes < 20_000 / 4, "{writes} writes for 20,000 lines");
    }
}
