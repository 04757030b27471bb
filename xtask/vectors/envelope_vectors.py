"""Envelope-encryption golden vectors for crates/payload-kms (imported by
make_vectors.py).

The format is the Temporal Proxy 1.0's (gocloud secrets):

- outer Payload metadata: `encoding` = `binary/encrypted`,
  `encryption-key-id` = the KEK id, `encryption-dek` = standard base64
  (padded) of the wrapped 32-byte data key, as the bytes of that text;
- outer data: 12-byte nonce || AES-256-GCM(data key, serialized inner
  Payload, no AAD) (ciphertext || 16-byte tag);
- KEK `testing://<key>`: gocloud's `base64key://` keeper, a 32-byte key in
  URL-safe base64 (padded); the wrapped key is 24-byte nonce || NaCl
  secretbox(data key) (XSalsa20-Poly1305: tag, then ciphertext), which is
  what PyNaCl's `SecretBox(kek).encrypt(data_key, nonce)` returns. The proxy
  writes the key id as `base64key://<same key text>`.

Generation is deterministic: fixed KEKs, data keys and nonces (golden files
only; real encoders use random ones).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import temporalio.api.common.v1 as common_pb
from temporalio.converter import DataConverter

import rust_pairs  # beside this script

Payload = common_pb.Payload

ENVELOPE_SUBDIR = Path("crates/payload-kms/testdata/python")
MANIFEST_NAME = "envelope.json"

ENC_ENCRYPTED = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
DEK_META = "encryption-dek"
AES_NONCE_LEN = 12
AES_TAG_LEN = 16
DATA_KEY_LEN = 32
SECRETBOX_NONCE_LEN = nacl.secret.SecretBox.NONCE_SIZE  # 24
SECRETBOX_TAG_LEN = nacl.secret.SecretBox.MACBYTES  # 16
WRAPPED_LEN = SECRETBOX_NONCE_LEN + SECRETBOX_TAG_LEN + DATA_KEY_LEN

# Test KEKs and data keys; publishing them is intended. The main KEK's
# URL-safe base64 holds `-` and `_`, so a decoder that only reads standard
# base64 fails on it.
KEKS: list[tuple[str, bytes]] = [
    ("main", bytes(range(0xE0, 0x100))),
    ("other", bytes(range(0x40, 0x60))),
]


def _fixed_key(label: str) -> bytes:
    return hashlib.sha256(f"payloadkit golden data key {label}".encode()).digest()


# (name, KEK name, data key, secretbox nonce used to wrap it)
DATA_KEYS: list[tuple[str, str, bytes, bytes]] = [
    ("dek-1", "main", _fixed_key("dek-1"), bytes([0xA1]) * SECRETBOX_NONCE_LEN),
    ("dek-2", "main", _fixed_key("dek-2"), bytes([0xA2]) * SECRETBOX_NONCE_LEN),
    ("dek-3", "other", _fixed_key("dek-3"), bytes([0xA3]) * SECRETBOX_NONCE_LEN),
]

LARGE_TEXT = "0123456789abcdef" * 6400  # 102400 chars

# (case, value, description, data key name)
CASES: list[tuple[str, Any, str, str]] = [
    ("env_string", "hello", '"hello" (str) -> json/plain', "dek-1"),
    (
        "env_dict",
        {"b": 1, "a": {"z": [1, 2], "y": None}},
        '{"b": 1, "a": {"z": [1, 2], "y": None}} (dict) -> json/plain',
        "dek-1",
    ),
    ("env_null", None, "None -> binary/null (no data)", "dek-1"),
    ("env_empty_bytes", b"", 'b"" -> binary/plain with empty data', "dek-1"),
    (
        "env_proto",
        common_pb.WorkflowExecution(workflow_id="wf-1", run_id="run-1"),
        'WorkflowExecution(workflow_id="wf-1", run_id="run-1") -> json/protobuf with messageType',
        "dek-2",
    ),
    ("env_unicode", "h\u00e9llo \u2713 \U0001f600", '"h\\u00e9llo \\u2713 \\U0001f600" (str) -> json/plain', "dek-2"),
    (
        "env_large",
        LARGE_TEXT,
        '"0123456789abcdef" * 6400 (str of 102400 chars = 100 KiB) -> json/plain',
        "dek-2",
    ),
    (
        "env_other_kek",
        "written under the other KEK",
        '"written under the other KEK" (str) -> json/plain; its data key is wrapped by KEK `other`',
        "dek-3",
    ),
]


# ---------------------------------------------------------------------------
# the format
# ---------------------------------------------------------------------------


def ser(msg: Any) -> bytes:
    return msg.SerializeToString(deterministic=True)


def key_text(kek: bytes) -> str:
    """gocloud's base64key text: URL-safe base64 with padding."""
    assert len(kek) == 32
    return base64.urlsafe_b64encode(kek).decode("ascii")


def kek_uri(kek: bytes) -> str:
    """The URI an operator configures (the proxy's name for the KEK)."""
    return f"testing://{key_text(kek)}"


def kek_id(kek: bytes) -> str:
    """What the proxy writes into `encryption-key-id` for that KEK."""
    return f"base64key://{key_text(kek)}"


def key_from_uri(uri: str) -> bytes:
    scheme, _, text = uri.partition("://")
    if scheme not in ("testing", "base64key"):
        raise ValueError(f"not a testing KEK URI: {uri!r}")
    key = base64.urlsafe_b64decode(text)
    if len(key) != 32:
        raise ValueError(f"KEK {uri!r} is {len(key)} bytes, not 32")
    return key


def wrap_data_key(kek: bytes, data_key: bytes, nonce: bytes) -> bytes:
    """24-byte nonce || secretbox(data key), as gocloud's base64key keeper."""
    assert len(data_key) == DATA_KEY_LEN and len(nonce) == SECRETBOX_NONCE_LEN
    wrapped = bytes(nacl.secret.SecretBox(kek).encrypt(data_key, nonce))
    assert len(wrapped) == WRAPPED_LEN and wrapped[:SECRETBOX_NONCE_LEN] == nonce
    return wrapped


def dek_text(wrapped: bytes) -> bytes:
    """The `encryption-dek` metadata value: standard, padded base64."""
    return base64.b64encode(wrapped)


def seal(inner: Payload, key_id: str, data_key: bytes, dek: bytes, nonce: bytes) -> Payload:
    assert len(nonce) == AES_NONCE_LEN
    sealed = AESGCM(data_key).encrypt(nonce, ser(inner), None)  # ciphertext || tag
    return Payload(
        metadata={
            "encoding": ENC_ENCRYPTED,
            KEY_ID_META: key_id.encode("ascii"),
            DEK_META: dek,
        },
        data=nonce + sealed,
    )


def open_envelope(outer: Payload, keks: dict[str, bytes]) -> tuple[Payload, bytes]:
    """Decrypt an envelope payload strictly by the format above; returns the
    inner payload and the `encryption-dek` text. `keks` maps key ids to KEKs."""
    encoding = outer.metadata.get("encoding", b"")
    if encoding != ENC_ENCRYPTED:
        raise ValueError(f"encoding is {encoding!r}, not {ENC_ENCRYPTED!r}")
    if set(outer.metadata) != {"encoding", KEY_ID_META, DEK_META}:
        raise ValueError(f"metadata keys are {sorted(outer.metadata)}")
    key_id = outer.metadata[KEY_ID_META].decode("utf-8")
    if key_id not in keks:
        shown = key_id.split("://", 1)[0] + "://..."
        raise ValueError(f"unknown KEK id {shown}")
    dek = bytes(outer.metadata[DEK_META])
    wrapped = base64.b64decode(dek, validate=True)
    if dek_text(wrapped) != dek:
        raise ValueError("encryption-dek is not standard padded base64")
    if len(wrapped) != WRAPPED_LEN:
        raise ValueError(f"wrapped data key is {len(wrapped)} bytes, not {WRAPPED_LEN}")
    data_key = nacl.secret.SecretBox(keks[key_id]).decrypt(wrapped)  # nonce prepended
    if len(data_key) != DATA_KEY_LEN:
        raise ValueError(f"data key is {len(data_key)} bytes")
    if len(outer.data) < AES_NONCE_LEN + AES_TAG_LEN:
        raise ValueError("data shorter than nonce + tag")
    plain = AESGCM(data_key).decrypt(outer.data[:AES_NONCE_LEN], outer.data[AES_NONCE_LEN:], None)
    return Payload.FromString(plain), dek


# ---------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------


def versions() -> dict[str, str]:
    return {
        name: importlib_metadata.version(name) for name in ("temporalio", "protobuf", "cryptography", "pynacl")
    }


def make_envelope_vectors(out: Path) -> dict[str, Any]:
    """Writes `<case>.bin` / `<case>.inner.bin` into `out`; returns the manifest."""
    pc = DataConverter.default.payload_converter
    kek_by_name = dict(KEKS)
    keks_by_id = {kek_id(k): k for _, k in KEKS}
    data_keys: dict[str, tuple[str, bytes, bytes]] = {}
    data_key_entries = []
    for name, kek_name, key, box_nonce in DATA_KEYS:
        dek = dek_text(wrap_data_key(kek_by_name[kek_name], key, box_nonce))
        data_keys[name] = (kek_name, key, dek)
        data_key_entries.append(
            {
                "name": name,
                "kek": kek_name,
                "key_hex": key.hex(),
                "secretbox_nonce_hex": box_nonce.hex(),
                "encryption_dek": dek.decode("ascii"),
            }
        )

    cases = []
    for index, (case, value, desc, dek_name) in enumerate(CASES, start=1):
        inner = pc.to_payloads([value])[0]
        if pc.from_payloads([inner])[0] != value:
            raise AssertionError(f"{case}: the payload converter does not round-trip")
        kek_name, key, dek = data_keys[dek_name]
        nonce = bytes([index]) * AES_NONCE_LEN
        outer = seal(inner, kek_id(kek_by_name[kek_name]), key, dek, nonce)
        files = [f"{case}.bin", f"{case}.inner.bin"]
        (out / files[0]).write_bytes(ser(outer))
        (out / files[1]).write_bytes(ser(inner))
        # Self-check with the decoder the --check-rust-envelope-dir mode uses.
        got, got_dek = open_envelope(Payload.FromString((out / files[0]).read_bytes()), keks_by_id)
        if got != inner or got_dek != dek:
            raise AssertionError(f"{case}: self-check failed")
        cases.append(
            {
                "case": case,
                "kek": kek_name,
                "data_key": dek_name,
                "nonce_hex": nonce.hex(),
                "value_description": desc,
                "inner_encoding": inner.metadata["encoding"].decode(),
                "inner_data_len": len(inner.data),
                "files": files,
            }
        )

    return {
        "format": {
            "payload": "Payload{metadata: {encoding: 'binary/encrypted', encryption-key-id: <KEK id>, "
            "encryption-dek: standard padded base64 text of the wrapped data key}, data: nonce(12) || "
            "AES-256-GCM(data key).encrypt(nonce, inner Payload bytes, aad=None) (ciphertext || 16-byte tag)}",
            "testing_kek": "testing://<32-byte key, URL-safe padded base64> = gocloud base64key://; the KEK id "
            "written on payloads is base64key://<same text>",
            "wrapped_data_key": "secretbox nonce(24) || XSalsa20-Poly1305 secretbox(KEK, data key) (tag(16) || "
            "ciphertext(32)) = PyNaCl SecretBox(kek).encrypt(data_key, nonce)",
            "nonces": "fixed only to make these files reproducible; a real encoder uses random nonces",
        },
        "active_kek": "main",
        "keks": [
            {
                "name": name,
                "uri": kek_uri(key),
                "key_id": kek_id(key),
                "key_hex": key.hex(),
            }
            for name, key in KEKS
        ],
        "data_keys": data_key_entries,
        "cases": cases,
    }


def readme(v: dict[str, str], manifest: dict[str, Any]) -> str:
    kek_lines = [f"- `{k['name']}`: `{k['uri']}`, written as `{k['key_id']}`" for k in manifest["keks"]]
    dek_lines = [
        f"- `{d['name']}` (KEK `{d['kek']}`): key `{d['key_hex']}`, secretbox nonce `{d['secretbox_nonce_hex']}`"
        for d in manifest["data_keys"]
    ]
    case_lines = [
        f"- `{c['case']}`: {c['value_description']}; data key `{c['data_key']}`, nonce `{c['nonce_hex']}`"
        for c in manifest["cases"]
    ]
    nl = "\n"
    return f"""# Python envelope-encryption vectors: the Temporal Proxy 1.0 format

Generated by `xtask/vectors/make_vectors.py` (module `envelope_vectors.py`) with
`cryptography` (AES-256-GCM) and PyNaCl (secretbox). Do not edit by hand.

| tool | version |
| --- | --- |
| temporalio | {v['temporalio']} |
| protobuf | {v['protobuf']} |
| cryptography | {v['cryptography']} |
| PyNaCl | {v['pynacl']} |

Regenerate (from the repository root):

    cargo xtask vectors

## Format

- Outer payload metadata: `encoding` = `binary/encrypted`, `encryption-key-id` = the KEK
  id, `encryption-dek` = standard base64 (padded) of the wrapped data key, as the bytes
  of that text.
- Outer data: nonce(12) || AES-256-GCM(data key, inner Payload protobuf bytes, no AAD)
  (ciphertext || tag(16)). Inner payloads come from
  `DataConverter.default.payload_converter`, serialized with
  `SerializeToString(deterministic=True)`.
- KEK `testing://<key>` (gocloud `base64key://`): a 32-byte key in URL-safe padded
  base64; the wrapped data key is nonce(24) || NaCl secretbox (tag(16) || ciphertext(32)),
  i.e. PyNaCl's `SecretBox(kek).encrypt(data_key, nonce)`. The key id written on
  payloads is `base64key://<same key text>`.
- Every payload under one data key carries the same `encryption-dek`, so a batch of
  them costs one unwrap.
- Keys and nonces are fixed only so the files can be reproduced.

## KEKs (test keys, published on purpose)

`active_kek` in `envelope.json` is the KEK a codec encrypts with; the other KEK is
one a codec may only decrypt with when told to.

{nl.join(kek_lines)}

## Data keys

{nl.join(dek_lines)}

## Files

- `<case>.bin`: the outer Payload (what goes on the wire).
- `<case>.inner.bin`: the payload before encryption: what decoding must give.
- `envelope.json`: `format`, `active_kek`, `keks` (`name`, `uri`, `key_id`,
  `key_hex`), `data_keys` (`name`, `kek`, `key_hex`, `secretbox_nonce_hex`,
  `encryption_dek`) and `cases` (`case`, `kek`, `data_key`, `nonce_hex`,
  `value_description`, `inner_encoding`, `inner_data_len`, `files`).

## Cases

{nl.join(case_lines)}

## Reverse direction

`python xtask/vectors/make_vectors.py --check-rust-envelope-dir DIR` decodes every
outer `<name>.bin` in DIR (written by `crates/payload-kms/tests/interop.rs`
`write_rust_vectors`) with PyNaCl and `cryptography`, using the KEKs of this
`envelope.json`, checks the format strictly (metadata keys, padded standard base64,
wrapped key length) and compares the result with `<name>.inner.bin` as a protobuf
message. It prints `N passed, N failed` and exits 1 on any failure.
"""


def generate(root: Path) -> int:
    out = root / ENVELOPE_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.bin", MANIFEST_NAME):
        for path in out.glob(pattern):
            if path.is_file():
                path.unlink()
    manifest = make_envelope_vectors(out)
    (out / MANIFEST_NAME).write_bytes((json.dumps(manifest, indent=2, ensure_ascii=True) + "\n").encode())
    (out / "README.md").write_bytes(readme(versions(), manifest).encode("utf-8"))
    print(f"wrote {len(manifest['cases'])} envelope cases to {out}")
    return len(manifest["cases"])


# ---------------------------------------------------------------------------
# check mode
# ---------------------------------------------------------------------------


def check_rust_dir(directory: Path, manifest_path: Path) -> int:
    """Decodes every outer `<name>.bin` of `directory` (Rust-encoded envelope
    payloads) and compares it with `<name>.inner.bin`."""
    if not manifest_path.is_file():
        print(f"error: no {manifest_path}", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    keks = {k["key_id"]: key_from_uri(k["uri"]) for k in manifest["keks"]}
    for k in manifest["keks"]:
        if kek_id(keks[k["key_id"]]) != k["key_id"]:
            raise AssertionError(f"{manifest_path}: KEK `{k['name']}` has an inconsistent key_id")
    kek_names = {k["key_id"]: k["name"] for k in manifest["keks"]}

    deks: dict[bytes, int] = {}

    def decode(outer: Payload) -> tuple[Payload, str]:
        got, dek = open_envelope(outer, keks)
        number = deks.setdefault(dek, len(deks) + 1)
        return got, f"KEK {kek_names[outer.metadata[KEY_ID_META].decode()]}, data key #{number}"

    def explain(err: Exception) -> str | None:
        if isinstance(err, nacl.exceptions.CryptoError):
            return f"the wrapped data key does not open under its KEK ({err})"
        return None

    return rust_pairs.check_pairs(directory, "envelope: ", decode, explain)
