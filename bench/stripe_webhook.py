"""Payments: POST /purchases against stripe-mock, and signed webhooks to a decided completion.

In a fresh namespace, starts the payment decider and the purchases projection as child
processes and the core API in-process (httpx over ASGI: no sockets, so the figures are the
app's own plus Kafka's and stripe-mock's). Gives one tier as an event, then, one request at
a time:

* `--purchases` POST /purchases (tier read, create-purchase decided, Checkout Session on
  stripe-mock, open-checkout decided): latency per request;
* one signed `checkout.session.completed` per purchase to POST /webhooks/stripe: latency to
  the 200 (the command durable on Kafka), then the time until every completion is on
  `payment.events`, and the same webhooks again (all duplicates: no new event).

Run: python -m bench.stripe_webhook [--purchases 100]   (needs `propstream infra up`)
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.common import (
    base_settings,
    create_topics,
    delete_namespace,
    drop_pg_schema,
    fresh_namespace,
    median,
    percentile,
    table,
)
from core.adapters.tiers_projection import TiersProjection
from kernel.projection import ProjectionRunner
from kernel.settings import Settings
from schemas import default_registry
from schemas.codec import decode_event, encode
from schemas.envelope import make_event
from schemas.tier import TierCreated
from schemas.topics import CATALOGUE
from tests.conftest import process_env
from tests.integration.helpers import asgi_client, bearer, produce, read_topic, wait_until
from tests.support.payments import sample_terms, stripe_event, stripe_signature


def row(name: str, ms: list[float]) -> tuple[str, int, str, str, str]:
    ordered = sorted(ms)
    return (name, len(ms), f"{median(ordered):.1f}", f"{percentile(ordered, 99):.1f}",
            f"{ordered[-1]:.1f}")


async def give_tier(settings: Settings) -> None:
    cause = uuid.uuid4()
    await produce(settings, "tier.events", [(b"bench-tier", encode(make_event(
        TierCreated(terms=sample_terms()), aggregate_id="bench-tier", sequence=1,
        occurred_at=datetime.now(UTC), correlation_id=cause, causation_id=cause,
        event_id=uuid.uuid4())))])
    runner = ProjectionRunner(settings, TiersProjection(), default_registry())
    await runner.start()
    await runner.run(until_caught_up=True, timeout=30)
    await runner.stop()


async def completions(settings: Settings) -> int:
    events = await read_topic(settings, "payment.events", raw=True)
    return sum(decode_event(m.value).type == "payment.purchase-completed" for m in events)


async def run(settings: Settings, n: int) -> None:
    from core.bootstrap import api

    await give_tier(settings)
    trader = bearer(settings, role="trader", user_id=str(uuid.uuid4()))
    secret = settings.stripe_webhook_secret.get_secret_value()
    async with asgi_client(api(settings), headers=trader) as client:
        # Warm-up: the decider joins its group; the first answer waits for that.
        await client.post("/purchases", json={"tier_id": "bench-tier"}, timeout=120)
        bought: list[dict[str, Any]] = []
        buy_ms: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            answer = await client.post("/purchases", json={"tier_id": "bench-tier"})
            buy_ms.append((time.perf_counter() - t0) * 1000)
            assert answer.status_code == 201, answer.text
            bought.append(answer.json())
        bodies = [stripe_event(f"evt_bench_{i}", "checkout.session.completed", {
            "id": p["checkout_session_id"], "payment_status": "paid", "amount_total": 9900,
            "currency": "usd", "metadata": {"purchase_id": p["purchase_id"]}})
            for i, p in enumerate(bought)]
        rounds: dict[str, list[float]] = {"first": [], "again": []}
        started = time.perf_counter()
        for name in rounds:
            for body in bodies:
                t0 = time.perf_counter()
                answer = await client.post("/webhooks/stripe", content=body, headers={
                    "Stripe-Signature": stripe_signature(body, secret),
                    "Content-Type": "application/json"})
                rounds[name].append((time.perf_counter() - t0) * 1000)
                assert answer.status_code == 200, answer.text
            if name == "first":
                async def all_completed() -> bool:
                    return await completions(settings) >= n

                await wait_until(all_completed, timeout=60, what="every completion")
                decided_s = time.perf_counter() - started
    await asyncio.sleep(2)  # time for the duplicates to be decided (as duplicates)
    total = await completions(settings)
    print(table(("what", "n", "p50 ms", "p99 ms", "max ms"), [
        row("POST /purchases (stripe-mock)", buy_ms),
        row("POST /webhooks/stripe, first delivery", rounds["first"]),
        row("POST /webhooks/stripe, redelivery", rounds["again"]),
    ]))
    print(f"{n} webhooks -> {n} purchase-completed on the log in {decided_s:.2f} s "
          f"(sequential posts included); after {n} redeliveries: {total} completions")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=100)
    args = parser.parse_args(argv)
    settings = fresh_namespace(base_settings(), "bpay")
    # The default per-user bucket (20/s) would throttle a sequential run; not measured here.
    settings = settings.model_copy(update={"command_timeout_ms": 30000,
                                           "rate_limit_per_s": 10_000.0,
                                           "rate_limit_burst": 10_000})

    async def go() -> None:
        try:
            await run(settings, args.purchases)
        finally:
            await delete_namespace(settings)
            await drop_pg_schema(settings)

    asyncio.run(create_topics(settings, CATALOGUE))
    # The purchases projection too: the endpoint sends a completion only for a purchase the
    # read model knows (it parks the others), as in production.
    children = [subprocess.Popen([sys.executable, "-m", "propstream", "run", *argv],
                                 env=process_env(settings), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                for argv in (["decider", "payment"], ["projection", "purchases"])]
    try:
        asyncio.run(go())
    finally:
        for child in children:
            child.terminate()
            child.wait(timeout=15)


if __name__ == "__main__":
    main()
