"""The purchase -> assessment -> account policy: a stream processor, not a decider.

It owns no state. Each payment or assessment event it reads becomes at most one command for
the assessment or account decider, which decide it against their own state:

    payment.purchase-completed | payment.purchase-granted -> assessment.create
    payment.purchase-refunded  | payment.purchase-disputed -> assessment.cancel
    assessment.created   -> account.open  (starting balance = the terms' account size)
    assessment.cancelled -> account.close (the account decider refuses one never opened)
    assessment.phase-started -> account.open (the next phase's fresh account)

A command's id is derived from the event and the command type, and its `issued_at` is the
event's time, so a redelivered event emits the very same command and the decider recognises
it: no second effect — the second line. The first: the policy runs on
`kernel.runner.StreamRunner` in transactional mode, so a batch's commands and its input
offsets commit in one Kafka transaction per input partition, and a paused instance that lost
its partition is fenced instead of emitting again. The causing event id travels in the
`x-causation-id` header (the command envelope has no field for it). An event that decodes
but cannot become a valid command is dead-lettered.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.config import CoreSettings as Settings
from kernel import runner
from kernel.dlq import dead_letter_topic
from kernel.kafkalog import KafkaLog
from kernel.log import Log, LogRecord
from kernel.observability import MESSAGES
from kernel.projection import Applied
from kernel.runner import OwnsRunner, StageBase, StreamRunner
from schemas.account import CloseAccount, OpenAccount, account_id_for
from schemas.assessment import (
    AssessmentCancelled,
    AssessmentCreated,
    AssessmentPhaseStarted,
    CancelAssessment,
    CreateAssessment,
    assessment_id_for,
)
from schemas.codec import decode_event, encode
from schemas.envelope import CommandEnvelope, CommandPayload, EventEnvelope, make_command
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
                                currency=event.terms.currency, rules=event.rules)
            return [_emit("account.commands", str(event.account_id), open_, env)]
        case AssessmentPhaseStarted():
            open_next = OpenAccount(assessment_id=uuid.UUID(env.aggregate_id),
                                    user_id=event.user_id,
                                    starting_balance=Decimal(event.starting_balance),
                                    currency=event.currency, rules=event.rules)
            return [_emit("account.commands", str(event.account_id), open_next, env)]
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


class AssessmentPolicy(OwnsRunner, StageBase):
    """Runs `commands_for` over payment.events and assessment.events, effectively once."""

    def __init__(self, settings: Settings, registry: TypeRegistry, *,
                 max_batch: int = 500, log: Log | None = None,
                 group: str = "propstream.assessment-policy") -> None:
        self.settings = settings
        self.registry = registry
        self.name = "assessment-policy"
        self.group_id = settings.topic(group)
        self.runner = StreamRunner(
            log if log is not None else KafkaLog(settings), self, name=self.name,
            group_id=self.group_id,
            topics=[settings.topic(t) for t in ("payment.events", "assessment.events")],
            mode="transactional",
            dead_letter_topic=lambda topic: dead_letter_topic(settings, topic),
            max_batch=max_batch, session_timeout_ms=settings.stream_session_timeout_ms)

    def step(self, record: LogRecord) -> Sequence[runner.Emit]:
        """The commands of one record; raising dead-letters it (an unreadable event, or one
        that cannot become a valid command: ValueError from an id or from pydantic)."""
        env = decode_event(record.value or b"")
        emits = commands_for(Applied(env, self.registry.event_payload(env)))
        MESSAGES.labels(self.name, record.topic, "applied" if emits else "ignored").inc()
        # In log order: one aggregate's commands keep their order.
        return [runner.Emit(self.settings.topic(e.topic), e.command.aggregate_id.encode(),
                            encode(e.command),
                            ((CAUSATION_HEADER, str(e.causation_id).encode()),))
                for e in emits]
