"""TFTP (RFC 1350, options RFC 2347/2348/2349/7440): a sans-I/O codec and transfer engines for
both ends, content roots no request can escape, and a Trio server whose blocks move in one
worker thread. A lock-step read of a file runs on a compiled sender (``_lockstep.c``) when the
extension is built; ``BlockSender`` is its reference, and the only sender without it.

Only ``octet`` mode is served; ``netascii`` requests are refused with ILLEGAL_OPERATION.
"""

from ._client_transfer import ClientTransfer
from ._content import (
    MAX_NAME,
    BytesSource,
    Content,
    DirectoryRoot,
    FileSink,
    FileSource,
    GeneratedContent,
    ReadHandle,
    WritableRoot,
    WriteHandle,
    split_name,
)
from ._errors import (
    ContentError,
    ErrorCode,
    LocalProtocolError,
    MalformedPacket,
    ProtocolError,
    RemoteProtocolError,
)
from ._events import TransferEvent, TransferFailed, TransferSucceeded
from ._options import NegotiationLimits, TransferOptions, accept_oack, negotiate, request_options
from ._packets import (
    MAX_BLKSIZE,
    MAX_DATAGRAM,
    MAX_FILENAME,
    MAX_OPTIONS,
    MAX_REQUEST,
    Ack,
    Data,
    Error,
    Opcode,
    OptionAck,
    Packet,
    ReadRequest,
    WriteRequest,
    decode,
    encode,
)
from ._server_transfer import ServerTransfer, Step, TransferState, check_request, error_packet
from ._trio import ServerConfig, ServerStatistics, TftpServer
from ._window import BlockReceiver, BlockSender, BlockSink, BlockSource, Datagrams, ack_packet

__all__ = [
    "MAX_BLKSIZE",
    "MAX_DATAGRAM",
    "MAX_FILENAME",
    "MAX_NAME",
    "MAX_OPTIONS",
    "MAX_REQUEST",
    "Ack",
    "BlockReceiver",
    "BlockSender",
    "BlockSink",
    "BlockSource",
    "BytesSource",
    "ClientTransfer",
    "Content",
    "ContentError",
    "Data",
    "Datagrams",
    "DirectoryRoot",
    "Error",
    "ErrorCode",
    "FileSink",
    "FileSource",
    "GeneratedContent",
    "LocalProtocolError",
    "MalformedPacket",
    "NegotiationLimits",
    "Opcode",
    "OptionAck",
    "Packet",
    "ProtocolError",
    "ReadHandle",
    "ReadRequest",
    "RemoteProtocolError",
    "ServerConfig",
    "ServerStatistics",
    "ServerTransfer",
    "Step",
    "TftpServer",
    "TransferEvent",
    "TransferFailed",
    "TransferOptions",
    "TransferState",
    "TransferSucceeded",
    "WritableRoot",
    "WriteHandle",
    "WriteRequest",
    "accept_oack",
    "ack_packet",
    "check_request",
    "decode",
    "encode",
    "error_packet",
    "negotiate",
    "request_options",
    "split_name",
]
