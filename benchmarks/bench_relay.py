"""Relay throughput and latency: the SemaFore relay beside a bare WebSocket relay, same run.

Both relays run as their own process on 127.0.0.1; this process drives both with identical
clients: ``--pairs`` sender/receiver WebSocket pairs move ``--envelopes`` envelopes of
``--size`` bytes, at most ``--window`` in flight per sender. Each envelope carries its send
time, so the receiver measures send→delivered latency.

- bare: ``websockets`` server that reads ``"<to>|<payload>"`` and writes ``payload`` to the
  connection named ``to``: receive, forward, nothing else.
- semafore: the full relay (``semafore.server``) on the chosen store: token auth, JSON and
  envelope validation, the device-set check, rate limiting, queueing in the store, push,
  ack-then-delete with a delivery proof per envelope, structured logging.

Prints envelopes/s, p50/p99 latency for each and the throughput ratio (target ≥ 0.5), plus
envelopes per CPU-second of each relay process — the figure that stays meaningful when other
work shares the machine's cores.
``--json`` prints the same as one JSON object. Bounded: stops after the envelopes are
delivered or ``--timeout`` seconds.

    python -m benchmarks.bench_relay --envelopes 20000 --store memory
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection, connect

ORG = "bench"
STATUS = re.compile(r'"status":(\d+)')
PASSWORD_OTP = "000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the two relays (each runs in its own process) ------------------------------------------


async def bare_relay(port: int) -> None:
    peers: dict[str, Any] = {}

    async def handler(ws: Any) -> None:
        name = await ws.recv()
        peers[name] = ws
        try:
            async for frame in ws:
                to, _, payload = frame.partition("|")
                target = peers.get(to)
                if target is not None:
                    await target.send(payload)
        finally:
            peers.pop(name, None)

    async with websockets.serve(handler, "127.0.0.1", port, max_size=2**20, compression=None):
        await asyncio.Future()


def bare_asgi_relay(port: int) -> None:
    """The bare relay's forwarding on the server stack SemaFore runs on (Starlette on uvicorn,
    same options): separates what the ASGI stack costs per frame from what the relay adds."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    peers: dict[str, WebSocket] = {}

    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        name = await ws.receive_text()
        peers[name] = ws
        try:
            while True:
                to, _, payload = (await ws.receive_text()).partition("|")
                target = peers.get(to)
                if target is not None:
                    await target.send_text(payload)
        except WebSocketDisconnect:
            pass
        finally:
            peers.pop(name, None)

    app = Starlette(routes=[WebSocketRoute("/", handler)])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )


def semafore_relay(port: int, store: str) -> None:
    """The reference relay as ``semafore serve`` runs it: the deploy layer's foreground
    launcher and its one uvicorn configuration (docs/architecture.md), with no rate limits and
    room for the benchmark's connections."""
    from semafore.deploy.foreground import run_until_signalled
    from semafore.deploy.listener import bind_loopback
    from semafore.server.app import create_app
    from semafore.server.oplog import configure_logging
    from semafore.server.settings import Settings, unlimited_rate_limits
    from semafore.storage import open_stores

    settings = Settings(
        test_mode=True, test_orgs=frozenset({ORG}), rate_limits=unlimited_rate_limits(),
        retention_interval=0, max_connections=4096,
    )
    configure_logging(open(os.devnull, "w"), logging.INFO)  # noqa: SIM115 (lives with the process)
    run_until_signalled(create_app(settings, open_stores(store)), settings, bind_loopback(port))


# --- measurement ----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    delivered: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    relay_cpu: float = 0.0  # CPU seconds the relay process spent during the run

    @property
    def cpu_us_per_envelope(self) -> float:
        return self.relay_cpu / self.delivered * 1e6 if self.delivered else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.delivered / self.relay_cpu if self.relay_cpu else 0.0

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "relay": self.name,
            "envelopes": self.delivered,
            "seconds": round(self.seconds, 3),
            "envelopes_per_s": round(self.rate, 1),
            "p50_ms": round(self.percentile(0.50), 3),
            "p99_ms": round(self.percentile(0.99), 3),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 3)
            if self.latencies
            else None,
            "relay_cpu_s": round(self.relay_cpu, 3),
            "relay_cpu_us_per_envelope": round(self.cpu_us_per_envelope, 1),
            "envelopes_per_relay_cpu_s": round(self.per_cpu_second, 1),
        }


def payload(size: int) -> bytes:
    stamp = struct.pack(">d", time.perf_counter())
    return b"DRV1" + stamp + b"\x00" * max(0, size - 12)


def sent_at(body: bytes) -> float:
    return float(struct.unpack(">d", body[4:12])[0])


def send_frame(pair: int, n: int, registration_id: int, size: int) -> str:
    """The client's ``send`` frame; both relays carry exactly this text (same size, same
    client-side encoding and decoding), so only the relays' own work differs."""
    return json.dumps(
        {
            "type": "send",
            "request_id": n,
            "user_id": f"r{pair}",
            "message": {
                "message_id": f"m{pair}-{n}",
                "envelopes": [
                    {
                        "device_id": "d1",
                        "registration_id": registration_id,
                        "body": base64.b64encode(payload(size)).decode(),
                    }
                ],
            },
        }
    )


async def drive(
    name: str,
    pairs: int,
    total: int,
    window: int,
    open_sender: Any,
    open_receiver: Any,
    timeout: float,
) -> Result:
    """Run ``pairs`` sender→receiver streams of ``total/pairs`` envelopes each."""
    per_pair = total // pairs
    result = Result(name)
    done = asyncio.Event()
    start = time.perf_counter()
    last = start
    delivered_total = 0

    async def pair(i: int) -> None:
        nonlocal last, delivered_total
        credit = asyncio.Semaphore(window)
        send, close_sender = await open_sender(i)
        receive, close_receiver = await open_receiver(i)

        async def consumer() -> None:
            nonlocal last, delivered_total
            got = 0
            while got < per_pair:
                bodies = await receive()
                now = time.perf_counter()
                for body in bodies:
                    result.latencies.append(now - sent_at(body))
                    credit.release()
                got += len(bodies)
                delivered_total += len(bodies)
                last = now
            if delivered_total >= per_pair * pairs:
                done.set()

        consumer_task = asyncio.create_task(consumer())
        for n in range(per_pair):
            await credit.acquire()
            await send(n)
        await consumer_task
        await close_sender()
        await close_receiver()

    tasks = [asyncio.create_task(pair(i)) for i in range(pairs)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    finally:
        for task in tasks:
            task.cancel()
    result.delivered = delivered_total
    result.seconds = last - start
    return result


async def run_bare(
    port: int,
    pairs: int,
    total: int,
    window: int,
    size: int,
    timeout: float,
    name: str = "bare websockets relay",
) -> Result:
    url = f"ws://127.0.0.1:{port}"

    async def open_sender(i: int) -> Any:
        ws = await connect(url, max_size=2**20, compression=None)
        await ws.send(f"s{i}")

        async def send(n: int) -> None:
            await ws.send(f"r{i}|" + send_frame(i, n, 1, size))

        return send, ws.close

    async def open_receiver(i: int) -> Any:
        ws = await connect(url, max_size=2**20, compression=None)
        await ws.send(f"r{i}")

        async def receive() -> list[bytes]:
            frame = json.loads(await ws.recv())
            return [base64.b64decode(e["body"]) for e in frame["message"]["envelopes"]]

        return receive, ws.close

    return await drive(name, pairs, total, window, open_sender, open_receiver, timeout)


async def drain_send_results(ws: ClientConnection) -> None:
    """Read a sender's ``response`` frames (single or batched): every send must be accepted,
    a refusal ends the run with the relay's answer."""
    async for frame in ws:
        text = frame if isinstance(frame, str) else frame.decode()
        statuses = STATUS.findall(text)
        if not statuses or any(code != "200" for code in statuses):
            raise RuntimeError(f"relay refused a send: {text[:300]!r}")


def key_upload(user_id: str) -> dict[str, Any]:
    """A ``PUT /v1/keys`` body (identity and signed prekey, no OPKs) for a bench device: only
    a device that published both is in its user's recipient device set (docs/server.md
    "Recipient device set"), so a receiver without keys could not be sent to."""
    from semafore.protocol.entropy import SeededEntropy
    from semafore.protocol.keys import DeviceKeys

    keys = DeviceKeys.generate(SeededEntropy(f"bench:{user_id}"), opk_count=0)
    spk = keys.spk
    return {
        "ik": base64.b64encode(keys.identity.ik.public).decode(),
        "sik": base64.b64encode(keys.identity.sik.public).decode(),
        "spk": {
            "key_id": spk.key_id,
            "pub": base64.b64encode(spk.keypair.public).decode(),
            "sig": base64.b64encode(spk.signature).decode(),
        },
        "opks": [],
    }


async def publish_keys(http: httpx.AsyncClient, session: dict[str, Any]) -> None:
    """Publish :func:`key_upload` for a logged-in session (a login answer)."""
    auth = {"Authorization": f"Bearer {session['access_token']}"}
    upload = key_upload(str(session["user_id"]))
    (await http.put("/v1/keys", json=upload, headers=auth)).raise_for_status()


async def run_semafore(
    port: int, pairs: int, total: int, window: int, size: int, timeout: float, batch: int = 0
) -> Result:
    base = f"http://127.0.0.1:{port}"
    ws_url = f"ws://127.0.0.1:{port}/v1/websocket"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        signup = await http.post(
            "/v1/orgs", json={"org_id": ORG, "name": "Bench", "admin_user_id": "admin"}
        )
        signup.raise_for_status()
        from semafore.server.totp import totp

        secret = signup.json()["totp_secret"]
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
        admin = await http.post(
            "/v1/auth/login",
            json={
                "org_id": ORG,
                "user_id": "admin",
                "device_id": "d",
                "otp": PASSWORD_OTP,
                "totp": totp(raw, time.time()),
            },
        )
        admin.raise_for_status()
        auth = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        sessions: dict[str, dict[str, Any]] = {}
        for i in range(pairs):
            for role in ("s", "r"):
                user = f"{role}{i}"
                (
                    await http.put(
                        f"/v1/orgs/{ORG}/members/{user}", json={"role": "member"}, headers=auth
                    )
                ).raise_for_status()
                r = await http.post(
                    "/v1/auth/login",
                    json={"org_id": ORG, "user_id": user, "device_id": "d1", "otp": PASSWORD_OTP},
                )
                r.raise_for_status()
                sessions[user] = r.json()
                await publish_keys(http, sessions[user])

    async def open_sender(i: int) -> Any:
        me = sessions[f"s{i}"]
        peer = sessions[f"r{i}"]
        ws = await connect(
            ws_url + (f"?batch={batch}" if batch else ""),
            additional_headers={"Authorization": f"Bearer {me['access_token']}"},
            max_size=2**21,
            compression=None,
        )

        drainer = asyncio.create_task(drain_send_results(ws))

        async def send(n: int) -> None:
            await ws.send(send_frame(i, n, peer["registration_id"], size))

        async def close() -> None:
            drainer.cancel()
            await ws.close()

        return send, close

    async def open_receiver(i: int) -> Any:
        me = sessions[f"r{i}"]
        ws: ClientConnection = await connect(
            ws_url + (f"?batch={batch}" if batch else ""),
            additional_headers={"Authorization": f"Bearer {me['access_token']}"},
            max_size=2**21,
            compression=None,
        )

        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def reader() -> None:
            async for frame in ws:
                parsed = json.loads(frame)
                kind = parsed.get("type")
                if kind == "envelope":
                    inbox.put_nowait(parsed)
                elif kind == "envelopes":
                    for envelope in parsed["envelopes"]:
                        inbox.put_nowait(envelope)

        reading = asyncio.create_task(reader())

        async def receive() -> list[bytes]:
            # Take what has arrived (at least one), ack it in one frame like a real client.
            frames = [await inbox.get()]
            while not inbox.empty() and len(frames) < 64:
                frames.append(inbox.get_nowait())
            await ws.send(
                json.dumps({"type": "ack", "delivery_ids": [f["delivery_id"] for f in frames]})
            )
            return [base64.b64decode(f["body"]) for f in frames]

        async def close() -> None:
            reading.cancel()
            await ws.close()

        return receive, close

    name = f"semafore relay (batch={batch})" if batch else "semafore relay (one frame each)"
    return await drive(name, pairs, total, window, open_sender, open_receiver, timeout)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc): immune to other load."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(proc: subprocess.Popen[bytes], run: Any) -> Result:
    before = process_cpu(proc.pid)
    result: Result = asyncio.run(run)
    result.relay_cpu = process_cpu(proc.pid) - before
    return result


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"relay on port {port} did not start")


@contextlib.contextmanager
def relay_process(args: list[str], port: int) -> Any:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_relay", *args])
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=20000)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--window", type=int, default=64, help="in-flight envelopes per sender")
    parser.add_argument("--size", type=int, default=300, help="envelope body bytes")
    parser.add_argument("--store", default="memory", help="memory or sqlite:PATH")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--batch",
        type=int,
        default=64,
        help="devices connect with ?batch=N, as the reference SDK does (0: one frame each)",
    )
    parser.add_argument(
        "--compare-unbatched",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the relay with one frame per envelope (batch=0) in the same rounds",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare/semafore rounds, interleaved; median shown"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-semafore", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare-asgi", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        asyncio.run(bare_relay(args.serve_bare))
        return
    if args.serve_bare_asgi:
        bare_asgi_relay(args.serve_bare_asgi)
        return
    if args.serve_semafore:
        semafore_relay(args.serve_semafore, args.store)
        return

    variants = [args.batch] + ([0] if args.batch and args.compare_unbatched else [])
    rounds: list[tuple[Result, dict[int, Result]]] = []
    references: list[Result] = []
    for _ in range(args.rounds):  # back to back per round, rounds interleaved
        bare_port, asgi_port = free_port(), free_port()
        with relay_process(["--serve-bare-asgi", str(asgi_port)], asgi_port) as proc:
            references.append(
                measured(
                    proc,
                    run_bare(
                        asgi_port,
                        args.pairs,
                        args.envelopes,
                        args.window,
                        args.size,
                        args.timeout,
                        "bare relay on uvicorn (ref.)",
                    ),
                )
            )
        with relay_process(["--serve-bare", str(bare_port)], bare_port) as proc:
            bare = measured(
                proc,
                run_bare(
                    bare_port, args.pairs, args.envelopes, args.window, args.size, args.timeout
                ),
            )
        ours: dict[int, Result] = {}
        for batch in variants:
            relay_port = free_port()
            with relay_process(
                ["--serve-semafore", str(relay_port), "--store", args.store], relay_port
            ) as proc:
                ours[batch] = measured(
                    proc,
                    run_semafore(
                        relay_port,
                        args.pairs,
                        args.envelopes,
                        args.window,
                        args.size,
                        args.timeout,
                        batch,
                    ),
                )
        rounds.append((bare, ours))

    def ratios(bare: Result, ours: Result) -> tuple[float, float]:
        rate = ours.rate / bare.rate if bare.rate else 0.0
        cpu = ours.per_cpu_second / bare.per_cpu_second if bare.per_cpu_second else 0.0
        return rate, cpu

    def variant(batch: int) -> dict[str, Any]:
        """The median round (by throughput ratio) of one relay variant, with every round's
        ratios against the bare relay measured in that same round."""
        per_round = [ratios(bare, ours[batch]) for bare, ours in rounds]
        order = sorted(range(len(rounds)), key=lambda i: per_round[i][0])
        median = order[len(order) // 2]
        bare, ours = rounds[median][0], rounds[median][1][batch]
        rate, cpu = per_round[median]
        return {
            "batch": batch,
            "semafore": ours.summary(),
            "bare": bare.summary(),
            "bare_on_uvicorn_reference": references[median].summary(),
            "throughput_ratio": round(rate, 3),
            "relay_cpu_efficiency_ratio": round(cpu, 3),
            "round_throughput_ratios": [round(r[0], 3) for r in per_round],
            "round_cpu_ratios": [round(r[1], 3) for r in per_round],
            "_results": (bare, references[median], ours),
        }

    measured_variants = [variant(b) for b in variants]
    head = measured_variants[0]
    report = {
        "envelopes": args.envelopes,
        "pairs": args.pairs,
        "window": args.window,
        "size": args.size,
        "store": args.store.partition(":")[0],
        "batch": args.batch,
        "rounds": args.rounds,
        **{k: v for k, v in head.items() if k != "_results"},
        "variants": [{k: v for k, v in m.items() if k != "_results"} for m in measured_variants],
        "load_average": os.getloadavg()[0],
        "target_ratio": 0.5,
    }
    if args.json:
        print(json.dumps(report))
        return
    bare, asgi, _ = head["_results"]
    for r in (bare, asgi, *(m["_results"][2] for m in measured_variants)):
        s = r.summary()
        print(
            f"{s['relay']:<34} {s['envelopes']:>7} env  {s['envelopes_per_s']:>9.1f} env/s  "
            f"p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  "
            f"{s['relay_cpu_us_per_envelope']:>6.1f} relay CPU us/env"
        )
    for m in measured_variants:
        ratio, cpu_ratio = m["throughput_ratio"], m["relay_cpu_efficiency_ratio"]
        label = f"batch={m['batch']}" + (" (SDK default)" if m is head else "")
        verdict = "met" if ratio >= 0.5 else "NOT met"
        print(
            f"throughput ratio semafore/bare, {label}: {ratio:.2f} (target >= 0.50, {verdict}; "
            f"median of rounds {m['round_throughput_ratios']})"
        )
        print(
            f"relay CPU efficiency ratio, {label}: {cpu_ratio:.2f} (bare CPU/env over ours; "
            f"robust to other load, rounds {m['round_cpu_ratios']})"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
