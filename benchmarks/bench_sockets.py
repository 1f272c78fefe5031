"""Relay RSS with non-reading WebSockets on backlogged devices (issue 13 F-5).

Starts ``semafore serve`` (memory store, test mode, production limits otherwise) on a free
127.0.0.1 port, queues ``--backlog`` envelopes of ``--body`` bytes for each of ``--devices``
devices, then opens ``--sockets-per-device`` raw WebSockets per device that complete the
handshake and never read (4 KiB receive buffers). Prints the relay's RSS before the sockets,
its peak while they are held, and how many sockets the relay closed (4409: over the
per-device cap; 4408: slow consumer, after ``ws_stall_timeout``) once ``--hold`` seconds
passed. Bounded: loopback only, every socket closed at the end, the relay stopped.

    python -m benchmarks.bench_sockets --devices 25 --sockets-per-device 2
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks.bench_relay import free_port, key_upload
from semafore.server.totp import totp

ORG = "bench"
BODY_MAGIC = b"DRV1"


def open_raw_websocket(port: int, token: str, *, address: str = "127.0.0.1",
                       rcvbuf: int | None = 4096) -> socket.socket:
    """A WebSocket to the relay on 127.0.0.1 that completes the handshake and then reads
    nothing unless asked (a tiny receive buffer, so the relay's writes back up)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((address, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /v1/websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:  # read exactly the handshake response, byte by byte
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("closed during the WebSocket handshake")
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    return sock


def read_frames(sock: socket.socket, timeout: float = 10.0) -> Iterator[tuple[int, bytes]]:
    """(opcode, payload) of each server frame (unmasked, RFC 6455 §5.2) until the relay's
    close frame (opcode 8, yielded last) or the end of the connection."""
    sock.settimeout(timeout)
    buffer = b""

    def need(n: int) -> bool:
        nonlocal buffer
        while len(buffer) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return False
            buffer += chunk
        return True

    while need(2):
        opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
        header = 2 + {126: 2, 127: 8}.get(length, 0)
        if not need(header):
            return
        if length == 126:
            length = struct.unpack("!H", buffer[2:4])[0]
        elif length == 127:
            length = struct.unpack("!Q", buffer[2:10])[0]
        if not need(header + length):
            return
        yield opcode, buffer[header : header + length]
        if opcode == 8:
            return
        buffer = buffer[header + length :]


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _client(url: str, address: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30,
                        transport=httpx.HTTPTransport(local_address=address))


def _login(url: str, user: str, device: str, address: str, **extra: str) -> dict[str, object]:
    with _client(url, address) as http:
        r = http.post("/v1/auth/login", json={"org_id": ORG, "user_id": user,
                                              "device_id": device, "otp": "000000", **extra})
        r.raise_for_status()
        body: dict[str, object] = r.json()
        return body


def measure(
    devices: int, per_device: int, backlog: int, body: int, hold: float
) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    relay = subprocess.Popen(
        [sys.executable, "-m", "semafore.cli.main", "serve", "--port", str(port),
         "--test-mode", "--test-org", ORG, "--log-level", "warning", "--retention-interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    sockets: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or relay.poll() is not None:
                raise RuntimeError("relay did not start")
            time.sleep(0.1)
        with _client(url, "127.0.0.1") as http:
            r = http.post("/v1/orgs", json={"org_id": ORG, "name": ORG, "admin_user_id": "op"})
            r.raise_for_status()
        secret = r.json()["totp_secret"]
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
        admin = _login(url, "op", "d", "127.0.0.1", totp=totp(raw, time.time()))
        auth = {"Authorization": f"Bearer {admin['access_token']}"}
        users = [f"u{i}" for i in range(devices)]
        with _client(url, "127.0.0.1") as http:
            http.put(f"/v1/orgs/{ORG}/subscription", json={"plan": "standard",
                     "seats": devices + 2}, headers=auth).raise_for_status()
            for user in [*users, "sender"]:
                http.put(f"/v1/orgs/{ORG}/members/{user}", json={"role": "member"},
                         headers=auth).raise_for_status()
        # one loopback source address per login: the auth bucket counts per client address
        sessions = {u: _login(url, u, "d1", f"127.0.1.{i + 1}") for i, u in enumerate(users)}
        sender = _login(url, "sender", "s1", "127.0.2.1")
        with _client(url, "127.0.0.1") as http:  # only keyed devices can be sent to
            for user in users:
                token = {"Authorization": f"Bearer {sessions[user]['access_token']}"}
                http.put("/v1/keys", json=key_upload(user), headers=token).raise_for_status()
        payload = base64.b64encode(BODY_MAGIC + os.urandom(body - len(BODY_MAGIC))).decode()
        with _client(url, "127.0.2.1") as http:
            headers = {"Authorization": f"Bearer {sender['access_token']}"}
            for user in users:
                rid = sessions[user]["registration_id"]
                for n in range(backlog):
                    http.put(f"/v1/messages/{user}", headers=headers, json={
                        "message_id": f"{user}-{n}",
                        "envelopes": [{"device_id": "d1", "registration_id": rid,
                                       "body": payload}],
                    }).raise_for_status()
        time.sleep(1.0)
        before = rss_mib(relay.pid)
        for user in users:
            for _ in range(per_device):
                sockets.append(open_raw_websocket(port, str(sessions[user]["access_token"])))
        peak = before
        end = time.monotonic() + hold
        while time.monotonic() < end:
            peak = max(peak, rss_mib(relay.pid))
            time.sleep(0.25)
        closed = replaced = slow = 0
        for sock in sockets:  # what the relay did with each held socket, reading it now
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                continue
            sock.settimeout(0.5)
            try:
                codes = [close_code(p) for op, p in read_frames(sock, 0.5) if op == 8]
            except TimeoutError:
                codes = []
            if codes:
                closed += 1
                replaced += codes[0] == 4409
                slow += codes[0] == 4408
        return {
            "devices": devices, "sockets": len(sockets), "backlog_per_device": backlog,
            "body_bytes": body, "rss_before_mib": round(before, 1),
            "rss_peak_mib": round(peak, 1), "rss_growth_mib": round(peak - before, 1),
            "closed_4409": replaced, "closed_4408": slow, "closed_seen": closed,
        }
    finally:
        for sock in sockets:
            sock.close()
        relay.terminate()
        relay.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=25)
    parser.add_argument("--sockets-per-device", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=64, help="envelopes queued per device")
    parser.add_argument("--body", type=int, default=60 * 1024, help="bytes per envelope")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the sockets are held")
    args = parser.parse_args(argv)
    result = measure(args.devices, args.sockets_per_device, args.backlog, args.body, args.hold)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
