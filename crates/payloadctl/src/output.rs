//! Everything `payloadctl` shows: data on stdout (or in a file), notes and
//! progress on stderr. The progress bar appears only when stderr is a
//! terminal, so piped and scripted runs stay quiet.

#![allow(clippy::print_stderr)]

use std::io::{self, IsTerminal as _, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Writes data to `path`, or to stdout when `path` is `None` or `-`.
pub(crate) fn write_data(path: Option<&Path>, data: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(path) if path != Path::new("-") => {
            std::fs::write(path, data).with_context(|| format!("cannot write {}", path.display()))
        }
        _ => {
            let mut out = io::stdout().lock();
            out.write_all(data)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// A line for the user on stderr.
pub(crate) fn note(message: &str) {
    eprintln!("{message}");
}

/// Reports payloads that could not be decoded (the first few, then a count).
pub(crate) fn report_failures(failures: &[(String, String)]) {
    const SHOWN: usize = 10;
    for (place, message) in failures.iter().take(SHOWN) {
        eprintln!("payloadctl: cannot decode {place}: {message}");
    }
    if failures.len() > SHOWN {
        eprintln!(
            "payloadctl: ... and {} more payloads that cannot be decoded",
            failures.len() - SHOWN
        );
    }
}

/// Whether `err` is a write to a closed pipe (`payloadctl ... | head`),
/// which is not an error for a command-line tool.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A progress bar over `total` items, drawn on stderr only when it is a
/// terminal and the work is large enough to be worth watching.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `total` payloads; hidden when stderr is not a terminal or
    /// there are fewer than `min_total`.
    pub(crate) fn new(total: usize, min_total: usize, what: &'static str) -> Self {
        let visible = std::io::stderr().is_terminal() && total >= min_total;
        let bar = if visible {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {msg} {wide_bar} {pos}/{len} payloads ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(what);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    /// `n` more items done.
    pub(crate) fn advance(&self, n: usize) {
        self.bar.inc(n as u64);
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
