"""What the server serves: a directory no request can escape, generated content per name, and an
opt-in writable directory.

These run blocking file system calls; the Trio server calls ``open_read``/``open_write`` in a
worker thread, and its data-plane thread reads and writes the blocks.
"""

from __future__ import annotations

import io
import os
import stat
import string
import tempfile
from collections.abc import Callable, Mapping
from typing import Protocol

from ._errors import ContentError, ErrorCode

#: Longest filename (in UTF-8 octets) a root accepts.
MAX_NAME = 255
READ_BUFFER = 256 * 1024
Remote = tuple[str, int]


class ReadHandle(Protocol):
    """An open source of bytes, as the server engine reads it."""

    size: int | None

    def readinto(self, buffer: memoryview, /) -> int: ...

    def close(self) -> None: ...


class WriteHandle(Protocol):
    """An open destination; ``commit`` makes the bytes visible, ``abort`` discards them."""

    def write(self, data: memoryview, /) -> object: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Content(Protocol):
    """Anything the server can read files from."""

    def open_read(self, filename: str, remote: Remote) -> ReadHandle:
        """Open ``filename`` for ``remote`` or raise ``ContentError``."""
        ...


class FileSource:
    """A regular file, read through a large buffer so the disk sees big reads."""

    __slots__ = ("_file", "readinto", "size")

    def __init__(self, file: io.BufferedReader, size: int) -> None:
        self._file = file
        self.readinto: Callable[[memoryview], int] = file.readinto
        self.size: int | None = size

    def fileno(self) -> int:
        """The file's descriptor, for a sender that reads it directly (``pread``)."""
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


class BytesSource:
    """Bytes produced in memory (a rendered template)."""

    __slots__ = ("_data", "_offset", "size")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0
        self.size: int | None = len(data)

    def readinto(self, buffer: memoryview) -> int:
        chunk = self._data[self._offset : self._offset + len(buffer)]
        n = len(chunk)
        buffer[:n] = chunk
        self._offset += n
        return n

    def close(self) -> None:
        self._data.release()


def _refuse(message: str) -> ContentError:
    return ContentError(ErrorCode.ACCESS_VIOLATION, message)


def split_name(filename: str, *, max_name: int = MAX_NAME) -> list[str]:
    """The path components of a requested name, or ``ContentError`` if the name is hostile.

    Leading slashes are taken relative to the root (as tftpd-hpa's ``-s`` does); ``..``,
    backslashes, control characters, NUL, names that were not valid UTF-8 and overlong names are
    refused with ACCESS_VIOLATION.
    """
    if len(filename.encode("utf-8", "surrogateescape")) > max_name:
        raise _refuse("name too long")
    for char in filename:
        code = ord(char)
        if code < 0x20 or code == 0x7F or char == "\\":
            raise _refuse("name has a control character or backslash")
        if 0xD800 <= code <= 0xDFFF:
            raise _refuse("name is not valid UTF-8")
    parts = [part for part in filename.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse("name leaves the root")
    if not parts:
        raise ContentError(ErrorCode.FILE_NOT_FOUND, "no file named")
    return parts


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


class DirectoryRoot:
    """Serves regular files under ``path``; nothing outside it is ever opened.

    Names are checked by ``split_name``, then resolved with every symlink followed; a result
    outside the root, or anything but a regular file, is refused. The file is opened with
    ``O_NOFOLLOW`` and checked again by ``fstat`` so a swapped last component is caught.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_name: int = MAX_NAME) -> None:
        self.path = os.path.realpath(path)
        if not os.path.isdir(self.path):
            raise NotADirectoryError(self.path)
        self.max_name = max_name

    def resolve(self, filename: str) -> str:
        """The real path a name refers to, checked to be inside the root."""
        parts = split_name(filename, max_name=self.max_name)
        real = os.path.realpath(os.path.join(self.path, *parts))
        if not _within(self.path, real):
            raise _refuse("name leaves the root")
        return real

    def open_read(self, filename: str, remote: Remote | None = None) -> FileSource:
        """Open a regular file under the root, or raise ``ContentError``."""
        real = self.resolve(filename)
        try:
            before = os.stat(real)
            if not stat.S_ISREG(before.st_mode):
                raise _refuse("not a regular file")
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
            fd = os.open(real, flags)
        except FileNotFoundError:
            raise ContentError(ErrorCode.FILE_NOT_FOUND, "file not found") from None
        except OSError:
            raise _refuse("cannot open") from None
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (
            before.st_dev,
            before.st_ino,
        ):
            os.close(fd)
            raise _refuse("file changed while opening")
        return FileSource(io.BufferedReader(io.FileIO(fd, "rb"), READ_BUFFER), after.st_size)


Generator = Callable[[str, Remote], bytes | str]


class GeneratedContent:
    """Content made per request: a callable, a ``string.Template`` text or fixed bytes per name,
    with another content (usually a ``DirectoryRoot``) for every other name.

    Callables get ``(filename, (remote address, port))``; templates are rendered with ``values``
    plus ``remoteAddress``. The size is known once rendered, so ``tsize`` is answered.
    """

    def __init__(
        self,
        generators: Mapping[str, Generator | str | bytes],
        *,
        values: Mapping[str, str] | None = None,
        fallback: Content | None = None,
    ) -> None:
        self._generators = dict(generators)
        self._values = dict(values or {})
        self._fallback = fallback

    def open_read(self, filename: str, remote: Remote) -> ReadHandle:
        entry = self._generators.get(filename)
        if entry is None:
            if self._fallback is None:
                raise ContentError(ErrorCode.FILE_NOT_FOUND, "file not found")
            return self._fallback.open_read(filename, remote)
        if isinstance(entry, str):
            values = {**self._values, "remoteAddress": remote[0]}
            entry = string.Template(entry).safe_substitute(values)
        elif not isinstance(entry, bytes):
            entry = entry(filename, remote)
        return BytesSource(entry.encode() if isinstance(entry, str) else entry)


class FileSink:
    """A file being uploaded: written to a temporary name, renamed into place on ``commit``."""

    __slots__ = ("_file", "_final", "_limit", "_overwrite", "_temp", "written")

    def __init__(self, final: str, *, limit: int | None, overwrite: bool) -> None:
        fd, self._temp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".tftp-")
        self._file = open(fd, "wb", buffering=READ_BUFFER)  # noqa: SIM115 (closed by commit/abort)
        self._final = final
        self._limit = limit
        self._overwrite = overwrite
        self.written = 0

    def write(self, data: memoryview) -> None:
        self.written += len(data)
        if self._limit is not None and self.written > self._limit:
            raise ContentError(ErrorCode.DISK_FULL, "file over the size limit")
        self._file.write(data)

    def commit(self) -> None:
        self._file.close()
        if not self._overwrite and os.path.lexists(self._final):
            self.abort()
            raise ContentError(ErrorCode.FILE_EXISTS, "file exists")
        os.replace(self._temp, self._final)

    def abort(self) -> None:
        self._file.close()
        try:
            os.unlink(self._temp)
        except FileNotFoundError:
            pass


class WritableRoot:
    """An upload directory, separate from what is served: only given to the server explicitly.

    Names are checked as for ``DirectoryRoot``; the parent directory must exist inside the root,
    an existing name is refused unless ``overwrite``, and uploads are capped at ``max_size``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_size: int | None = 64 * 1024 * 1024,
        overwrite: bool = False,
        max_name: int = MAX_NAME,
    ) -> None:
        self.path = os.path.realpath(path)
        if not os.path.isdir(self.path):
            raise NotADirectoryError(self.path)
        self.max_size = max_size
        self.overwrite = overwrite
        self.max_name = max_name

    def open_write(self, filename: str, remote: Remote, size: int | None) -> FileSink:
        """Start an upload of ``filename`` (``size`` as announced by ``tsize``, if any)."""
        parts = split_name(filename, max_name=self.max_name)
        parent = os.path.realpath(os.path.join(self.path, *parts[:-1]))
        if not _within(self.path, parent):
            raise _refuse("name leaves the root")
        if not os.path.isdir(parent):
            raise ContentError(ErrorCode.FILE_NOT_FOUND, "no such directory")
        final = os.path.join(parent, parts[-1])
        if os.path.lexists(final):
            if os.path.islink(final) or not os.path.isfile(final):
                raise _refuse("not a regular file")
            if not self.overwrite:
                raise ContentError(ErrorCode.FILE_EXISTS, "file exists")
        if size is not None and self.max_size is not None and size > self.max_size:
            raise ContentError(ErrorCode.DISK_FULL, "file over the size limit")
        try:
            return FileSink(final, limit=self.max_size, overwrite=self.overwrite)
        except OSError:
            raise _refuse("cannot create") from None
