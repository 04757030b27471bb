"""Export real encrypted workflow histories for payloadctl's tests.

Starts the pinned `temporal server start-dev` (headless, free ports, a
throw-away SQLite file), runs a few workflows with the real Python SDK whose
client and worker encrypt every payload with the official samples' AES-GCM
codec (key id `test-key-id`) and the failure converter with
encoded attributes, then exports each history with the real CLI:

    temporal workflow show -w ID -o json --address 127.0.0.1:PORT

into `<out>/<name>.json`, and writes `<out>/<name>.expected.json`: the plain
values the workflow saw (inputs, results, memo, header, signal arguments,
failure details) and the failure messages, so tests can check that decoding
the history recovers every one of them.

    python export_histories.py --temporal PATH/TO/temporal --out DIR

Run through `cargo xtask histories`.
"""

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from typing import Any, Dict, List

from temporalio import activity, workflow
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowFailureError,
)
from temporalio.common import HeaderCodecBehavior, RetryPolicy
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    default,
)
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker


# The official Python sample's key; public, for tests only.
KEY_ID = "test-key-id"


# The samples' codec, shared with the conformance workflows (same folder).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workflows import SampleEncryptionCodec  # noqa: E402


TASK_QUEUE = "payloadkit-histories"

# The values each workflow sees; the tests look for every one of them in the
# decoded history.
ORDER = {
    "customer": "Ada Lovelace",
    "items": [{"sku": "ANALYTICAL-ENGINE", "qty": 1}, {"sku": "PUNCH-CARD", "qty": 250}],
    "note": "héllo, wörld ✓",
    "express": True,
}
ORDER_MEMO = {"owner": "ops-team", "ticket": {"id": 4711, "priority": "high"}}
ORDER_HEADER_KEY = "payloadkit-trace"
ORDER_HEADER = {"trace_id": "7f3c2a90", "sampled": True}
ORDER_UPSERTED_MEMO = {"stage": "shipped"}
CARD = "4242-4242-4242-4242"
APPROVAL_REQUEST = "raise budget for Q3"
DECISIONS = [
    {"by": "alice", "approved": True},
    {"by": "bob", "approved": False, "reason": "budget ✗"},
]


@activity.defn
async def prepare_order(order: Dict[str, Any]) -> Dict[str, Any]:
    units = sum(item["qty"] for item in order["items"])
    return {"greeting": f"Hello, {order['customer']}!", "units": units}


def order_result(prepared: Dict[str, Any]) -> Dict[str, Any]:
    return {"status": "shipped", "prepared": prepared, "total": 1234.5}


@workflow.defn
class ProcessOrder:
    @workflow.run
    async def run(self, order: Dict[str, Any]) -> Dict[str, Any]:
        prepared = await workflow.execute_activity(
            prepare_order, order, start_to_close_timeout=timedelta(seconds=30)
        )
        workflow.upsert_memo(ORDER_UPSERTED_MEMO)
        return order_result(prepared)


@activity.defn
async def charge_card(card: str) -> str:
    try:
        raise ValueError(f"card {card[-4:]} expired in 2020")
    except ValueError as err:
        raise ApplicationError(
            "charge declined by the issuer",
            {"card_suffix": card[-4:], "code": 51},
            type="PaymentDeclined",
            non_retryable=True,
        ) from err


@workflow.defn
class ChargeCard:
    @workflow.run
    async def run(self, card: str) -> str:
        try:
            return await workflow.execute_activity(
                charge_card,
                card,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            raise ApplicationError(
                "order 7 could not be charged",
                {"order_id": 7, "retry": False},
                type="OrderFailed",
                non_retryable=True,
            ) from err


@activity.defn
async def stamp(approver: str) -> str:
    return f"stamped by {approver}"


@workflow.defn
class Echo:
    @workflow.run
    async def run(self, value: List[Any]) -> List[Any]:
        return list(reversed(value))


@workflow.defn
class Approval:
    def __init__(self) -> None:
        self.decisions: List[Dict[str, Any]] = []

    @workflow.signal
    async def decide(self, decision: Dict[str, Any]) -> None:
        self.decisions.append(decision)

    @workflow.run
    async def run(self, request: str) -> Dict[str, Any]:
        await workflow.wait_condition(lambda: len(self.decisions) >= len(DECISIONS))
        note = await workflow.execute_local_activity(
            stamp, self.decisions[-1]["by"], start_to_close_timeout=timedelta(seconds=30)
        )
        child = await workflow.execute_child_workflow(
            Echo.run, ["child", 1, None], id=f"{workflow.info().workflow_id}-child"
        )
        return {"request": request, "decisions": self.decisions, "note": note, "child": child}


class HeaderInterceptor(Interceptor):
    """Adds a header to workflows started with a `payloadkit-trace` memo-less
    start, as tracing interceptors do."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _HeaderOutbound(next)


class _HeaderOutbound(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput):
        if input.workflow == "ProcessOrder":
            payload = default().payload_converter.to_payloads([ORDER_HEADER])[0]
            input.headers = {**input.headers, ORDER_HEADER_KEY: payload}
        return await super().start_workflow(input)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(temporal: str, workdir: str) -> "tuple[subprocess.Popen, str]":
    port = free_port()
    log = open(os.path.join(workdir, "server.log"), "wb")
    cmd = [
        temporal,
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--headless",
        "--db-filename",
        os.path.join(workdir, "temporal.db"),
        "--log-level",
        "error",
    ]
    print("$", " ".join(cmd), file=sys.stderr)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"127.0.0.1:{port}"


async def connect(address: str, deadline: float) -> Client:
    converter = DataConverter(
        payload_codec=SampleEncryptionCodec(KEY_ID),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
    while True:
        try:
            return await Client.connect(
                address,
                data_converter=converter,
                interceptors=[HeaderInterceptor()],
                header_codec_behavior=HeaderCodecBehavior.CODEC,
            )
        except Exception:  # noqa: BLE001 - the server is still starting
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def run_workflows(address: str) -> Dict[str, Dict[str, Any]]:
    """Runs the workflows; returns name -> {workflow_id, values, messages}."""
    client = await connect(address, time.monotonic() + 60)
    out: Dict[str, Dict[str, Any]] = {}
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[ProcessOrder, ChargeCard, Approval, Echo],
        activities=[prepare_order, charge_card, stamp],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        # 1. Success: a dict input, a memo (later upserted) and a header.
        result = await client.execute_workflow(
            ProcessOrder.run,
            ORDER,
            id="order-success",
            task_queue=TASK_QUEUE,
            memo=ORDER_MEMO,
        )
        prepared = await prepare_order(ORDER)
        assert result == order_result(prepared), result
        out["order-success"] = {
            "workflow_id": "order-success",
            "values": [
                ORDER,
                ORDER_HEADER,
                *ORDER_MEMO.values(),
                *ORDER_UPSERTED_MEMO.values(),
                prepared,
                result,
            ],
            "messages": [],
        }

        # 2. Failure: an application error with details and a cause chain,
        # message and stack traces in encoded attributes.
        try:
            await client.execute_workflow(
                ChargeCard.run, CARD, id="charge-failure", task_queue=TASK_QUEUE
            )
            raise AssertionError("ChargeCard should have failed")
        except WorkflowFailureError:
            pass
        out["charge-failure"] = {
            "workflow_id": "charge-failure",
            "values": [
                CARD,
                {"order_id": 7, "retry": False},
                {"card_suffix": CARD[-4:], "code": 51},
            ],
            "messages": [
                "order 7 could not be charged",
                "charge declined by the issuer",
                f"card {CARD[-4:]} expired in 2020",
            ],
        }

        # 3. Signals, a local activity (a marker) and a child workflow.
        handle = await client.start_workflow(
            Approval.run, APPROVAL_REQUEST, id="approval-signals", task_queue=TASK_QUEUE
        )
        for decision in DECISIONS:
            await handle.signal(Approval.decide, decision)
        result = await handle.result()
        out["approval-signals"] = {
            "workflow_id": "approval-signals",
            "values": [
                APPROVAL_REQUEST,
                *DECISIONS,
                f"stamped by {DECISIONS[-1]['by']}",
                ["child", 1, None],
                [None, 1, "child"],
                result,
            ],
            "messages": [],
        }
    return out


def export(temporal: str, address: str, workflow_id: str) -> Any:
    cmd = [temporal, "workflow", "show", "-w", workflow_id, "-o", "json", "--address", address]
    print("$", " ".join(cmd), file=sys.stderr)
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--temporal", required=True, help="the temporal CLI binary")
    parser.add_argument("--out", required=True, help="folder for <name>.json files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    workdir = tempfile.mkdtemp(prefix="payloadkit-histories-")
    proc, address = start_server(args.temporal, workdir)
    try:
        runs = asyncio.run(run_workflows(address))
        for name, run in runs.items():
            text = export(args.temporal, address, run["workflow_id"])
            history = json.loads(text)
            if "binary/encrypted" not in json.dumps(history) and "YmluYXJ5L2VuY3J5cHRlZA==" not in text:
                raise AssertionError(f"{name}: the exported history is not encrypted")
            with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
                f.write(text if text.endswith("\n") else text + "\n")
            expected = {
                "workflow_id": run["workflow_id"],
                "key_id": KEY_ID,
                "values": run["values"],
                "failure_messages": run["messages"],
            }
            with open(os.path.join(args.out, f"{name}.expected.json"), "w", encoding="utf-8") as f:
                json.dump(expected, f, indent=2, ensure_ascii=False)
                f.write("\n")
            print(f"wrote {name}.json ({len(text)} bytes)", file=sys.stderr)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
