"""Errors of the DHCP core, split by who is at fault (as in h11)."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error the DHCP core raises on purpose."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept: drop it, count it, carry on."""


class MalformedPacket(RemoteProtocolError):
    """The bytes are not a well-formed DHCP message (or break a size or count bound)."""


class LocalProtocolError(ProtocolError):
    """The caller misused the API (a bad value to encode, an impossible call order)."""
