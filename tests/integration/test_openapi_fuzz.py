"""Schemathesis over each API's own OpenAPI document, against the real running processes.

Every operation gets generated requests, valid and invalid (schemathesis' positive and negative
modes), as an anonymous caller, a trader and an admin. Whatever comes in, the API must not
answer 5xx (503 with Retry-After while a dependency is down is the one allowed exception, and
none is down here), every error must be RFC 9457 problem+json with the fields we promise,
and every answer must match the schema the document declares for it (schemathesis'
`response_schema_conformance`): a client that checks answers against the document accepts
what we send.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import response_schema_conformance

from kernel.settings import Settings
from propstream.manifests import service
from tests.integration.helpers import PROBLEM_JSON, bearer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

EXAMPLES_PER_OPERATION = 30
PROBLEM_FIELDS = {"type", "title", "status"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_response(label: str, response: Any) -> None:
    """No 5xx; every 4xx is problem+json with type/title/status matching the status code."""
    status = response.status_code
    assert status < 500, f"{label}: {status} {response.text[:500]}"
    if status >= 400:
        # schemathesis keeps every value of a header, as a list.
        values = response.headers.get("content-type") or [""]
        content_type = values if isinstance(values, str) else values[0]
        assert content_type.startswith(PROBLEM_JSON), \
            f"{label}: {status} with content-type {content_type!r}: {response.text[:300]}"
        body = response.json()
        assert body.keys() >= PROBLEM_FIELDS, f"{label}: problem without {PROBLEM_FIELDS}: {body}"
        assert body["status"] == status, f"{label}: body status {body['status']} != {status}"
        assert body["type"].startswith("urn:propstream:problem:"), f"{label}: {body['type']}"


def fuzz(base_url: str, identities: dict[str, dict[str, str]]) -> Counter[str]:
    """Run every operation of the API at `base_url`; return how many calls ended how."""
    raw = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(raw)
    seen: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the OpenAPI document lists no operation"
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            try:
                _fuzz_operation(operation, mode, base_url, identities, seen)
            except Unsatisfiable:
                # No invalid request exists for an operation without inputs (GET /livez).
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
                seen["no-negative-case"] += 1
    return seen


def _fuzz_operation(operation: Any, mode: Any, base_url: str,
                    identities: dict[str, dict[str, str]], seen: Counter[str]) -> None:
    strategy = st.tuples(operation.as_strategy(generation_mode=mode),
                         st.sampled_from(sorted(identities)))

    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                         database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(drawn: tuple[Any, str]) -> None:
        case, who = drawn
        headers = {**(case.headers or {}), **identities[who]}
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        check_response(f"{operation.label} [{mode.value}, {who}]", response)
        case.validate_response(response, checks=[response_schema_conformance])
        seen[f"{response.status_code // 100}xx"] += 1

    run()


async def _serve(settings: Settings, spawn: type, argv: tuple[str, ...],
                 port_field: str) -> str:
    """Start one API process of `settings` on a free port; return its base URL when ready."""
    port = _free_port()
    api_settings = settings.model_copy(update={
        port_field: port, "command_timeout_ms": 300,
        # The fuzzer is one client on one IP: measure the API, not the default bucket.
        "rate_limit_per_s": 10_000.0, "rate_limit_burst": 10_000})
    process = spawn(*argv, with_settings=api_settings).start()
    base = f"http://{settings.host}:{port}"

    async def ready() -> bool:
        assert process.proc is not None and process.proc.poll() is None, process.output()[-2000:]
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{base}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(ready, timeout=60, what=f"{argv} /readyz")
    return base


def _identities(settings: Settings) -> dict[str, dict[str, str]]:
    return {"anonymous": {}, "trader": bearer(settings, role="trader",
                                              user_id="00000000-0000-4000-8000-0000000f0221"),
            "admin": bearer(settings)}


@pytest.mark.parametrize(("owner", "argv", "port_field"), [
    ("core", ("api",), "api_port"),
    ("market_data", ("market", "api"), "market_api_port"),
], ids=["core", "market"])
async def test_no_request_gets_a_5xx_and_every_error_is_problem_json(
    settings: Settings, spawn: type, owner: str, argv: tuple[str, ...], port_field: str,
) -> None:
    # Every decider, projection and policy of the API's service runs: its requests are
    # decided and its read models exist, as in production (the other service's workers would
    # only spend the machine: neither API sends to or reads from the other's).
    background = [spawn(*worker.argv).start() for worker in service(owner).workers()
                  if worker.kind in ("decider", "projection", "policy")]
    for process in background:
        await process.ready()
    base = await _serve(settings, spawn, argv, port_field)
    seen = await asyncio.to_thread(fuzz, base, _identities(settings))
    # Both outcomes were exercised: the fuzzer got through validation, and was refused.
    assert seen["2xx"] > 0 and seen["4xx"] > 0, seen
