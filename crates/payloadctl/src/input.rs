//! Reading the input of a command: a file, or stdin for `-` or no file.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// An input's bytes and a name for messages (`order.json`, `stdin`).
#[derive(Debug)]
pub(crate) struct Input {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
}

/// Reads `path`, or stdin when it is `None` or `-`.
pub(crate) fn read(path: Option<&PathBuf>) -> anyhow::Result<Input> {
    match path {
        Some(path) if path != Path::new("-") => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok(Input {
                name: path.display().to_string(),
                bytes,
            })
        }
        _ => {
            let mut stdin = std::io::stdin().lock();
            if stdin.is_terminal() {
                bail!("no input: pass a FILE, or pipe the JSON into payloadctl");
            }
            let mut bytes = Vec::new();
            stdin.read_to_end(&mut bytes).context("cannot read stdin")?;
            Ok(Input {
                name: "stdin".to_owned(),
                bytes,
            })
        }
    }
}
