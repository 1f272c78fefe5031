"""A bounds-checked cursor over persisted state: every short read names its field."""

from __future__ import annotations

import struct

from semafore.protocol.errors import MalformedState

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class StateReader:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, n: int, field: str) -> bytes:
        end = self.offset + n
        if end > len(self.data):
            raise MalformedState(f"truncated inside {field}", field=field)
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int(_U16.unpack(self.take(2, field))[0])

    def u32(self, field: str) -> int:
        return int(_U32.unpack(self.take(4, field))[0])

    def finish(self, field: str) -> None:
        if self.offset != len(self.data):
            raise MalformedState(f"{len(self.data) - self.offset} trailing bytes", field=field)
