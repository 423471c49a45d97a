"""HTTP plumbing shared by the platforms and the routes: bounded body reading and JSON problem answers."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

MAX_BODY_BYTES = 256 * 1024
_encoder = msgspec.json.Encoder()


class Problem(Exception):
    """A 4xx answer: `reason` is a stable code (also the metric label), `detail` says what was wrong."""

    def __init__(self, status: int, reason: str, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.body = body


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(payload), status_code=status, media_type="application/json")


def problem_response(problem: Problem) -> Response:
    # BotX-shaped bodies (reason/error_data) keep their fields; every body also names the problem.
    body = {**(problem.body or {}), "error": problem.reason, "detail": problem.detail}
    return json_response(body, problem.status)


def require_content_type(request: Request, *expected: str) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in expected:
        raise Problem(
            415, "unsupported_media_type", f"content-type must be {' or '.join(expected)}, got {media_type!r}"
        )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Problem(400, "bad_content_length", "content-length is not a number")
        if int(declared) > limit:
            raise Problem(413, "body_too_large", f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "body_too_large", f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise Problem(400, "malformed_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Problem(422, "invalid_payload", "body must be a JSON object")
    return value
