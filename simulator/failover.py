"""The ``failover`` assertion: what a Redis primary failover did to the sends around it,
measured Jepsen-style from what the clients saw (issue #16 item 5, docs/backends.md "Cluster
shape", docs/simulator.md "Cluster-shape scenarios").

The library's :func:`semafore.deploy.failover.measure_failover` measures the same figures on
the relay's queue port; this module measures them end to end, through the relay and the
devices of a scenario:

- **acknowledged**: a send whose ``send`` call returned (the relay answered 200 for it, after
  any retries the client made): the relay promised to deliver it. A send that failed is not
  acknowledged, so it can be neither lost nor kept (Jepsen's "indeterminate" write);
- **acked_lost**: (message, device) pairs of acknowledged sends that the intended device never
  showed, once the scenario let the devices converge;
- **duplicated**: pairs the relay handed the device as two or more distinct deliveries
  (delivery ids read from the downstream wire traffic the device's link captured: queued
  twice), or that the device showed twice. The same delivery handed again after an
  acknowledgement the relay never recorded is at-least-once delivery working, not a duplicate
  (SPEC §4: the client drops the copy) and is counted apart as ``redelivered``;
- **window**: from the fault to the acknowledgement of the first send begun after it (a send
  in flight when the primary died does not end it).

Zero evidence never passes (issue #11): without an acknowledged send begun before the fault
and one begun after it, nothing was sent across the kill and the verdict is inconclusive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

WIRE_DELIVERY = re.compile(
    rb'"delivery_id"\s*:\s*"([^"\\]{1,200})"\s*,\s*"message_id"\s*:\s*"([^"\\]{1,200})"'
)
"""One envelope as the relay serialises it to a device (``EnvelopeOut``: ``delivery_id`` then
``message_id``), in a WebSocket push frame or an HTTP ``GET /v1/messages`` page."""


@dataclass(frozen=True)
class SendSample:
    """One message of the scenario as the failover measurement needs it: when its ``send``
    call began and returned (scenario clock, ms; ``acked_ms`` None: the send failed) and the
    devices it was meant for."""

    label: str
    message_id: str
    begun_ms: float
    acked_ms: float | None
    intended: frozenset[str]


@dataclass(frozen=True)
class DeliveryFigures:
    """One run's figures as the devices saw them (times in seconds relative to the fault);
    :class:`semafore.deploy.failover.FailoverFigures` are the queue port's, per message id."""

    sends: int
    acknowledged: int
    acked_before: int
    acked_after: int
    unacknowledged: tuple[str, ...]
    acked_lost: tuple[str, ...]
    duplicated: tuple[str, ...]
    redelivered: int
    window_s: float | None
    fault_at_ms: float
    pairs: int = field(default=0)

    def as_details(self) -> dict[str, str | int | float | bool]:
        """The figures as a timeline event's details (the JSON report)."""
        out: dict[str, str | int | float | bool] = {
            "sends": self.sends, "acknowledged": self.acknowledged,
            "acked_before_fault": self.acked_before, "acked_after_fault": self.acked_after,
            "unacknowledged": len(self.unacknowledged), "pairs": self.pairs,
            "acked_lost": len(self.acked_lost), "duplicated": len(self.duplicated),
            "redelivered": self.redelivered,
        }
        if self.window_s is not None:
            out["window_s"] = round(self.window_s, 3)
        return out

    def describe(self) -> str:
        window = "none (no send begun after the fault was acknowledged)" \
            if self.window_s is None else f"{self.window_s:.3f} s"
        return (f"{self.acknowledged} of {self.sends} sends acknowledged ({self.acked_before} "
                f"begun before the fault, {self.acked_after} after), {self.pairs} (message, "
                f"device) pairs: acked_lost {len(self.acked_lost)}, duplicated "
                f"{len(self.duplicated)}, redelivered {self.redelivered}, window {window}")


def wire_deliveries(downstream: Iterable[tuple[str, bytes]]) -> dict[tuple[str, str], list[str]]:
    """(device, message id) -> the delivery ids handed to it, in order, from each device's
    downstream traffic (``(device, bytes)`` in capture order; one device's chunks are joined
    first, so an envelope split across two HTTP chunks is still read)."""
    per_device: dict[str, list[bytes]] = {}
    for device, data in downstream:
        per_device.setdefault(device, []).append(data)
    out: dict[tuple[str, str], list[str]] = {}
    for device, chunks in per_device.items():
        for match in WIRE_DELIVERY.finditer(b"".join(chunks)):
            key = (device, match.group(2).decode("ascii", "replace"))
            out.setdefault(key, []).append(match.group(1).decode("ascii", "replace"))
    return out


def measure(sends: Iterable[SendSample], shown: Mapping[tuple[str, str], int],
            handed: Mapping[tuple[str, str], list[str]], fault_at_ms: float) -> DeliveryFigures:
    """The figures of the sends around a fault at ``fault_at_ms``: ``shown`` counts what each
    device showed per (device, message id), ``handed`` the delivery ids the relay handed it
    (:func:`wire_deliveries`)."""
    samples = list(sends)
    acked = [s for s in samples if s.acked_ms is not None]
    lost: list[str] = []
    duplicated: list[str] = []
    redelivered = 0
    pairs = 0
    for s in samples:
        for device in sorted(s.intended):
            key = (device, s.message_id)
            times, ids = shown.get(key, 0), handed.get(key, [])
            distinct = len(set(ids))
            redelivered += len(ids) - distinct
            if s.acked_ms is None and not times and not ids:
                continue  # an unacknowledged send may or may not have been kept
            pairs += 1
            if s.acked_ms is not None and times == 0:
                lost.append(f"{s.label} -> {device}")
            if times > 1 or distinct > 1:
                duplicated.append(f"{s.label} -> {device}: shown {times} time(s), "
                                  f"{distinct} distinct deliveries")
    after = [s.acked_ms for s in acked if s.begun_ms > fault_at_ms and s.acked_ms is not None]
    return DeliveryFigures(
        sends=len(samples),
        acknowledged=len(acked),
        acked_before=sum(1 for s in acked if s.begun_ms <= fault_at_ms),
        acked_after=len(after),
        unacknowledged=tuple(s.label for s in samples if s.acked_ms is None),
        acked_lost=tuple(lost),
        duplicated=tuple(duplicated),
        redelivered=redelivered,
        window_s=(min(after) - fault_at_ms) / 1000 if after else None,
        fault_at_ms=fault_at_ms,
        pairs=pairs,
    )


@dataclass(frozen=True)
class Judgement:
    """What the figures say against the assertion's bounds: ``held`` None means
    inconclusive (nothing acknowledged on one side of the fault)."""

    held: bool | None
    summary: str
    evidence: list[str]


def judge(figures: DeliveryFigures, *, acked_lost_at_most: int, duplicated_at_most: int,
          window_at_most_s: float | None) -> Judgement:
    """Hold the figures against the bounds. Zero evidence across the fault is inconclusive;
    no send begun after the fault acknowledged also means the window cannot be bounded."""
    text = figures.describe()
    if figures.acked_before == 0 or figures.acked_after == 0:
        return Judgement(None, f"nothing acknowledged on both sides of the fault: {text}", [])
    broken: list[str] = []
    if len(figures.acked_lost) > acked_lost_at_most:
        broken.append(f"acked_lost {len(figures.acked_lost)} > {acked_lost_at_most}")
    if len(figures.duplicated) > duplicated_at_most:
        broken.append(f"duplicated {len(figures.duplicated)} > {duplicated_at_most}")
    window = figures.window_s
    if window_at_most_s is not None and window is not None and window > window_at_most_s:
        broken.append(f"window {window:.3f} s > {window_at_most_s} s")
    evidence = [f"acknowledged, never shown: {p}" for p in figures.acked_lost[:25]]
    evidence += [f"duplicated: {p}" for p in figures.duplicated[:25]]
    if broken:
        return Judgement(False, f"{'; '.join(broken)} — {text}", evidence)
    return Judgement(True, text, evidence)
