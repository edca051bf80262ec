"""What the engines hand back to send: a datagram and where it goes."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Final

import attrs

SERVER_PORT: Final = 67
CLIENT_PORT: Final = 68
PROXY_PORT: Final = 4011
BROADCAST: Final = IPv4Address("255.255.255.255")


@attrs.frozen
class Datagram:
    """Bytes to send to ``address``:``port``; ``broadcast`` means the socket needs
    ``SO_BROADCAST`` (the address is then 255.255.255.255)."""

    data: bytes
    address: IPv4Address
    port: int
    broadcast: bool = False

    @property
    def destination(self) -> tuple[str, int]:
        """``(host, port)`` as a socket's ``sendto`` takes it."""
        return (str(self.address), self.port)
