//! The Codec Servers' configurations and keyring for a conformance run.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::payloads::BUCKET;
use super::{OLD_KEY_HEX, SAMPLE_KEY_B64, TOKEN};

/// The open server never offloads on `/encode` (the largest object it would
/// store): the checks before the storage stage see no references. It
/// resolves them for the Web UI's download button.
const MAX_OBJECT: u64 = 50 * 1024 * 1024;

/// Writes the keyring and the configurations of the open Codec Server (the
/// Web UI's, with the storage stage's moto as its S3 store) and the
/// bearer-protected one; returns the two configuration files.
pub(super) fn write_configs(
    dir: &Path,
    ui_port: u16,
    (codec_port, secured_port): (u16, u16),
    moto_port: u16,
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
    fs::write(
        dir.join("aws-credentials"),
        "[conformance]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )?;
    let open = dir.join("open.toml");
    fs::write(
        &open,
        format!(
            "[server]\nlisten = \"127.0.0.1:{codec_port}\"\n\n{common}\n\
             [default.storage]\ndriver = \"s3\"\nbucket = \"{BUCKET}\"\n\
             endpoint = \"http://127.0.0.1:{moto_port}\"\nregion = \"us-east-1\"\n\
             threshold_bytes = {MAX_OBJECT}\n"
        ),
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
