"""RFC 9457 problem+json: the one error shape of every HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:propstream:problem:"


class Problem(Exception):
    """An RFC 9457 problem: raise it from a route to answer with problem+json."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", *,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(f"{status} {slug}: {detail or title}")
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(request: Request | None, problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if request is not None:
        body["instance"] = request.url.path
        rid = getattr(request.state, "request_id", None)
        if rid:
            body["request_id"] = rid
    body.update(problem.extra)
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON,
                        headers=problem.headers)


PROBLEM_SCHEMA: dict[str, Any] = {
    "description": "An RFC 9457 problem",
    "content": {PROBLEM_JSON: {"schema": {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "example": PROBLEM_BASE + "validation-failed"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
        },
    }}},
}
