"""Where requests may go (configured base URLs and host patterns) and which headers go with them.

A URL is parsed once, by httpx2, and every later step (the scope check, the address check, the request itself) uses
that same parsed object, so no second parser can read the URL differently. Userinfo (`http://allowed@evil/`) is
refused outright: credentials come from the operator's configuration, never from a URL the model wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx2

from bridge import ConfigError, ToolError

__all__ = ["DEFAULT_MODEL_HEADERS", "Scope", "parse_url"]

DEFAULT_MODEL_HEADERS = (
    "accept",
    "accept-language",
    "content-type",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "range",
)
"""Request headers the model may set; everything else (Authorization, Cookie, Host, ...) is the operator's."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_DOT_SEGMENT = re.compile(r"(^|/)(\.|%2e){1,2}(/|$)|%2f|%5c|\\", re.I)


def _norm_host(host: str) -> str:
    return host.lower().rstrip(".")


def parse_url(text: str) -> httpx2.URL:
    """Parse an absolute http(s) URL the model gave, refusing userinfo and anything but http and https."""
    try:
        url = httpx2.URL(text)
    except Exception as exc:  # httpx2 raises InvalidURL and ValueError variants
        raise ToolError(f"invalid_input: {text!r} is not a valid URL: {exc}") from None
    if url.scheme not in _DEFAULT_PORTS:
        raise ToolError(f"invalid_input: only http and https URLs are fetched, got {url.scheme or 'none'!r}")
    if url.userinfo:
        raise ToolError("denied_by_policy: URLs with a user name or password (user@host) are refused")
    if not url.host:
        raise ToolError(f"invalid_input: {text!r} has no host")
    return url


def origin(url: httpx2.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in and the host normalised."""
    return url.scheme, _norm_host(url.host), url.port or _DEFAULT_PORTS[url.scheme]


@dataclass(frozen=True)
class _Base:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, text: str) -> _Base:
        url = httpx2.URL(text)
        if url.scheme not in _DEFAULT_PORTS or not url.host or url.userinfo or url.query or url.fragment:
            raise ValueError("a base URL is http(s)://host[:port]/path, without user, query or fragment")
        path = url.path if url.path.endswith("/") else url.path + "/"
        return cls(*origin(url), path)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    def covers(self, url: httpx2.URL) -> bool:
        if origin(url) != (self.scheme, self.host, self.port):
            return False
        path = url.raw_path.decode("ascii").split("?", 1)[0]
        return (path + "/" if not path.endswith("/") else path).startswith(self.path)


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


@dataclass(frozen=True)
class Scope:
    """The configured destinations and the headers the operator attaches to them.

    Attributes:
        bases: URL prefixes any request must start with (scheme, host, port and path prefix).
        hosts: Host names (`api.example.com`, `*.example.com`, or `*` for any public host) reachable on `ports`.
        ports: Ports allowed for `hosts` (bases carry their own port).
        headers: Header values injected per destination: keys are base URLs (`https://api.example.com/v1`) or
            host patterns, values map header names to values. Injected only into requests to that destination,
            so a redirect elsewhere never carries them.
        model_headers: Request header names the model may set itself (lowercase).
    """

    bases: tuple[_Base, ...] = ()
    hosts: tuple[str, ...] = ()
    ports: frozenset[int] = frozenset({80, 443})
    headers: tuple[tuple[str, Mapping[str, str]], ...] = ()
    model_headers: frozenset[str] = field(default_factory=lambda: frozenset(DEFAULT_MODEL_HEADERS))

    @classmethod
    def build(
        cls,
        bases: Iterable[str],
        hosts: Iterable[str],
        ports: Iterable[int],
        headers: Mapping[str, Mapping[str, str]],
        model_headers: Iterable[str],
    ) -> Scope:
        """Validate the operator's configuration; one ConfigError lists every problem."""
        problems: list[str] = []
        parsed: list[_Base] = []
        for text in bases:
            try:
                parsed.append(_Base.parse(text))
            except Exception as exc:
                problems.append(f"bases: {text!r}: {exc}")
        host_list = [_norm_host(h) for h in hosts]
        for host in host_list:
            if not re.fullmatch(r"\*|(\*\.)?[a-z0-9.-]+|\[[0-9a-f:.]+\]", host):
                problems.append(f"hosts: {host!r} is not a host name, '*.domain' or '*'")
        if not parsed and not host_list:
            problems.append("give bases (URL prefixes) or hosts (host names); nothing is reachable otherwise")
        injected: list[tuple[str, Mapping[str, str]]] = []
        for key, values in headers.items():
            if not isinstance(values, Mapping) or not all(isinstance(v, str) for v in values.values()):
                problems.append(f"headers[{key!r}] must be a table of header names to strings")
                continue
            injected.append((key if "://" in key else _norm_host(key), dict(values)))
        port_set = frozenset(ports)
        if any(not isinstance(p, int) or not 0 < p < 65536 for p in port_set):
            problems.append(f"ports must be port numbers, got {sorted(port_set)!r}")
        if problems:
            raise ConfigError(problems)
        lowered = frozenset(h.lower() for h in model_headers)
        return cls(tuple(parsed), tuple(host_list), port_set, tuple(injected), lowered)

    def describe(self) -> dict[str, object]:
        return {"bases": [str(b) for b in self.bases], "hosts": list(self.hosts), "ports": sorted(self.ports)}

    def check(self, url: httpx2.URL) -> None:
        """Refuse a URL outside every base and host rule (and dot-segment tricks against a base's path)."""
        scheme, host, port = origin(url)
        path = url.raw_path.decode("ascii").split("?", 1)[0]
        if _DOT_SEGMENT.search(path) and any(origin(url) == (b.scheme, b.host, b.port) for b in self.bases):
            raise ToolError("denied_by_policy: dot segments and encoded slashes are refused in paths")
        if any(b.covers(url) for b in self.bases):
            return
        if port in self.ports and any(_host_matches(p, host) for p in self.hosts):
            return
        raise ToolError(
            f"denied_by_policy: {scheme}://{host}:{port} is outside the configured destinations "
            f"(bases: {[str(b) for b in self.bases]}, hosts: {list(self.hosts)}, ports: {sorted(self.ports)})"
        )

    def injected(self, url: httpx2.URL) -> dict[str, str]:
        """The operator's headers for this URL's destination."""
        out: dict[str, str] = {}
        for key, values in self.headers:
            if "://" in key:
                try:
                    hit = _Base.parse(key).covers(url)
                except Exception:
                    hit = False
            else:
                hit = _host_matches(key, origin(url)[1])
            if hit:
                out.update(values)
        return out

    def model_header_values(self, given: Mapping[str, str] | None) -> dict[str, str]:
        """The model's headers, refusing any name the operator did not allow and any CR/LF in a value."""
        out: dict[str, str] = {}
        for name, value in (given or {}).items():
            if name.lower() not in self.model_headers:
                allowed = ", ".join(sorted(self.model_headers))
                raise ToolError(f"denied_by_policy: the header {name!r} is set by the operator, not you ({allowed})")
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ToolError("invalid_input: header names and values may not contain line breaks")
            out[name] = value
        return out
