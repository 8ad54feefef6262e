"""The SSRF corpus: every way we know to reach a blocked address, against a real canary server that must stay unhit.

The allowed server listens on 127.0.0.1 (opened with allow_networks=["127.0.0.1/32"]); the canary on 127.0.0.2 is
loopback like any other and so blocked. Host names resolve through an injected resolver, never real DNS.
"""

from __future__ import annotations

import ipaddress

import pytest
from http_servers import FakeDns, Server

from bridge import Toolset
from toolkits.http import AddressPolicy, http_toolset

pytestmark = pytest.mark.anyio


def _toolset(good: Server, canary: Server, dns: FakeDns | None = None, **options: object) -> Toolset:
    dns = dns or FakeDns({"good.test": ["127.0.0.1"], "canary.test": ["127.0.0.2"], "localhost": ["127.0.0.2"]})
    return http_toolset(
        hosts=["*"],
        ports=[good.port, canary.port, 80, 443],
        allow_networks=["127.0.0.1/32"],
        resolver=dns,
        allow_post=True,
        **options,  # type: ignore[arg-type]
    )


def _canary_urls(canary: Server) -> list[str]:
    p = canary.port
    return [
        f"http://127.0.0.2:{p}/",
        f"http://2130706434:{p}/",  # decimal
        f"http://0177.0.0.2:{p}/",  # octal
        f"http://0x7f.0.0.2:{p}/",  # hex dotted
        f"http://0x7f000002:{p}/",  # hex whole
        f"http://127.2:{p}/",  # short form
        f"http://127.0.0.2.:{p}/",  # trailing dot
        f"http://[::ffff:127.0.0.2]:{p}/",  # IPv4-mapped
        f"http://[::ffff:7f00:2]:{p}/",  # IPv4-mapped, hex
        f"http://[::127.0.0.2]:{p}/",  # IPv4-compatible
        f"http://[64:ff9b::7f00:2]:{p}/",  # NAT64
        f"http://[2002:7f00:2::]:{p}/",  # 6to4
        f"http://canary.test:{p}/",  # a name resolving to loopback
        f"http://CANARY.test.:{p}/",  # case and trailing dot
        f"http://localhost:{p}/",
        f"http://good.test@127.0.0.2:{p}/",  # userinfo: the host is the canary
        f"http://127.0.0.1:{p}@127.0.0.2:{p}/",
        f"http://good.test:{p}\\@127.0.0.2:{p}/",  # backslash userinfo confusion
        f"http://0.0.0.0:{p}/",
        f"http://[::]:{p}/",
        f"http://[::1]:{p}/",
        f"http://169.254.169.254:{p}/latest/meta-data/",
        f"http://[fd00:ec2::254]:{p}/",
        f"http://100.64.0.1:{p}/",
        f"http://224.0.0.1:{p}/",
        f"http://255.255.255.255:{p}/",
        f"http://10.0.0.1:{p}/",
        f"http://192.168.0.1:{p}/",
        f"http://172.16.0.1:{p}/",
        f"http://[fe80::1]:{p}/",
        "file:///etc/passwd",
        f"gopher://127.0.0.2:{p}/_GET%20/",
        f"ftp://127.0.0.2:{p}/",
    ]


@pytest.fixture
def anyio_backend() -> str:
    """Real sockets: one event loop is enough for the corpus (the tools tests cover trio)."""
    return "asyncio"


async def test_no_form_of_a_blocked_address_is_reached(good: Server, canary: Server) -> None:
    """Every URL in the corpus is refused, by GET and POST, and the canary receives no request at all."""
    toolset = _toolset(good, canary)
    for url in _canary_urls(canary):
        for name, args in (("http_get", {"url": url}), ("http_post", {"url": url, "json": {"x": 1}})):
            result = await toolset.call(name, args)
            assert result.is_error, (url, result.text)
            assert "denied_by_policy" in result.text or "invalid_input" in result.text, (url, result.text)
    assert canary.hits == []
    assert good.hits == []


async def test_redirects_to_blocked_addresses_are_refused(good: Server, canary: Server) -> None:
    """The allowed server redirecting (301/302/303/307/308) to each blocked form reaches nothing."""
    toolset = _toolset(good, canary)
    targets = [u for u in _canary_urls(canary) if u.startswith("http://")]
    for code in (301, 302, 303, 307, 308):
        for target in targets:
            url = f"http://good.test:{good.port}/redirect?code={code}&to={target}"
            result = await toolset.call("http_get", {"url": url})
            assert result.is_error, (code, target, result.text)
    assert canary.hits == []
    assert len(good.hits) == 5 * len(targets)


async def test_ipv6_spellings_of_an_allowed_ipv4_address_stay_blocked(good: Server, canary: Server) -> None:
    """127.0.0.1 is allowed, yet [::ffff:127.0.0.1] and its NAT64/6to4/compatible forms are refused, unsent."""
    toolset = _toolset(good, canary)
    p = good.port
    for host in ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]"):
        result = await toolset.call("http_get", {"url": f"http://{host}:{p}/"})
        assert result.is_error, host
    assert good.hits == []


async def test_a_name_with_one_blocked_address_is_refused(good: Server, canary: Server) -> None:
    """A name resolving to an allowed and a blocked address is refused whole, whatever the order."""
    dns = FakeDns({"mixed.test": ["127.0.0.1", "127.0.0.2"], "mixed2.test": ["127.0.0.2", "127.0.0.1"]})
    toolset = _toolset(good, canary, dns)
    for host in ("mixed.test", "mixed2.test"):
        result = await toolset.call("http_get", {"url": f"http://{host}:{good.port}/"})
        assert result.is_error
        assert "127.0.0.2" in result.text
    assert good.hits == []
    assert canary.hits == []


async def test_dns_rebinding_has_nothing_to_rebind(good: Server, canary: Server) -> None:
    """A resolver answering allowed first and blocked afterwards is asked once; the checked address is used."""
    dns = FakeDns({"rebind.test": [["127.0.0.1"], ["127.0.0.2"]]})
    toolset = _toolset(good, canary, dns)
    url = f"http://rebind.test:{canary.port}/"  # the canary's port, so a second lookup would land there
    result = await toolset.call("http_get", {"url": f"http://rebind.test:{good.port}/"})
    assert not result.is_error, result.text
    assert f"for Host rebind.test:{good.port}" in result.text
    assert dns.asked == ["rebind.test"]
    again = await toolset.call("http_get", {"url": url})
    assert again.is_error  # the second lookup (now blocked) is checked too
    assert canary.hits == []


async def test_redirect_hops_are_resolved_and_checked_each_time(good: Server, canary: Server) -> None:
    """A redirect to a name is resolved at that hop, and a rebinding between hops is caught."""
    dns = FakeDns({"good.test": ["127.0.0.1"], "hop.test": [["127.0.0.1"], ["127.0.0.2"]]})
    toolset = _toolset(good, canary, dns)
    first = f"http://hop.test:{good.port}/redirect?to=http://hop.test:{good.port}/final"
    result = await toolset.call("http_get", {"url": first})
    assert result.is_error
    assert "denied_by_policy" in result.text
    assert dns.asked == ["hop.test", "hop.test"]
    assert canary.hits == []


async def test_redirect_loops_are_capped(good: Server, canary: Server) -> None:
    """More redirects than max_redirects end the call with a clear error."""
    toolset = _toolset(good, canary, limits={"max_redirects": 2})
    hop = f"http://127.0.0.1:{good.port}/redirect?to=/redirect%3Fto%3D/redirect%253Fto%253D/x"
    result = await toolset.call("http_get", {"url": hop})
    assert result.is_error
    assert "more than 2 redirects" in result.text
    assert len(good.hits) == 3


def test_address_policy_table() -> None:
    """The guard's verdicts on a table of public, private and embedded addresses."""
    policy = AddressPolicy()
    blocked = [
        "127.0.0.1",
        "0.0.0.0",
        "10.1.2.3",
        "100.64.0.1",
        "169.254.169.254",
        "172.31.255.255",
        "192.168.1.1",
        "224.0.0.251",
        "255.255.255.255",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "2002:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fd00:ec2::254",
        "fe80::1",
        "ff02::1",
    ]
    for text in blocked:
        assert policy.refusal(ipaddress.ip_address(text)) is not None, text
    for text in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"):
        assert policy.refusal(ipaddress.ip_address(text)) is None, text
    opened = AddressPolicy.from_strings(["10.20.0.0/16"])
    assert opened.refusal(ipaddress.ip_address("10.20.1.1")) is None
    assert opened.refusal(ipaddress.ip_address("10.21.1.1")) is not None
    assert opened.refusal(ipaddress.ip_address("::ffff:10.20.1.1")) is not None  # only the IPv4 spelling opens
