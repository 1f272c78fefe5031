"""Typed readers for request arguments; a missing or mistyped argument names itself.

A bad argument is answered with ``MalformedEnvelope`` whose field is ``args.<path>``: the
contract has no separate "bad request" error (SPEC §5 lists the only names adapters use).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from semafore.protocol.errors import MalformedEnvelope


class BadArgument(MalformedEnvelope):
    """A request argument is missing or has the wrong type/encoding."""


class Args:
    """A view over one request's ``args`` object (or a nested object inside it)."""

    def __init__(self, raw: Any, path: str = "args") -> None:
        if not isinstance(raw, Mapping):
            raise BadArgument(f"{path} must be an object", field=path)
        self._raw = raw
        self._path = path

    def _get(self, name: str) -> Any:
        if name not in self._raw:
            raise BadArgument(f"missing argument {self._path}.{name}", field=f"{self._path}.{name}")
        return self._raw[name]

    def has(self, name: str) -> bool:
        return self._raw.get(name) is not None

    def obj(self, name: str) -> Args:
        return Args(self._get(name), f"{self._path}.{name}")

    def optional_obj(self, name: str) -> Args | None:
        value = self._raw.get(name)
        return None if value is None else Args(value, f"{self._path}.{name}")

    def objs(self, name: str) -> list[Args]:
        value = self._get(name)
        if not isinstance(value, list):
            raise BadArgument(f"{self._path}.{name} must be a list", field=f"{self._path}.{name}")
        return [Args(item, f"{self._path}.{name}[{i}]") for i, item in enumerate(value)]

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise BadArgument(f"{self._path}.{name} must be a string", field=f"{self._path}.{name}")
        return value

    def users(self, name: str) -> list[str]:
        """A recipient argument: one user id or a non-empty list of them (contract §5
        ``live.send``: a message to several users)."""
        value = self._get(name)
        path = f"{self._path}.{name}"
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(u, str) and u for u in value):
            return [str(u) for u in value]
        raise BadArgument(f"{path} must be a user id or a non-empty list of them", field=path)

    def optional_text(self, name: str) -> str | None:
        return None if self._raw.get(name) is None else self.text(name)

    def flag(self, name: str, default: bool) -> bool:
        value = self._raw.get(name, default)
        if not isinstance(value, bool):
            path = f"{self._path}.{name}"
            raise BadArgument(f"{path} must be a boolean", field=path)
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadArgument(
                f"{self._path}.{name} must be an integer", field=f"{self._path}.{name}"
            )
        return value

    def hex(self, name: str, length: int | None = None) -> bytes:
        return _unhex(self.text(name), f"{self._path}.{name}", length)

    def hex_list(self, name: str) -> list[bytes]:
        value = self._get(name)
        if not isinstance(value, list):
            raise BadArgument(f"{self._path}.{name} must be a list", field=f"{self._path}.{name}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise BadArgument("hex string expected", field=f"{self._path}.{name}[{i}]")
            out.append(_unhex(item, f"{self._path}.{name}[{i}]", None))
        return out


def _unhex(text: str, path: str, length: int | None) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise BadArgument(f"{path} is not hex", field=path) from None
    if length is not None and len(value) != length:
        raise BadArgument(f"{path} must be {length} bytes, got {len(value)}", field=path)
    return value
