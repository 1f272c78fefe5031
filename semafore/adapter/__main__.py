"""``python -m semafore.adapter``: serve the adapter contract on stdin/stdout until EOF."""

from __future__ import annotations

import sys

from semafore.adapter.server import serve


def main() -> int:
    return serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
