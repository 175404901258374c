//! JSON lines: tracing-subscriber's own, with the request a line was written in added as the
//! span it would have been (`"span"` and `"spans"`, last, as that formatter puts them).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::request::with_current;

pub struct JsonLines {
    inner: Format<Json>,
}

impl Default for JsonLines {
    fn default() -> JsonLines {
        JsonLines {
            inner: format::format().json(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let in_request = ctx.lookup_current().is_none() && with_current(|_| ()).is_some();
        if !in_request {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        // `{…}\n`: the object reopened for the span.
        let object = line.trim_end().strip_suffix('}').ok_or(fmt::Error)?;
        writer.write_str(object)?;
        writer.write_char(',')?;
        with_current(|request| request.write_json(&mut writer)).ok_or(fmt::Error)??;
        writer.write_str("}\n")
    }
}
