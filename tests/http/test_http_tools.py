"""The HTTP toolset as the model uses it: scope, pinned Host, injected and redacted secrets, caps, POST, config."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from http_servers import INJECTION, FakeDns, Server

from bridge import CallResult, ConfigError, ToolContext, Toolset
from toolkits.http import http_toolset

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token-value"


def _dns() -> FakeDns:
    return FakeDns({"api.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})


def _api(good: Server, **options: Any) -> Toolset:
    """http_toolset with the API base on the good server and a bearer token injected for it."""
    base = f"http://api.test:{good.port}/api/"
    settings: dict[str, Any] = {
        "bases": [base],
        "headers": {base: {"Authorization": f"Bearer {TOKEN}"}},
        "allow_networks": ["127.0.0.1/32"],
        "resolver": _dns(),
    }
    settings.update(options)
    return http_toolset(**settings)


def _split(result: CallResult) -> tuple[dict[str, Any], str]:
    assert not result.is_error, result.text
    head, _, rest = result.text.partition("\n")
    return json.loads(head), rest


def test_names_hints_and_destinations_in_the_description(good: Server) -> None:
    """GET only by default (read-only, idempotent); POST is opt-in and not idempotent; destinations are described."""
    toolset = _api(good)
    assert toolset.names() == ["http_get"]
    get = toolset.get("http_get")
    assert (get.options.read_only, get.options.idempotent) == (True, True)
    assert f"api.test:{good.port}/api/" in get.description
    post = _api(good, allow_post=True).get("http_post")
    assert (post.options.read_only, post.options.idempotent) == (False, False)


def test_configuration_errors_are_listed_together() -> None:
    """No destination, a bad base, a bad network and an unknown limit are each reported."""
    with pytest.raises(ConfigError):
        http_toolset()
    with pytest.raises(ConfigError) as caught:
        http_toolset(bases=["ftp://x/", "http://u@h/"], hosts=["bad host"])
    assert len(caught.value.problems) == 3
    with pytest.raises(ConfigError):
        http_toolset(hosts=["*"], allow_networks=["10.0.0.0/33"])
    with pytest.raises(ConfigError):
        http_toolset(hosts=["*"], limits={"max_bytes": 1})


async def test_pinned_address_keeps_the_real_host_header(good: Server, anyio_backend: str) -> None:
    """The request goes to the checked address while the server sees the name the model used (asyncio and trio)."""
    header, body = _split(await _api(good).call("http_get", {"url": f"http://api.test:{good.port}/api/hello"}))
    assert header["status"] == 200
    assert f"for Host api.test:{good.port}" in body
    assert "untrusted-data-" in body
    assert good.hits[-1]["headers"]["Host"] == f"api.test:{good.port}"


async def test_base_scope_and_path_tricks(good: Server) -> None:
    """Paths outside the base prefix, dot segments and encoded slashes are refused before any request."""
    toolset = _api(good)
    p = good.port
    for url in (
        f"http://api.test:{p}/other",
        f"http://api.test:{p}/apix/",
        f"http://api.test:{p}/api/../admin",
        f"http://api.test:{p}/api/%2e%2e/admin",
        f"http://api.test:{p}/api/%2E%2e%2fadmin",
        f"http://api.test:{p}/api/..%2fadmin",
        f"https://api.test:{p}/api/hello",
        f"http://other.test:{p}/api/hello",
        f"http://api.test:{p + 1}/api/hello",
    ):
        result = await toolset.call("http_get", {"url": url})
        assert result.is_error, url
        assert "denied_by_policy" in result.text, (url, result.text)
    assert good.hits == []


async def test_secrets_are_injected_for_their_destination_only_and_redacted(good: Server) -> None:
    """The token reaches the API, is redacted from the echo, and is not sent after a redirect to another host."""
    toolset = _api(good, hosts=["other.test"], ports=[good.port])
    _, body = _split(await toolset.call("http_get", {"url": f"http://api.test:{good.port}/api/echo"}))
    assert good.hits[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in body
    assert '"Authorization": "[redacted]"' in body
    away = f"http://api.test:{good.port}/api/redirect?to=http://other.test:{good.port}/echo"
    header, body = _split(await toolset.call("http_get", {"url": away}))
    assert header["redirects"] == [f"http://other.test:{good.port}/echo"]
    assert "Authorization" not in good.hits[-1]["headers"]
    assert "authorization" not in body.lower()


async def test_the_model_cannot_set_operator_headers(good: Server) -> None:
    """Authorization, Cookie, Host and header injection by the model are refused; allowed headers go through."""
    toolset = _api(good)
    url = f"http://api.test:{good.port}/api/echo"
    for headers in ({"Authorization": "Bearer mine"}, {"Cookie": "a=b"}, {"Host": "evil"}, {"X-Forwarded-For": "1"}):
        result = await toolset.call("http_get", {"url": url, "headers": headers})
        assert result.is_error
        assert "set by the operator" in result.text
    smuggle = await toolset.call("http_get", {"url": url, "headers": {"Accept": "a\r\nX-Evil: 1"}})
    assert smuggle.is_error
    _split(await toolset.call("http_get", {"url": url, "headers": {"Accept": "application/json"}}))
    assert good.hits[-1]["headers"]["Accept"] == "application/json"


async def test_oversized_and_compressed_bodies_stop_at_the_cap(good: Server) -> None:
    """A 5 MiB body and a 64 MiB gzip bomb are both read only up to max_response_bytes."""
    toolset = _api(good, limits={"max_response_bytes": 10_000, "max_chars": 100})
    header, _ = _split(await toolset.call("http_get", {"url": f"http://api.test:{good.port}/api/big"}))
    assert (header["bytes"], header["truncated_at_bytes"]) == (10_000, 10_000)
    assert header["next_start_index"] == 100
    header, _ = _split(await toolset.call("http_get", {"url": f"http://api.test:{good.port}/api/bomb"}))
    assert header["bytes"] == 10_000
    assert header["truncated_at_bytes"] == 10_000


async def test_slow_bodies_end_at_the_total_deadline(good: Server) -> None:
    """A server trickling its body for 10 s is cut off at the 0.5 s total deadline with a timeout error."""
    toolset = _api(good, limits={"timeout": 0.5, "connect_timeout": 0.5})
    started = time.monotonic()
    result = await toolset.call("http_get", {"url": f"http://api.test:{good.port}/api/slow"})
    assert result.is_error
    assert result.text.startswith("timeout")
    assert time.monotonic() - started < 3


async def test_binary_bodies_are_described_not_shown(good: Server) -> None:
    """An image body comes back as its size and type, without bytes."""
    result = await _api(good).call("http_get", {"url": f"http://api.test:{good.port}/api/binary"})
    assert not result.is_error
    assert "binary body" in result.text
    assert "PNG" not in result.text


async def test_post_sends_json_with_an_idempotency_key(good: Server) -> None:
    """POST sends the JSON body and Idempotency-Key session:tool_use; a 303 answer is followed with GET."""
    toolset = _api(good, allow_post=True)
    ctx = ToolContext(session_id="sesn_1", tool_use_id="toolu_9")
    url = f"http://api.test:{good.port}/api/echo"
    _, _body = _split(await toolset.call("http_post", {"url": url, "json": {"amount": 5}}, ctx))
    hit = good.hits[-1]
    assert (hit["method"], json.loads(hit["body"])) == ("POST", {"amount": 5})
    assert hit["headers"]["Idempotency-Key"] == "sesn_1:toolu_9"
    assert hit["headers"]["Content-Type"] == "application/json"
    see_other = f"http://api.test:{good.port}/api/redirect?code=303&to=/api/echo"
    header, _ = _split(await toolset.call("http_post", {"url": see_other, "body": "x"}, ctx))
    assert (header["method"], good.hits[-1]["method"]) == ("GET", "GET")


async def test_redirect_with_a_body_to_another_origin_is_not_followed(good: Server) -> None:
    """A 307 to another origin would resend the body elsewhere: the redirect is returned instead."""
    toolset = _api(good, allow_post=True, hosts=["other.test"], ports=[good.port])
    url = f"http://api.test:{good.port}/api/redirect?code=307&to=http://other.test:{good.port}/echo"
    header, _ = _split(await toolset.call("http_post", {"url": url, "body": "secret payload"}))
    assert header["status"] == 307
    assert len(good.hits) == 1


def test_configured_from_bridge_toml(tmp_path: Path) -> None:
    """A [toolsets.NAME] table with use = "toolkits.http:http_toolset" serves the pack, its token from the env."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[toolsets.api]\nuse = "toolkits.http:http_toolset"\nbases = ["https://api.example.com/v1/"]\n'
        'allow_post = true\nprefix = "api"\nlimits = { max_chars_limit = 5000, max_chars = 1000 }\n'
        '[toolsets.api.headers."https://api.example.com/v1/"]\nAuthorization = { env = "API_TOKEN" }\n'
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "bridge", "tools", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=repo,
        env={"PATH": "/usr/bin:/bin", "API_TOKEN": TOKEN},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert '"name": "api_get"' in out.stdout
    assert '"name": "api_post"' in out.stdout
    assert TOKEN not in out.stdout + out.stderr


async def test_server_written_headers_and_errors_stay_inside_the_boundary(good: Server) -> None:
    """Response headers (Content-Type, ETag, ...), a bogus Content-Encoding, a malformed status line and a bad
    Location are all written by the server: none of their text may appear outside an untrusted-data boundary."""
    fenced = re.compile(r"<(untrusted-data-[0-9a-f]{16})>\n.*?\n</\1>", re.S)
    toolset = _api(good)
    base = f"http://api.test:{good.port}/api"
    for path in ("inject-headers", "inject-headers?binary=1", "inject-encoding", "inject-status", "inject-location"):
        result = await toolset.call("http_get", {"url": f"{base}/{path}"})
        outside = fenced.sub("", result.text)
        assert INJECTION not in outside, (path, result.text)
    shown = await toolset.call("http_get", {"url": f"{base}/inject-headers"})
    assert INJECTION in shown.text  # still shown to the model, as data
