//! Tests of the keyring file: format, every load error with its line,
//! key sources, editing and atomic saving.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::error::KeyIdError;
use crate::test_support::id;

const KEY_A: [u8; 32] = *b"test-key-test-key-test-key-test!";
const KEY_B: [u8; 32] = [0x5a; 32];

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let mut suffix = [0u8; 8];
        SystemRandom::new().fill(&mut suffix).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "payload-codecs-test-{}-{}",
            std::process::id(),
            hex::encode(suffix)
        ));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<KeyringFile, KeyringError> {
    KeyringFile::from_toml(text, Path::new("/etc/payloadkit/keyring.toml"))
}

fn parse_err(text: &str) -> KeyringError {
    parse(text).unwrap_err()
}

fn b64(key: &[u8]) -> String {
    STANDARD.encode(key)
}

#[test]
fn loads_every_key_source() {
    let dir = TempDir::new();
    fs::create_dir_all(dir.path().join("keys")).unwrap();
    fs::write(dir.path().join("keys/raw.key"), [0x11u8; 32]).unwrap();
    fs::write(
        dir.path().join("keys/text.key"),
        format!("{}\n", b64(&[0x22; 32])),
    )
    .unwrap();
    fs::write(dir.path().join("hex.key"), hex::encode([0x33u8; 32])).unwrap();
    let text = format!(
        r#"
active = "key-2026-11"

[[keys]]
id = "key-2026-11"
base64 = "{}"

[[keys]]
id = "test-key-id"
hex = "{}"

[[keys]]
id = "raw-file"
file = "keys/raw.key"

[[keys]]
id = "text-file"
file = "keys/text.key"

[[keys]]
id = "hex-file"
file = "{}"

[[keys]]
id = "from-env"
env = "PAYLOADKIT_TEST_KEY"
"#,
        b64(&KEY_A),
        hex::encode(KEY_B),
        dir.path().join("hex.key").display(),
    );
    let path = dir.path().join("keyring.toml");
    fs::write(&path, &text).unwrap();

    let file = KeyringFile::load(&path).unwrap();
    assert_eq!(file.active().as_str(), "key-2026-11");
    assert_eq!(file.path(), Some(path.as_path()));
    let kinds: Vec<_> = file
        .keys()
        .map(|(id, s)| (id.as_str(), s.field_name()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("key-2026-11", "base64"),
            ("test-key-id", "hex"),
            ("raw-file", "file"),
            ("text-file", "file"),
            ("hex-file", "file"),
            ("from-env", "env"),
        ]
    );
    assert!(
        matches!(file.source("test-key-id"), Some(KeySource::Hex(k)) if *k.as_bytes() == KEY_B)
    );

    let env = |name: &str| (name == "PAYLOADKIT_TEST_KEY").then(|| b64(&[0x44; 32]));
    let keyring = Keyring::load(&path, &env).unwrap();
    assert_eq!(keyring.active_id().as_str(), "key-2026-11");
    assert_eq!(keyring.len(), 6);
    // The resolved bytes are checked through encryption in the codec tests;
    // here, that each source produced the right key:
    let resolved: Vec<_> = file
        .keys
        .iter()
        .map(|e| *resolve(e, Some(dir.path()), &env).unwrap().as_bytes())
        .collect();
    assert_eq!(
        resolved,
        [KEY_A, KEY_B, [0x11; 32], [0x22; 32], [0x33; 32], [0x44; 32]]
    );
}

#[test]
fn relative_file_paths_resolve_against_the_keyring_folder() {
    let dir = TempDir::new();
    fs::write(dir.path().join("k.key"), b64(&KEY_A)).unwrap();
    let path = dir.path().join("keyring.toml");
    fs::write(
        &path,
        "active = \"k\"\n[[keys]]\nid = \"k\"\nfile = \"k.key\"\n",
    )
    .unwrap();
    // The current directory is the crate, not `dir`.
    assert!(!Path::new("k.key").exists());
    let keyring = Keyring::load(&path, &no_env).unwrap();
    assert!(keyring.contains("k"));

    fs::remove_file(dir.path().join("k.key")).unwrap();
    let err = Keyring::load(&path, &no_env).unwrap_err();
    assert_eq!(err.line(), Some(3));
    assert!(
        matches!(err.kind(), KeyringErrorKind::KeyFile { path: p, .. } if *p == dir.path().join("k.key"))
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:3: key `k`: cannot read key file {}",
            path.display(),
            dir.path().join("k.key").display()
        )),
        "{text}"
    );
}

#[test]
fn bad_toml_reports_file_and_line() {
    let err = parse_err("active = \"a\"\n[[keys]]\nid = \"a\"\nbase64 = \"unterminated\n");
    assert!(matches!(err.kind(), KeyringErrorKind::Syntax { .. }));
    assert_eq!(err.path(), Some(Path::new("/etc/payloadkit/keyring.toml")));
    assert_eq!(err.line(), Some(4));
    assert!(
        err.to_string()
            .starts_with("/etc/payloadkit/keyring.toml:4: invalid keyring file: "),
        "{err}"
    );
    assert!(!err.to_string().contains("unterminated"), "{err}");
}

#[test]
fn unknown_and_missing_fields_are_refused_with_line() {
    let err = parse_err(&format!(
        "active = \"a\"\n\n[[keys]]\nid = \"a\"\nbase46 = \"{}\"\n",
        b64(&KEY_A)
    ));
    assert_eq!(err.line(), Some(5));
    assert!(err.to_string().contains("unknown field `base46`"), "{err}");
    assert!(!err.to_string().contains(&b64(&KEY_A)), "{err}");

    let err = parse_err("actve = \"a\"\n");
    assert!(err.to_string().contains("unknown field `actve`"), "{err}");
    let err = parse_err("[[keys]]\nid = \"a\"\nhex = \"00\"\n");
    assert!(err.to_string().contains("missing field `active`"), "{err}");
}

#[test]
fn toml_messages_never_echo_string_values() {
    let err = parse_err("active = \"a\"\nkeys = \"c2VjcmV0\"\n");
    assert_eq!(err.line(), Some(2));
    assert_eq!(
        err.to_string(),
        "/etc/payloadkit/keyring.toml:2: invalid keyring file: invalid type: string \"…\", \
         expected a sequence; see docs/keyring.md for the format"
    );
    assert_eq!(redact_strings("string \"abc"), "string \"…");
    assert_eq!(redact_strings("no strings"), "no strings");
}

#[test]
fn wrong_key_length_names_the_key_and_line() {
    let err = parse_err(&format!(
        "active = \"x\"\n[[keys]]\nid = \"x\"\nbase64 = \"{}\"\n",
        b64(&[1u8; 16])
    ));
    assert_eq!(
        err.to_string(),
        "/etc/payloadkit/keyring.toml:4: key `x` is 16 bytes; AES-256-GCM needs 32 bytes \
         (44 characters of base64 or 64 of hex); use a 32-byte random key"
    );
    let err = parse_err("active = \"x\"\n[[keys]]\nid = \"x\"\nhex = \"abcd\"\n");
    assert!(matches!(
        err.kind(),
        KeyringErrorKind::WrongKeyLength { len: 2, .. }
    ));
}

#[test]
fn bad_key_text_is_refused_without_echoing_it() {
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I!";
    let err = parse_err(&format!(
        "active = \"x\"\n[[keys]]\nid = \"x\"\nbase64 = \"{secret}\"\n"
    ));
    assert_eq!(err.line(), Some(4));
    assert_eq!(
        err.to_string(),
        "/etc/payloadkit/keyring.toml:4: key `x`: the `base64` value is not valid base64; a key \
         is 32 bytes as standard base64 (44 characters) or hex (64 characters)"
    );
    let err = parse_err("active = \"x\"\n[[keys]]\nid = \"x\"\nhex = \"zz\"\n");
    assert!(matches!(
        err.kind(),
        KeyringErrorKind::BadKeyEncoding { format: "hex", .. }
    ));
}

#[test]
fn duplicate_ids_are_refused_at_the_second() {
    let key = b64(&KEY_A);
    let err = parse_err(&format!(
        "active = \"a\"\n[[keys]]\nid = \"a\"\nbase64 = \"{key}\"\n[[keys]]\nid = \"a\"\nbase64 = \"{key}\"\n"
    ));
    assert_eq!(err.line(), Some(6));
    assert!(
        err.to_string()
            .ends_with("key id `a` appears more than once; key ids must be unique")
    );
}

#[test]
fn active_key_must_be_listed() {
    let err = parse_err(&format!(
        "active = \"gone\"\n[[keys]]\nid = \"a\"\nbase64 = \"{}\"\n",
        b64(&KEY_A)
    ));
    assert_eq!(err.line(), Some(1));
    assert_eq!(
        err.to_string(),
        "/etc/payloadkit/keyring.toml:1: active key `gone` is not in the keyring; add a [[keys]] \
         entry with this id or set `active` to one of the listed keys"
    );
    assert!(matches!(
        parse_err("active = \"a\"\n").kind(),
        KeyringErrorKind::ActiveKeyMissing { .. }
    ));
}

#[test]
fn key_ids_are_validated() {
    let err = parse_err("active = \"a\"\n[[keys]]\nid = \"\"\nhex = \"00\"\n");
    assert_eq!(err.line(), Some(3));
    assert!(matches!(
        err.kind(),
        KeyringErrorKind::InvalidKeyId(KeyIdError::Empty)
    ));
    assert!(err.to_string().contains("key id is empty"), "{err}");

    let err = parse_err("active = \"a\"\n[[keys]]\nid = \"my key\"\nhex = \"00\"\n");
    assert!(
        err.to_string().contains("printable ASCII without spaces"),
        "{err}"
    );
    let err = parse_err("active = \"\"\n");
    assert_eq!(err.line(), Some(1));
    assert!(matches!(
        err.kind(),
        KeyringErrorKind::InvalidKeyId(KeyIdError::Empty)
    ));
}

#[test]
fn exactly_one_key_source() {
    let err = parse_err("active = \"a\"\n[[keys]]\nid = \"a\"\n");
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().ends_with(
        "key `a` has no key material; give exactly one of `base64`, `hex`, `file` or `env`"
    ));
    let err = parse_err("active = \"a\"\n[[keys]]\nid = \"a\"\nfile = \"k\"\nenv = \"K\"\n");
    assert!(matches!(
        err.kind(),
        KeyringErrorKind::ManyKeySources { .. }
    ));
}

#[test]
fn missing_env_var_names_the_variable() {
    let file =
        parse("active = \"a\"\n\n[[keys]]\nid = \"a\"\nenv = \"PAYLOADKIT_KEY_A\"\n").unwrap();
    let err = file.to_keyring(&no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/payloadkit/keyring.toml:4: key `a`: environment variable `PAYLOADKIT_KEY_A` is not \
         set; set it to the key as base64"
    );
    let short = |_: &str| Some(b64(&[0; 31]));
    let err = file.to_keyring(&short).unwrap_err();
    assert!(matches!(
        err.kind(),
        KeyringErrorKind::WrongKeyLength { len: 31, .. }
    ));
    let bad = |_: &str| Some("not base64 at all!".to_owned());
    let err = file.to_keyring(&bad).unwrap_err();
    assert!(
        err.to_string()
            .contains("environment variable `PAYLOADKIT_KEY_A` is not valid base64"),
        "{err}"
    );
    assert!(!err.to_string().contains("at all"), "{err}");
}

#[test]
fn key_file_of_the_wrong_size_is_refused() {
    let dir = TempDir::new();
    fs::write(dir.path().join("short.key"), [0xffu8; 16]).unwrap();
    fs::write(
        dir.path().join("keyring.toml"),
        "active = \"a\"\n[[keys]]\nid = \"a\"\nfile = \"short.key\"\n",
    )
    .unwrap();
    let err = Keyring::load(&dir.path().join("keyring.toml"), &no_env).unwrap_err();
    assert!(
        matches!(err.kind(), KeyringErrorKind::BadKeyEncoding { .. }),
        "{err}"
    );
    fs::write(dir.path().join("short.key"), b64(&[1; 16])).unwrap();
    let err = Keyring::load(&dir.path().join("keyring.toml"), &no_env).unwrap_err();
    assert!(
        matches!(err.kind(), KeyringErrorKind::WrongKeyLength { len: 16, .. }),
        "{err}"
    );
}

#[test]
fn missing_keyring_file_is_a_read_error_with_path() {
    let err = KeyringFile::load(Path::new("/nonexistent/keyring.toml")).unwrap_err();
    assert!(matches!(err.kind(), KeyringErrorKind::Read(_)));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/keyring.toml: cannot read the keyring file: "),
        "{err}"
    );
}

#[test]
fn editing_add_rotate_retire() {
    let mut file = KeyringFile::new(
        id("old"),
        KeySource::Hex(SecretKey::from_bytes(&KEY_A).unwrap()),
    );
    file.generate_key(id("new")).unwrap();
    file.add_key(id("ext"), KeySource::Env("EXT_KEY".into()))
        .unwrap();
    let err = file
        .add_key(id("new"), KeySource::Env("X".into()))
        .unwrap_err();
    assert!(matches!(
        err.kind(),
        KeyringErrorKind::DuplicateKeyId { .. }
    ));

    assert_eq!(file.active().as_str(), "old");
    let err = file.retire_key(&id("old")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key `old` is the active key and cannot be retired; make another key active first"
    );
    assert_eq!(file.set_active(&id("new")).unwrap(), id("old"));
    let err = file.set_active(&id("nope")).unwrap_err();
    assert_eq!(err.to_string(), "no key `nope` in the keyring");
    assert!(matches!(
        file.retire_key(&id("old")).unwrap(),
        KeySource::Hex(_)
    ));
    assert!(matches!(
        file.retire_key(&id("old")).unwrap_err().kind(),
        KeyringErrorKind::NoSuchKey { .. }
    ));
    let ids: Vec<_> = file.keys().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["new", "ext"]);
}

/// A file with key `a` (base64, active) and key `b` (hex).
fn file_a_b() -> KeyringFile {
    let mut file = KeyringFile::new(
        id("a"),
        KeySource::Base64(SecretKey::from_bytes(&KEY_A).unwrap()),
    );
    file.add_key(
        id("b"),
        KeySource::Hex(SecretKey::from_bytes(&KEY_B).unwrap()),
    )
    .unwrap();
    file
}

#[test]
fn toml_round_trips() {
    let mut file = file_a_b();
    file.add_key(
        id("c\"q\\"),
        KeySource::File(PathBuf::from("dir with \"quotes\"\\k.key")),
    )
    .unwrap();
    file.add_key(id("d"), KeySource::Env("D_KEY".into()))
        .unwrap();
    file.set_active(&id("b")).unwrap();
    let text = file.to_toml();
    assert!(
        text.contains(&format!("base64 = \"{}\"", b64(&KEY_A))),
        "{}",
        *text
    );
    assert!(
        text.contains(&format!("hex = \"{}\"", hex::encode(KEY_B))),
        "{}",
        *text
    );

    let back = parse(&text).unwrap();
    assert_eq!(back.active().as_str(), "b");
    let summary = |f: &KeyringFile| -> Vec<String> {
        f.keys()
            .map(|(id, s)| match s {
                KeySource::Base64(k) => format!("{id} base64 {}", hex::encode(k.as_bytes())),
                KeySource::Hex(k) => format!("{id} hex {}", hex::encode(k.as_bytes())),
                KeySource::File(p) => format!("{id} file {}", p.display()),
                KeySource::Env(v) => format!("{id} env {v}"),
            })
            .collect()
    };
    assert_eq!(summary(&back), summary(&file));
}

#[test]
fn save_atomic_writes_a_private_file_and_leaves_no_temp_files() {
    let dir = TempDir::new();
    let path = dir.path().join("keyring.toml");
    fs::write(&path, "old contents").unwrap();
    let mut file = KeyringFile::generate(id("k1")).unwrap();
    file.save_atomic(&path).unwrap();
    file.generate_key(id("k2")).unwrap();
    file.set_active(&id("k2")).unwrap();
    file.save_atomic(&path).unwrap();

    let loaded = KeyringFile::load(&path).unwrap();
    assert_eq!(loaded.active().as_str(), "k2");
    assert_eq!(loaded.keys().len(), 2);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["keyring.toml"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let err = file
        .save_atomic(&dir.path().join("missing-dir/keyring.toml"))
        .unwrap_err();
    assert!(matches!(err.kind(), KeyringErrorKind::Write(_)));
}

#[test]
fn debug_of_the_file_model_shows_no_key_bytes() {
    let file = file_a_b();
    let debug = format!("{file:?} {:?}", file.to_keyring(&no_env).unwrap());
    for key in [KEY_A, KEY_B] {
        assert!(!debug.contains(&hex::encode(key)), "{debug}");
        assert!(!debug.contains(&b64(&key)), "{debug}");
    }
    assert!(!debug.contains("test-key"), "{debug}");
    assert!(debug.contains("SecretKey(<redacted>)"), "{debug}");
}

#[test]
fn the_example_in_docs_keyring_md_is_valid() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/keyring.md");
    let doc = fs::read_to_string(doc).unwrap();
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let file = parse(&doc[start..end]).unwrap();
    assert_eq!(file.active().as_str(), "key-2026-11");
    let kinds: Vec<_> = file.keys().map(|(_, s)| s.field_name()).collect();
    assert_eq!(kinds, ["base64", "hex", "file", "env"]);
    assert!(
        matches!(file.source("test-key-id"), Some(KeySource::Hex(k)) if *k.as_bytes() == KEY_A)
    );
}

/// Rotating as root must not take the keyring away from the server's user.
#[cfg(unix)]
#[test]
fn save_keeps_the_owner_of_the_file_it_replaces() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    let dir = TempDir::new();
    let path = dir.path().join("keyring.toml");
    let mut file = KeyringFile::generate(id("k1")).unwrap();
    file.save_atomic(&path).unwrap();
    // 65534 is `nobody`; only root may hand a file to another user.
    if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_err() {
        // Not root: no owner can change, so there is nothing to keep. CI runs
        // as root, where this test does its work.
        return;
    }
    file.generate_key(id("k2")).unwrap();
    file.save_atomic(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(KeyringFile::load(&path).unwrap().source("k2").is_some());
}

#[test]
fn what_an_interrupted_save_left_is_removed_once_it_is_old() {
    let dir = TempDir::new();
    let path = dir.path().join("keyring.toml");
    KeyringFile::generate(id("k1"))
        .unwrap()
        .save_atomic(&path)
        .unwrap();
    // As a save killed after writing its temporary file leaves it.
    let left = dir.path().join(".keyring.toml.0123456789abcdef.tmp");
    let recent = dir.path().join(".keyring.toml.fedcba9876543210.tmp");
    let other = dir.path().join(".other.toml.0123456789abcdef.tmp");
    for file in [&left, &recent, &other] {
        fs::write(file, "active = \"k1\"").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - INTERRUPTED_AFTER * 2;
    for file in [&left, &other] {
        fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    assert_eq!(
        KeyringFile::remove_interrupted_saves(&path).unwrap(),
        std::slice::from_ref(&left)
    );
    assert!(!left.exists());
    assert!(recent.exists(), "a save may still be writing it");
    assert!(other.exists(), "another keyring's");
    assert!(path.exists());
    assert_eq!(
        KeyringFile::remove_interrupted_saves(&dir.path().join("absent/k.toml")).unwrap(),
        Vec::<PathBuf>::new()
    );
}
