"""The simulator process: the default market of `make run`, no network needed.

It follows the instrument registry on `instrument.events` (registered and resumed
instruments tick, halted ones stop), steps a seeded MarketSimulator every `dt`, publishes the
ticks to `market.ticks` and every regime change and news item to `market.events`, and obeys
admin commands from `market.commands` (start, stop, regime override, injected news).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kernel.kafka import make_consumer, make_producer, partitions_of, send_many
from kernel.observability import get_logger
from market_data.adapters.publisher import TickPublisher
from market_data.config import MarketSettings as Settings
from market_data.domain.simulator import MarketSimulator
from market_data.domain.simulator_records import NewsEvent, RegimeChange
from market_data.exceptions import MarketDataError
from market_data.services.simulator_defaults import sim_config
from schemas import default_registry
from schemas.codec import decode_command, decode_event, encode
from schemas.envelope import EventPayload, make_event
from schemas.errors import DecodeError
from schemas.instrument import (
    InstrumentHalted,
    InstrumentRegistered,
    InstrumentResolved,
    InstrumentResumed,
)
from schemas.market import (
    InjectNews,
    MarketNewsPublished,
    MarketRegimeChanged,
    OverrideRegime,
    StartSimulator,
    StopSimulator,
)

log = get_logger(__name__)
MARKET_EVENT_NAMESPACE = uuid.UUID("a3f1c2d4-5b6e-4f70-8a9b-0c1d2e3f4a5b")


class SimulatorService:
    name = "market-simulator"

    def __init__(self, settings: Settings, *, seed: int = 42, dt_seconds: float = 0.1) -> None:
        self.settings = settings
        self.seed = seed
        self.dt_seconds = dt_seconds
        self.registry = default_registry()
        self.running = True
        self.specs: dict[str, InstrumentRegistered] = {}
        self.halted: set[str] = set()
        self.simulator: MarketSimulator | None = None
        self.rebuilds = 0
        self.producer: AIOKafkaProducer | None = None
        self.instruments: AIOKafkaConsumer | None = None
        self.commands: AIOKafkaConsumer | None = None
        self.publisher: TickPublisher | None = None
        self.event_sequence = 0
        self.steps = 0

    async def start(self) -> None:
        self.producer = make_producer(self.settings, client_id=self.name)
        await self.producer.start()
        self.publisher = TickPublisher(self.producer, self.settings.topic("market.ticks"),
                                       deduplicate=False)
        self.instruments = make_consumer(self.settings, client_id=f"{self.name}-registry")
        await self.instruments.start()
        parts = await partitions_of(self.instruments, self.settings.topic("instrument.events"))
        self.instruments.assign(parts)
        await self.instruments.seek_to_beginning(*parts)
        self.commands = make_consumer(self.settings, client_id=f"{self.name}-commands",
                                      group_id=self.settings.topic("propstream.market-simulator"))
        await self.commands.start()
        self.commands.subscribe([self.settings.topic("market.commands")])
        self.event_sequence = time.time_ns() // 1000

    async def stop(self) -> None:
        if self.publisher is not None:
            await self.publisher.flush()
        for client in (self.commands, self.instruments):
            if client is not None:
                await client.stop()
        if self.producer is not None:
            await self.producer.stop()

    # -- registry ----------------------------------------------------------------------------

    async def follow_registry(self) -> bool:
        """Fold new instrument events; True when the set of ticking instruments changed."""
        assert self.instruments is not None
        batch = await self.instruments.getmany(timeout_ms=0, max_records=1000)
        before = self.ticking()
        for messages in batch.values():
            for msg in messages:
                try:
                    payload = self.registry.event_payload(decode_event(msg.value))
                except DecodeError:
                    continue  # the instrument projection dead-letters these
                if isinstance(payload, InstrumentRegistered):
                    self.specs[payload.spec.symbol] = payload
                elif isinstance(payload, (InstrumentHalted, InstrumentResolved)):
                    self.halted.add(_aggregate(msg))  # a resolved market never ticks again
                elif isinstance(payload, InstrumentResumed):
                    self.halted.discard(_aggregate(msg))
        return self.ticking() != before

    def ticking(self) -> tuple[str, ...]:
        return tuple(sorted(s for s in self.specs if s not in self.halted))

    def rebuild(self) -> None:
        """A simulator over the ticking instruments; running ones continue from their mid."""
        previous = self.simulator
        configs = []
        for symbol in self.ticking():
            spec = self.specs[symbol].spec
            initial = None
            if previous is not None and symbol in previous.instruments:
                initial = Decimal(repr(previous.state(symbol).mid))
            configs.append(sim_config(symbol=symbol, asset_class=spec.asset_class,
                                      tick_size=spec.tick_size, lot_size=spec.lot_size,
                                      initial=initial, dt_seconds=self.dt_seconds))
        self.rebuilds += 1
        self.simulator = MarketSimulator(configs, seed=self.seed + self.rebuilds) if configs \
            else None
        log.info("simulator rebuilt", instruments=len(configs), run=self.rebuilds)

    # -- commands ----------------------------------------------------------------------------

    async def obey_commands(self) -> None:
        assert self.commands is not None
        batch = await self.commands.getmany(timeout_ms=0, max_records=100)
        for messages in batch.values():
            for msg in messages:
                try:
                    env = decode_command(msg.value)
                    command = self.registry.command_payload(env)
                except DecodeError as exc:
                    log.warning("bad simulator command", error=str(exc))
                    continue
                try:
                    self._obey(env.aggregate_id, command)
                except (MarketDataError, ValueError) as exc:
                    log.warning("simulator command refused", type=env.type, error=str(exc))
        if batch:
            await self.commands.commit()

    def _obey(self, symbol: str, command: object) -> None:
        if isinstance(command, StartSimulator):
            self.running = True
        elif isinstance(command, StopSimulator):
            self.running = False
        elif isinstance(command, OverrideRegime) and self.simulator is not None:
            self.simulator.override_regime(symbol, command.regime)
        elif isinstance(command, InjectNews) and self.simulator is not None:
            self.simulator.inject_news(symbol, jump=command.jump, headline=command.headline)
        log.info("simulator command", type=type(command).__name__, symbol=symbol,
                 running=self.running)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, *, steps: int | None = None) -> int:
        assert self.publisher is not None
        stop = asyncio.Event()
        flusher = asyncio.create_task(self.publisher.run(stop))
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while steps is None or self.steps < steps:
                if await self.follow_registry():
                    self.rebuild()
                await self.obey_commands()
                if self.running and self.simulator is not None:
                    await self.step(time.time_ns())
                next_at += self.dt_seconds
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                if loop.time() - next_at > 5 * self.dt_seconds:
                    next_at = loop.time()  # fell behind (paused machine): do not burst
        finally:
            stop.set()
            await flusher
        return self.steps

    async def step(self, now_ns: int) -> None:
        assert self.simulator is not None and self.publisher is not None
        assert self.producer is not None
        result = self.simulator.step(now_ns)
        self.steps += 1
        refused = self.publisher.publish(result.ticks)
        if refused:
            raise MarketDataError(f"the simulator produced invalid ticks: {refused[:3]}")
        happened: list[RegimeChange | NewsEvent] = [*result.regime_changes, *result.news]
        records = [self._record(e) for e in happened]
        if records:
            await send_many(self.producer, self.settings.topic("market.events"), records)

    def _record(self, record: RegimeChange | NewsEvent) -> tuple[bytes, bytes]:
        payload: EventPayload
        if isinstance(record, RegimeChange):
            payload = MarketRegimeChanged(instrument=record.instrument, at_ns=record.at_ns,
                                          from_regime=record.from_regime,
                                          to_regime=record.to_regime, sigma=record.sigma,
                                          forced=record.source == "admin")
        else:
            payload = MarketNewsPublished(instrument=record.instrument, at_ns=record.at_ns,
                                          headline=record.headline, jump=record.jump,
                                          signal=record.signal, strength=record.strength,
                                          injected=record.source == "admin")
        self.event_sequence += 1
        event_id = uuid.uuid5(MARKET_EVENT_NAMESPACE,
                              f"{record.instrument}/{self.event_sequence}")
        envelope = make_event(payload, aggregate_id=record.instrument,
                              sequence=self.event_sequence, occurred_at=datetime.now(UTC),
                              correlation_id=event_id, causation_id=None, event_id=event_id)
        return record.instrument.encode(), encode(envelope)


def _aggregate(msg: object) -> str:
    key = getattr(msg, "key", None)
    return key.decode() if isinstance(key, bytes) else ""
