//! The Codec Servers' configurations and keyring for a conformance run.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::{OLD_KEY_HEX, SAMPLE_KEY_B64, TOKEN};

/// Writes the keyring and the configurations of the open and the
/// bearer-protected Codec Server; returns the two configuration files.
pub(super) fn write_configs(
    dir: &Path,
    ui_port: u16,
    codec_port: u16,
    secured_port: u16,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let keyring = dir.join("keyring.toml");
    fs::write(
        &keyring,
        format!(
            "active = \"test-key-id\"\n\n[[keys]]\nid = \"test-key-id\"\nbase64 = \"{SAMPLE_KEY_B64}\"\n\n\
             [[keys]]\nid = \"rotated-old-key\"\nhex = \"{OLD_KEY_HEX}\"\n"
        ),
    )?;
    let common = format!(
        "[cors]\nallowed_origins = [\"http://127.0.0.1:{ui_port}\", \"http://localhost:{ui_port}\"]\n\n\
         [default]\nkeyring = \"keyring.toml\"\nchain = [\"encrypt\", \"zstd\", \"zlib\"]\n"
    );
    let open = dir.join("open.toml");
    fs::write(
        &open,
        format!("[server]\nlisten = \"127.0.0.1:{codec_port}\"\n\n{common}"),
    )?;
    let secured = dir.join("secured.toml");
    let mut text = format!("[server]\nlisten = \"127.0.0.1:{secured_port}\"\n\n{common}");
    let hash = sha256_hex(TOKEN);
    writeln!(
        text,
        "auth = {{ mode = \"bearer\", token_sha256 = [\"{hash}\"] }}"
    )?;
    fs::write(&secured, text)?;
    Ok((open, secured))
}

/// The SHA-256 hex digest the server's config stores for a token.
fn sha256_hex(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}
