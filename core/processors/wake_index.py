"""Per instrument, the accounts a quote or the clock can make act, found without a scan.

The engine keeps one `WakeIndex` per (account partition, instrument). Each account watching
the instrument is filed under its `core.domain.trading.wake.Wake` levels (four sorted lists
of (level, account)), under "any quote" for a working market order, and under a due time
(DAY expiry, the next equity mark) in a heap. `woken(bid, ask, now_ns)` returns the accounts
that quote or time reaches, in O(log n + woken): a tick that moves inside every account's
band costs a few bisects, not a thousand `on_quote` calls.

An account is re-filed (`put`) after anything happens to it; a due time once reached is
dropped from the heap, so the engine re-files every account it woke.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from decimal import Decimal
from typing import NamedTuple

from core.domain.trading.wake import ASLEEP, Wake

_TOP = "\U0010ffff"  # sorts after every account id


class _Filed(NamedTuple):
    wake: Wake
    due_ns: int | None


def _drop(levels: list[tuple[Decimal, str]], level: Decimal | None, account: str) -> None:
    if level is not None:
        i = bisect_left(levels, (level, account))
        if i < len(levels) and levels[i] == (level, account):
            del levels[i]


def _add(levels: list[tuple[Decimal, str]], level: Decimal | None, account: str) -> None:
    if level is not None:
        insort(levels, (level, account))


class WakeIndex:
    """The accounts watching one instrument, filed by what would make each of them act."""

    __slots__ = ("_any", "_ask_at_least", "_ask_at_most", "_bid_at_least", "_bid_at_most",
                 "_due", "_filed")

    def __init__(self) -> None:
        self._ask_at_most: list[tuple[Decimal, str]] = []
        self._ask_at_least: list[tuple[Decimal, str]] = []
        self._bid_at_least: list[tuple[Decimal, str]] = []
        self._bid_at_most: list[tuple[Decimal, str]] = []
        self._any: set[str] = set()
        self._due: list[tuple[int, str]] = []  # heap; stale entries skipped on pop
        self._filed: dict[str, _Filed] = {}

    def __len__(self) -> int:
        return len(self._filed)

    def __contains__(self, account: object) -> bool:
        return account in self._filed

    def accounts(self) -> set[str]:
        return set(self._filed)

    def put(self, account: str, wake: Wake = ASLEEP, due_ns: int | None = None) -> None:
        """File `account` under `wake` and `due_ns`, replacing what it was filed under."""
        before = self._filed.get(account)
        if before is not None and before.wake == wake and before.due_ns == due_ns:
            return
        self._unfile(account, before)
        self._filed[account] = _Filed(wake, due_ns)
        _add(self._ask_at_most, wake.ask_at_most, account)
        _add(self._ask_at_least, wake.ask_at_least, account)
        _add(self._bid_at_least, wake.bid_at_least, account)
        _add(self._bid_at_most, wake.bid_at_most, account)
        if wake.any_quote:
            self._any.add(account)
        if due_ns is not None:
            heapq.heappush(self._due, (due_ns, account))
            if len(self._due) > 2 * len(self._filed) + 64:  # stale entries: rebuild
                self._due = [(f.due_ns, a) for a, f in self._filed.items()
                             if f.due_ns is not None]
                heapq.heapify(self._due)

    def remove(self, account: str) -> None:
        self._unfile(account, self._filed.pop(account, None))

    def _unfile(self, account: str, filed: _Filed | None) -> None:
        if filed is None:
            return
        wake = filed.wake
        _drop(self._ask_at_most, wake.ask_at_most, account)
        _drop(self._ask_at_least, wake.ask_at_least, account)
        _drop(self._bid_at_least, wake.bid_at_least, account)
        _drop(self._bid_at_most, wake.bid_at_most, account)
        self._any.discard(account)
        # The heap entry goes stale: `woken` skips entries that no longer match `_filed`.

    def woken(self, bid: Decimal, ask: Decimal, now_ns: int) -> set[str]:
        """The accounts that a quote of `bid`/`ask` at `now_ns` may make act."""
        out = set(self._any)
        if self._ask_at_most:
            out.update(a for _, a in self._ask_at_most[bisect_left(self._ask_at_most, (ask,)):])
        if self._ask_at_least:
            out.update(a for _, a in
                       self._ask_at_least[:bisect_right(self._ask_at_least, (ask, _TOP))])
        if self._bid_at_least:
            out.update(a for _, a in
                       self._bid_at_least[:bisect_right(self._bid_at_least, (bid, _TOP))])
        if self._bid_at_most:
            out.update(a for _, a in self._bid_at_most[bisect_left(self._bid_at_most, (bid,)):])
        due = self._due
        while due and due[0][0] <= now_ns:
            at, account = heapq.heappop(due)
            filed = self._filed.get(account)
            if filed is not None and filed.due_ns == at:
                out.add(account)
                self._filed[account] = filed._replace(due_ns=None)
        return out


__all__ = ["WakeIndex"]
