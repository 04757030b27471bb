"""The check behind `cargo xtask vectors --check-rust`: every outer
`<name>.bin` that a Rust test wrote into a folder decodes, by Python code
written from the format alone, to its sibling `<name>.inner.bin`.

Imported by make_vectors.py and envelope_vectors.py; each gives the decoder
of its format and the words for the failures only it knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cryptography.exceptions import InvalidTag
from google.protobuf import text_format
from google.protobuf.message import Message

from temporalio.api.common.v1 import Payload


def short(msg: Message, limit: int = 200) -> str:
    """`msg` on one line, cut at `limit` characters."""
    text = text_format.MessageToString(msg, as_one_line=True)
    return text if len(text) <= limit else text[:limit] + "..."


def check_pairs(
    directory: Path,
    label: str,
    decode: Callable[[Payload], tuple[Payload, str]],
    explain: Callable[[Exception], str | None] = lambda _: None,
) -> int:
    """Decodes each outer payload of `directory` with `decode` (which returns
    the inner payload and a note for the success line) and compares it with
    its `.inner.bin`. Prints a line a case and a total under `label`; returns
    the exit code (1 when any case failed or there was none)."""
    passed = failed = 0
    outers = sorted(p for p in directory.glob("*.bin") if not p.name.endswith(".inner.bin"))
    for outer_path in outers:
        name = outer_path.name[: -len(".bin")]
        inner_path = directory / f"{name}.inner.bin"
        try:
            if not inner_path.is_file():
                raise ValueError(f"missing sibling {inner_path.name}")
            outer = Payload.FromString(outer_path.read_bytes())
            want = Payload.FromString(inner_path.read_bytes())
            got, note = decode(outer)
            if got != want:
                raise ValueError(f"decoded payload differs from {inner_path.name}: got {short(got)}, want {short(want)}")
        except Exception as err:  # noqa: BLE001 - every error is a failed case
            failed += 1
            if isinstance(err, InvalidTag):
                why = "AES-GCM authentication failed (wrong key, nonce, tag or data)"
            else:
                why = explain(err) or f"{type(err).__name__}: {err}"
            print(f"FAIL {name}: {why}")
        else:
            passed += 1
            print(f"ok   {name} ({note})")
    if not outers:
        failed += 1
        print(f"FAIL: no Rust-written payloads in {directory}")
    print(f"{label}{passed} passed, {failed} failed")
    return 1 if failed else 0
