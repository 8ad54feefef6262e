"""Which addresses a request may connect to: global unicast only, unless the operator allows a network explicitly.

An address is checked as the kernel would use it, and every IPv4 address hidden inside an IPv6 one is checked too:
IPv4-mapped (`::ffff:127.0.0.1`), IPv4-compatible (`::127.0.0.1`), NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), 6to4
(`2002::/16`) and Teredo (`2001::/32`). Host names written as numbers in the forms `inet_aton` accepts (decimal
`2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`) are read as the addresses they are, then checked.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from bridge import ConfigError

__all__ = ["AddressPolicy", "IPAddress", "literal_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 reaches localhost on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "::1/128",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fd00:ec2::254/128",  # AWS metadata over IPv6 (inside fc00::/7, named for the record)
    )
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


def literal_address(host: str) -> IPAddress | None:
    """The address `host` denotes when it is an IP literal in any form the C library would accept, else None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.match(bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare.rstrip(".")))
        except OSError:
            return None
    return None


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    packed = ip.packed
    if packed[:12] == bytes(12) and ip not in (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")):
        found.append(ipaddress.IPv4Address(packed[12:]))
    if any(ip in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(packed[12:]))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


@dataclass(frozen=True)
class AddressPolicy:
    """Blocks every non-global address (loopback, private, link-local, metadata, CGNAT, multicast, reserved...).

    Attributes:
        allow: Networks the operator opens explicitly (e.g. `10.1.2.0/24` for an internal API). An allowed
            network wins over the block list; nothing else does. An IPv4 network does not open the IPv6 forms
            that embed it (`::ffff:10.1.2.3`): those must be written as the URL's client would connect, in IPv4.
    """

    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_strings(cls, networks: Iterable[str]) -> AddressPolicy:
        """A policy from CIDR strings; raises ConfigError naming each bad one."""
        allow, problems = [], []
        for text in networks:
            try:
                allow.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                problems.append(f"allow_networks: {text!r} is not a network ({exc})")
        if problems:
            raise ConfigError(problems)
        return cls(tuple(allow))

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be connected to, or None when it may."""
        if self._allowed(ip):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            for inner in _embedded(ip):  # an allowed IPv4 network does not open its IPv6 spellings
                if AddressPolicy().refusal(inner) is not None:
                    return f"{ip} embeds the IPv4 address {inner}, which is not public"
        if any(ip.version == net.version and ip in net for net in _BLOCKED):
            return f"{ip} is a loopback, private, link-local, reserved or multicast address"
        if not ip.is_global:
            return f"{ip} is not a public address"
        return None
