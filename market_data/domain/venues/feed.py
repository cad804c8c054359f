"""The port a venue module implements so one reconnecting client can drive any venue."""

from __future__ import annotations

from typing import Protocol

from market_data.domain.venues.common import GapDetected, ParseResult


class VenueFeed(Protocol):
    """Pure venue knowledge: what to send, how to read what comes back."""

    venue: str

    def subscribe_messages(self) -> list[str]:
        """Frames to send right after a connection opens."""
        ...

    def resync_messages(self, gap: GapDetected) -> list[str]:
        """Frames that make the venue send a fresh snapshot after a sequence gap."""
        ...

    def heartbeat_message(self) -> str | None:
        """An application-level keepalive frame, for venues that want one besides ping frames."""
        ...

    def parse(self, raw: bytes | str, received_ts_ns: int) -> ParseResult:
        """One frame to ticks, a refusal with a reason, or a gap. Never raises."""
        ...

    def reset(self) -> None:
        """Forget per-connection state (books, sequence numbers) before a new connection."""
        ...
