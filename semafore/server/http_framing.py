"""HTTP framing errors answered in the API's error shape (issue 13 F-14).

A request h11 cannot frame (a malformed request line, an invalid header, a bad chunk)
never reaches the ASGI app, so uvicorn answers it itself, with a ``text/plain`` 400. This
protocol class gives it the typed body every other refusal has (docs/server.md
"Conventions"): ``{"error": "malformed_http", "field": null, "detail": ...}``. Pass it as
uvicorn's ``http=`` option (``semafore.deploy.inprocess`` and ``semafore serve`` do).
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MALFORMED_HTTP_BODY = json.dumps(
    {"error": "malformed_http", "field": None, "detail": "the request is not valid HTTP/1.1"}
).encode()


class TypedErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(MALFORMED_HTTP_BODY)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=MALFORMED_HTTP_BODY),
            h11.EndOfMessage(),
        ):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()
