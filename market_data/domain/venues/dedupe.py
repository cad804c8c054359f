"""Drop trades a venue sends twice (replays after a reconnect, overlapping streams)."""

from __future__ import annotations

from collections import OrderedDict


class Deduper:
    """Per-instrument bounded LRU set of recent venue trade ids."""

    def __init__(self, *, per_symbol: int = 10_000) -> None:
        if per_symbol < 1:
            raise ValueError("per_symbol must be at least 1")
        self._per_symbol = per_symbol
        self._seen: dict[str, OrderedDict[str, None]] = {}

    def is_duplicate(self, instrument: str, trade_id: str) -> bool:
        """Remember `trade_id` for `instrument`; true if it was already among the recent ids."""
        recent = self._seen.get(instrument)
        if recent is None:  # not setdefault: that builds an OrderedDict on every call
            recent = self._seen[instrument] = OrderedDict()
        if trade_id in recent:
            recent.move_to_end(trade_id)
            return True
        recent[trade_id] = None
        if len(recent) > self._per_symbol:
            recent.popitem(last=False)
        return False

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._seen.values())
