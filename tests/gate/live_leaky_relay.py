"""TEST ONLY: an external relay process that leaks, for the live gate's external-relay oracle.

    python tests/gate/live_leaky_relay.py relay --port P --db PATH --spool DIR \
        --leak log|store --org ORG
    python tests/gate/live_leaky_relay.py adapter --spool DIR

A relay never holds plaintext, so to leak one it must be handed it: the ``adapter`` (the
reference adapter) writes each ``live.send`` plaintext to ``DIR/<message_id>`` before sending,
and the ``relay`` (``semafore serve`` on SQLite, JSON logs on stderr, ``Settings.leak``)
reads it back as its ``leak_source``: with ``log`` it writes the plaintext into an operational
log line, with ``store`` it queues it in place of the first envelope's body. The gate knows
nothing of this; only its oracle over the relay's logs, stores and the wire can catch it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _spooled(spool: Path, message_id: str) -> bytes | None:
    if not _SAFE_ID.fullmatch(message_id):
        return None
    path = spool / message_id
    return path.read_bytes() if path.is_file() else None


def relay(port: int, db: Path, spool: Path, leak: str, org: str) -> None:
    import logging

    from semafore.deploy.foreground import run_until_signalled
    from semafore.deploy.listener import bind_loopback
    from semafore.server.app import create_app
    from semafore.server.oplog import configure_logging
    from semafore.server.settings import Settings
    from semafore.storage import open_stores

    settings = Settings(test_mode=True, test_orgs=frozenset({org}), leak=leak,
                        leak_source=lambda message_id: _spooled(spool, message_id))
    configure_logging(sys.stderr, logging.INFO)
    # the relay's own uvicorn configuration, as `semafore serve` runs it (issue 14 item 1)
    run_until_signalled(create_app(settings, open_stores(f"sqlite:{db}")), settings,
                        bind_loopback(port))


def adapter(spool: Path) -> int:
    from semafore.adapter.args import Args
    from semafore.adapter.ops import ReferenceAdapter
    from semafore.adapter.server import serve

    reference = ReferenceAdapter()
    real_send = reference.ops["live.send"]

    def spooling_send(args: Args) -> dict[str, Any]:
        message_id = args.text("message_id")
        if _SAFE_ID.fullmatch(message_id):
            (spool / message_id).write_bytes(args.hex("plaintext"))
        return real_send(args)

    reference.ops["live.send"] = spooling_send
    return serve(sys.stdin.buffer, sys.stdout.buffer, reference)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--db", type=Path, required=True)
    r.add_argument("--spool", type=Path, required=True)
    r.add_argument("--leak", choices=["log", "store"], required=True)
    r.add_argument("--org", required=True)
    a = sub.add_parser("adapter")
    a.add_argument("--spool", type=Path, required=True)
    opts = parser.parse_args()
    if opts.role == "relay":
        relay(opts.port, opts.db, opts.spool, opts.leak, opts.org)
        return 0
    return adapter(opts.spool)


if __name__ == "__main__":
    sys.exit(main())
