"""The schema of known settings: every configurable key, its type, default and check."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from runtime import Codec, DecodeError

from ..exchanges.logging import LEVELS, check_level


class SettingError(ValueError):
    """A setting was refused; ``status`` 400 travels to the caller with the error."""

    status = 400


@attrs.frozen
class Setting:
    """One known setting, keyed ``<section>.<name>``."""

    key: str
    type: Any
    default: Any
    doc: str
    check: Callable[[Any], Any] | None = None
    """Raises ``ValueError`` with a reason when a value is not acceptable."""

    @property
    def section(self) -> str:
        """The first word of the key."""
        return self.key.split(".", 1)[0]


def _positive(value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a finite number greater than 0")


DEFAULT_SETTINGS = (
    Setting(
        "logging.level",
        str,
        "info",
        "least severe level published on on.logging (one of " + ", ".join(LEVELS) + ")",
        check=check_level,
    ),
    Setting(
        "rpc.timeout",
        float,
        5.0,
        "seconds a service's own calls wait for a reply",
        check=_positive,
    ),
)


class Schema:
    """The known settings; validates keys and values and knows the defaults."""

    def __init__(self, settings: Iterable[Setting] = DEFAULT_SETTINGS) -> None:
        self._settings: dict[str, Setting] = {}
        for setting in settings:
            if setting.key.count(".") != 1 or not all(setting.key.split(".")):
                raise ValueError(f"setting key {setting.key!r} is not <section>.<name>")
            if setting.key in self._settings:
                raise ValueError(f"setting {setting.key!r} is defined twice")
            self._settings[setting.key] = setting
        self._codec = Codec()
        for setting in self._settings.values():
            self.validate(setting.key, setting.default)

    def __iter__(self) -> Any:
        return iter(self._settings.values())

    def __contains__(self, key: object) -> bool:
        return key in self._settings

    def defaults(self) -> dict[str, Any]:
        """Every setting's default value."""
        return {key: setting.default for key, setting in self._settings.items()}

    def select(self, key: str) -> list[str]:
        """The setting keys that ``key`` names: itself, a section's, or all for ``""``."""
        if key in self._settings:
            return [key]
        chosen = [k for k, s in self._settings.items() if key == "" or s.section == key]
        if not chosen:
            raise SettingError(f"unknown setting or section {key!r}; known: {self._known()}")
        return chosen

    def validate(self, key: str, value: Any) -> Any:
        """The value converted to the setting's type; ``SettingError`` naming key and reason."""
        setting = self._settings.get(key) if isinstance(key, str) else None
        if setting is None:
            raise SettingError(f"unknown setting {key!r}; known: {self._known()}")
        try:
            converted = self._codec.convert(value, setting.type)
            if setting.check is not None:
                setting.check(converted)
        except (DecodeError, ValueError, TypeError) as exc:
            raise SettingError(f"bad value {value!r} for setting {key!r}: {exc}") from None
        return converted

    def _known(self) -> str:
        return ", ".join(sorted(self._settings))
