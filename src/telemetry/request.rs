//! The request a log line is written in: its id, method and path, on every line written while it
//! runs, as `request{id=… method="…" path=…}` (text) or `"span"` and `"spans"` (JSON), exactly
//! where and as a `tracing` span named `request` would put them.
//!
//! A task-local value rather than a span: a span costs its registration, the formatting of its
//! fields when it opens, and an enter and exit on every poll, about a tenth of a
//! `GET /health/live` (callgrind), although most requests write one line, their access line.
//! Only the coloured terminal format, which is tracing-subscriber's own, still takes a span
//! ([`request_spans`]).

use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use poem::http::Uri;

/// One request, as its log lines name it.
pub struct RequestScope {
    pub id: String,
    pub method: &'static str,
    /// Its path is logged, never its query: a query string could carry something secret.
    pub uri: Uri,
}

tokio::task_local! {
    static CURRENT: Arc<RequestScope>;
}

static REQUEST_SPANS: AtomicBool = AtomicBool::new(false);

/// Whether requests must open a `tracing` span as well: when the installed formatter is one
/// that does not read [`RequestScope`] (the coloured one).
pub fn request_spans() -> bool {
    REQUEST_SPANS.load(Ordering::Relaxed)
}

pub(super) fn set_request_spans(wanted: bool) {
    REQUEST_SPANS.store(wanted, Ordering::Relaxed);
}

/// `work`, with every line it logs naming `scope`'s request.
pub fn within<F: Future>(scope: Arc<RequestScope>, work: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(scope, work)
}

/// As [`within`], for synchronous work.
pub fn within_sync<R>(scope: Arc<RequestScope>, work: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(scope, work)
}

/// `write` applied to the request this task is serving, if it is serving one.
pub(super) fn with_current<R>(write: impl FnOnce(&RequestScope) -> R) -> Option<R> {
    CURRENT.try_with(|scope| write(scope)).ok()
}

impl RequestScope {
    /// `request{id=… method="GET" path=/x}: `, as the plain text formatter writes a span
    /// with these fields (the id and the path as they are, the method quoted).
    pub(super) fn write_text(&self, out: &mut impl fmt::Write) -> fmt::Result {
        out.write_str("request{id=")?;
        out.write_str(&self.id)?;
        out.write_str(" method=\"")?;
        out.write_str(self.method)?;
        out.write_str("\" path=")?;
        out.write_str(self.uri.path())?;
        out.write_str("}: ")
    }

    /// `"span":{…},"spans":[{…}]`, as tracing-subscriber's JSON formatter writes the span.
    pub(super) fn write_json(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let mut span = String::with_capacity(96);
        span.write_str("{\"id\":")?;
        write_json_string(&mut span, &self.id)?;
        span.write_str(",\"method\":")?;
        write_json_string(&mut span, self.method)?;
        span.write_str(",\"path\":")?;
        write_json_string(&mut span, self.uri.path())?;
        span.write_str(",\"name\":\"request\"}")?;
        write!(out, "\"span\":{span},\"spans\":[{span}]")
    }
}

fn write_json_string(out: &mut String, text: &str) -> fmt::Result {
    let quoted = serde_json::to_string(text).map_err(|_| fmt::Error)?;
    out.write_str(&quoted)
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt::format::JsonFields;

    use super::*;
    use crate::telemetry::captured::Captured;
    use crate::telemetry::json::JsonLines;
    use crate::telemetry::plain::{PlainFields, PlainText};

    fn emit() {
        tracing::info!(target: "jwtd::access", operation = "verify_token", status = 200u16,
            micros = 41u64, "answered");
        tracing::warn!(error = %"store down", "inside");
    }

    /// A request as a span would have named it, the way observing one did before.
    fn in_span() {
        let span = tracing::info_span!("request", id = %"ab12", method = "POST",
            path = %"/api/token/verify/");
        span.in_scope(emit);
    }

    fn in_scope() {
        let scope = Arc::new(RequestScope {
            id: "ab12".into(),
            method: "POST",
            uri: "/api/token/verify/?secret=1".parse().unwrap(),
        });
        within_sync(scope, emit);
    }

    #[test]
    fn text_lines_name_the_request_as_its_span_did() {
        let (ours, theirs) = (Captured::default(), Captured::default());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(ours.writer())
            .event_format(PlainText)
            .fmt_fields(PlainFields)
            .finish();
        tracing::subscriber::with_default(subscriber, in_scope);
        let default = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(theirs.writer())
            .finish();
        tracing::subscriber::with_default(default, in_span);
        let ours = ours.lines_after_timestamps();
        assert_eq!(ours, theirs.lines_after_timestamps());
        assert_eq!(
            ours[0],
            " INFO request{id=ab12 method=\"POST\" path=/api/token/verify/}: jwtd::access: \
             answered operation=\"verify_token\" status=200 micros=41"
        );
        assert_eq!(ours.len(), 2);
    }

    #[test]
    fn json_lines_name_the_request_as_its_span_did() {
        let (ours, theirs) = (Captured::default(), Captured::default());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(ours.writer())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::default())
            .finish();
        tracing::subscriber::with_default(subscriber, in_scope);
        let default = tracing_subscriber::fmt()
            .json()
            .with_writer(theirs.writer())
            .finish();
        tracing::subscriber::with_default(default, in_span);
        let ours = ours.json_lines_after_timestamps();
        assert_eq!(ours, theirs.json_lines_after_timestamps());
        assert!(
            ours[0].ends_with(
                r#""target":"jwtd::access","span":{"id":"ab12","method":"POST","path":"/api/token/verify/","name":"request"},"spans":[{"id":"ab12","method":"POST","path":"/api/token/verify/","name":"request"}]}"#
            ),
            "{}",
            ours[0]
        );
        // Outside a request, a line is tracing-subscriber's own.
        let alone = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(alone.writer())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::default())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        assert!(alone.json_lines_after_timestamps()[0].ends_with(r#""target":"jwtd::access"}"#));
    }
}
