"""Conformance workflows run by the real Python SDK.

The client and worker encode every payload with the official samples'
AES-256-GCM format (`binary/encrypted`, `encryption-key-id`, 12-byte nonce,
ciphertext and tag of the serialized inner Payload), optionally after
compressing it (`binary/zlib` as the Go SDK's zlib codec, or `binary/zstd`
as payloadkit's), so the stored history is unreadable without a Codec Server.

    python workflows.py run --address A --workflow-id ID --workflow greet \
        --args '["name"]' [--codec encrypt|zlib+encrypt|zstd+encrypt] \
        [--key-id test-key-id|rotated-old-key] [--encoded-failures]
        start a worker, run the workflow, print its result as JSON (or the
        failure message, with exit status 3)
    python workflows.py worker --address A --seconds N [--codec ...]
        run a worker only (for workflows started by the temporal CLI or the
        Rust SDK starter)
    python workflows.py start --address A --workflow-id ID \
        --workflow-type NAME --task-queue Q --args '["name"]' [--codec ...]
        a client only: start a workflow another worker runs (the Rust SDK
        example worker), wait, print its result as JSON
"""

import argparse
import asyncio
import json
import os
import sys
import zlib
from datetime import timedelta
from typing import Any, Awaitable, Callable, Dict, Iterable, List, NoReturn, Sequence

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

TASK_QUEUE = "payloadkit-conformance"
KEYS = {
    "test-key-id": b"test-key-test-key-test-key-test!",
    "rotated-old-key": bytes(range(32)),
}


class SampleEncryptionCodec(PayloadCodec):
    """The samples' encryption wire format; decodes with any known key."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        self.aeads = {k: AESGCM(v) for k, v in KEYS.items()}

    async def encode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            sealed = self.aeads[self.key_id].encrypt(nonce, p.SerializeToString(), None)
            out.append(
                Payload(
                    metadata={
                        "encoding": b"binary/encrypted",
                        "encryption-key-id": self.key_id.encode(),
                    },
                    data=nonce + sealed,
                )
            )
        return out

    async def decode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding", b"") != b"binary/encrypted":
                out.append(p)
                continue
            key_id = p.metadata.get("encryption-key-id", b"").decode()
            plain = self.aeads[key_id].decrypt(p.data[:12], p.data[12:], None)
            out.append(Payload.FromString(plain))
        return out


class CompressionCodec(PayloadCodec):
    """`binary/zlib` (Go SDK format) or `binary/zstd`: the whole serialized
    payload, compressed; always applied, so every payload is compressed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.encoding = f"binary/{kind}".encode()

    async def encode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            raw = p.SerializeToString()
            data = zlib.compress(raw) if self.kind == "zlib" else zstandard.ZstdCompressor().compress(raw)
            out.append(Payload(metadata={"encoding": self.encoding}, data=data))
        return out

    async def decode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding", b"") != self.encoding:
                out.append(p)
                continue
            if self.kind == "zlib":
                raw = zlib.decompress(p.data)
            else:
                raw = zstandard.ZstdDecompressor().decompress(p.data)
            out.append(Payload.FromString(raw))
        return out


class Chain(PayloadCodec):
    """Codecs outermost first: encode runs them last to first."""

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self.codecs = list(codecs)

    async def encode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = list(payloads)
        for codec in reversed(self.codecs):
            out = await codec.encode(out)
        return out

    async def decode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = list(payloads)
        for codec in self.codecs:
            out = await codec.decode(out)
        return out


def make_codec(spec: str, key_id: str) -> PayloadCodec:
    parts = spec.split("+")
    codecs: List[PayloadCodec] = []
    for part in reversed(parts):  # "zlib+encrypt": encrypt is outermost
        codecs.append(SampleEncryptionCodec(key_id) if part == "encrypt" else CompressionCodec(part))
    return Chain(codecs)


@activity.defn
async def compose_greeting(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            compose_greeting, name, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class ManyArgs:
    @workflow.run
    async def run(self, a: str, b: int, c: dict, d: list, e: bool) -> dict:
        return {"a": a, "b": b, "c": c, "d": d, "e": e}


@workflow.defn
class Fail:
    @workflow.run
    async def run(self, reason: str) -> None:
        raise ApplicationError(
            f"refused: {reason}",
            {"detail": reason},
            type="Refused",
            non_retryable=True,
        )


WORKFLOWS = {"greet": Greet, "many": ManyArgs, "fail": Fail}


async def connect(args: argparse.Namespace) -> Client:
    kwargs: dict = {"payload_codec": make_codec(args.codec, args.key_id)}
    if args.encoded_failures:
        kwargs["failure_converter_class"] = DefaultFailureConverterWithEncodedAttributes
    return await Client.connect(args.address, data_converter=DataConverter(**kwargs))


def make_worker(client: Client) -> Worker:
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=list(WORKFLOWS.values()),
        activities=[compose_greeting],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def run(args: argparse.Namespace) -> int:
    client = await connect(args)
    workflow_args: List[Any] = json.loads(args.args)
    workflow_cls = WORKFLOWS[args.workflow]
    async with make_worker(client):
        try:
            result = await client.execute_workflow(
                workflow_cls.run, args=workflow_args, id=args.workflow_id, task_queue=TASK_QUEUE
            )
        except WorkflowFailureError as err:
            print(f"failed: {err.cause}")
            return 3
    print(json.dumps(result))
    return 0


async def start_only(args: argparse.Namespace) -> int:
    client = await connect(args)
    result = await client.execute_workflow(
        args.workflow_type,
        args=json.loads(args.args),
        id=args.workflow_id,
        task_queue=args.task_queue,
        execution_timeout=timedelta(seconds=args.timeout),
    )
    print(json.dumps(result))
    return 0


async def worker_only(args: argparse.Namespace) -> int:
    client = await connect(args)
    async with make_worker(client):
        await asyncio.sleep(args.seconds)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "worker", "start"):
        p = sub.add_parser(name)
        p.add_argument("--address", required=True)
        p.add_argument("--codec", default="encrypt")
        p.add_argument("--key-id", default="test-key-id", choices=sorted(KEYS))
        p.add_argument("--encoded-failures", action="store_true")
        if name == "run":
            p.add_argument("--workflow-id", required=True)
            p.add_argument("--workflow", default="greet", choices=sorted(WORKFLOWS))
            p.add_argument("--args", default='["world"]')
        elif name == "start":
            p.add_argument("--workflow-id", required=True)
            p.add_argument("--workflow-type", required=True)
            p.add_argument("--task-queue", required=True)
            p.add_argument("--args", default='["world"]')
            p.add_argument("--timeout", type=float, default=60)
        else:
            p.add_argument("--seconds", type=float, default=30)
    run_command(parser, {"run": run, "worker": worker_only, "start": start_only})


def run_command(parser: argparse.ArgumentParser, commands: Dict[str, Callable[[argparse.Namespace], Awaitable[int]]]) -> NoReturn:
    """Runs the subcommand `parser` reads from the command line and ends the
    process with its exit code, skipping interpreter finalization:
    temporalio's native core thread can crash there (PyGILState_Release)
    after all work is done. Shared by the conformance scripts."""
    args = parser.parse_args()
    code = asyncio.run(commands[args.command](args))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
