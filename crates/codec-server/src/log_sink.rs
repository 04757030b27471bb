//! Where the binary's log lines go: a buffer per thread, written out when it
//! holds [`FLUSH_BYTES`], every 100 ms, and at exit.
//!
//! The access log writes a line for every request. A write to stderr for
//! each line, or one shared buffer behind a lock, cost more than decoding a
//! small payload (see [`crate::shard`]); per-thread buffers cost a copy.
//! Lines from one thread keep their order; lines of different threads can
//! come out up to one flush apart (each line carries its timestamp).

use std::io::Write;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use crate::shard::{Padded, lock, thread_number};

/// A thread's buffer is written out when it holds this much.
const FLUSH_BYTES: usize = 32 * 1024;

/// Buffers: more than the threads that log, so they rarely share one.
const SHARDS: usize = 16;

/// How often the buffers are written out however full they are.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Log lines buffered per thread on their way to an output (stderr for the
/// binary). A [`MakeWriter`] for `tracing-subscriber`; clones share the
/// buffers.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Padded<Mutex<Vec<u8>>>]>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSink")
    }
}

impl LogSink {
    /// Lines to stderr, written out by a background thread every 100 ms.
    pub fn stderr() -> Self {
        Self::to(std::io::stderr())
    }

    /// Lines to `out`, written out by a background thread every 100 ms.
    pub fn to(out: impl Write + Send + 'static) -> Self {
        let inner = Arc::new(Inner {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            out: Mutex::new(Box::new(out)),
        });
        let flusher: Weak<Inner> = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("log-flush".to_owned())
            .spawn(move || {
                while let Some(inner) = flusher.upgrade() {
                    inner.flush();
                    drop(inner);
                    std::thread::sleep(FLUSH_EVERY);
                }
            })
            // Without the thread, lines still go out when a buffer fills and
            // at exit.
            .ok();
        Self { inner }
    }

    /// Writes out every buffered line now (at exit, before an error).
    pub fn flush(&self) {
        self.inner.flush();
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        self.inner.flush();
    }
}

impl Inner {
    fn flush(&self) {
        for shard in &*self.shards {
            let lines = std::mem::take(&mut *lock(&shard.0));
            if !lines.is_empty() {
                self.write_out(lines, &shard.0);
            }
        }
    }

    /// Writes `lines` to the output, then gives the emptied buffer back to
    /// `shard` if it has none (so a busy thread keeps reusing its memory).
    fn write_out(&self, mut lines: Vec<u8>, shard: &Mutex<Vec<u8>>) {
        {
            let mut out = lock(&self.out);
            // Nowhere to report a failed log write: the line is dropped.
            let _ = out.write_all(&lines).and_then(|()| out.flush());
        }
        lines.clear();
        let mut buffer = lock(shard);
        if buffer.capacity() == 0 {
            *buffer = lines;
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter(&self.inner)
    }
}

/// One line's way into its thread's buffer.
#[derive(Debug)]
pub struct LineWriter<'a>(&'a Inner);

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSink")
    }
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let shard = &self.0.shards[thread_number() % SHARDS].0;
        let full = {
            let mut buffer = lock(shard);
            if buffer.capacity() == 0 {
                buffer.reserve(FLUSH_BYTES + 1024);
            }
            buffer.extend_from_slice(bytes);
            (buffer.len() >= FLUSH_BYTES).then(|| std::mem::take(&mut *buffer))
        };
        if let Some(lines) = full {
            self.0.write_out(lines, shard);
        }
        Ok(bytes.len())
    }

    /// The buffers are written out by size and time; a flush per line is
    /// what they avoid.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_format::tests::Capture;

    fn lines_of(capture: &Capture) -> Vec<String> {
        String::from_utf8(capture.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_line_of_every_thread_comes_out_whole_and_in_its_thread_s_order() {
        let capture = Capture::default();
        let sink = LogSink::to(capture.clone());
        // Enough lines that buffers fill and go out while others still log.
        let per_thread = 3000;
        std::thread::scope(|scope| {
            for t in 0..4 {
                let sink = &sink;
                scope.spawn(move || {
                    for i in 0..per_thread {
                        let line = format!("thread={t} line={i:05} {}\n", "x".repeat(40));
                        sink.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        sink.flush();
        let lines = lines_of(&capture);
        assert_eq!(lines.len(), 4 * per_thread);
        for t in 0..4 {
            let numbers: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread={t} line=")))
                .map(|rest| rest[..5].parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..per_thread).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_quiet_thread_s_lines_go_out_within_the_flush_interval() {
        let capture = Capture::default();
        let sink = LogSink::to(capture.clone());
        sink.make_writer().write_all(b"one line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lines_of(&capture).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was not written out"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(lines_of(&capture), ["one line"]);
    }

    #[test]
    fn dropping_the_sink_writes_out_what_is_left() {
        let capture = Capture::default();
        let sink = LogSink::to(capture.clone());
        sink.make_writer().write_all(b"last words\n").unwrap();
        drop(sink);
        assert_eq!(lines_of(&capture), ["last words"]);
    }
}
