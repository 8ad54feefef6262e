"""`http_toolset`: GET (and opt-in POST) to configured destinations, behind the SSRF guard."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from bridge import Toolset

from ._fetch import Fetcher, HttpLimits, Resolver, system_resolver
from ._guard import AddressPolicy
from ._scope import DEFAULT_MODEL_HEADERS, Scope
from ._tools import build_toolset

__all__ = ["http_toolset"]


def http_toolset(
    *,
    bases: Iterable[str] = (),
    hosts: Iterable[str] = (),
    ports: Iterable[int] = (80, 443),
    headers: Mapping[str, Mapping[str, str]] | None = None,
    allow_networks: Iterable[str] = (),
    allow_post: bool = False,
    model_headers: Iterable[str] = DEFAULT_MODEL_HEADERS,
    limits: HttpLimits | Mapping[str, Any] | None = None,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    user_agent: str = "tool-bridge-http/0.1 (+an AI agent's tool call)",
    prefix: str | None = "http",
    name: str | None = None,
) -> Toolset:
    """Let the model call HTTP APIs and pages the operator names, and nothing else.

    Args:
        bases: URL prefixes (`https://api.internal.example/v1/`): a request must start with one (scheme, host, port
            and path prefix; dot segments and encoded slashes are refused against a base).
        hosts: Host names reachable on `ports`: exact (`docs.example.com`), a domain (`*.example.com`), or `*` for
            any host whose addresses are public.
        ports: Ports allowed for `hosts`.
        headers: Headers injected per destination, e.g. `{"https://api.internal.example/v1/": {"Authorization":
            "Bearer ..."}}` (a key is a base URL or a host pattern). Pass secrets in here (bridge.toml:
            `{ env = "API_TOKEN" }`); this library never reads the environment. They are injected only into
            requests to that destination, never sent after a redirect elsewhere, and redacted from answers.
        allow_networks: CIDR networks opened despite the SSRF guard (e.g. `10.20.0.0/16` for an internal API).
            Without them loopback, private, link-local, metadata, CGNAT, multicast and reserved addresses, and
            IPv6 forms embedding them, are refused.
        allow_post: Add the `post` tool (not idempotent; sends an Idempotency-Key).
        model_headers: Request header names the model may set; all others are the operator's.
        limits: Size, time and redirect caps: `HttpLimits` or a table of its fields.
        resolver: `async (host, port) -> [addresses]`; the system resolver by default. Asked once per hop; the
            request then goes to the checked address.
        ssl_context: TLS settings (a default verifying context when omitted).
        user_agent: The User-Agent sent.
        prefix: Prepended to each tool name (`http` gives `http_get`); None or "" for bare names.
        name: The toolset's label.

    Raises:
        ConfigError: no destination, a malformed base, host, network, header table or limit.
    """
    scope = Scope.build(bases, hosts, ports, headers or {}, model_headers)
    policy = AddressPolicy.from_strings(allow_networks)
    caps = HttpLimits.coerce(limits)
    fetcher = Fetcher(
        scope, policy, caps, resolver or system_resolver, ssl_context or ssl.create_default_context(), user_agent
    )
    secrets = [value for _, values in scope.headers for value in values.values()]
    secrets += [part for value in secrets for part in value.split() if len(part) >= 8]  # a token echoed alone
    return build_toolset(fetcher, name=name or "http", prefix=prefix, allow_post=allow_post, secrets=secrets)
