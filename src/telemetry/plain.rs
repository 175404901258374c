//! The text log line without colours, written exactly as `tracing_subscriber`'s default
//! (`2026-12-05T21:36:59.394252Z  INFO request{id=… method="GET" path=/x}: jwtd::access:
//! answered operation="…" status=200 micros=41`), terminal escapes in messages and errors
//! escaped alike, but more cheaply: the default formatters paint every part and every field
//! name through `nu_ansi_term` even with colours off, and format the whole timestamp for each
//! line, together about a sixth of a `GET /health/live` (callgrind).

use std::cell::RefCell;
use std::error::Error;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::request::with_current;

pub struct PlainText;

impl<S, N> FormatEvent<S, N> for PlainText
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
        write_timestamp(&mut writer, SystemTime::now())?;
        let meta = event.metadata();
        writer.write_str(level_label(meta.level()))?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        } else if let Some(written) = with_current(|request| request.write_text(&mut writer)) {
            written?;
        }
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Fields as the default field formatter writes them without colours: the message first as it
/// is, then `name=value` with each value's `Debug`, separated by spaces.
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // Printable ASCII needs no escaping, as a message or (but for quotes and backslashes)
        // as a quoted `Debug` string: written as it is, without the formatting machinery.
        let plain = value.bytes().all(|b| (b' '..=b'~').contains(&b));
        match field.name() {
            "message" if plain => self.write_field(field, |writer| writer.write_str(value)),
            "message" => self.record_debug(field, &format_args!("{value}")),
            _ if plain && !value.contains(['"', '\\']) => self.write_field(field, |writer| {
                writer.write_char('"')?;
                writer.write_str(value)?;
                writer.write_char('"')
            }),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write_field(field, |writer| write_decimal(writer, value, false));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write_field(field, |writer| {
            write_decimal(writer, value.unsigned_abs(), value < 0)
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        let message = Escaped(format_args!("{value}"));
        match value.source() {
            Some(source) => self.record_debug(
                field,
                &format_args!("{message} {}.sources={}", field.name(), Sources(source)),
            ),
            None => self.record_debug(field, &format_args!("{message}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write_field(field, |writer| match field.name() {
            "message" => write!(writer, "{:?}", Escaped(value)),
            _ => write!(writer, "{value:?}"),
        });
    }
}

impl PlainVisitor<'_> {
    /// `name=` and the value `write_value` writes (the message without its name), after a
    /// space unless it is the first field.
    fn write_field(
        &mut self,
        field: &Field,
        write_value: impl FnOnce(&mut Writer<'_>) -> fmt::Result,
    ) {
        let name = field.name();
        // `log` records' metadata, shown in the line's head already.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(name))
                .and_then(|()| self.writer.write_char('='));
        }
        self.result = self.result.and_then(|()| write_value(&mut self.writer));
    }
}

/// `value` in decimal, with a minus sign when `negative`, as `Debug` writes integers.
fn write_decimal(writer: &mut impl fmt::Write, mut value: u64, negative: bool) -> fmt::Result {
    let mut digits = [0u8; 21];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if negative {
        start -= 1;
        digits[start] = b'-';
    }
    writer.write_str(std::str::from_utf8(&digits[start..]).expect("ASCII digits"))
}

/// A value written with the terminal control characters a caller could send (escape, bell,
/// backspace, form feed, delete, C1) shown as escapes, as the default formatter does.
struct Escaped<T>(T);

struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for ch in text.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                _ => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

impl<T: fmt::Debug> fmt::Debug for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{:?}", self.0)
    }
}

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter(f), "{}", self.0)
    }
}

/// An error's causes as a list, from the first source on.
struct Sources<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut cause = Some(self.0);
        while let Some(error) = cause {
            list.entry(&Escaped(format_args!("{error}")));
            cause = error.source();
        }
        list.finish()
    }
}

/// The level as the default formatter writes it, padded to five, with the spaces around it.
fn level_label(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    }
}

/// RFC 3339 in UTC with microseconds. The date and time to the second are formatted once per
/// second per thread.
fn write_timestamp(writer: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != seconds {
            text.clear();
            write_date_time(text, seconds)?;
            *cached = seconds;
        }
        write!(writer, "{text}.{:06}Z", since_epoch.subsec_micros())
    })
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (the proleptic Gregorian calendar, as RFC 3339 has it).
fn write_date_time(out: &mut impl fmt::Write, unix_seconds: u64) -> fmt::Result {
    let days = unix_seconds / 86_400;
    let in_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// Year, month and day of the `days`th day after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timestamp(unix_micros: u64) -> String {
        let mut text = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(unix_micros);
        write_timestamp(&mut text, at).unwrap();
        text
    }

    #[test]
    fn timestamps_are_rfc_3339_utc_with_microseconds_across_days_months_and_leap_years() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            timestamp(1_796_506_619_394_252),
            "2026-12-05T21:36:59.394252Z"
        );
        // The last second of a leap day, then the next day, in one thread's cache.
        assert_eq!(
            timestamp(951_868_799_000_001),
            "2000-02-29T23:59:59.000001Z"
        );
        assert_eq!(
            timestamp(951_868_800_000_000),
            "2000-03-01T00:00:00.000000Z"
        );
        assert_eq!(
            timestamp(4_102_444_799_999_999),
            "2099-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn lines_read_as_the_default_formatters_without_colours_escapes_escaped_alike() {
        use crate::telemetry::captured::Captured;
        let lines = |plain: bool| {
            let out = Captured::default();
            let builder = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(out.writer());
            let emit = || {
                let span = tracing::info_span!("request", id = %"ab12", method = "GET");
                span.in_scope(|| {
                    tracing::info!(target: "jwtd::access", status = 200u16, op = "x\ny", "answered");
                });
                tracing::warn!(error = %"boom", "outside any span");
                tracing::info!(
                    q = "say \"hi\" \\ ok",
                    u = "ünï\ttab",
                    big = u64::MAX,
                    small = i64::MIN,
                    zero = 0u64,
                    "plain ~ message"
                );
                tracing::info!(empty = "", "tab\tand ünï");
                let cause = std::io::Error::other("disk \x1b[31mfull\u{9b}");
                let error = anyhow::Error::new(cause).context("saving \x07failed");
                let error: &(dyn Error + 'static) = error.as_ref();
                tracing::error!(error, r#type = "x", yes = true, n = -3i64, "\x1b[2J{}", 5);
            };
            if plain {
                let subscriber = builder
                    .event_format(PlainText)
                    .fmt_fields(PlainFields)
                    .finish();
                tracing::subscriber::with_default(subscriber, emit);
            } else {
                tracing::subscriber::with_default(builder.finish(), emit);
            }
            out.lines_after_timestamps()
        };
        let plain = lines(true);
        assert_eq!(plain, lines(false));
        assert_eq!(
            plain[0],
            " INFO request{id=ab12 method=\"GET\"}: jwtd::access: answered status=200 op=\"x\\ny\""
        );
    }
}
