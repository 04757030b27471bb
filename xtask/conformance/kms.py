"""Envelope encryption with the real Python SDK, in the Temporal Proxy's format.

A `PayloadCodec` written from the proxy's documented wire format, not from
payloadkit's code: each payload becomes

    metadata: encoding = binary/encrypted
              encryption-key-id = the KEK URI, as text
              encryption-dek = standard base64 (padded) of the wrapped data key
    data:     12-byte nonce | AES-256-GCM(serialized Payload) | 16-byte tag

(no associated data), where the 32-byte data key is wrapped by a KMS:

    hashivault://<key>[?engine=<mount>]   OpenBao/Vault transit over HTTP
        (BAO_ADDR, BAO_TOKEN); the wrapped key is the ASCII of `vault:v1:...`
    awskms:///<key id, alias/<name> or ARN>[?region=R]   AWS KMS via boto3
        (--aws-endpoint: moto's server; credentials from the AWS_* variables);
        the wrapped key is the raw CiphertextBlob

One data key encrypts `--payloads-per-key` payloads (0: all of them, for the
life of the process), then a new one is made, so a history holds several.
Decoding unwraps each data key once (a KEK is taken from the payload).

    python kms.py run --address A --namespace NS --workflow-id ID --kek URI
            [--names a,b,c] [--payloads-per-key N] [--aws-endpoint URL]
        start a worker, run GreetAll (one activity per name), print the
        result as JSON; stderr says how many data keys were made
    python kms.py encode --kek URI --value JSON --out FILE [--aws-endpoint URL]
        encode one json/plain value (a new data key) and write it as a
        Payloads proto JSON, the body a Codec Server's /decode takes
    python kms.py decode --file FILE [--aws-endpoint URL]
        decode every payload of a Payloads or Payload proto JSON (a Codec
        Server's /encode answer); print each value as JSON, a line each
    python kms.py aws-setup --aws-endpoint URL --alias alias/NAME
        create a symmetric KMS key and the alias for it
"""

import argparse
import asyncio
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs

import boto3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

# The conformance activity, shared with the other workflows (same folder).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workflows import compose_greeting, run_command  # noqa: E402

TASK_QUEUE = "payloadkit-kms"
ENCRYPTED = b"binary/encrypted"
NONCE = 12


class TransitKek:
    """An OpenBao/Vault transit key."""

    def __init__(self, mount: str, key: str) -> None:
        self.url = os.environ["BAO_ADDR"].rstrip("/") + f"/v1/{mount}"
        self.key = key
        self.token = os.environ["BAO_TOKEN"]

    def _call(self, op: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}/{op}/{self.key}",
            data=json.dumps(body).encode(),
            headers={"X-Vault-Token": self.token, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.load(answer)["data"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"transit {op} answered {err.code}: {err.read()[:300]!r}") from err

    def wrap(self, key: bytes) -> bytes:
        data = self._call("encrypt", {"plaintext": base64.b64encode(key).decode()})
        return data["ciphertext"].encode("ascii")

    def unwrap(self, wrapped: bytes) -> bytes:
        data = self._call("decrypt", {"ciphertext": wrapped.decode("ascii")})
        return base64.b64decode(data["plaintext"])


class AwsKek:
    """An AWS KMS key (moto's server here)."""

    def __init__(self, key_id: str, region: str, endpoint: Optional[str]) -> None:
        self.key_id = key_id
        self.client = boto3.client("kms", region_name=region, endpoint_url=endpoint)

    def wrap(self, key: bytes) -> bytes:
        return self.client.encrypt(KeyId=self.key_id, Plaintext=key)["CiphertextBlob"]

    def unwrap(self, wrapped: bytes) -> bytes:
        return self.client.decrypt(KeyId=self.key_id, CiphertextBlob=wrapped)["Plaintext"]


def kek_of(uri: str, aws_endpoint: Optional[str]):
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError(f"not a KEK URI: {uri!r}")
    location, _, query = rest.partition("?")
    params = parse_qs(query)
    if scheme in ("hashivault", "vault"):
        return TransitKek(params.get("engine", ["transit"])[0].strip("/"), location.strip("/"))
    if scheme == "awskms":
        region = params.get("region", [os.environ.get("AWS_DEFAULT_REGION", "us-east-1")])[0]
        return AwsKek(location.lstrip("/"), region, aws_endpoint)
    raise ValueError(f"kms.py does not speak {scheme}://")


class EnvelopeCodec(PayloadCodec):
    """The proxy's envelope format: encrypts under `kek`, decrypts under the
    KEK each payload names."""

    def __init__(self, kek: str, aws_endpoint: Optional[str], payloads_per_key: int = 0) -> None:
        self.kek = kek
        self.aws_endpoint = aws_endpoint
        self.per_key = payloads_per_key
        self.keks: Dict[str, object] = {}
        self.current: Optional[Tuple[AESGCM, bytes]] = None
        self.used = 0
        self.made = 0
        self.opened: Dict[Tuple[bytes, bytes], AESGCM] = {}
        self.lock = asyncio.Lock()

    def _kek(self, uri: str):
        if uri not in self.keks:
            self.keks[uri] = kek_of(uri, self.aws_endpoint)
        return self.keks[uri]

    async def _data_key(self) -> Tuple[AESGCM, bytes]:
        async with self.lock:
            return await self._next_data_key()

    async def _next_data_key(self) -> Tuple[AESGCM, bytes]:
        if self.current is None or (self.per_key and self.used >= self.per_key):
            key = os.urandom(32)
            wrapped = await asyncio.to_thread(self._kek(self.kek).wrap, key)
            dek = base64.b64encode(wrapped)
            aead = AESGCM(key)
            self.opened[(self.kek.encode(), dek)] = aead
            self.current = (aead, dek)
            self.used = 0
            self.made += 1
        self.used += 1
        return self.current

    async def encode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            aead, dek = await self._data_key()
            nonce = os.urandom(NONCE)
            sealed = aead.encrypt(nonce, p.SerializeToString(), None)
            metadata = {
                "encoding": ENCRYPTED,
                "encryption-key-id": self.kek.encode(),
                "encryption-dek": dek,
            }
            out.append(Payload(metadata=metadata, data=nonce + sealed))
        return out

    async def decode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding", b"") != ENCRYPTED:
                out.append(p)
                continue
            kek = p.metadata["encryption-key-id"]
            dek = p.metadata["encryption-dek"]
            aead = self.opened.get((kek, dek))
            if aead is None:
                wrapped = base64.b64decode(dek, validate=True)
                key = await asyncio.to_thread(self._kek(kek.decode()).unwrap, wrapped)
                aead = self.opened[(kek, dek)] = AESGCM(key)
            plain = aead.decrypt(p.data[:NONCE], p.data[NONCE:], None)
            out.append(Payload.FromString(plain))
        return out


@workflow.defn
class GreetAll:
    @workflow.run
    async def run(self, names: List[str]) -> List[str]:
        greetings = []
        for name in names:
            greetings.append(
                await workflow.execute_activity(
                    compose_greeting, name, start_to_close_timeout=timedelta(seconds=30)
                )
            )
        return greetings


async def connect_with_retry(args: argparse.Namespace, converter: DataConverter) -> Client:
    """A client of `--namespace`; a namespace just created may take a few
    seconds to be served."""
    deadline = asyncio.get_running_loop().time() + 30
    client = await Client.connect(args.address, namespace=args.namespace, data_converter=converter)
    while True:
        try:
            await client.count_workflows()
            return client
        except Exception as err:  # noqa: BLE001 - retried, then raised
            if asyncio.get_running_loop().time() > deadline:
                raise
            print(f"namespace {args.namespace} not served yet: {err}", file=sys.stderr)
            await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> int:
    codec = EnvelopeCodec(args.kek, args.aws_endpoint, args.payloads_per_key)
    client = await connect_with_retry(args, DataConverter(payload_codec=codec))
    names = [n for n in args.names.split(",") if n]
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[GreetAll],
        activities=[compose_greeting],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(
            GreetAll.run,
            names,
            id=args.workflow_id,
            task_queue=TASK_QUEUE,
            execution_timeout=timedelta(seconds=60),
        )
    print(f"data keys made: {codec.made}", file=sys.stderr)
    print(json.dumps(result))
    return 0


async def encode(args: argparse.Namespace) -> int:
    codec = EnvelopeCodec(args.kek, args.aws_endpoint)
    [plain] = DataConverter.default.payload_converter.to_payloads([json.loads(args.value)])
    [sealed] = await codec.encode([plain])
    body = {"payloads": [json_format.MessageToDict(sealed)]}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(body, f)
    return 0


async def decode(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as f:
        value = json.load(f)
    items = value["payloads"] if isinstance(value, dict) and "payloads" in value else [value]
    payloads = [json_format.ParseDict(item, Payload()) for item in items]
    converter = DataConverter(payload_codec=EnvelopeCodec("", args.aws_endpoint))
    for payload in payloads:
        if payload.metadata.get("encoding", b"") != ENCRYPTED:
            print(f"payload is not {ENCRYPTED.decode()}: {dict(payload.metadata)}", file=sys.stderr)
            return 1
        [value] = await converter.decode([payload])
        print(json.dumps(value))
    return 0


async def aws_setup(args: argparse.Namespace) -> int:
    client = boto3.client(
        "kms",
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        endpoint_url=args.aws_endpoint,
    )
    key = client.create_key(Description="payloadkit conformance KEK")["KeyMetadata"]
    client.create_alias(AliasName=args.alias, TargetKeyId=key["KeyId"])
    print(f"{args.alias} -> {key['Arn']}")
    return 0


COMMANDS = {"run": run, "encode": encode, "decode": decode, "aws-setup": aws_setup}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        p.add_argument("--aws-endpoint", required=name == "aws-setup", help="moto's server")
        if name == "run":
            p.add_argument("--address", required=True)
            p.add_argument("--namespace", default="default")
            p.add_argument("--workflow-id", required=True)
            p.add_argument("--kek", required=True)
            p.add_argument("--names", default="world")
            p.add_argument("--payloads-per-key", type=int, default=0)
        elif name == "encode":
            p.add_argument("--kek", required=True)
            p.add_argument("--value", required=True, help="a JSON value")
            p.add_argument("--out", required=True)
        elif name == "decode":
            p.add_argument("--file", required=True)
        else:
            p.add_argument("--alias", required=True)
    run_command(parser, COMMANDS)


if __name__ == "__main__":
    main()
