"""External storage (claim check) with the real Python SDK and its S3 driver.

The client and worker encode every payload with the samples' AES-GCM codec
(from `workflows.py`, key `test-key-id`), then offload any encoded payload of
256 KiB or more to S3 with the SDK's `S3StorageDriver` (`aws.s3driver`, the
aioboto3 client) on moto's S3 server, leaving a reference payload
(`json/protobuf`, `temporal.api.sdk.v1.ExternalStorageReference`) in the
history. Credentials are moto's `test`/`test`, region `us-east-1`.

    python storage.py worker-run --address A --endpoint URL --workflow-id ID
        start a worker, run a workflow whose activity returns a ~1 MiB string
        (`payloadkit-large-<random hex>-payloadkit-end`, not compressible
        much) and whose result is that string; print the workflow id
    python storage.py start --address A --endpoint URL --workflow-id ID
            --workflow-type T --task-queue Q [--size N]
        start workflow T on another worker's task queue Q with one ~1 MiB
        string argument (as for worker-run), offloaded by the S3 driver; wait
        for its string result and print `result: N chars, begins '…'`; fail
        unless the result holds the whole argument
    python storage.py resolve --endpoint URL [--file F]
        read a Payload or a Payloads (proto JSON, as a Codec Server's /encode
        answers) from F or stdin and decode every payload with the SDK
        (external storage, then the codec); print each value as JSON, a line
        each
    python storage.py create-bucket --endpoint URL
    python storage.py keys --endpoint URL
        the bucket's object keys with their sizes, a line each
    python storage.py get --endpoint URL --key K --out F
    python storage.py put --endpoint URL --key K --file F
    python storage.py tamper --endpoint URL --key K
        overwrite the object with the same bytes but the last one flipped
        (same size: only the content hash tells)

Every command takes --bucket (default `temporal-payloads`).
"""

import argparse
import json
import os
import random
import sys
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator, List

import aioboto3
from google.protobuf import json_format
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.aws.s3driver import S3StorageDriver
from temporalio.contrib.aws.s3driver.aioboto3 import new_aioboto3_client
from temporalio.converter import DataConverter, ExternalStorage
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

# The samples' codec, shared with the conformance workflows (same folder).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workflows import make_codec, run_command  # noqa: E402

TASK_QUEUE = "payloadkit-storage"
BUCKET = "temporal-payloads"
MARKER = "payloadkit-large-"
END = "-payloadkit-end"


@asynccontextmanager
async def s3_client(endpoint: str) -> AsyncIterator[Any]:
    session = aioboto3.Session(
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    async with session.client("s3", endpoint_url=endpoint) as client:
        yield client


def converter(s3: Any, bucket: str) -> DataConverter:
    driver = S3StorageDriver(client=new_aioboto3_client(s3), bucket=bucket)
    return DataConverter(
        payload_codec=make_codec("encrypt", "test-key-id"),
        external_storage=ExternalStorage(drivers=[driver]),
    )


def large_text(seed: int, size: int) -> str:
    """`size` characters: the marker, random hex (seeded), the end marker."""
    body = size - len(MARKER) - len(END)
    digits = random.Random(seed).randbytes(body // 2 + 1).hex()[:body]
    return MARKER + digits + END


@activity.defn
async def make_large(seed: int, size: int) -> str:
    return large_text(seed, size)


@workflow.defn
class LargeResult:
    @workflow.run
    async def run(self, seed: int, size: int) -> str:
        return await workflow.execute_activity(
            make_large, args=[seed, size], start_to_close_timeout=timedelta(seconds=60)
        )


async def worker_run(args: argparse.Namespace) -> int:
    async with s3_client(args.endpoint) as s3:
        client = await Client.connect(args.address, data_converter=converter(s3, args.bucket))
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[LargeResult],
            activities=[make_large],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            result = await client.execute_workflow(
                LargeResult.run,
                args=[args.seed, args.size],
                id=args.workflow_id,
                task_queue=TASK_QUEUE,
                execution_timeout=timedelta(seconds=120),
            )
    if result != large_text(args.seed, args.size):
        print(f"the workflow answered {len(result)} characters, not the value sent", file=sys.stderr)
        return 1
    print(f"result: {len(result)} characters, begins {result[:32]!r}", file=sys.stderr)
    print(args.workflow_id)
    return 0


async def start(args: argparse.Namespace) -> int:
    value = large_text(args.seed, args.size)
    async with s3_client(args.endpoint) as s3:
        client = await Client.connect(args.address, data_converter=converter(s3, args.bucket))
        result = await client.execute_workflow(
            args.workflow_type,
            value,
            id=args.workflow_id,
            task_queue=args.task_queue,
            execution_timeout=timedelta(seconds=120),
            result_type=str,
        )
    print(f"result: {len(result)} chars, begins {result[:48]!r}")
    if value not in result:
        print(f"the result does not hold the {len(value)} character argument", file=sys.stderr)
        return 1
    return 0


def read_payloads(text: str) -> List[Payload]:
    value = json.loads(text)
    items = value["payloads"] if isinstance(value, dict) and "payloads" in value else [value]
    return [json_format.ParseDict(item, Payload()) for item in items]


async def resolve(args: argparse.Namespace) -> int:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
    payloads = read_payloads(text)
    async with s3_client(args.endpoint) as s3:
        data_converter = converter(s3, args.bucket)
        for payload in payloads:
            [value] = await data_converter.decode([payload])
            print(json.dumps(value))
    return 0


async def create_bucket(args: argparse.Namespace) -> int:
    async with s3_client(args.endpoint) as s3:
        existing = await s3.list_buckets()
        if args.bucket not in [b["Name"] for b in existing.get("Buckets", [])]:
            await s3.create_bucket(Bucket=args.bucket)
    return 0


async def keys(args: argparse.Namespace) -> int:
    async with s3_client(args.endpoint) as s3:
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=args.bucket):
            for item in page.get("Contents", []):
                print(f"{item['Key']} {item['Size']}")
    return 0


async def get(args: argparse.Namespace) -> int:
    async with s3_client(args.endpoint) as s3:
        answer = await s3.get_object(Bucket=args.bucket, Key=args.key)
        data = await answer["Body"].read()
    with open(args.out, "wb") as f:
        f.write(data)
    return 0


async def put(args: argparse.Namespace) -> int:
    with open(args.file, "rb") as f:
        data = f.read()
    async with s3_client(args.endpoint) as s3:
        await s3.put_object(Bucket=args.bucket, Key=args.key, Body=data)
    return 0


async def tamper(args: argparse.Namespace) -> int:
    async with s3_client(args.endpoint) as s3:
        answer = await s3.get_object(Bucket=args.bucket, Key=args.key)
        data = bytearray(await answer["Body"].read())
        if not data:
            print("the object is empty", file=sys.stderr)
            return 1
        data[-1] ^= 0x01
        await s3.put_object(Bucket=args.bucket, Key=args.key, Body=bytes(data))
    print(f"flipped the last of {len(data)} bytes of {args.key}", file=sys.stderr)
    return 0


COMMANDS = {
    "worker-run": worker_run,
    "start": start,
    "resolve": resolve,
    "create-bucket": create_bucket,
    "keys": keys,
    "get": get,
    "put": put,
    "tamper": tamper,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("--endpoint", required=True, help="the S3 endpoint (moto)")
        p.add_argument("--bucket", default=BUCKET)
        if name in ("worker-run", "start"):
            p.add_argument("--address", required=True)
            p.add_argument("--workflow-id", required=True)
            p.add_argument("--seed", type=int, default=7)
            p.add_argument("--size", type=int, default=1024 * 1024)
        if name == "start":
            p.add_argument("--workflow-type", required=True)
            p.add_argument("--task-queue", required=True)
        elif name == "resolve":
            p.add_argument("--file", default="-")
        elif name in ("get", "put", "tamper"):
            p.add_argument("--key", required=True)
            if name == "get":
                p.add_argument("--out", required=True)
            elif name == "put":
                p.add_argument("--file", required=True)
    run_command(parser, COMMANDS)


if __name__ == "__main__":
    main()
