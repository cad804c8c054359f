"""The purchase -> assessment -> account policy: a stream processor, not a decider.

It owns no state. Each payment or assessment event it reads becomes at most one command for
the assessment or account decider, which decide it against their own state:

    payment.purchase-completed | payment.purchase-granted -> assessment.create
    payment.purchase-refunded  | payment.purchase-disputed -> assessment.cancel
    assessment.created   -> account.open  (starting balance = the terms' account size)
    assessment.cancelled -> account.close (the account decider refuses one never opened)

A command's id is derived from the event and the command type, and its `issued_at` is the
event's time, so a redelivered event emits the very same command and the decider recognises
it: no second effect. Offsets are committed only after the broker acknowledged every command
of the batch; a crash before that re-reads the batch and re-emits duplicates, which is safe.
The causing event id travels in the `x-causation-id` header (the command envelope has no
field for it). An event that decodes but cannot become a valid command is dead-lettered.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiokafka import TopicPartition

from core.config import CoreSettings as Settings
from kernel.observability import MESSAGES
from kernel.projection import Applied
from kernel.stream import StreamProcessor
from schemas.account import CloseAccount, OpenAccount, account_id_for
from schemas.assessment import (
    AssessmentCancelled,
    AssessmentCreated,
    CancelAssessment,
    CreateAssessment,
    assessment_id_for,
)
from schemas.codec import decode_event, encode
from schemas.envelope import CommandEnvelope, CommandPayload, EventEnvelope, make_command
from schemas.errors import DecodeError
from schemas.payment import PurchaseCompleted, PurchaseDisputed, PurchaseGranted, PurchaseRefunded
from schemas.registry import TypeRegistry

# Fixed forever: changing it would turn every redelivered event into a new command.
POLICY_NAMESPACE = uuid.UUID("e4b8c2d6-19a7-4f3c-8d5e-0a6b7c1f2e93")
ACTOR = "policy:assessment"
CAUSATION_HEADER = "x-causation-id"


@dataclass(frozen=True)
class Emit:
    """A command to send (to a catalogue topic) because of one event."""

    topic: str
    command: CommandEnvelope
    causation_id: uuid.UUID


def policy_command_id(event_id: uuid.UUID, command_type: str) -> uuid.UUID:
    return uuid.uuid5(POLICY_NAMESPACE, f"{event_id}:{command_type}")


def commands_for(applied: Applied) -> list[Emit]:
    """The commands one event calls for (none for the events the policy ignores). Pure."""
    env, event = applied.envelope, applied.payload
    match event:
        case PurchaseCompleted() | PurchaseGranted():
            source = "stripe" if isinstance(event, PurchaseCompleted) else "grant"
            create = CreateAssessment(
                purchase_id=uuid.UUID(env.aggregate_id), user_id=event.user_id,
                tier_id=event.tier_id, tier_revision=event.tier_revision, terms=event.terms,
                source=source)
            return [_emit("assessment.commands", assessment_id_for(env.aggregate_id), create,
                          env)]
        case PurchaseRefunded() | PurchaseDisputed():
            cancel = CancelAssessment(
                purchase_id=uuid.UUID(env.aggregate_id),
                reason="refunded" if isinstance(event, PurchaseRefunded) else "disputed",
                stripe_event_id=event.stripe_event_id)
            return [_emit("assessment.commands", assessment_id_for(env.aggregate_id), cancel,
                          env)]
        case AssessmentCreated():
            open_ = OpenAccount(assessment_id=uuid.UUID(env.aggregate_id),
                                user_id=event.user_id,
                                starting_balance=Decimal(event.terms.account_size),
                                currency=event.terms.currency)
            return [_emit("account.commands", str(event.account_id), open_, env)]
        case AssessmentCancelled(reason=reason):
            close = CloseAccount(reason=f"assessment cancelled: purchase {reason}")
            return [_emit("account.commands", account_id_for(env.aggregate_id), close, env)]
    return []


def _emit(topic: str, aggregate_id: str, payload: CommandPayload, cause: EventEnvelope) -> Emit:
    command = make_command(payload, aggregate_id=aggregate_id,
                           command_id=policy_command_id(cause.event_id, payload.TYPE),
                           issued_at=cause.occurred_at, correlation_id=cause.correlation_id,
                           actor=ACTOR)
    return Emit(topic, command, cause.event_id)


class AssessmentPolicy(StreamProcessor):
    """Runs `commands_for` over payment.events and assessment.events, effectively once."""

    def __init__(self, settings: Settings, registry: TypeRegistry, *,
                 max_batch: int = 500) -> None:
        super().__init__(settings, name="assessment-policy",
                         topics=("payment.events", "assessment.events"), registry=registry,
                         max_batch=max_batch)

    async def handle_batch(self, batch: dict[TopicPartition, list[Any]]) -> int:
        assert self.producer is not None
        acks: list[asyncio.Future[Any]] = []
        for messages in batch.values():
            for msg in messages:
                emits = await self._translate(msg)
                for emit in emits:
                    # Queued in log order: one aggregate's commands keep their order.
                    acks.append(await self.producer.send(
                        self.settings.topic(emit.topic), value=encode(emit.command),
                        key=emit.command.aggregate_id.encode(),
                        headers=[(CAUSATION_HEADER, str(emit.causation_id).encode())]))
                MESSAGES.labels(self.name, msg.topic, "applied" if emits else "ignored").inc()
        await asyncio.gather(*acks)
        return await self.commit(batch)

    async def _translate(self, msg: Any) -> list[Emit]:
        """The commands of one record; an unreadable or untranslatable one is dead-lettered."""
        assert self.dlq is not None
        try:
            env = decode_event(msg.value)
            return commands_for(Applied(env, self.registry.event_payload(env)))
        # ValueError: an aggregate id that is no UUID, or a command pydantic refuses.
        except (DecodeError, ValueError) as exc:
            MESSAGES.labels(self.name, msg.topic, "dead-lettered").inc()
            await self.dlq.send(msg, exc)
            return []
