//! Log output: `tracing` lines, as text or JSON, written to stderr by a thread of their own.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Lines waiting for the writer thread at most; past that a logging request waits for room
/// (lines are never dropped).
const BUFFERED_LINES: usize = 64 * 1024;

/// Keeps the writer thread; dropping it writes out what is still buffered. Hold it until the
/// process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber; `RUST_LOG` overrides `log.level`. Colours only on a terminal:
/// escape codes are costly to format per line and useless in a file or a log collector.
pub fn init(settings: &LogSettings) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(false)
        .thread_name("jwtd-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let installed = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already installed (a test process): the writer just made is not used.
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}
