//! [`KeyringFile`]: the keyring TOML file (format in `docs/keyring.md`) as
//! an editable model, for the server (load, resolve) and the CLI (add,
//! generate, rotate, retire, save).

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use toml::Spanned;
use zeroize::Zeroizing;

use super::{KeyId, Keyring, SecretKey, SecretText, TextFormat};
use crate::error::{KeyringError, KeyringErrorKind};

/// Where a key's material comes from; one per `[[keys]]` entry.
///
/// `Debug` never shows key material.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum KeySource {
    /// Inline in the file as standard base64 (`base64 = "..."`).
    Base64(SecretKey),
    /// Inline in the file as hex (`hex = "..."`).
    Hex(SecretKey),
    /// In a file of its own (`file = "..."`): 32 raw bytes, or the key as
    /// base64 or hex text. A relative path is resolved against the folder of
    /// the keyring file. Written back as given (lossily if not UTF-8).
    File(PathBuf),
    /// In an environment variable, as base64 or hex text (`env = "NAME"`).
    Env(String),
}

impl KeySource {
    /// The TOML field name of this source.
    pub fn field_name(&self) -> &'static str {
        match self {
            KeySource::Base64(_) => "base64",
            KeySource::Hex(_) => "hex",
            KeySource::File(_) => "file",
            KeySource::Env(_) => "env",
        }
    }
}

/// A keyring file in memory: an active key id and the keys with their
/// sources, in file order.
///
/// It always has at least one key and its active key is among them: it is
/// created with a first key, which is active, and the active key cannot be
/// retired. Inline keys are decoded and checked on load; `file` and `env`
/// keys are read only by [`KeyringFile::to_keyring`], so the CLI can edit a
/// keyring whose secrets live elsewhere. Saving rewrites the whole file
/// (comments are not kept).
///
/// ```
/// use payload_codecs::{KeyId, KeySource, KeyringFile};
///
/// let dir = std::env::temp_dir().join(format!("keyring-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("keyring.toml");
///
/// let mut file = KeyringFile::generate(KeyId::new("key-2026-10")?)?;
/// file.generate_key(KeyId::new("key-2026-11")?)?;
/// file.add_key(KeyId::new("from-env")?, KeySource::Env("MY_KEY".into()))?;
/// file.set_active(&KeyId::new("key-2026-11")?)?;
/// file.retire_key(&KeyId::new("key-2026-10")?)?;
/// file.save_atomic(&path)?;
///
/// let env = |name: &str| (name == "MY_KEY").then(|| "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned());
/// let keyring = payload_codecs::Keyring::load(&path, &env)?;
/// assert_eq!(keyring.active_id().as_str(), "key-2026-11");
/// assert_eq!(keyring.len(), 2);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyringFile {
    active: KeyId,
    keys: Vec<Entry>,
    /// The file this was loaded from: error messages and relative `file`
    /// paths refer to it.
    path: Option<PathBuf>,
}

#[derive(Clone, Debug)]
struct Entry {
    id: KeyId,
    source: KeySource,
    /// Line of the entry's `id` in the file it was loaded from.
    line: Option<usize>,
}

/// The file as TOML, before checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    active: Spanned<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: Spanned<String>,
    base64: Option<Spanned<SecretText>>,
    hex: Option<Spanned<SecretText>>,
    file: Option<Spanned<PathBuf>>,
    env: Option<Spanned<String>>,
}

impl KeyringFile {
    /// A keyring with one key, which is active.
    pub fn new(id: KeyId, source: KeySource) -> Self {
        Self {
            active: id.clone(),
            keys: vec![Entry {
                id,
                source,
                line: None,
            }],
            path: None,
        }
    }

    /// A keyring with one new random key (stored inline as base64), which
    /// is active.
    pub fn generate(id: KeyId) -> Result<Self, KeyringError> {
        Ok(Self::new(id, KeySource::Base64(SecretKey::generate()?)))
    }

    /// Reads and checks a keyring file.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let text = fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|e| KeyringError::new(KeyringErrorKind::Read(e)).in_file(path))?;
        Self::from_toml(&text, path)
    }

    /// Parses and checks keyring TOML; `path` names the file in errors and
    /// is the base of relative `file` paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, KeyringError> {
        Self::parse(text)
            .map(|mut file| {
                file.path = Some(path.to_owned());
                file
            })
            .map_err(|e| e.in_file(path))
    }

    fn parse(text: &str) -> Result<Self, KeyringError> {
        let line_of = |span: std::ops::Range<usize>| line_at(text, span.start);
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            KeyringError::new(KeyringErrorKind::Syntax {
                message: redact_strings(e.message().trim_end()),
            })
            .at_line(e.span().map(|s| line_at(text, s.start)))
        })?;

        let mut keys: Vec<Entry> = Vec::with_capacity(raw.keys.len());
        for raw_key in raw.keys {
            let line = Some(line_of(raw_key.id.span()));
            let at = |kind: KeyringErrorKind| KeyringError::new(kind).at_line(line);
            let id = KeyId::new(raw_key.id.into_inner()).map_err(|e| at(e.into()))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(at(KeyringErrorKind::DuplicateKeyId { key_id: id }));
            }
            let count = usize::from(raw_key.base64.is_some())
                + usize::from(raw_key.hex.is_some())
                + usize::from(raw_key.file.is_some())
                + usize::from(raw_key.env.is_some());
            if count > 1 {
                return Err(at(KeyringErrorKind::ManyKeySources { key_id: id }));
            }
            let inline = |text: Spanned<SecretText>, format: TextFormat| {
                let line = Some(line_of(text.span()));
                let what = format!("`{}` value", format.name());
                decode_key(&id, &text.get_ref().0, format, what)
                    .map_err(|e| KeyringError::new(e).at_line(line))
            };
            let source = if let Some(text) = raw_key.base64 {
                KeySource::Base64(inline(text, TextFormat::Base64)?)
            } else if let Some(text) = raw_key.hex {
                KeySource::Hex(inline(text, TextFormat::Hex)?)
            } else if let Some(file) = raw_key.file {
                KeySource::File(file.into_inner())
            } else if let Some(env) = raw_key.env {
                KeySource::Env(env.into_inner())
            } else {
                return Err(at(KeyringErrorKind::NoKeySource { key_id: id }));
            };
            keys.push(Entry { id, source, line });
        }

        let active_line = Some(line_of(raw.active.span()));
        let active_err = |kind: KeyringErrorKind| KeyringError::new(kind).at_line(active_line);
        let active = KeyId::new(raw.active.into_inner()).map_err(|e| active_err(e.into()))?;
        if !keys.iter().any(|k| k.id == active) {
            return Err(active_err(KeyringErrorKind::ActiveKeyMissing {
                key_id: active,
            }));
        }
        Ok(Self {
            active,
            keys,
            path: None,
        })
    }

    /// The file this keyring was loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The id of the key that encrypts.
    pub fn active(&self) -> &KeyId {
        &self.active
    }

    /// The keys with their sources, in file order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = (&KeyId, &KeySource)> + '_ {
        self.keys.iter().map(|e| (&e.id, &e.source))
    }

    /// The source of key `id`, if present.
    pub fn source(&self, id: &str) -> Option<&KeySource> {
        self.entry(id).map(|e| &e.source)
    }

    /// Adds a key (not active). Inline keys are already checked by
    /// construction; `file` and `env` keys are checked by
    /// [`KeyringFile::to_keyring`].
    pub fn add_key(&mut self, id: KeyId, source: KeySource) -> Result<(), KeyringError> {
        if self.entry(id.as_str()).is_some() {
            return Err(self.err(KeyringErrorKind::DuplicateKeyId { key_id: id }));
        }
        self.keys.push(Entry {
            id,
            source,
            line: None,
        });
        Ok(())
    }

    /// Adds a new random key (inline, base64), not active.
    pub fn generate_key(&mut self, id: KeyId) -> Result<(), KeyringError> {
        let key = SecretKey::generate()?;
        self.add_key(id, KeySource::Base64(key))
    }

    /// Makes key `id` the one that encrypts (rotation). Returns the id that
    /// was active before.
    pub fn set_active(&mut self, id: &KeyId) -> Result<KeyId, KeyringError> {
        if self.entry(id.as_str()).is_none() {
            return Err(self.err(KeyringErrorKind::NoSuchKey { key_id: id.clone() }));
        }
        Ok(std::mem::replace(&mut self.active, id.clone()))
    }

    /// Removes key `id`, which must not be the active key, and returns its
    /// source. Payloads encrypted with it can no longer be decoded: retire a
    /// key only once no stored payload uses it.
    pub fn retire_key(&mut self, id: &KeyId) -> Result<KeySource, KeyringError> {
        if *id == self.active {
            return Err(self.err(KeyringErrorKind::RetireActive { key_id: id.clone() }));
        }
        let index = self
            .keys
            .iter()
            .position(|e| e.id == *id)
            .ok_or_else(|| self.err(KeyringErrorKind::NoSuchKey { key_id: id.clone() }))?;
        Ok(self.keys.remove(index).source)
    }

    /// Resolves every key (reading `file` keys, and `env` keys through
    /// `env`) and builds the runtime [`Keyring`].
    pub fn to_keyring(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Keyring, KeyringError> {
        let base = self.path.as_deref().and_then(Path::parent);
        let mut keys = Vec::with_capacity(self.keys.len());
        for entry in &self.keys {
            let key = resolve(entry, base, env).map_err(|kind| {
                let err = KeyringError::new(kind).at_line(entry.line);
                match &self.path {
                    Some(path) => err.in_file(path),
                    None => err,
                }
            })?;
            keys.push((entry.id.clone(), key));
        }
        Keyring::new(self.active.clone(), keys).map_err(|e| match &self.path {
            Some(path) => e.in_file(path),
            None => e,
        })
    }

    /// The keyring as TOML text, in the documented format. It holds the
    /// inline keys, so it is zeroized on drop.
    pub fn to_toml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        out.push_str(
            "# payloadkit keyring: format in docs/keyring.md.\n\
             # It holds secret keys: keep it private (mode 0600).\n",
        );
        push_field(&mut out, "active", self.active.as_str());
        for entry in &self.keys {
            out.push_str("\n[[keys]]\n");
            push_field(&mut out, "id", entry.id.as_str());
            match &entry.source {
                KeySource::Base64(key) => push_field(&mut out, "base64", &key.to_base64()),
                KeySource::Hex(key) => push_field(&mut out, "hex", &key.to_hex()),
                KeySource::File(path) => push_field(&mut out, "file", &path.to_string_lossy()),
                KeySource::Env(name) => push_field(&mut out, "env", name),
            }
        }
        out
    }

    /// Writes the keyring to `path` atomically: a temporary file in the same
    /// folder (mode 0600 on Unix), flushed to disk, then renamed over
    /// `path`, so readers see the old or the new file, never a partial one.
    pub fn save_atomic(&self, path: &Path) -> Result<(), KeyringError> {
        let write_err = |e: io::Error| KeyringError::new(KeyringErrorKind::Write(e)).in_file(path);
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| write_err(io::Error::other("the path does not name a file")))?;
        let mut suffix = [0u8; 8];
        SystemRandom::new()
            .fill(&mut suffix)
            .map_err(|_| KeyringError::new(KeyringErrorKind::Random).in_file(path))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            hex::encode(suffix)
        ));

        let result = write_private(&tmp, self.to_toml().as_bytes())
            .and_then(|()| keep_owner(path, &tmp))
            .and_then(|()| fs::rename(&tmp, path))
            .and_then(|()| sync_dir(dir));
        if result.is_err() {
            // Best effort: the temporary file may not exist.
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }

    /// Removes what interrupted saves of the keyring at `path` left behind:
    /// the temporary files [`save_atomic`](Self::save_atomic) writes next
    /// to it (they hold key material), when older than
    /// [`INTERRUPTED_AFTER`] (a save in progress is younger). Returns the
    /// files removed, so that the caller can say so.
    pub fn remove_interrupted_saves(path: &Path) -> io::Result<Vec<PathBuf>> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Ok(Vec::new());
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let prefix = format!(".{name}.");
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let is_ours = file_name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(|suffix| {
                    suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit())
                });
            if !is_ours {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age >= INTERRUPTED_AFTER);
            if old {
                fs::remove_file(entry.path())?;
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }

    fn entry(&self, id: &str) -> Option<&Entry> {
        self.keys.iter().find(|e| e.id.as_str() == id)
    }

    fn err(&self, kind: KeyringErrorKind) -> KeyringError {
        match &self.path {
            Some(path) => KeyringError::new(kind).in_file(path),
            None => KeyringError::new(kind),
        }
    }
}

/// A temporary file of [`KeyringFile::save_atomic`] older than this was
/// left by an interrupted save (a save takes milliseconds).
pub const INTERRUPTED_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Gives the new file the owner and group of the file it replaces, so that
/// rotating keys as root does not leave a 0600 file the server's own user
/// can no longer read. Without the right to change owners (not root), the
/// new file keeps the caller's, which is then also the old file's owner in
/// the usual setup; that is not an error.
fn keep_owner(existing: &Path, new: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let Ok(old) = fs::metadata(existing) {
            let mine = fs::metadata(new)?;
            if (old.uid(), old.gid()) != (mine.uid(), mine.gid()) {
                match std::os::unix::fs::chown(new, Some(old.uid()), Some(old.gid())) {
                    Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {}
                    other => other?,
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (existing, new);
    Ok(())
}

/// Reads one key's material.
fn resolve(
    entry: &Entry,
    base: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretKey, KeyringErrorKind> {
    let id = &entry.id;
    match &entry.source {
        KeySource::Base64(key) | KeySource::Hex(key) => Ok(key.clone()),
        KeySource::Env(var) => {
            let text =
                env(var)
                    .map(Zeroizing::new)
                    .ok_or_else(|| KeyringErrorKind::EnvVarMissing {
                        key_id: id.clone(),
                        var: var.clone(),
                    })?;
            decode_key(
                id,
                &text,
                text_format(&text),
                format!("environment variable `{var}`"),
            )
        }
        KeySource::File(path) => {
            let full = match base {
                Some(base) if path.is_relative() => base.join(path),
                _ => path.clone(),
            };
            let bytes = fs::read(&full).map(Zeroizing::new).map_err(|source| {
                KeyringErrorKind::KeyFile {
                    key_id: id.clone(),
                    path: full.clone(),
                    source,
                }
            })?;
            if let Some(key) = SecretKey::from_bytes(&bytes) {
                return Ok(key);
            }
            let what = format!("key file {}", full.display());
            let text =
                std::str::from_utf8(&bytes).map_err(|_| KeyringErrorKind::BadKeyEncoding {
                    key_id: id.clone(),
                    source_kind: what.clone(),
                    format: "base64 or hex (nor 32 raw bytes)",
                })?;
            decode_key(id, text, text_format(text), what)
        }
    }
}

/// Hex for exactly 64 hex digits, else base64.
fn text_format(text: &str) -> TextFormat {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        TextFormat::Hex
    } else {
        TextFormat::Base64
    }
}

/// Decodes key text and checks its length.
fn decode_key(
    id: &KeyId,
    text: &str,
    format: TextFormat,
    source_kind: String,
) -> Result<SecretKey, KeyringErrorKind> {
    let bytes = format
        .decode(text)
        .ok_or_else(|| KeyringErrorKind::BadKeyEncoding {
            key_id: id.clone(),
            source_kind,
            format: format.name(),
        })?;
    SecretKey::from_bytes(&bytes).ok_or_else(|| KeyringErrorKind::WrongKeyLength {
        key_id: id.clone(),
        len: bytes.len(),
    })
}

/// Replaces string values quoted in a TOML error message (`invalid type:
/// string "...", expected ...`), which could be key material in the wrong
/// place, with `"…"`.
fn redact_strings(message: &str) -> String {
    const MARK: &str = "string \"";
    let Some(start) = message.find(MARK).map(|i| i + MARK.len()) else {
        return message.to_owned();
    };
    let end = message[start..]
        .find("\", expected")
        .map_or(message.len(), |i| start + i);
    format!("{}…{}", &message[..start], &message[end..])
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Appends `name = "value"` with `value` as a TOML basic string.
fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(" = \"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push_str("\"\n");
}

/// Creates `path` (which must not exist) readable by its owner only, writes
/// `contents` and flushes it to disk.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Flushes a folder's entries (the rename) to disk, where the platform can.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
