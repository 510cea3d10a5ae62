"""Small HTTP helpers shared by the endpoints: bounded body reads and scrubbed JSON responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from setpoint.secrets import scrub, to_jsonable


def scrubbed(value: Any) -> Any:
    """``value`` with known secret values replaced in every string (keys included)."""
    # strings only: scrubbing the serialised text could turn a number into invalid JSON
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v) for v in value]
    return value


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # the store and the engine hold no secret values; scrubbing once more costs little
    body = json.dumps(scrubbed(to_jsonable(data)), indent=1, sort_keys=False)
    return Response(body + "\n", status, headers=headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The body, or a 413 response as soon as it is known to exceed ``limit`` (never read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return json_response({"result": "too_large", "error": f"the body exceeds {limit} bytes"}, 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return json_response({"result": "too_large", "error": f"the body exceeds {limit} bytes"}, 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> dict[str, Any] | Response:
    body = await read_body(request, limit)
    if isinstance(body, Response):
        return body
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return json_response({"error": "the body is not JSON"}, 400)
    if not isinstance(data, dict):
        return json_response({"error": "the body must be a JSON object"}, 400)
    return data
