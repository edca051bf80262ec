"""Redaction of secrets before anything leaves the process.

A mapping key that contains ``password``, ``passwd``, ``community``,
``secret``, ``token`` or ``key`` (any case) has its value replaced by
``[REDACTED]``, at any depth; in free text, ``name=value`` and ``name: value``
pairs with such a name lose their value the same way. A quoted value is hidden
whole: escaped quotes inside it (JSON, ``repr()``) and a ``repr()`` prefix such
as ``b'...'`` included, and an unterminated one up to the end of the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
MAX_DEPTH = 16

SECRET_NAME = re.compile(r"password|passwd|community|secret|token|key", re.IGNORECASE)
_SECRET_PAIR = re.compile(
    r"""(?ix)
    (?P<name>[\w.\-]*(?:password|passwd|community|secret|token|key)[\w.\-]*)
    (?P<sep>["']?\s*[=:]\s*)
    (?P<value>
        [bBrRuU]{0,2}"(?:\\.|[^"\\])*"?      # a quoted string, escapes and all, with any
      | [bBrRuU]{0,2}'(?:\\.|[^'\\])*'?      # repr() prefix; unterminated: to the end
      | [^\s,;&"'}\]]+
    )
    """
)


def is_secret_name(name: object) -> bool:
    """True when a mapping key names a secret."""
    return isinstance(name, str) and SECRET_NAME.search(name) is not None


def redact_text(text: str) -> str:
    """``text`` with the value of every ``secret=value`` or ``secret: value`` pair hidden."""
    return _SECRET_PAIR.sub(lambda m: f"{m.group('name')}{m.group('sep')}{REDACTED}", text)


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` (JSON-like data) with every secret hidden."""
    if depth > MAX_DEPTH:
        return "[TRUNCATED]"
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_name(key) else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item, depth + 1) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
