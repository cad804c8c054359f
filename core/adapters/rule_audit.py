"""Reads an assessment's accounts back from `account.events` for `propstream verify`.

An assessment's phase accounts have derived ids (`schemas.assessment.phase_account_id`), so
the accounts are found without a read model: phase 0, 1, ... until one has no events. Each
account's partition is read whole from its start (keys filtered), decoded with the registry
(upcasters included) and handed to the pure `core.domain.trading.audit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.domain.trading.audit import Check, audit
from core.exceptions import CoreError
from kernel.log import Log, TopicPartition, partition_for
from schemas.account import AccountOpened
from schemas.assessment import phase_account_id
from schemas.codec import decode_event
from schemas.envelope import EventPayload
from schemas.registry import TypeRegistry

MAX_PHASES = 16  # far above any tier's phases: the search for phase accounts stops there
POLL_RECORDS = 5_000

Progress = Callable[[str], None]


class UnknownAssessment(CoreError):
    """No account of this assessment was ever opened on the log."""


@dataclass(frozen=True, slots=True)
class AccountAudit:
    """One phase account: how many of its events were read, and its verdicts' checks."""

    phase: int
    account_id: str
    events: int
    checks: list[Check]


async def read_account(log: Log, *, topic: str, account_id: str, registry: TypeRegistry,
                       progress: Progress | None = None) -> list[EventPayload]:
    """The account's events on `topic`, in log order (committed records only)."""
    consumer = log.consumer(client_id=f"verify-{account_id[:8]}")
    await consumer.start()
    try:
        parts = await consumer.partitions_for(topic)
        tp = TopicPartition(topic, partition_for(account_id.encode(), len(parts)))
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        key, out, read = account_id.encode(), [], 0
        while await consumer.position(tp) < end:
            batch = await consumer.poll(max_records=POLL_RECORDS, timeout=0.2)
            for record in batch.get(tp, ()):
                if record.offset >= end:
                    break
                read += 1
                if record.key == key:
                    out.append(registry.event_payload(decode_event(record.value or b"")))
            if progress is not None and batch:
                progress(f"  read {read} of partition {tp.partition}'s records, "
                         f"{len(out)} of the account's")
        return out
    finally:
        await consumer.stop()


async def verify_assessment(log: Log, *, topic: Callable[[str], str], assessment_id: str,
                            registry: TypeRegistry, progress: Progress | None = None
                            ) -> list[AccountAudit]:
    """Re-derive every verdict of every phase account of `assessment_id` from the log."""
    accounts: list[AccountAudit] = []
    for phase in range(MAX_PHASES):
        account_id = phase_account_id(assessment_id, phase)
        if progress is not None:
            progress(f"phase {phase}: reading account {account_id}")
        events = await read_account(log, topic=topic("account.events"), account_id=account_id,
                                    registry=registry, progress=progress)
        opened = next((e for e in events if isinstance(e, AccountOpened)), None)
        if opened is None or str(opened.assessment_id) != assessment_id:
            break
        checks = audit(account_id, events)
        if progress is not None:
            progress(f"phase {phase}: {len(events)} events, {len(checks)} verdict(s) checked")
        accounts.append(AccountAudit(phase, account_id, len(events), checks))
    if not accounts:
        raise UnknownAssessment(f"no account of assessment {assessment_id} is on the log "
                                "(unknown assessment, or its first account is not open yet)")
    return accounts


__all__ = ["AccountAudit", "UnknownAssessment", "read_account", "verify_assessment"]
