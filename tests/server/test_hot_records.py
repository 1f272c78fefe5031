"""The per-envelope records the relay builds without their dataclass ``__init__``
(``storage.ports.hot_record``, which the relay uses) are exactly the records the normal
constructor makes."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from semafore.storage.ports import DeliveryProof, QueuedEnvelope, hot_record

HOT = (QueuedEnvelope, DeliveryProof)
text = st.text(max_size=12)


def test_hot_records_are_plain_frozen_dataclasses() -> None:
    """hot_record fills ``__dict__``: it must not be used on a slotted class or one with a
    ``__post_init__`` (both would silently differ from the constructor)."""
    for cls in HOT:
        assert dataclasses.is_dataclass(cls)
        assert not hasattr(cls, "__slots__")
        assert not hasattr(cls, "__post_init__")


STRATEGIES = {
    "str": text,
    "bytes": st.binary(max_size=40),
    "float": st.floats(allow_nan=False),
    "EnvelopeKind": st.sampled_from(["message", "reset", "broadcast"]),
}


@st.composite
def field_values(draw: st.DrawFn, cls: type) -> dict[str, object]:
    """A value for every field, by its annotation (the ports module's are strings)."""
    return {f.name: draw(STRATEGIES[str(f.type)]) for f in dataclasses.fields(cls)}


@given(st.sampled_from(HOT), st.data())
def test_hot_record_equals_constructed(
    cls: type[QueuedEnvelope] | type[DeliveryProof], data: st.DataObject
) -> None:
    values = data.draw(field_values(cls))
    fast: QueuedEnvelope | DeliveryProof = hot_record(cls, **values)
    slow = cls(**values)  # type: ignore[arg-type]
    assert type(fast) is cls
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    assert repr(fast) == repr(slow)
    field = dataclasses.fields(cls)[0].name
    try:
        setattr(fast, field, "changed")
    except dataclasses.FrozenInstanceError:
        pass
    else:  # pragma: no cover - the record must stay frozen
        raise AssertionError("hot record is not frozen")
