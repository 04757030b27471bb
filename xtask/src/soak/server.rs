//! The server under attack: the release `codec-server` as its own process,
//! its memory (peak RSS per phase, reset through `/proc/<pid>/clear_refs`)
//! and its log file.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `codec-server`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `binary` with `config`, its log in `log`, and waits until
    /// it answers.
    pub(crate) fn start(binary: &Path, config: &Path, log: &Path) -> anyhow::Result<Self> {
        let out = fs::File::create(log)?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_path_buf(),
        };
        server.addr = server.wait_for_address()?;
        Ok(server)
    }

    /// The address from the `listening` line of the log.
    fn wait_for_address(&mut self) -> anyhow::Result<SocketAddr> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let found = text.lines().find_map(|line| {
                let at = line.find("endpoint=http://")? + "endpoint=http://".len();
                line[at..].split_whitespace().next()?.parse().ok()
            });
            if let Some(addr) = found {
                return Ok(addr);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("codec-server exited with {status}: {text}");
            }
            if Instant::now() > deadline {
                bail!("codec-server did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/<pid>/status`, in bytes.
    fn status_bytes(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Peak resident memory since the last [`reset_peak`](Self::reset_peak).
    pub(crate) fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    /// Resident memory now.
    pub(crate) fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// Starts a new peak: writing 5 to `clear_refs` resets the peak RSS.
    pub(crate) fn reset_peak(&self) {
        let _ = fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Open file descriptors of the process.
    pub(crate) fn open_fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }

    /// Bytes in the log so far.
    pub(crate) fn log_bytes(&self) -> u64 {
        fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// The log's text.
    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (with the `kill` command: no unsafe code here).
    pub(crate) fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM failed with {status}");
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit; how long it took.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.child.try_wait()?.is_some() {
                return Ok(Some(started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(None)
    }
}
