"""The reference Codec Server for `cargo xtask bench`.

A minimal Python server of the kind Temporal users run today, written for
this benchmark: aiohttp, proto3 JSON via the Python SDK's protobuf types, and
the samples' AES-256-GCM wire format via `cryptography`.

    python reference_server.py --port P
"""

import argparse

from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

KEYS = {"test-key-id": AESGCM(b"test-key-test-key-test-key-test!")}


def decode_one(p: Payload) -> Payload:
    if p.metadata.get("encoding", b"") != b"binary/encrypted":
        return p
    aead = KEYS[p.metadata["encryption-key-id"].decode()]
    return Payload.FromString(aead.decrypt(p.data[:12], p.data[12:], None))


async def decode(request: web.Request) -> web.Response:
    body = json_format.Parse(await request.text(), Payloads(), ignore_unknown_fields=True)
    out = Payloads(payloads=[decode_one(p) for p in body.payloads])
    return web.Response(text=json_format.MessageToJson(out), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/decode", decode)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
