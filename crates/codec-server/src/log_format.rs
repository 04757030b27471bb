//! The log line format: one line an event,
//! `2026-11-30T07:47:24.123456Z  INFO target: message key=value …`.
//!
//! The same layout as `tracing-subscriber`'s default, written without
//! `Debug` formatting for numbers and plain strings and with the date part
//! of the timestamp formatted once a second: the access log writes a line
//! for every request, and the default formatter cost more CPU than
//! decrypting a small payload. Strings that are empty or hold spaces,
//! quotes, `=` or control characters are quoted and escaped, so a request
//! cannot forge a log line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The [`FormatEvent`] of the `codec-server` binary.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineFormat;

thread_local! {
    /// The line being formatted: built here with plain pushes, then handed
    /// to the writer in one call (each call through the writer is dynamic,
    /// and a line has some forty pieces).
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N> FormatEvent<S, N> for LineFormat
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
        let ansi = writer.has_ansi_escapes();
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                format_line(&mut line, ctx, event, ansi)?;
                // A rare long line does not keep its memory on this thread.
                let written = writer.write_str(&line);
                if line.capacity() > 16 * 1024 {
                    *line = String::new();
                }
                written
            }
            // Formatting that logs (a Debug impl with an event in it).
            Err(_) => {
                let mut line = String::new();
                format_line(&mut line, ctx, event, ansi)?;
                writer.write_str(&line)
            }
        })
    }
}

fn format_line<S, N>(
    line: &mut String,
    ctx: &FmtContext<'_, S, N>,
    event: &Event<'_>,
    ansi: bool,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    write_timestamp(line, SystemTime::now())?;
    let meta = event.metadata();
    line.push_str(level_text(*meta.level(), ansi));
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            line.push_str(span.name());
            line.push(':');
        }
        line.push(' ');
    }
    line.push_str(meta.target());
    line.push(':');
    let mut fields = Fields {
        out: line,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    line.push('\n');
    Ok(())
}

fn level_text(level: Level, ansi: bool) -> &'static str {
    match (level, ansi) {
        (Level::ERROR, false) => " ERROR ",
        (Level::WARN, false) => "  WARN ",
        (Level::INFO, false) => "  INFO ",
        (Level::DEBUG, false) => " DEBUG ",
        (Level::TRACE, false) => " TRACE ",
        (Level::ERROR, true) => " \x1b[31mERROR\x1b[0m ",
        (Level::WARN, true) => "  \x1b[33mWARN\x1b[0m ",
        (Level::INFO, true) => "  \x1b[32mINFO\x1b[0m ",
        (Level::DEBUG, true) => " \x1b[34mDEBUG\x1b[0m ",
        (Level::TRACE, true) => " \x1b[35mTRACE\x1b[0m ",
    }
}

thread_local! {
    /// The second last formatted on this thread and its
    /// `YYYY-MM-DDTHH:MM:SS.` text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Writes `time` as RFC 3339 in UTC with microseconds.
fn write_timestamp(out: &mut String, time: SystemTime) -> fmt::Result {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            cached.1.clear();
            date_time_prefix(&mut cached.1, secs)?;
            cached.0 = secs;
        }
        out.push_str(&cached.1);
        Ok::<_, fmt::Error>(())
    })?;
    let micros = since.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let text = digits.format(micros);
    out.push_str(&"000000"[text.len()..]);
    out.push_str(text);
    out.push('Z');
    Ok(())
}

fn date_time_prefix(out: &mut String, secs: u64) -> fmt::Result {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Writes an event's fields: the message as it is, others as ` name=value`.
struct Fields<'a> {
    out: &'a mut String,
    result: fmt::Result,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        self.out.push(' ');
        self.out.push_str(field.name());
        self.out.push('=');
    }
}

/// Writes a field's text value: as it is when that is unambiguous, else
/// quoted and escaped (so that a request cannot forge a field or a line).
pub(crate) fn push_value(out: &mut String, value: &str) {
    if is_bare(value) {
        out.push_str(value);
    } else if value.is_empty() {
        out.push_str("\"\"");
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{value:?}");
    }
}

/// Whether `value` can be written without quotes.
fn is_bare(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\')
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.out.push(' ');
            self.out.push_str(value);
            return;
        }
        self.name(field);
        push_value(self.out, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.name(field);
        if self.result.is_ok() {
            self.result = write!(self.out, "{:?}", value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        self.result = if field.name() == "message" {
            // A message is `format_args!`, whose Debug is its Display.
            write!(self.out, " {value:?}")
        } else {
            self.name(field);
            write!(self.out, "{value:?}")
        };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let mut out = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_764_489_244_000_042);
        write_timestamp(&mut out, at).unwrap();
        assert_eq!(out, "2025-11-30T07:54:04.000042Z");
        // The cached second is reused, and replaced when the second changes.
        out.clear();
        write_timestamp(&mut out, at + Duration::from_micros(999_000)).unwrap();
        assert_eq!(out, "2025-11-30T07:54:04.999042Z");
        out.clear();
        write_timestamp(&mut out, at + Duration::from_secs(3600 * 24)).unwrap();
        assert_eq!(out, "2025-12-01T07:54:04.000042Z");
    }

    /// Bytes written, kept for a test to read.
    #[derive(Clone, Default)]
    pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// The lines `emit` logs, in this format.
    pub(crate) fn capture(emit: impl FnOnce()) -> String {
        capture_at(tracing::Level::TRACE, emit)
    }

    /// The lines `emit` logs at `level` and above, in this format.
    pub(crate) fn capture_at(level: Level, emit: impl FnOnce()) -> String {
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(out.clone())
            .with_ansi(false)
            .event_format(LineFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn fields_are_written_plainly_and_strings_quoted_when_needed() {
        let line = capture(|| {
            tracing::info!(
                target: "codec_server::access",
                method = "POST",
                path = "/decode",
                namespace = "",
                payloads = 3_u64,
                delta = -2_i64,
                ok = true,
                error = "bad\nline \"x\"",
            );
        });
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(stamp.len(), "2026-11-30T07:47:24.123456Z".len(), "{line}");
        assert!(stamp.ends_with('Z'));
        assert_eq!(
            rest,
            " INFO codec_server::access: method=POST path=/decode namespace=\"\" payloads=3 \
             delta=-2 ok=true error=\"bad\\nline \\\"x\\\"\"\n"
        );
    }

    #[test]
    fn messages_come_out_as_written() {
        let line = capture(|| {
            tracing::warn!(key_id = "k1", "keyring {} reloaded", "default");
        });
        // tracing records the message first, then the fields.
        assert!(
            line.ends_with(
                " WARN codec_server::log_format::tests: keyring default reloaded key_id=k1\n"
            ),
            "{line}"
        );
    }
}
