"""Kernel exceptions, all rooted in `PropstreamError`."""

from __future__ import annotations

from schemas.errors import PropstreamError

__all__ = ["DeadLetterTopicMissing", "InfraError", "ProcessingError", "PropstreamError",
           "TopicChangeRefused"]


class InfraError(PropstreamError):
    """Infrastructure could not be set up or reached; the message names cause and fix."""


class ProcessingError(PropstreamError):
    """A processor met a message it cannot handle and could not dead-letter it."""


class TopicChangeRefused(PropstreamError):
    """`apply_topics` would corrupt data (e.g. re-partition keyed topics); nothing was changed.
    The message says what to do instead."""


class DeadLetterTopicMissing(InfraError):
    """A stream runner's input topic has no dead-letter topic (in the catalogue, or on the
    log): the runner refuses to start, since its first poison record would stall its
    partition. The message names the topics and the fix."""
