"""One guarded request: scope, resolve once, check, connect to the checked address, redirects re-checked, bounded body.

Each hop (the first request and every redirect) is handled the same way:

1. parse the URL once (httpx2) and check it against the configured bases and hosts;
2. resolve the host once (an IP literal in any numeric form is read as itself) and refuse the hop if **any** address
   it resolves to is blocked, so a name that mixes a public and a private address gets nowhere;
3. send the request to `scheme://<checked ip>:port/...` with the real `Host` header and the real TLS SNI name
   (`sni_hostname`), so certificates are still verified for the name, and DNS is never asked again: a rebinding
   resolver has nothing to rebind;
4. read the body as a stream and stop at the byte cap (compressed bodies are inflated under the same cap);
5. on a redirect, go back to 1 with the new URL, at most `max_redirects` times. A 307/308 to another origin is not
   followed with a body; the operator's headers are injected per hop, so they never follow a redirect elsewhere.

The whole exchange runs under one total deadline, besides httpx2's connect/read timeouts.
"""

from __future__ import annotations

import socket
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2

from bridge import ConfigError, ToolError

from ._guard import AddressPolicy, IPAddress, literal_address
from ._scope import Scope, origin, parse_url

__all__ = ["Fetched", "Fetcher", "HttpLimits", "Resolver", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port) -> addresses`: how host names become addresses (injectable, so tests never need real DNS)."""

_REDIRECTS = (301, 302, 303, 307, 308)
_SHOWN_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "location",
    "etag",
    "last-modified",
    "cache-control",
    "retry-after",
    "date",
)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The operating system's resolver (getaddrinfo), asked once per hop."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class HttpLimits:
    """Caps on one request: size, time, redirects.

    Attributes:
        max_response_bytes: Body bytes read (after decompression) before reading stops and the answer is marked
            truncated.
        max_request_bytes: The largest body the model may send.
        max_chars: Characters of body text returned when the model does not ask for a number.
        max_chars_limit: The most the model may ask for in one answer (it pages with `start_index`).
        timeout: Seconds for the whole exchange, redirects and body included.
        connect_timeout: Seconds to connect to one address.
        max_redirects: Redirects followed (each re-checked) before giving up.
    """

    max_response_bytes: int = 2 * 1024 * 1024
    max_request_bytes: int = 1024 * 1024
    max_chars: int = 20_000
    max_chars_limit: int = 200_000
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_redirects: int = 5

    def __post_init__(self) -> None:
        bad = [
            f"HttpLimits.{name} must be > 0, got {getattr(self, name)!r}"
            for name in (
                "max_response_bytes",
                "max_request_bytes",
                "max_chars",
                "max_chars_limit",
                "timeout",
                "connect_timeout",
            )
            if not getattr(self, name) > 0
        ]
        if self.max_redirects < 0:
            bad.append(f"HttpLimits.max_redirects must be >= 0, got {self.max_redirects}")
        if self.max_chars > self.max_chars_limit:
            bad.append("HttpLimits.max_chars exceeds max_chars_limit")
        if bad:
            raise ConfigError(bad)

    @classmethod
    def coerce(cls, value: HttpLimits | Mapping[str, Any] | None) -> HttpLimits:
        """`HttpLimits` from itself, a table of its fields (bridge.toml), or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = set(cls.__dataclass_fields__)
            unknown = sorted(set(value) - known)
            if unknown:
                raise ConfigError(
                    f"unknown HttpLimits field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
            return cls(**value)
        raise ConfigError(f"limits must be HttpLimits or a table of its fields, got {type(value).__name__}")


@dataclass
class Fetched:
    """What came back: the final response's status, headers and (capped) body, and the path taken."""

    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    content_type: str
    charset: str | None
    redirects: list[str] = field(default_factory=list)
    address: str = ""
    elapsed_ms: float = 0.0


class _Inflater:
    """Bounded decoding of a gzip/deflate body the server compressed although we asked for identity."""

    def __init__(self, encoding: str) -> None:
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise ToolError(
                "upstream_error: the response uses a content encoding that is not decoded (not gzip/deflate)"
            )

    def feed(self, chunk: bytes, room: int) -> tuple[bytes, bool]:
        """Decoded bytes (at most `room`) and whether more output was pending past it."""
        if self._z is None:
            return chunk[:room], len(chunk) > room
        try:
            out = self._z.decompress(chunk, room)
        except zlib.error as exc:
            raise ToolError(f"upstream_error: the compressed body is corrupt: {exc}") from None
        return out, bool(self._z.unconsumed_tail)


class Fetcher:
    """Sends guarded requests for one toolset (see the module docstring)."""

    def __init__(
        self,
        scope: Scope,
        policy: AddressPolicy,
        limits: HttpLimits,
        resolver: Resolver,
        ssl_context: ssl.SSLContext,
        user_agent: str,
    ) -> None:
        self.scope, self.policy, self.limits = scope, policy, limits
        self._resolve, self._ssl, self._ua = resolver, ssl_context, user_agent

    async def pin(self, url: httpx2.URL) -> IPAddress:
        """Resolve `url`'s host once and return the address to connect to, or refuse the hop."""
        _, host, port = origin(url)
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                found = await self._resolve(host, port)
            except OSError as exc:
                raise ToolError(f"upstream_error: cannot resolve {host!r}: {exc}") from None
            addresses = [a for a in (literal_address(str(x)) for x in found) if a is not None]
            if not addresses:
                raise ToolError(f"upstream_error: {host!r} resolved to no usable address")
        for address in addresses:
            why = self.policy.refusal(address)
            if why is not None:
                raise ToolError(f"denied_by_policy: {host} resolves to {why}; the request was not sent")
        return addresses[0]

    async def fetch(
        self,
        method: str,
        url_text: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        idempotency_key: str | None = None,
    ) -> Fetched:
        """Send one request and follow redirects under every check; raise ToolError with the reason on refusal."""
        if body is not None and len(body) > self.limits.max_request_bytes:
            raise ToolError(f"invalid_input: the body is {len(body)} bytes; the cap is {self.limits.max_request_bytes}")
        model_headers = self.scope.model_header_values(headers)
        started = time.monotonic()
        try:
            with anyio.fail_after(self.limits.timeout):
                fetched = await self._follow(method, parse_url(url_text), model_headers, body, idempotency_key)
        except TimeoutError:
            raise ToolError(
                f"timeout: no complete answer within {self.limits.timeout:g} s; nothing more was read"
            ) from None
        fetched.elapsed_ms = (time.monotonic() - started) * 1000
        return fetched

    async def _follow(
        self,
        method: str,
        url: httpx2.URL,
        model_headers: dict[str, str],
        body: bytes | None,
        idempotency_key: str | None,
    ) -> Fetched:
        redirects: list[str] = []
        while True:
            self.scope.check(url)
            address = await self.pin(url)
            fetched = await self._send(method, url, address, model_headers, body, idempotency_key)
            fetched.redirects = redirects
            location = fetched.headers.get("location")
            if fetched.status not in _REDIRECTS or not location:
                return fetched
            if len(redirects) >= self.limits.max_redirects:
                raise ToolError(f"upstream_error: more than {self.limits.max_redirects} redirects")
            try:
                target = url.join(location)
            except Exception:
                raise ToolError("upstream_error: the redirect location is not a URL") from None
            try:
                target = parse_url(str(target))
            except ToolError:  # the message would quote the server's Location outside the untrusted-data boundary
                raise ToolError(
                    "upstream_error: the redirect location is not an http(s) URL without userinfo"
                ) from None
            if fetched.status == 303 or (fetched.status in (301, 302) and method == "POST"):
                method, body = "GET", None
            elif body is not None and origin(target) != origin(url):
                fetched.headers["note"] = "a redirect to another origin with a body was not followed"
                return fetched
            redirects.append(str(target))
            url = target

    async def _send(
        self,
        method: str,
        url: httpx2.URL,
        address: IPAddress,
        model_headers: dict[str, str],
        body: bytes | None,
        idempotency_key: str | None,
    ) -> Fetched:
        headers = {"User-Agent": self._ua, "Accept-Encoding": "identity", **model_headers}
        headers.update(self.scope.injected(url))
        headers["Host"] = url.netloc.decode("ascii")
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        extensions: dict[str, Any] = {}
        if url.scheme == "https" and literal_address(url.host) is None:
            extensions["sni_hostname"] = url.host
        pinned = url.copy_with(host=str(address))
        timeout = httpx2.Timeout(self.limits.timeout, connect=self.limits.connect_timeout)
        try:
            async with httpx2.AsyncClient(
                verify=self._ssl, trust_env=False, follow_redirects=False, timeout=timeout
            ) as client:
                request = client.build_request(method, pinned, headers=headers, content=body, extensions=extensions)
                response = await client.send(request, stream=True)
                try:
                    data, truncated = await self._read(response)
                finally:
                    await response.aclose()
        except httpx2.TimeoutException as exc:
            raise ToolError(f"timeout: {url.host} did not answer in time ({type(exc).__name__})") from None
        except (httpx2.ProtocolError, httpx2.DecodingError) as exc:  # h11 quotes the server's bytes: not shown
            raise ToolError(f"upstream_error: {url.host}: {type(exc).__name__} (a malformed response)") from None
        except httpx2.HTTPError as exc:
            raise ToolError(f"upstream_error: {url.host}: {type(exc).__name__}: {exc}") from None
        shown = {k: v for k, v in response.headers.items() if k.lower() in _SHOWN_HEADERS}
        return Fetched(
            method=method,
            url=str(url),
            status=response.status_code,
            headers={k.lower(): v for k, v in shown.items()},
            body=data,
            truncated=truncated,
            content_type=response.headers.get("content-type", ""),
            charset=response.charset_encoding,
            address=str(address),
        )

    async def _read(self, response: httpx2.Response) -> tuple[bytes, bool]:
        """The body up to the cap. Past it the connection is closed and the iterators run out, so none is left
        suspended for the garbage collector (trio warns about those)."""
        cap = self.limits.max_response_bytes
        inflater = _Inflater(response.headers.get("content-encoding", "").strip().lower())
        pieces: list[bytes] = []
        size = 0
        truncated = False
        try:
            async with aclosing(response.aiter_raw()) as chunks:
                async for chunk in chunks:
                    if truncated:
                        continue  # the connection is closed: this only drains what was already buffered
                    out, more = inflater.feed(chunk, cap - size)
                    pieces.append(out)
                    size += len(out)
                    if more or size >= cap:
                        truncated = True
                        await response.aclose()
        except (httpx2.ReadError, httpx2.StreamClosed, httpx2.RemoteProtocolError):
            if not truncated:
                raise  # a real failure before the cap; after it, the closed socket ends the iteration
        return b"".join(pieces), truncated
