"""Conformance workflows run by the real Python SDK.

The client and worker encrypt every payload with the official samples'
AES-256-GCM format (`binary/encrypted`, `encryption-key-id`, 12-byte nonce,
ciphertext and tag of the serialized inner Payload), so the history the
server stores is unreadable without a Codec Server.

    python workflows.py run --address HOST:PORT --workflow-id ID --name NAME
        start a worker, run the Greet workflow with NAME, print the result
    python workflows.py worker --address HOST:PORT --seconds N
        run a worker only (for workflows started by the temporal CLI)
"""

import argparse
import asyncio
import os
import sys
from datetime import timedelta
from typing import Iterable, List

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

TASK_QUEUE = "payloadkit-conformance"
KEY_ID = "test-key-id"
KEY = b"test-key-test-key-test-key-test!"


class SampleEncryptionCodec(PayloadCodec):
    """The samples' wire format, written for this test."""

    def __init__(self, key_id: str = KEY_ID, key: bytes = KEY) -> None:
        self.key_id = key_id
        self.aead = AESGCM(key)

    async def encode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            sealed = self.aead.encrypt(nonce, p.SerializeToString(), None)
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
            if key_id != self.key_id:
                raise ValueError(f"unknown key id {key_id}")
            plain = self.aead.decrypt(p.data[:12], p.data[12:], None)
            out.append(Payload.FromString(plain))
        return out


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


async def connect(address: str) -> Client:
    converter = DataConverter(payload_codec=SampleEncryptionCodec())
    return await Client.connect(address, data_converter=converter)


def make_worker(client: Client) -> Worker:
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[Greet],
        activities=[compose_greeting],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def run(args: argparse.Namespace) -> None:
    client = await connect(args.address)
    async with make_worker(client):
        result = await client.execute_workflow(
            Greet.run, args.name, id=args.workflow_id, task_queue=TASK_QUEUE
        )
    print(result)


async def worker_only(args: argparse.Namespace) -> None:
    client = await connect(args.address)
    async with make_worker(client):
        await asyncio.sleep(args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--address", required=True)
    p_run.add_argument("--workflow-id", required=True)
    p_run.add_argument("--name", required=True)
    p_worker = sub.add_parser("worker")
    p_worker.add_argument("--address", required=True)
    p_worker.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    asyncio.run(run(args) if args.command == "run" else worker_only(args))


if __name__ == "__main__":
    sys.exit(main())
