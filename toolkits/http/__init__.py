"""HTTP tools for Claude Managed Agents: GET and opt-in POST to the destinations the operator names, SSRF-guarded.

```python
from toolkits.http import http_toolset

api = http_toolset(
    bases=["https://api.internal.example/v1/"],
    headers={"https://api.internal.example/v1/": {"Authorization": f"Bearer {token}"}},  # the caller reads env
    allow_networks=["10.20.0.0/16"],                                                     # the API's private range
)                                                                                        # -> http_get
```

What holds, and how (each tested against real servers on 127.0.0.1 in `tests/http/`):

```
scope          URL parsed once (httpx2); bases (scheme, host, port, path prefix) or host patterns; userinfo refused
SSRF           host resolved once; every address checked (loopback, RFC 1918, link-local/metadata, CGNAT, 0.0.0.0,
               multicast, reserved, IPv4-mapped/compatible, NAT64, 6to4, Teredo); numeric hosts (2130706433,
               0177.0.0.1, 0x7f.1) read as the addresses they are; the request goes to the checked address with
               the real Host header and TLS SNI, so DNS rebinding has nothing to rebind
redirects      followed by hand, each hop re-scoped, re-resolved and re-checked, at most max_redirects
size and time  body streamed and cut at max_response_bytes (compressed bodies inflated under the same cap);
               one total deadline plus connect/read timeouts
secrets        injected per destination from the factory's arguments, never after a redirect elsewhere, redacted
               from answers; the model may set only allowlisted headers
output         body text inside the untrusted-data boundary; binary bodies described, not shown
```
"""

from __future__ import annotations

try:
    import httpx2  # noqa: F401
except ImportError as exc:  # pragma: no cover - httpx2 comes with the anthropic SDK
    raise ImportError("toolkits.http needs httpx2: pip install 'tool-bridge[http]'") from exc

from ._fetch import HttpLimits, Resolver
from ._guard import AddressPolicy
from ._toolset import http_toolset

__all__ = ["AddressPolicy", "HttpLimits", "Resolver", "http_toolset"]
