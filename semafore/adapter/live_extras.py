"""Further live operations of the reference adapter (docs/adapter-contract.md §5 "Further
operations"): what a client app does beyond text messages — read receipts, attachments
(ADR-0157), admin broadcasts (ADR-0158), signed-prekey rotation and one-time-prekey top-up —
so a scenario can give any of these steps to an adapter device (issue #15 item 3). Each is
one call of :class:`~semafore.client.DeviceClient`, the same code a reference device of the
simulator runs, so the two implementations are compared on the same wire behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from semafore.adapter.args import Args
from semafore.adapter.live import LiveOps, _public_bundle
from semafore.client.client import DeviceClient, SendResult


def _envelopes(client: DeviceClient, result: SendResult) -> list[dict[str, Any]]:
    """Recipients first, then sync copies, each group sorted by address (as ``live.send``)."""
    out: list[dict[str, Any]] = []
    for address, body in sorted(result.envelopes.items(),
                                key=lambda kv: (kv[0] in result.sync, kv[0])):
        envelope: dict[str, Any] = {"to": address, "body": body.hex()}
        if address in result.sync:
            envelope["sync"] = True
        out.append(envelope)
    return out


class FurtherOps:
    """``live.receipt``, ``live.attach``, ``live.broadcast``, ``live.spk.rotate``,
    ``live.opks.replenish``, ``live.remove`` and ``live.screenshot`` on the devices of a
    :class:`LiveOps`."""

    def __init__(self, live: LiveOps) -> None:
        self.live = live

    def handlers(self) -> dict[str, Callable[[Args], dict[str, Any]]]:
        """These operations by their contract names."""
        return {
            "live.receipt": self.receipt,
            "live.attach": self.attach,
            "live.broadcast": self.broadcast,
            "live.spk.rotate": self.rotate_spk,
            "live.opks.replenish": self.replenish,
            "live.remove": self.remove,
            "live.screenshot": self.screenshot,
        }

    def _client(self, args: Args) -> DeviceClient:
        return self.live._device(args).connected()

    def receipt(self, args: Args) -> dict[str, Any]:
        """A read receipt (content kind ``receipt``, ``rcpt`` = ``message_ids``) to every
        device of ``to``, with sync copies."""
        client = self._client(args)
        to = args.text("to")
        ids = args.users("message_ids")
        result = self.live._run(client.send_receipt(to, ids))
        return {"message_id": result.message_id, "envelopes": _envelopes(client, result)}

    def attach(self, args: Args) -> dict[str, Any]:
        """Encrypt ``data`` client-side, upload the blob once, send the pointer (and the
        ``caption``) as one message to the users ``to``; answers the relay's ``file_id`` and
        the blob's ``key`` (the harness's oracle must never find it)."""
        client = self._client(args)
        to = args.users("to")
        data = args.hex("data")
        caption = args.hex("caption") if args.optional_text("caption") is not None else b""

        # a user it cannot reach fails the request (RelayError): the client raises before it
        # hands back the pointer, and a pointer that is not reported cannot be registered
        result, pointer = self.live._run(client.send_attachment(to, data, caption))
        return {"message_id": result.message_id, "envelopes": _envelopes(client, result),
                "file_id": pointer.file_id, "key": pointer.key.hex()}

    def broadcast(self, args: Args) -> dict[str, Any]:
        """An admin broadcast of ``plaintext`` to every device of the users ``to`` (the
        sender's own user left out; no sync copies)."""
        client = self._client(args)
        to = args.users("to")
        body = args.hex("plaintext")
        sent: dict[str, bytes] = {}

        def record(_: DeviceClient, user_id: str, sent_id: str, bodies: dict[str, bytes]) -> None:
            sent.update(bodies)

        client.on_sent = record
        try:
            message_id = self.live._run(client.broadcast(to, body))
        finally:
            client.on_sent = None
        return {"message_id": message_id, "envelopes": [
            {"to": address, "body": body.hex()} for address, body in sorted(sent.items())]}

    def rotate_spk(self, args: Args) -> dict[str, Any]:
        """A new signed prekey, published; ``keep_previous`` (default true) keeps the
        rotated ones for SMX1s in flight, false deletes them at once."""
        live = self.live._device(args)
        client = live.connected()
        keep = args.flag("keep_previous", True)
        old = client.device.keys.spk.key_id
        new = self.live._run(client.rotate_spk())
        if not keep:
            client.device.keys.previous_spks.pop(old, None)
        return {"previous": old, "key_id": new, "bundle": _public_bundle(live.device)}

    def replenish(self, args: Args) -> dict[str, Any]:
        """Top up the relay's one-time prekeys below the low-water mark."""
        client = self._client(args)
        done = self.live._run(client.maintain_prekeys())
        return {"uploaded": int(done.get("opks_uploaded", 0))}

    def remove(self, args: Args) -> dict[str, Any]:
        """Unregister the device at the relay (``DELETE /v1/devices/{id}``: its keys and
        queue go) and forget it."""
        live = self.live._device(args)
        client = live.connected()
        self.live._run(client.remove_device(live.device_id))
        return self.live.close(args)

    def screenshot(self, args: Args) -> dict[str, Any]:
        """Report a screenshot of the conversation with ``peer`` (ADR-0159): the image's
        SHA-256 and the ``message_ids`` it shows leave the device, never the image."""
        client = self._client(args)
        report = self.live._run(client.report_screenshot(
            args.text("peer"), args.hex("image"), args.users("message_ids")))
        return {"report_id": report}
