"""What the server reports when a transfer ends, for a bus service to publish as
``tftp.success`` / ``tftp.failure``."""

from __future__ import annotations

from typing import Literal

import attrs

Direction = Literal["read", "write"]


@attrs.frozen
class TransferSucceeded:
    """A transfer completed: the client acknowledged the last block (read) or sent it (write)."""

    filename: str
    remote_address: str
    remote_port: int
    size: int
    duration: float
    direction: Direction = "read"


@attrs.frozen
class TransferFailed:
    """A transfer ended without completing: refused, timed out, aborted by either side.

    ``error_code`` is the TFTP error code sent or received (0 for timeouts).
    """

    filename: str
    remote_address: str
    remote_port: int
    error_code: int
    message: str
    size: int = 0
    duration: float = 0.0
    direction: Direction = "read"


TransferEvent = TransferSucceeded | TransferFailed
