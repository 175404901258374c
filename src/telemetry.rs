//! Log output: `tracing` lines, as text (`plain` when not on a terminal) or JSON, written to
//! stderr in batches by a thread of their own (`batched`).

mod batched;
#[cfg(test)]
mod captured;
mod json;
mod plain;
pub mod request;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Bytes of lines waiting for the writer thread at most (some ten thousand lines); past that a
/// logging request waits for room (lines are never dropped).
const BUFFERED_BYTES: usize = 4 * 1024 * 1024;

/// Keeps the writer thread; dropping it writes out what is still buffered. Hold it until the
/// process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<batched::WriterGuard>,
}

/// Installs the global subscriber; `RUST_LOG` overrides `log.level`. Colours only on a terminal:
/// escape codes are costly to format per line and useless in a file or a log collector.
pub fn init(settings: &LogSettings) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = batched::batched(std::io::stderr(), BUFFERED_BYTES);
    let colours = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(writer);
    let installed = match settings.format {
        LogFormat::Json => builder
            .json()
            .event_format(json::JsonLines::default())
            .try_init(),
        LogFormat::Text if colours => {
            request::set_request_spans(true);
            builder.try_init()
        }
        LogFormat::Text => builder
            .event_format(plain::PlainText)
            .fmt_fields(plain::PlainFields)
            .try_init(),
    };
    // Already installed (a test process): the writer just made is not used.
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}
