"""The `market_bars` read model: one row per closed bar, upserted by its natural key."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from kernel.pg import copy_upsert
from kernel.projection import Applied
from schemas.market import MarketBarClosed

COLUMNS = ("instrument", "resolution", "open_time_ns", "close_time_ns", "open", "high", "low",
           "close", "volume", "trades")

DDL = """
CREATE TABLE IF NOT EXISTS market_bars (
    instrument TEXT NOT NULL,
    resolution TEXT NOT NULL,
    open_time_ns BIGINT NOT NULL,
    close_time_ns BIGINT NOT NULL,
    open DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL,
    low DOUBLE PRECISION NOT NULL,
    close DOUBLE PRECISION NOT NULL,
    volume DOUBLE PRECISION NOT NULL,
    trades INT NOT NULL,
    PRIMARY KEY (instrument, resolution, open_time_ns)
)
"""


class BarsProjection:
    name = "bars"
    topics: tuple[str, ...] = ("market.bars",)
    tables: tuple[str, ...] = ("market_bars",)

    def ddl(self) -> Sequence[str]:
        return (DDL,)

    async def apply(self, conn: psycopg.AsyncConnection, events: Sequence[Applied]) -> None:
        rows: dict[tuple[str, str, int], tuple[object, ...]] = {}
        for applied in events:
            bar = applied.payload
            if not isinstance(bar, MarketBarClosed):
                continue
            # A bar re-emitted after a processor restart has the same key and values.
            rows[(bar.instrument, bar.resolution, bar.open_time_ns)] = (
                bar.instrument, bar.resolution, bar.open_time_ns, bar.close_time_ns, bar.open,
                bar.high, bar.low, bar.close, bar.volume, bar.trades)
        if not rows:
            return
        await copy_upsert(conn, table="market_bars", columns=COLUMNS,
                          key=("instrument", "resolution", "open_time_ns"), rows=rows.values())
