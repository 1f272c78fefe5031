"""A device's address: the user that owns it and the device's id, written ``user:device``.

SPEC §2 step 6 binds both parties' addresses, UTF-8 ``"<user_id>:<device_id>"``, into the AD of
every AEAD, so this is the one textual form everything else uses too: the client's session
and identity tables, the simulator's reports, events and fault scopes (issue #14 item 1: the
simulator used to spell the same device ``user/device`` and ``user:device`` in one line).

A ``:`` inside either id would make the AD ambiguous (``a:b:c`` is two different pairs), so an
address whose ids hold one is refused; the relay's id pattern (``semafore.server.models``)
admits neither ``:`` nor ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = ":"


class AddressError(ValueError):
    """Not a device address; ``field`` is ``user`` or ``device`` (the part that is wrong) or
    ``address`` (no separator at all)."""

    def __init__(self, text: str, field: str, detail: str) -> None:
        self.text = text
        self.field = field
        self.detail = detail
        super().__init__(f"device address {text!r}: {field}: {detail}")


@dataclass(frozen=True, order=True)
class DeviceAddress:
    """``user:device`` (SPEC §2): a device is always named together with its owner."""

    user: str
    device: str

    def __post_init__(self) -> None:
        for field, value in (("user", self.user), ("device", self.device)):
            if not value:
                raise AddressError(f"{self.user}{SEPARATOR}{self.device}", field, "empty")
            if SEPARATOR in value:
                raise AddressError(f"{self.user}{SEPARATOR}{self.device}", field,
                                   f"{SEPARATOR!r} is the separator; an id cannot hold it")

    def __str__(self) -> str:
        return f"{self.user}{SEPARATOR}{self.device}"

    @classmethod
    def parse(cls, text: str) -> DeviceAddress:
        """The address ``text`` spells; :class:`AddressError` naming the faulty part."""
        user, sep, device = text.partition(SEPARATOR)
        if not sep:
            raise AddressError(text, "address", f"must be 'user{SEPARATOR}device'")
        if not user:
            raise AddressError(text, "user", "empty")
        if not device:
            raise AddressError(text, "device", "empty")
        return cls(user, device)


class AddressArgumentError(AddressError):
    """An API argument that should name a device does not, e.g. the retired ``user/device``
    spelling (issue #14 item 1: one textual form). ``argument`` is the parameter's name."""

    def __init__(self, argument: str, text: str, detail: str) -> None:
        self.argument = argument
        super().__init__(text, "address", detail)
        self.args = (f"{argument}: {text!r} is not a device address: {detail}",)


def address_argument(value: DeviceAddress | str, argument: str) -> DeviceAddress:
    """``value`` as a :class:`DeviceAddress`: the type itself or its one textual form
    ``user:device`` (SPEC §2 step 6). Anything else, the old ``user/device`` spelling included,
    is an :class:`AddressArgumentError` naming ``argument`` and the form to use: accepting two
    spellings silently is what issue #14 item 1 removed."""
    if isinstance(value, DeviceAddress):
        return value
    if not isinstance(value, str):
        raise AddressArgumentError(argument, repr(value),
                                   f"expected a DeviceAddress or 'user{SEPARATOR}device'")
    user, slash, device = value.partition("/")
    if slash and SEPARATOR not in value and user and device:
        raise AddressArgumentError(
            argument, value, f"'user/device' is not accepted; write "
            f"'{user}{SEPARATOR}{device}' (or DeviceAddress({user!r}, {device!r}))")
    try:
        return DeviceAddress.parse(value)
    except AddressError as exc:
        raise AddressArgumentError(argument, value,
                                   f"{exc.field}: {exc.detail} (write 'user{SEPARATOR}device')"
                                   ) from exc
