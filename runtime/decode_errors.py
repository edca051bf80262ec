"""Decode errors: a cattrs structuring failure as a :class:`DecodeError` naming each bad field.

Paths are written from the root ``$``: ``$.node.macs[2]`` is the third item of the
``macs`` field of the ``node`` field.
"""

from __future__ import annotations

from typing import Any

import attrs
from cattrs.errors import ClassValidationError, IterableValidationError

from .errors import DecodeError
from .message import _declared_name

__all__ = ["decode_error", "target_label"]


def target_label(into: Any) -> str:
    """How an error message names the type being decoded into: its wire name, if it has one."""
    if isinstance(into, type):
        return _declared_name(into) or into.__qualname__
    return repr(into).removeprefix("typing.")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    args = exc.args
    if args and isinstance(args[0], str) and args[0]:
        return args[0]
    return str(exc) or type(exc).__name__


def _attribute_name(exc: BaseException) -> str | None:
    """The field an attrs-style validator error (``(msg, attribute, ...)``) is about."""
    args = exc.args
    if len(args) >= 2 and isinstance(args[1], attrs.Attribute):
        return args[1].name
    return None


def _index(key: object) -> str:
    return f"[{key!r}]"


def _collect(exc: BaseException, path: str, out: list[tuple[str, str]]) -> None:
    """Flatten a cattrs validation error tree into ``(path, reason)`` pairs."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            _collect(sub, f"{path}.{note.name}", out)
        for sub in without:
            # Raised while instantiating: an attrs validator or converter.
            name = _attribute_name(sub)
            _collect(sub, f"{path}.{name}" if name else path, out)
    elif isinstance(exc, IterableValidationError):
        with_notes_i, without_i = exc.group_exceptions()
        for sub, inote in with_notes_i:
            _collect(sub, path + _index(inote.index), out)
        for sub in without_i:
            _collect(sub, path, out)
    elif isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            _collect(member, path, out)
    else:
        out.append((path, _reason(exc)))


def decode_error(exc: BaseException, into: Any) -> DecodeError:
    """The :class:`DecodeError` for *exc*, raised while structuring data into *into*."""
    fields: list[tuple[str, str]] = []
    _collect(exc, "$", fields)
    details = "; ".join(f"{path}: {reason}" for path, reason in fields)
    return DecodeError(f"cannot decode {target_label(into)}: {details}", tuple(fields))
