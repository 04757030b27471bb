//! The access log: one line per request, `codec_server::access` target.
//! Failed requests (status 400 and up) are logged at info, successful ones
//! at debug (docs/performance.md has the measurements behind that choice).
//!
//! What a caller chooses (the path, the namespace) is quoted and escaped,
//! so a request cannot forge a field or a line, and cut to
//! [`MAX_VALUE_CHARS`] with the original length said, so a request cannot
//! write megabytes of log. Failure lines are rate-limited: at most
//! [`BURST`] at once and [`PER_SECOND`] a second after that; the next line
//! logged says how many were left out.

use std::sync::Mutex;
use std::time::Instant;

use crate::metrics::RequestStats;

/// Characters of a caller-chosen value written to the log.
pub(crate) const MAX_VALUE_CHARS: usize = 128;
/// Failure lines logged at once before the rate limit applies.
const BURST: f64 = 100.0;
/// Failure lines a second after the burst.
const PER_SECOND: f64 = 20.0;

/// One access-log line: what was done, never payload data, keys or
/// credentials.
pub(crate) struct AccessLine<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) stats: &'a RequestStats,
    pub(crate) status: u16,
    pub(crate) latency_us: u64,
}

/// A token bucket for log lines: [`BURST`] at once, [`PER_SECOND`] after.
struct RateLimit(Mutex<Bucket>);

/// Tokens, when last refilled, and lines left out since the last one
/// admitted.
struct Bucket {
    tokens: f64,
    refilled: Option<Instant>,
    dropped: u64,
}

impl RateLimit {
    const fn new() -> Self {
        Self(Mutex::new(Bucket {
            tokens: BURST,
            refilled: None,
            dropped: 0,
        }))
    }

    /// Takes a token: `Some(lines left out before this one)`, or `None` if
    /// this line is to be left out.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut bucket = crate::shard::lock(&self.0);
        if let Some(then) = bucket.refilled {
            let elapsed = now.saturating_duration_since(then).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * PER_SECOND).min(BURST);
        }
        bucket.refilled = Some(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.dropped))
        } else {
            bucket.dropped += 1;
            None
        }
    }
}

/// The process's failure lines.
static FAILURES: RateLimit = RateLimit::new();

impl AccessLine<'_> {
    /// Logs the line as one message, `method=… path=… namespace=…
    /// payloads=… bytes_in=… bytes_out=… status=… [error=…] latency_us=…`:
    /// at info when the request failed (rate-limited), at debug when it
    /// succeeded. The text is built here in one buffer rather than as ten
    /// event fields, each of which costs dynamic calls per piece.
    pub(crate) fn log(&self) {
        let failed = self.status >= 400;
        let enabled = if failed {
            tracing::enabled!(target: "codec_server::access", tracing::Level::INFO)
        } else {
            tracing::enabled!(target: "codec_server::access", tracing::Level::DEBUG)
        };
        if !enabled {
            return;
        }
        let dropped = if failed {
            match FAILURES.admit(Instant::now()) {
                Some(dropped) => dropped,
                None => return,
            }
        } else {
            0
        };
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        TEXT.with(|cell| {
            let Ok(mut text) = cell.try_borrow_mut() else {
                return;
            };
            text.clear();
            self.write(&mut text, dropped);
            if failed {
                tracing::info!(target: "codec_server::access", "{}", text.as_str());
            } else {
                tracing::debug!(target: "codec_server::access", "{}", text.as_str());
            }
            if text.capacity() > 4096 {
                *text = String::new();
            }
        });
    }

    fn write(&self, text: &mut String, dropped: u64) {
        let mut number = itoa::Buffer::new();
        let stats = self.stats;
        text.push_str("method=");
        push_cut(text, self.method);
        text.push_str(" path=");
        push_cut(text, self.path);
        text.push_str(" namespace=");
        push_cut(text, &stats.namespace);
        text.push_str(" payloads=");
        text.push_str(number.format(stats.payloads));
        text.push_str(" bytes_in=");
        text.push_str(number.format(stats.bytes_in));
        text.push_str(" bytes_out=");
        text.push_str(number.format(stats.bytes_out));
        text.push_str(" status=");
        text.push_str(number.format(self.status));
        if let Some(code) = stats.error {
            text.push_str(" error=");
            push_value(text, code);
        }
        text.push_str(" latency_us=");
        text.push_str(number.format(self.latency_us));
        if dropped > 0 {
            text.push_str(" rate_limited_lines_before=");
            text.push_str(number.format(dropped));
        }
    }
}

/// Writes a field's text value: as it is when that is unambiguous, else
/// quoted and escaped (so that a request cannot forge a field or a line).
fn push_value(out: &mut String, value: &str) {
    use std::fmt::Write as _;
    let bare = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'=' && b != b'\\');
    if bare {
        out.push_str(value);
    } else if value.is_empty() {
        out.push_str("\"\"");
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{value:?}");
    }
}

/// Writes a caller-chosen value, [`cut`].
pub(crate) fn push_cut(out: &mut String, value: &str) {
    push_value(out, &cut(value));
}

/// A caller-chosen value cut to [`MAX_VALUE_CHARS`] characters, with
/// `…[N bytes]` saying how long it was.
pub(crate) fn cut(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        None => std::borrow::Cow::Borrowed(value),
        Some((end, _)) => format!("{}…[{} bytes]", &value[..end], value.len()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `emit` logs at `level` and above, as the binary writes it.
    fn capture_at(level: tracing::Level, emit: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Capture(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Capture::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    fn line(stats: &RequestStats, path: &str, status: u16, level: tracing::Level) -> String {
        capture_at(level, || {
            AccessLine {
                method: "POST",
                path,
                stats,
                status,
                latency_us: 41,
            }
            .log();
        })
    }

    #[test]
    fn access_lines_hold_the_fields_and_quote_what_a_caller_chose() {
        let mut stats = RequestStats {
            route: "decode",
            namespace: String::new(),
            payloads: 3,
            bytes_in: 212,
            bytes_out: 93,
            error: None,
        };
        let ok = line(&stats, "/decode", 200, tracing::Level::DEBUG);
        assert!(
            ok.ends_with(
                " DEBUG codec_server::access: method=POST path=/decode namespace=\"\" payloads=3 \
                 bytes_in=212 bytes_out=93 status=200 latency_us=41\n"
            ),
            "{ok}"
        );
        stats.namespace = "ns x\"\nforged=1".to_owned();
        stats.error = Some("invalid_json");
        let hostile = line(&stats, "/a=b/decode", 400, tracing::Level::DEBUG);
        assert!(
            hostile.contains(
                " method=POST path=\"/a=b/decode\" namespace=\"ns x\\\"\\nforged=1\" payloads=3 \
                 bytes_in=212 bytes_out=93 status=400 error=invalid_json latency_us=41"
            ),
            "{hostile}"
        );
        assert_eq!(hostile.lines().count(), 1);
        assert!(
            hostile.contains("  INFO codec_server::access: "),
            "{hostile}"
        );
    }

    #[test]
    fn long_caller_values_are_cut_and_say_so() {
        let stats = RequestStats {
            route: "decode",
            namespace: "n".repeat(1_000_000),
            error: Some("namespace_refused"),
            ..RequestStats::default()
        };
        let logged = line(&stats, "/decode", 403, tracing::Level::INFO);
        assert!(logged.len() < 600, "{} bytes", logged.len());
        assert!(
            logged.contains(&format!(
                "namespace=\"{}…[1000000 bytes]\"",
                "n".repeat(128)
            )),
            "{logged}"
        );
        assert_eq!(
            cut(&"é".repeat(128)),
            "é".repeat(128),
            "128 characters are kept whole"
        );
    }

    #[test]
    fn by_default_only_failed_requests_are_logged() {
        let stats = RequestStats {
            route: "decode",
            ..RequestStats::default()
        };
        assert_eq!(line(&stats, "/decode", 200, tracing::Level::INFO), "");
        assert!(line(&stats, "/decode", 400, tracing::Level::INFO).contains(" status=400 "));
        assert!(line(&stats, "/decode", 503, tracing::Level::INFO).contains(" status=503 "));
    }

    #[test]
    fn failure_lines_are_rate_limited_and_the_gap_is_reported() {
        let limit = RateLimit::new();
        let start = Instant::now();
        let admitted = (0..1000).filter(|_| limit.admit(start).is_some()).count();
        assert_eq!(admitted, BURST as usize);
        // Half a second later ten more tokens: the first line says how many
        // were left out.
        let later = start + std::time::Duration::from_millis(500);
        assert_eq!(limit.admit(later), Some(1000 - BURST as u64));
        assert_eq!(limit.admit(later), Some(0));
    }
}
