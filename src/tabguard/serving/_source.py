"""Where a request comes from: the source address that failed-authentication limits count.

The source is the TCP peer of the connection. Behind a reverse proxy or load balancer every
peer is the proxy, so ``[server] trusted_proxies`` lists the proxies (addresses or networks)
whose ``X-Forwarded-For`` header is believed: the header is read from the right (the entry
the nearest proxy appended) and the first address that is not itself a trusted proxy is the
client. A client that is not behind a trusted proxy cannot choose its source by sending the
header: it is ignored. (``tabguard serve`` turns uvicorn's own proxy-header handling off, which
would otherwise believe the header from 127.0.0.1.)

IPv6 sources are counted per /64 network: one host usually holds a whole /64, so counting
single addresses would let it rotate through 2**64 of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Longest X-Forwarded-For header read (a client can send anything before the proxy's entry).
_FORWARDED_MAX = 2048


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Addresses or networks (``10.0.0.5``, ``10.0.0.0/8``, ``::1``) as networks.

    Raises
    ------
    ValueError
        Naming the value that is neither.
    """
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"must be IP addresses or networks such as '10.0.0.0/8'; got {value!r}"
            ) from None
    return tuple(out)


class SourceResolver:
    """The source address of a request, from its peer and (behind trusted proxies) its header.

    Parameters
    ----------
    trusted_proxies : sequence of str
        Addresses or networks of the proxies whose ``X-Forwarded-For`` is believed; empty
        (the default) means the header is never read.
    """

    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        self.trusted = parse_networks(trusted_proxies)

    def source(self, peer: str | None, forwarded_for: str | None = None) -> str:
        """The source key of a request (an address, an IPv6 /64 network, or ``"unknown"``)."""
        address = peer or "unknown"
        if self.trusted and forwarded_for and self._is_trusted(address):
            for hop in reversed(forwarded_for[-_FORWARDED_MAX:].split(",")):
                candidate = hop.strip()
                if not candidate:
                    continue
                if not _is_address(candidate):
                    break  # garbage from the client side: keep the last trusted hop
                address = candidate
                if not self._is_trusted(candidate):
                    break
        return source_key(address)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def source_key(address: str) -> str:
    """``address`` as counted: IPv4 as is, IPv6 as its /64 network, anything else as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)
