#!/usr/bin/env python3
"""Golden-vector generator for payloadkit.

Produces byte-exact reference files with the real Python Temporal SDK
(temporalio, see requirements.txt) so the Rust crates can assert that they
write and read the same bytes.

Usage (normally through `cargo xtask vectors`, which makes the venv at
target/vectors-venv from xtask/vectors/requirements.txt):

    python make_vectors.py --out-root /path/to/repo
        writes crates/payload-converter/testdata/python/,
               crates/payload-codecs/testdata/python/ and
               crates/payload-kms/testdata/python/ (envelope_vectors.py)

    python make_vectors.py --check-rust-dir DIR [--codecs-json FILE]
        decodes every outer `<name>.bin` in DIR (written by the Rust side) with
        Python (cryptography + zlib) and compares it with `<name>.inner.bin`;
        prints `N passed, N failed` and exits 1 on any failure.

    python make_vectors.py [--check-rust-dir DIR] --check-rust-envelope-dir DIR2
        also (or only) decodes the Rust-encoded envelope payloads in DIR2 with
        PyNaCl + cryptography (see envelope_vectors.py).

Output is deterministic: fixed keys, fixed AES-GCM nonces (golden files only;
a real codec must use a random nonce per payload), deterministic protobuf
serialization and map keys sorted in the JSON renderings (see
`stable_message_to_json`).
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import sys
import zlib
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from google.protobuf.message import Message

import temporalio.api.common.v1 as common_pb
import temporalio.api.failure.v1 as failure_pb
import temporalio.exceptions as texc
from temporalio.converter import (
    BinaryProtoPayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
)

import envelope_vectors  # beside this script
import rust_pairs  # beside this script

Payload = common_pb.Payload
Failure = failure_pb.Failure

SCRIPT_DIR = Path(__file__).resolve().parent
DEFAULT_ROOT = SCRIPT_DIR.parent.parent
CONVERTER_SUBDIR = Path("crates/payload-converter/testdata/python")
CODECS_SUBDIR = Path("crates/payload-codecs/testdata/python")

ENC_ENCRYPTED = b"binary/encrypted"
ENC_ZLIB = b"binary/zlib"
KEY_ID_META = "encryption-key-id"
NONCE_LEN = 12

# Test keys; publishing them is intended.
KEYS: list[tuple[str, bytes]] = [
    ("test-key-id", b"test-key-test-key-test-key-test!"),
    ("rotated-old-key", bytes(range(32))),
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def ser(msg: Message) -> bytes:
    return msg.SerializeToString(deterministic=True)


def _is_map(field: Any) -> bool:
    mt = field.message_type
    return mt is not None and mt.GetOptions().map_entry


def _is_repeated(field: Any) -> bool:
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return field.label == field.LABEL_REPEATED  # older protobuf


def _sort_maps(descriptor: Any, obj: Any) -> Any:
    """Sort the keys of every proto map inside a MessageToJson object tree.

    Field order (outside maps) is left exactly as MessageToJson produced it.
    """
    if not isinstance(obj, dict) or descriptor.full_name.startswith("google.protobuf."):
        return obj
    for field in descriptor.fields:
        key = field.json_name
        if key not in obj:
            continue
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            entries = sorted(obj[key].items())
            if value_field.message_type is not None:
                entries = [(k, _sort_maps(value_field.message_type, v)) for k, v in entries]
            obj[key] = dict(entries)
        elif field.message_type is not None:
            if _is_repeated(field):
                obj[key] = [_sort_maps(field.message_type, v) for v in obj[key]]
            else:
                obj[key] = _sort_maps(field.message_type, obj[key])
    return obj


def _max_map_len(msg: Message) -> int:
    best = 0
    for field, value in msg.ListFields():
        if _is_map(field):
            best = max(best, len(value))
            vf = field.message_type.fields_by_name["value"]
            if vf.message_type is not None:
                for v in value.values():
                    best = max(best, _max_map_len(v))
        elif field.message_type is not None:
            for v in value if _is_repeated(field) else [value]:
                best = max(best, _max_map_len(v))
    return best


def stable_message_to_json(msg: Message) -> str:
    """google.protobuf.json_format.MessageToJson(msg) with default arguments,
    except that proto map keys are sorted.

    Observed with protobuf 7.x (upb backend): the iteration order of a proto
    map changes from process to process, so the raw MessageToJson output of a
    Payload with 2+ metadata keys is not reproducible. Everything else
    (indent=2, ensure_ascii=True, field order, camelCase names) is untouched:
    MessageToJson itself is json.dumps(obj, indent=2, sort_keys=False,
    ensure_ascii=True), which is re-applied here.
    """
    raw = json_format.MessageToJson(msg)
    obj = _sort_maps(msg.DESCRIPTOR, json.loads(raw))
    out = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=True)
    # Guard: identical to the raw output whenever map order cannot vary.
    if _max_map_len(msg) <= 1 and out != raw:
        raise AssertionError(f"stable JSON differs from MessageToJson:\n{raw}\n---\n{out}")
    if json.loads(out) != json.loads(raw):
        raise AssertionError("stable JSON is not semantically equal to MessageToJson")
    return out


def write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def write_manifest(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=True) + "\n")


def clean_dir(path: Path, patterns: list[str]) -> None:
    for pattern in patterns:
        for p in path.glob(pattern):
            if p.is_file():
                p.unlink()


def versions() -> dict[str, str]:
    from google.protobuf.internal import api_implementation

    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        openssl = backend.openssl_version_text()
    except Exception:  # pragma: no cover - informational only
        openssl = "unknown"
    return {
        "python": platform.python_version(),
        "temporalio": importlib_metadata.version("temporalio"),
        "protobuf": importlib_metadata.version("protobuf"),
        "protobuf_impl": api_implementation.Type(),
        "cryptography": importlib_metadata.version("cryptography"),
        "openssl": openssl,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


# ---------------------------------------------------------------------------
# A. converter vectors
# ---------------------------------------------------------------------------


def wf_exec() -> common_pb.WorkflowExecution:
    return common_pb.WorkflowExecution(workflow_id="wf-1", run_id="run-1")


def nested_failure_msg() -> Failure:
    f = Failure(message="boom")
    f.application_failure_info.type = "MyError"
    f.application_failure_info.non_retryable = True
    return f


# (case, value factory, manifest extras, converter name)
PAYLOAD_CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("null", lambda: None, "default"),
    ("bytes_empty", lambda: b"", "default"),
    ("bytes", lambda: b"\x00\x01\xffhello", "default"),
    ("string", lambda: "hello", "default"),
    ("string_unicode", lambda: "h\u00e9llo \u2713 \U0001f600", "default"),
    ("int", lambda: 42, "default"),
    ("negative_int", lambda: -7, "default"),
    ("big_int", lambda: 2**53 + 1, "default"),
    ("float", lambda: 1.5, "default"),
    ("bool_true", lambda: True, "default"),
    ("list", lambda: [1, "a", None, True], "default"),
    ("dict_nested", lambda: {"b": 1, "a": {"z": [1, 2], "y": None}}, "default"),
    ("empty_dict", lambda: {}, "default"),
    ("empty_list", lambda: [], "default"),
    ("proto_json", wf_exec, "default"),
    ("proto_json_nested", nested_failure_msg, "default"),
    ("proto_binary", wf_exec, "binary_proto"),
]


def describe_value(value: Any) -> dict[str, Any]:
    if isinstance(value, (bytes, bytearray)):
        return {"value_b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Message):
        return {
            "message_type": value.DESCRIPTOR.full_name,
            "proto_json": json_format.MessageToDict(value),
        }
    return {"value": value}


def make_payload_vectors(out: Path, manifest: list[dict[str, Any]]) -> dict[str, Payload]:
    pc = DataConverter.default.payload_converter
    binproto = BinaryProtoPayloadConverter()
    produced: dict[str, Payload] = {}
    for case, factory, conv in PAYLOAD_CASES:
        value = factory()
        if conv == "binary_proto":
            payload = binproto.to_payload(value)
            assert payload is not None
            conv_name = "temporalio.converter.BinaryProtoPayloadConverter().to_payload"
            back = binproto.from_payload(payload)
        else:
            payload = pc.to_payloads([value])[0]
            conv_name = "temporalio.converter.DataConverter.default.payload_converter"
            back = pc.from_payloads([payload])[0]
        if back != value:
            raise AssertionError(f"{case}: round trip gave {back!r}, want {value!r}")
        write_bytes(out / f"{case}.payload.bin", ser(payload))
        write_text(out / f"{case}.payload.json", stable_message_to_json(payload))
        entry: dict[str, Any] = {
            "case": case,
            "kind": "payload",
            "encoding": payload.metadata["encoding"].decode(),
        }
        entry.update(describe_value(value))
        entry["converter"] = conv_name
        entry["files"] = [f"{case}.payload.bin", f"{case}.payload.json"]
        manifest.append(entry)
        produced[case] = payload
    return produced


def describe_exception(exc: BaseException) -> dict[str, Any]:
    d: dict[str, Any]
    if isinstance(exc, texc.ApplicationError):
        d = {
            "exception": "temporalio.exceptions.ApplicationError",
            "message": exc.message,
            "type": exc.type,
            "non_retryable": exc.non_retryable,
            "details": list(exc.details),
        }
    elif isinstance(exc, texc.CancelledError):
        d = {
            "exception": "temporalio.exceptions.CancelledError",
            "message": exc.message,
            "details": list(exc.details),
        }
    elif isinstance(exc, texc.TimeoutError):
        d = {
            "exception": "temporalio.exceptions.TimeoutError",
            "message": exc.message,
            "timeout_type": exc.type.name if exc.type is not None else None,
            "last_heartbeat_details": list(exc.last_heartbeat_details),
        }
    else:
        d = {
            "exception": f"builtins.{type(exc).__name__}",
            "message": str(exc),
            "note": "non-Temporal exception: converter turns it into an "
            "ApplicationError with type = class name, message = str(exc)",
        }
    if exc.__cause__ is not None:
        d["cause"] = describe_exception(exc.__cause__)
    return d


def with_cause(exc: BaseException, cause: BaseException) -> BaseException:
    # Never raised, so __traceback__ stays None and stack_trace stays "".
    exc.__cause__ = cause
    return exc


def exc_app_error() -> BaseException:
    return texc.ApplicationError("boom", "detail-1", 2, type="MyError", non_retryable=True)


def exc_app_error_cause() -> BaseException:
    return with_cause(
        texc.ApplicationError("outer", type="Outer"),
        texc.ApplicationError("inner", {"k": "v"}, type="Inner"),
    )


def exc_chain3() -> BaseException:
    return with_cause(
        texc.ApplicationError("level1", type="Level1"),
        with_cause(
            texc.ApplicationError("level2", "d2", type="Level2", non_retryable=True),
            ValueError("level3"),
        ),
    )


def hand_built_stack_failure() -> Failure:
    f = Failure(message="hand-built", stack_trace="line 1\nline 2")
    f.application_failure_info.type = "HandBuilt"
    return f


def decoded_view(failure: Failure, fc: Any, pc: Any) -> dict[str, list[Any]]:
    exc: BaseException | None = fc.from_failure(failure, pc)
    messages: list[str] = []
    stacks: list[str] = []
    types: list[str | None] = []
    while exc is not None:
        if isinstance(exc, texc.FailureError):
            messages.append(exc.message)
            stacks.append(exc.failure.stack_trace if exc.failure is not None else "")
        else:  # pragma: no cover - from_failure only yields FailureErrors here
            messages.append(str(exc))
            stacks.append("")
        types.append(exc.type if isinstance(exc, texc.ApplicationError) else type(exc).__name__)
        exc = exc.__cause__
    return {
        "decoded_messages": messages,
        "decoded_stack_traces": stacks,
        "decoded_types": types,
    }


def make_failure_vectors(out: Path, manifest: list[dict[str, Any]]) -> dict[str, Failure]:
    pc = DataConverter.default.payload_converter
    plain_fc = DataConverter.default.failure_converter
    enc_fc = DefaultFailureConverterWithEncodedAttributes()
    produced: dict[str, Failure] = {}

    def exception_case(case: str, exc: BaseException, encoded: bool) -> None:
        fc = enc_fc if encoded else plain_fc
        failure = Failure()
        fc.to_failure(exc, pc, failure)
        entry: dict[str, Any] = {
            "case": case,
            "kind": "failure",
            "encoded_attributes": encoded,
            "failure_converter": (
                "temporalio.converter.DefaultFailureConverterWithEncodedAttributes()"
                if encoded
                else "temporalio.converter.DataConverter.default.failure_converter"
            ),
            "built_by": "failure_converter.to_failure(exception) (exception never raised: empty stack_trace)",
            "input": describe_exception(exc),
        }
        finish(case, failure, entry, fc if encoded else None)

    def finish(case: str, failure: Failure, entry: dict[str, Any], dec_fc: Any) -> None:
        write_bytes(out / f"{case}.failure.bin", ser(failure))
        write_text(out / f"{case}.failure.json", stable_message_to_json(failure))
        if dec_fc is not None:
            entry.update(decoded_view(failure, dec_fc, pc))
        entry["files"] = [f"{case}.failure.bin", f"{case}.failure.json"]
        manifest.append(entry)
        produced[case] = failure

    exception_case("app_error", exc_app_error(), False)
    exception_case("app_error_cause", exc_app_error_cause(), False)
    exception_case("app_error_encoded", exc_app_error(), True)
    exception_case("app_error_cause_encoded", exc_app_error_cause(), True)

    # stack_encoded: a hand-built Failure proto with a stack trace, turned into
    # an exception by the SDK (from_failure keeps the proto on the exception),
    # then converted by the encoded-attributes converter, which copies that
    # proto and moves message + stack_trace into encoded_attributes.
    hand = hand_built_stack_failure()
    exc = plain_fc.from_failure(hand, pc)
    failure = Failure()
    enc_fc.to_failure(exc, pc, failure)
    finish(
        "stack_encoded",
        failure,
        {
            "case": "stack_encoded",
            "kind": "failure",
            "encoded_attributes": True,
            "failure_converter": "temporalio.converter.DefaultFailureConverterWithEncodedAttributes()",
            "built_by": "hand-built Failure proto -> DefaultFailureConverter.from_failure -> "
            "DefaultFailureConverterWithEncodedAttributes.to_failure",
            "input": {
                "hand_built_failure": json_format.MessageToDict(hand),
                "message": hand.message,
                "type": hand.application_failure_info.type,
                "non_retryable": False,
                "details": [],
                "stack_trace": hand.stack_trace,
            },
        },
        enc_fc,
    )

    exception_case("canceled", texc.CancelledError("cancelled", "d1"), False)
    exception_case(
        "timeout",
        texc.TimeoutError(
            "activity timed out",
            type=texc.TimeoutType.START_TO_CLOSE,
            last_heartbeat_details=["hb"],
        ),
        False,
    )
    exception_case("chain3_encoded", exc_chain3(), True)
    return produced


# ---------------------------------------------------------------------------
# B. codec vectors
# ---------------------------------------------------------------------------


def encrypt_payload(inner: Payload, key_id: str, key: bytes, nonce: bytes) -> Payload:
    assert len(key) == 32 and len(nonce) == NONCE_LEN
    sealed = AESGCM(key).encrypt(nonce, ser(inner), None)  # ciphertext || 16-byte tag
    return Payload(
        metadata={"encoding": ENC_ENCRYPTED, KEY_ID_META: key_id.encode()},
        data=nonce + sealed,
    )


def zlib_payload(inner: Payload) -> Payload:
    return Payload(metadata={"encoding": ENC_ZLIB}, data=zlib.compress(ser(inner)))


def unwrap(outer: Payload, keys: dict[str, bytes], max_layers: int = 8) -> tuple[Payload, list[str]]:
    """Decode binary/encrypted and binary/zlib layers until neither remains."""
    current = outer
    layers: list[str] = []
    for _ in range(max_layers):
        enc = current.metadata.get("encoding", b"")
        if enc == ENC_ENCRYPTED:
            key_id = current.metadata.get(KEY_ID_META, b"").decode()
            if key_id not in keys:
                raise ValueError(f"unknown encryption key id {key_id!r}")
            if len(current.data) < NONCE_LEN + 16:
                raise ValueError("encrypted data shorter than nonce + tag")
            plain = AESGCM(keys[key_id]).decrypt(
                current.data[:NONCE_LEN], current.data[NONCE_LEN:], None
            )
            current = Payload.FromString(plain)
            layers.append("encrypt")
        elif enc == ENC_ZLIB:
            current = Payload.FromString(zlib.decompress(current.data))
            layers.append("zlib")
        else:
            layers.reverse()  # report in encode order
            return current, layers
    raise ValueError(f"more than {max_layers} codec layers")


def make_codec_vectors(out: Path) -> dict[str, Any]:
    pc = DataConverter.default.payload_converter
    key_by_id = dict(KEYS)
    cases: list[dict[str, Any]] = []

    def to_payload(value: Any) -> Payload:
        return pc.to_payloads([value])[0]

    enc_specs = [
        ("enc_string", "hello", '"hello" (str)', "test-key-id", ["encrypt"]),
        ("enc_null", None, "None -> binary/null", "test-key-id", ["encrypt"]),
        ("enc_bytes", b"\x00\x01\xffhello", "b'\\x00\\x01\\xffhello' -> binary/plain", "test-key-id", ["encrypt"]),
        (
            "enc_dict",
            {"b": 1, "a": {"z": [1, 2], "y": None}},
            '{"b": 1, "a": {"z": [1, 2], "y": None}} (dict)',
            "test-key-id",
            ["encrypt"],
        ),
        (
            "enc_large",
            "abcdefgh" * 32768,
            '"abcdefgh" * 32768 (str of 262144 chars = 256 KiB)',
            "test-key-id",
            ["encrypt"],
        ),
        ("enc_old_key", "encrypted with the old key", '"encrypted with the old key" (str)', "rotated-old-key", ["encrypt"]),
        (
            "enc_zlib_then_encrypt",
            "abc" * 1000,
            '"abc" * 1000 (str); zlib applied first, the binary/zlib payload is then encrypted',
            "test-key-id",
            ["zlib", "encrypt"],
        ),
    ]
    for index, (case, value, desc, key_id, chain) in enumerate(enc_specs, start=1):
        inner = to_payload(value)
        nonce = bytes([index]) * NONCE_LEN
        stage = inner
        for codec in chain:
            if codec == "zlib":
                stage = zlib_payload(stage)
            else:
                stage = encrypt_payload(stage, key_id, key_by_id[key_id], nonce)
        cases.append(
            {
                "case": case,
                "codec_chain": chain,
                "key_id": key_id,
                "key_b64": base64.b64encode(key_by_id[key_id]).decode("ascii"),
                "nonce_hex": nonce.hex(),
                "value_description": desc,
                "inner_encoding": inner.metadata["encoding"].decode(),
                "_payloads": (stage, inner),
            }
        )

    zlib_specs = [
        ("zlib_string", "abc" * 1000, '"abc" * 1000 (str)'),
        (
            "zlib_dict",
            {"items": [{"id": i, "name": "item", "tags": ["x", "y"]} for i in range(64)]},
            '{"items": [{"id": i, "name": "item", "tags": ["x", "y"]} for i in range(64)]} (dict)',
        ),
    ]
    for case, value, desc in zlib_specs:
        inner = to_payload(value)
        outer = zlib_payload(inner)
        if len(outer.data) >= len(ser(inner)):
            raise AssertionError(f"{case}: compression does not help")
        cases.append(
            {
                "case": case,
                "codec_chain": ["zlib"],
                "key_id": None,
                "key_b64": None,
                "nonce_hex": None,
                "value_description": desc,
                "inner_encoding": inner.metadata["encoding"].decode(),
                "_payloads": (outer, inner),
            }
        )

    for entry in cases:
        outer, inner = entry.pop("_payloads")
        write_bytes(out / f"{entry['case']}.bin", ser(outer))
        write_bytes(out / f"{entry['case']}.inner.bin", ser(inner))
        entry["files"] = [f"{entry['case']}.bin", f"{entry['case']}.inner.bin"]
        # Self-check with the same decoder the --check-rust-dir mode uses.
        got, layers = unwrap(Payload.FromString(ser(outer)), key_by_id)
        if got != inner or layers != entry["codec_chain"]:
            raise AssertionError(f"{entry['case']}: self-check failed ({layers})")

    return {
        "format": {
            "encrypt": "Payload{metadata: {encoding: 'binary/encrypted', encryption-key-id: <key id utf-8>}, "
            "data: nonce(12) || AES-256-GCM(key).encrypt(nonce, inner Payload bytes, aad=None) "
            "(ciphertext || 16-byte tag)}",
            "zlib": "Payload{metadata: {encoding: 'binary/zlib'}, data: zlib.compress(inner Payload bytes) "
            "(zlib stream, default level)}",
            "codec_chain_order": "order in which codecs are applied when ENCODING (first entry applied first "
            "to the inner payload); decoding applies them in reverse",
            "nonces": "fixed per case only to make these files reproducible; a real encoder uses a random nonce",
        },
        "keys": [
            {"key_id": kid, "key_b64": base64.b64encode(k).decode("ascii"), "key_hex": k.hex()}
            for kid, k in KEYS
        ],
        "cases": cases,
    }


# ---------------------------------------------------------------------------
# READMEs
# ---------------------------------------------------------------------------


def _q(b: bytes) -> str:
    """Quote bytes for Markdown: printable ASCII as is (in a code span),
    anything else as a Python bytes literal marked with `py:`."""
    b = bytes(b)
    if all(0x20 <= c < 0x7F for c in b) and "`" not in b.decode("ascii"):
        return f"`{b.decode('ascii')}`"
    return f"py:`{b!r}`"


def converter_readme(
    v: dict[str, str],
    manifest: list[dict[str, Any]],
    payloads: dict[str, Payload],
    failures: dict[str, Failure],
    out: Path,
) -> str:
    case_lines = {
        "null": "`None` -> `binary/null`, no data",
        "bytes_empty": '`b""` -> `binary/plain`, empty data (so no `data` field at all)',
        "bytes": '`b"\\x00\\x01\\xffhello"` -> `binary/plain`',
        "string": '`"hello"` -> `json/plain`',
        "string_unicode": '`"héllo ✓ 😀"` -> `json/plain` (non-ASCII escaped as \\uXXXX, surrogate pair for the emoji)',
        "int": "`42` -> `json/plain`",
        "negative_int": "`-7` -> `json/plain`",
        "big_int": "`2**53+1` -> `json/plain` `9007199254740993` (exact, not rounded)",
        "float": "`1.5` -> `json/plain`",
        "bool_true": "`True` -> `json/plain` `true`",
        "list": '`[1, "a", None, True]` -> `json/plain`',
        "dict_nested": '`{"b": 1, "a": {"z": [1, 2], "y": None}}` -> `json/plain`, keys sorted recursively',
        "empty_dict": "`{}` -> `json/plain`",
        "empty_list": "`[]` -> `json/plain`",
        "proto_json": '`WorkflowExecution(workflow_id="wf-1", run_id="run-1")` -> `json/protobuf` with `messageType`',
        "proto_json_nested": '`Failure(message="boom", application_failure_info{type="MyError", non_retryable=true})` -> `json/protobuf`',
        "proto_binary": "same WorkflowExecution through `BinaryProtoPayloadConverter` -> `binary/protobuf` with `messageType`",
        "app_error": '`ApplicationError("boom", "detail-1", 2, type="MyError", non_retryable=True)`, plain',
        "app_error_cause": '`ApplicationError("outer", type="Outer")` caused by `ApplicationError("inner", {"k": "v"}, type="Inner")`, plain',
        "app_error_encoded": "`app_error` with DefaultFailureConverterWithEncodedAttributes",
        "app_error_cause_encoded": "`app_error_cause` with encoded attributes (each level encoded)",
        "stack_encoded": 'hand-built Failure(message="hand-built", stack_trace="line 1\\nline 2", type "HandBuilt") -> from_failure -> encoded-attributes to_failure',
        "canceled": '`CancelledError("cancelled", "d1")`, plain',
        "timeout": '`TimeoutError("activity timed out", type=START_TO_CLOSE, last_heartbeat_details=["hb"])`, plain',
        "chain3_encoded": '`ApplicationError("level1", type="Level1")` <- `ApplicationError("level2", "d2", type="Level2", non_retryable=True)` <- `ValueError("level3")`, encoded attributes',
    }
    lines = []
    for e in manifest:
        ext = "payload" if e["kind"] == "payload" else "failure"
        lines.append(f"- `{e['case']}` ({ext}): {case_lines[e['case']]}")

    def data(case: str) -> bytes:
        return payloads[case].data

    enc_attr = failures["app_error_encoded"].encoded_attributes
    stack_attr = failures["stack_encoded"].encoded_attributes
    app_json = (out / "app_error.failure.json").read_text()
    app_enc_json = (out / "app_error_encoded.failure.json").read_text()
    string_json = (out / "string.payload.json").read_text()
    proto_json_json = (out / "proto_json.payload.json").read_text()
    timeout_json = (out / "timeout.failure.json").read_text()
    string_bin = (out / "string.payload.bin").read_bytes()
    proto_bin = (out / "proto_binary.payload.bin").read_bytes()

    return f"""# Python SDK golden vectors: payload converter and failure converter

Generated by `xtask/vectors/make_vectors.py` with the real Python Temporal SDK.
Do not edit by hand.

| tool | version |
| --- | --- |
| temporalio | {v['temporalio']} |
| protobuf | {v['protobuf']} ({v['protobuf_impl']} backend) |
| Python | {v['python']} |

Regenerate (from the repository root):

    cargo xtask vectors

which creates a venv at `target/vectors-venv` from `xtask/vectors/requirements.txt`
and runs `python xtask/vectors/make_vectors.py --out-root .`. The script is
deterministic: two runs give byte-identical files.

## Files

- `<case>.payload.bin`: the `temporal.api.common.v1.Payload` made by
  `temporalio.converter.DataConverter.default.payload_converter` (or
  `BinaryProtoPayloadConverter` for `proto_binary`), serialized with
  `SerializeToString(deterministic=True)`.
- `<case>.payload.json` / `<case>.failure.json`: `google.protobuf.json_format.MessageToJson`
  of that message with default arguments, map keys sorted (see below). No trailing newline.
- `<case>.failure.bin`: the `temporal.api.failure.v1.Failure` made by the default failure
  converter (`DataConverter.default.failure_converter`) or
  `DefaultFailureConverterWithEncodedAttributes()`, with the default payload converter,
  `SerializeToString(deterministic=True)`.
- `cases.json`: manifest. Payload entries: `case`, `kind: "payload"`, `encoding`, then
  `value` (JSON), `value_b64` (bytes) or `message_type` + `proto_json` (protos).
  Failure entries: `case`, `kind: "failure"`, `encoded_attributes`, `input` (description
  of the exception: message, type, non_retryable, details, nested `cause`), and for encoded
  cases `decoded_messages` / `decoded_stack_traces` / `decoded_types` (outermost to innermost
  cause) as the Python SDK decodes them with `from_failure`.

## Cases

{chr(10).join(lines)}

Every exception is built and never raised, so it has no traceback and `stack_trace` is
empty; `stack_encoded` is the case with a non-empty stack trace. No case needed a live
workflow/activity context; all failures come from the SDK's own converter.

## Observed formats

Facts read from these files and from the temporalio {v['temporalio']} source; the Rust side must match them.
Byte strings below are shown as is when they are printable ASCII, otherwise as Python bytes
literals marked `py:`.

1. **MessageToJson** pretty-prints with `indent=2` (two spaces per level), `": "` after
   keys, `,` at line ends, no trailing newline, `ensure_ascii=True`, lowerCamelCase field
   names (`stackTrace`, `applicationFailureInfo`, `nonRetryable`, `encodedAttributes`,
   `lastHeartbeatDetails`), bytes as standard base64 with padding, enums as their names
   (`"TIMEOUT_TYPE_START_TO_CLOSE"`), and proto3 default values left out (`null` and
   `bytes_empty` have no `"data"`; `nonRetryable: false` is not printed). Fields come in
   proto field-NUMBER order, not declaration order: in a Failure `message`(1), `stackTrace`(3),
   `cause`(4), `applicationFailureInfo`(5) / `timeoutFailureInfo`(6) / `canceledFailureInfo`(7),
   and `encodedAttributes`(20) last (see `chain3_encoded.failure.json`). In a Payload
   `metadata` comes before `data`. `string.payload.json` is exactly:

```
{string_json}
```

   **Map key order is not stable in raw MessageToJson**: with the upb backend the order of
   proto map entries changes from process to process (seen for 2-key maps such as
   `encoding` + `messageType`). These files therefore sort map keys (byte order); for maps
   with at most one key that is exactly MessageToJson's output (the script asserts it).
   Python's plain `SerializeToString()`, which the SDK and the samples' encryption codec use,
   is likewise not stable in map order; these `.bin` files use `deterministic=True`, which
   writes map entries sorted by key (byte order) and every other field in field-number
   order. To reproduce these `.bin` files byte for byte a Rust encoder must write
   `Payload.metadata` sorted by key (e.g. a `BTreeMap`, not a `HashMap`); a decoder must
   accept any order.

2. **json/plain** (`JSONPlainPayloadConverter`): `json.dumps(value, separators=(",", ":"),
   sort_keys=True)` with the default `ensure_ascii=True`: no spaces, keys sorted at every
   level, non-ASCII as lowercase `\\uXXXX` escapes, characters beyond the BMP as a UTF-16
   surrogate pair, `None` as `null`. Metadata is only `{{"encoding": "json/plain"}}`.
   - `dict_nested` data: {_q(data('dict_nested'))}
   - `string_unicode` data: {_q(data('string_unicode'))}
   - `float` data: {_q(data('float'))}; `big_int`: {_q(data('big_int'))}; `negative_int`: {_q(data('negative_int'))}
   - `list` data: {_q(data('list'))}; `empty_dict`: {_q(data('empty_dict'))}; `empty_list`: {_q(data('empty_list'))}; `bool_true`: {_q(data('bool_true'))}
   - `string.payload.bin` (whole Payload): {_q(string_bin)}

3. **json/protobuf and binary/protobuf both write `messageType`** metadata, set to the bare
   full name without a type-URL prefix: {_q(payloads['proto_json'].metadata['messageType'])}.
   json/protobuf data is `json.dumps(MessageToDict(msg), separators=(",", ":"), sort_keys=True)`:
   compact, lowerCamelCase names, keys sorted recursively (so NOT field order):
   - `proto_json` data: {_q(data('proto_json'))}
   - `proto_json_nested` data: {_q(data('proto_json_nested'))}
   - `proto_binary` data is the message's binary encoding: {_q(data('proto_binary'))};
     whole Payload: {_q(proto_bin)}
   - `proto_json.payload.json`:

```
{proto_json_json}
```

4. **Failures.** The Python SDK never sets `source` (it stays `""`, so it is absent from the
   JSON; it is not `"PythonSDK"`). `ApplicationError` always sets `applicationFailureInfo`
   (with `type` when given, `nonRetryable` only when true in JSON, `details` as json/plain
   payloads, one per detail argument). A non-Temporal exception (`ValueError("level3")`)
   becomes an application failure with `type` = class name and `message` = `str(exc)`.
   The cause chain is `cause`, outermost first. `app_error.failure.json`:

```
{app_json}
```

   `timeout.failure.json`:

```
{timeout_json}
```

5. **Encoded attributes** (`DefaultFailureConverterWithEncodedAttributes`): the visible
   `message` is replaced by exactly `{failures['app_error_encoded'].message!r}`, `stack_trace`
   is cleared, and `encoded_attributes` is a json/plain payload of
   `{{"message": ..., "stack_trace": ...}}` (keys sorted, `stack_trace` present even when empty).
   Every other field (failure info, details, cause) stays as it is. When converting an
   exception chain every level is encoded separately (see `chain3_encoded`). (From the
   source, not exercised here: if the exception already carries a Failure proto, that proto
   is copied as is and only its top level is encoded.) Decoding replaces
   `message`/`stack_trace` from the payload when it is a JSON object with string values.
   - `app_error_encoded` encoded_attributes data: {_q(enc_attr.data)}, metadata
     {_q(enc_attr.metadata['encoding'])}
   - `stack_encoded` encoded_attributes data: {_q(stack_attr.data)}
   - `app_error_encoded.failure.json`:

```
{app_enc_json}
```
"""


def codecs_readme(v: dict[str, str], codecs: dict[str, Any]) -> str:
    lines = []
    for c in codecs["cases"]:
        chain = " then ".join(c["codec_chain"])
        key = f", key `{c['key_id']}`, nonce `{c['nonce_hex']}`" if c["key_id"] else ""
        lines.append(f"- `{c['case']}`: {c['value_description']}; {chain}{key}")
    return f"""# Python codec interop vectors: AES-256-GCM encryption and zlib

Generated by `xtask/vectors/make_vectors.py`. Do not edit by hand.

| tool | version |
| --- | --- |
| temporalio | {v['temporalio']} |
| protobuf | {v['protobuf']} ({v['protobuf_impl']} backend) |
| cryptography | {v['cryptography']} ({v['openssl']}) |
| zlib | {v['zlib']} |
| Python | {v['python']} |

Regenerate (from the repository root):

    cargo xtask vectors

which creates a venv at `target/vectors-venv` from `xtask/vectors/requirements.txt`
and runs `python xtask/vectors/make_vectors.py --out-root .`.

## Formats

- **encrypt**, the format of the official Temporal samples' encryption codec (Python,
  Go, TypeScript): `Payload{{metadata: {{"encoding": "binary/encrypted",
  "encryption-key-id": <key id>}}, data: nonce(12) || AES-256-GCM ciphertext || tag(16)}}`;
  the plaintext is the inner Payload's protobuf bytes; no associated data.
- **zlib**, the Go SDK's zlib codec: `Payload{{metadata: {{"encoding": "binary/zlib"}},
  data: zlib stream of the inner Payload's protobuf bytes}}` (Python `zlib.compress`, default
  level: header `78 9c`). Compressed bytes depend on the zlib implementation, so compare
  after decompressing, not the compressed bytes.
- Inner payloads come from `DataConverter.default.payload_converter`. All protobuf bytes
  are `SerializeToString(deterministic=True)`.
- Nonces are fixed per case (`bytes([i]) * 12`) only so these files can be reproduced.

## Files

- `<case>.bin`: the outer Payload (what goes on the wire).
- `<case>.inner.bin`: the original payload, before any codec: what decoding must give.
- `codecs.json`: `keys` (id, base64, hex: test keys, published on purpose) and `cases`
  (`case`, `codec_chain` in encode order, `key_id`, `key_b64`, `nonce_hex`,
  `value_description`, `inner_encoding`, `files`).

## Cases

{chr(10).join(lines)}

## Reverse direction

`python xtask/vectors/make_vectors.py --check-rust-dir DIR` decodes every outer `<name>.bin`
in DIR (not `*.inner.bin`) with Python (cryptography + zlib), unwrapping
`binary/encrypted` and `binary/zlib` layers until neither is left, using the keys from
this `codecs.json` (or `--codecs-json FILE`), and compares the result with `<name>.inner.bin`
as a protobuf message (so map order does not matter). It prints `N passed, N failed` and
exits 1 on any failure. An outer payload with no codec layer counts as a failure.
"""


# ---------------------------------------------------------------------------
# C. check mode
# ---------------------------------------------------------------------------


def check_rust_dir(directory: Path, codecs_json: Path | None) -> int:
    candidates = [codecs_json] if codecs_json else [
        directory / "codecs.json",
        DEFAULT_ROOT / CODECS_SUBDIR / "codecs.json",
    ]
    manifest_path = next((p for p in candidates if p is not None and p.is_file()), None)
    if manifest_path is None:
        print(f"error: no codecs.json found (tried {', '.join(map(str, candidates))})", file=sys.stderr)
        return 2
    keys = {k["key_id"]: base64.b64decode(k["key_b64"]) for k in json.loads(manifest_path.read_text())["keys"]}


    def decode(outer: Payload) -> tuple[Payload, str]:
        got, layers = unwrap(outer, keys)
        if not layers:
            raise ValueError(f"outer payload has no codec encoding (encoding={outer.metadata.get('encoding', b'')!r})")
        return got, " then ".join(layers)

    return rust_pairs.check_pairs(directory, "", decode)


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def generate(root: Path) -> None:
    conv_out = root / CONVERTER_SUBDIR
    codec_out = root / CODECS_SUBDIR
    conv_out.mkdir(parents=True, exist_ok=True)
    codec_out.mkdir(parents=True, exist_ok=True)
    clean_dir(conv_out, ["*.payload.bin", "*.payload.json", "*.failure.bin", "*.failure.json", "cases.json"])
    clean_dir(codec_out, ["*.bin", "codecs.json"])

    v = versions()
    manifest: list[dict[str, Any]] = []
    payloads = make_payload_vectors(conv_out, manifest)
    failures = make_failure_vectors(conv_out, manifest)
    write_manifest(conv_out / "cases.json", manifest)
    write_text(conv_out / "README.md", converter_readme(v, manifest, payloads, failures, conv_out))

    codecs = make_codec_vectors(codec_out)
    write_manifest(codec_out / "codecs.json", codecs)
    write_text(codec_out / "README.md", codecs_readme(v, codecs))

    print(f"wrote {len(manifest)} converter cases to {conv_out}")
    print(f"wrote {len(codecs['cases'])} codec cases to {codec_out}")

    envelope_vectors.generate(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-root", type=Path, help="repository root to write testdata under")
    parser.add_argument("--check-rust-dir", type=Path, help="verify Rust-encoded payloads in this directory")
    parser.add_argument("--codecs-json", type=Path, help="keys manifest for --check-rust-dir")
    parser.add_argument(
        "--check-rust-envelope-dir", type=Path, help="verify Rust-encoded envelope payloads in this directory"
    )
    parser.add_argument(
        "--envelope-json",
        type=Path,
        default=DEFAULT_ROOT / envelope_vectors.ENVELOPE_SUBDIR / envelope_vectors.MANIFEST_NAME,
        help="KEK manifest for --check-rust-envelope-dir",
    )
    args = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 11):
        print(f"warning: expected Python 3.11, running {platform.python_version()}", file=sys.stderr)
    checks = [d for d in (args.check_rust_dir, args.check_rust_envelope_dir) if d is not None]
    if checks:
        for directory in checks:
            if not directory.is_dir():
                print(f"error: {directory} is not a directory", file=sys.stderr)
                return 2
        codes = []
        if args.check_rust_dir is not None:
            codes.append(check_rust_dir(args.check_rust_dir, args.codecs_json))
        if args.check_rust_envelope_dir is not None:
            codes.append(envelope_vectors.check_rust_dir(args.check_rust_envelope_dir, args.envelope_json))
        return max(codes)
    generate((args.out_root or DEFAULT_ROOT).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
