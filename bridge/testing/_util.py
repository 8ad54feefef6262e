"""Small shared pieces: ids, timestamps that never repeat, opaque page tokens and the API error raised by handlers."""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["APIError", "Clock", "Ids", "decode_page", "encode_page", "parse_time", "rfc3339"]

Json = dict[str, Any]


class APIError(Exception):
    """An error answered with the API's envelope: `{"type":"error","error":{...},"request_id":...}`.

    Handlers raise it; the HTTP layer renders it, so every error response has the same shape the SDK parses.
    """

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        error_code: str | None = None,
        headers: dict[str, str] | None = None,
        details: Json | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.details = dict(details or {})
        if error_code is not None:
            self.details["error_code"] = error_code
        self.headers = dict(headers or {})

    def envelope(self, request_id: str) -> Json:
        """The JSON body the SDK turns into a typed exception."""
        error: Json = {"type": self.error_type, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"type": "error", "error": error, "request_id": request_id}


def not_found(kind: str, ident: str) -> APIError:
    """The 404 the API answers for an unknown resource id."""
    return APIError(404, "not_found_error", f"{kind} {ident} not found")


def invalid(message: str, *, error_code: str | None = None) -> APIError:
    """A final 400: the SDK raises it at once, without retrying."""
    return APIError(400, "invalid_request_error", message, error_code=error_code)


class Ids:
    """Id factory: `prefix_` + a counter and a random tail, so ids sort by creation and never collide across runs."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._tail = secrets.token_hex(3)

    def new(self, prefix: str) -> str:
        """A fresh id such as `sevt_000012a1b2c3`."""
        return f"{prefix}_{next(self._counter):06d}{self._tail}"


class Clock:
    """Wall-clock timestamps that strictly increase, so `created_at[...]` filters and ordering are deterministic."""

    def __init__(self) -> None:
        self._last = datetime.fromtimestamp(0, UTC)

    def now(self) -> datetime:
        """The current UTC time, at least one microsecond after the previous call's."""
        now = datetime.now(UTC)
        if now <= self._last:
            now = self._last + timedelta(microseconds=1)
        self._last = now
        return now


def rfc3339(moment: datetime) -> str:
    """`2026-05-01T12:00:00.123456Z`, the form the API uses."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """Parse a query timestamp as the SDK sends it (`isoformat()`, with `Z` or an offset; naive means UTC)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"invalid timestamp {value!r}: expected RFC 3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def encode_page(position: Json) -> str:
    """An opaque page token (`page_<base64 json>`) that encodes where the next page starts."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    return "page_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page(token: str) -> Json:
    """Inverse of `encode_page`; a token we did not make is a 400, as the API would answer."""
    try:
        body = token.removeprefix("page_")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, TypeError):
        raise invalid(f"invalid page token {token!r}") from None
    if not isinstance(data, dict):
        raise invalid(f"invalid page token {token!r}")
    return data
