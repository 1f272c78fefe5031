"""Virtual SemaFore devices for locust (run by ``semafore load run``; docs/load.md).

Each locust user is one device of the corpus (:mod:`loadtests.corpus`): it logs in, keeps
its WebSocket open (``websocket-client``, which cooperates with gevent's patched sockets),
and, between think times, takes the actions its profile weights — send a prepared envelope
set (over the socket, as the reference client does, or ``PUT /v1/messages``), send an
attachment (declare, upload, announce; recipients download it on receipt), fetch a contact's
bundles, top up its one-time prekeys, poll its queue, reconnect. A reader greenlet
acknowledges every pushed envelope in batches.

WebSocket traffic is reported to locust's statistics with ``events.request.fire``:
``WS connect``, ``WS send`` (send→response), ``WS ack`` (ack→acked), and the headline
metric ``WS envelope delivered``: the time from the sender starting its send to the
recipient device receiving the envelope (the send time travels in the message id,
:mod:`loadtests.stamps`, so sender and recipient may sit in different locust workers).
Envelopes pushed from the queue because the device was offline when they were sent are
``WS backlog delivered`` (their wait includes the offline time, so they are kept out of the
headline).

The same file runs as one local process or as a locust master and its workers
(:mod:`loadtests.distribution`: device slots from the master, samples merged there). Every
generator process records its own CPU use and event-loop lag once a second (the generator
guard, :class:`loadtests.samples.GeneratorGuard`). The master (or the local process) marks
the moment every device was online and the end of the load in ``steps.json``: the report's
steady-state window.

Inputs come from the environment (set by :mod:`loadtests.runner`): ``SEMAFORE_LOAD_CORPUS``
(corpus.json), ``SEMAFORE_LOAD_PROFILE`` (profile JSON), ``SEMAFORE_LOAD_SAMPLES`` (where the
master or local process writes samples.csv), ``SEMAFORE_LOAD_STEPS`` (steps.json) and
optionally ``SEMAFORE_LOAD_MAX_REQUESTS`` (per generator process).
"""

# locust's event hooks and gevent carry no type information:
# mypy: disable-error-code="untyped-decorator,no-untyped-call,import-untyped"
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import gevent
import psutil
import websocket
from gevent.lock import Semaphore
from gevent.util import format_run_info
from geventhttpclient import URL, HTTPClient
from locust import FastHttpUser, User, constant, events, task
from locust.env import Environment

from loadtests.distribution import Node
from loadtests.profile import Profile, profile_from_dict
from loadtests.samples import (
    BACKLOG,
    DELIVERED,
    ENVELOPES,
    GENERATOR,
    GENERATOR_CPU,
    GENERATOR_LAG,
    Sample,
    write_samples,
)
from loadtests.stamps import read_stamp, stamp


def _load() -> tuple[dict[str, Any], Profile]:
    corpus_path = os.environ.get("SEMAFORE_LOAD_CORPUS")
    profile_json = os.environ.get("SEMAFORE_LOAD_PROFILE")
    if not corpus_path or not profile_json:
        raise SystemExit("SEMAFORE_LOAD_CORPUS and SEMAFORE_LOAD_PROFILE must be set "
                         "(run through `semafore load run`)")
    corpus = json.loads(Path(corpus_path).read_text(encoding="utf-8"))
    return corpus, profile_from_dict(json.loads(profile_json))


CORPUS, PROFILE = _load()
CORPUS_DIR = Path(os.environ["SEMAFORE_LOAD_CORPUS"]).parent
WS_URL = CORPUS["url"].replace("http://", "ws://", 1).replace("https://", "wss://", 1)
WS_URL += "/v1/websocket"
BLOBS = [(CORPUS_DIR / b["file"]).read_bytes() for b in CORPUS["blobs"]]
MAX_REQUESTS = int(os.environ.get("SEMAFORE_LOAD_MAX_REQUESTS", "0") or 0)
SAMPLES_PATH = os.environ.get("SEMAFORE_LOAD_SAMPLES")
MARKS_PATH = os.environ.get("SEMAFORE_LOAD_STEPS")
SEARCHING = bool(os.environ.get("SEMAFORE_LOAD_SEARCH"))


class Recorder:
    """Every request event with its time and the online user count (samples.csv)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.environment: Environment | None = None
        self.node: Node | None = None
        self.requests = 0
        self.marks: list[tuple[float, int]] = []  # every device online (a plain run)
        self.end = 0.0

    def users(self) -> int:
        runner = self.environment.runner if self.environment else None
        return runner.user_count if runner is not None else 0

    def add(self, kind: str, name: str, ms: float, size: int, error: str) -> None:
        source = self.node.source if self.node else "local"
        self.samples.append(Sample(time.time(), kind, name, ms, size, error, self.users(), source))

    def envelopes(self, name: str, count: int) -> None:
        self.add(ENVELOPES, name, 0.0, count, "")


RECORDER = Recorder()


class Outage:
    """Reconnect storm: a shared generation counter bumped every ``outage_every`` seconds;
    every device notices within its ack interval, drops its socket, and all come back
    together after ``outage_length``."""

    generation = 0

    @classmethod
    def run(cls) -> None:
        every = PROFILE.reconnect.outage_every
        while every > 0:
            gevent.sleep(every)
            cls.generation += 1


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    RECORDER.environment = environment
    RECORDER.node = Node(environment, RECORDER.samples, len(CORPUS["devices"]))
    gevent.signal_handler(signal.SIGUSR1, _dump_greenlets)
    gevent.signal_handler(signal.SIGUSR2, lambda: _save(environment))


def _dump_greenlets() -> None:
    """Every greenlet's stack into locust's log: the runner's watchdog sends SIGUSR1 before
    SIGTERM, so a generator that would not stop leaves where it was stuck."""
    logging.getLogger("loadtests").warning("greenlets on SIGUSR1:\n%s",
                                           "\n".join(format_run_info()))


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    error = "" if exception is None else _error_kind(exception)
    RECORDER.add(request_type, name, float(response_time or 0.0), int(response_length or 0), error)
    RECORDER.requests += 1
    env = RECORDER.environment
    if MAX_REQUESTS and RECORDER.requests == MAX_REQUESTS and env and env.runner:
        gevent.spawn(env.runner.quit)


def _watch_generator() -> None:
    """This generator process's own CPU use (percent of one core, psutil) and how late its
    event loop woke from a one-second sleep, once a second: a saturated generator, not the
    relay, would then limit the rate (GeneratorGuard)."""
    me = psutil.Process()
    me.cpu_percent()
    while True:
        started = time.perf_counter()
        gevent.sleep(1.0)
        lag = max(0.0, (time.perf_counter() - started - 1.0) * 1000)
        RECORDER.add(GENERATOR, GENERATOR_CPU, me.cpu_percent(), 0, "")
        RECORDER.add(GENERATOR, GENERATOR_LAG, lag, 0, "")


WATCHING: list[Any] = []


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if not WATCHING:  # a worker sees test_start again after a stop; one watcher suffices
        WATCHING.append(gevent.spawn(_watch_generator))
        if RECORDER.node is not None and RECORDER.node.role == "worker":
            WATCHING.append(gevent.spawn(RECORDER.node.stream))
    if PROFILE.reconnect.outage_every > 0 and RECORDER.node and RECORDER.node.role != "master":
        gevent.spawn(Outage.run)


@events.spawning_complete.add_listener
def _on_spawned(user_count: int, **_: Any) -> None:
    if RECORDER.node is not None and RECORDER.node.role != "worker" and not RECORDER.marks:
        RECORDER.marks.append((time.time(), user_count))


@events.test_stopping.add_listener
def _on_stopping(environment: Environment, **_: Any) -> None:
    if RECORDER.node is None or RECORDER.node.role == "worker":
        return
    RECORDER.end = RECORDER.end or time.time()
    RECORDER.node.collect()


SAVERS: list[Any] = []
"""Writers of the run's files besides samples.csv (the search's step marks): called when
locust quits and on SIGUSR2 (the runner's watchdog), since a generator hung in locust's own
stop never reaches its quitting event, and SIGTERM before locust's handler is installed
(a shape run) ends the process without writing anything."""


def _save(environment: Environment) -> None:
    _on_quitting(environment)
    for saver in SAVERS:
        saver(environment)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    if RECORDER.node is None or RECORDER.node.role == "worker":
        return
    if SAMPLES_PATH:
        RECORDER.samples.sort(key=lambda s: s.t)
        write_samples(Path(SAMPLES_PATH), RECORDER.samples)
    if MARKS_PATH and not SEARCHING:
        Path(MARKS_PATH).write_text(
            json.dumps({"marks": RECORDER.marks, "end": RECORDER.end or time.time()}),
            encoding="utf-8",
        )


def _error_kind(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


class RelayError(Exception):
    """The relay answered with an error status; str() is ``"<status> <error code>"``."""


def _fire(kind: str, name: str, started: float, size: int = 0, error: str | None = None) -> None:
    events.request.fire(
        request_type=kind,
        name=name,
        response_time=(time.perf_counter() - started) * 1000,
        response_length=size,
        exception=RelayError(error) if error else None,
        context={},
    )


def _fire_ms(kind: str, name: str, ms: float, size: int = 0, error: str | None = None) -> None:
    events.request.fire(
        request_type=kind,
        name=name,
        response_time=ms,
        response_length=size,
        exception=RelayError(error) if error else None,
        context={},
    )


def _code(response: Any) -> str:
    try:
        body = json.loads(response.text or "{}")
    except ValueError:
        body = {}
    code = body.get("error", "") if isinstance(body, dict) else ""
    return f"{response.status_code} {code or 'http_error'}".strip()


def _fresh(entry: dict[str, Any], key: str, sent_at: float, file_id: str | None = None
           ) -> tuple[str, str]:
    """The prepared body under a fresh message id stamped with its send time (and the
    attachment's file id): :mod:`loadtests.stamps`. The relay cannot tell; a real recipient
    would drop a replayed message's duplicate by its content id."""
    body: str = entry[key]
    fresh = stamp(sent_at, file_id)
    return fresh, body.replace(entry["message_id"], fresh, 1)


def _think() -> float:
    low, high = PROFILE.behaviour.think_time
    return random.uniform(low, high)


class DeviceUser(FastHttpUser):
    """One device of the corpus, online for the run."""

    host = CORPUS["url"]
    wait_time = staticmethod(_think)
    concurrency = 4
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        assert RECORDER.node is not None
        self.slot = RECORDER.node.claim()
        self.me = CORPUS["devices"][self.slot]
        self.user_id: str = self.me["user_id"]
        self.device_id: str = self.me["device_id"]
        self.token = ""
        self.refresh_token = ""
        self.ws: websocket.WebSocket | None = None
        self.connected_at = 0.0
        self.generation = Outage.generation
        self.ws_lock = Semaphore()
        self.pending_acks: list[str] = []
        self.ack_started: deque[tuple[float, int]] = deque()
        self.pending_sends: dict[str, tuple[float, str, str, int]] = {}
        self.outbox_pos = 0
        self.attach_pos = 0
        self.opk_batch = 0
        self.replaying = False
        self.stopping = False
        self.login()
        self.connect()
        self.housekeeper = gevent.spawn(self._housekeeping)

    def on_stop(self) -> None:
        self.stopping = True
        self.flush_acks()
        self.housekeeper.kill(block=False)
        self.disconnect()
        if RECORDER.node is not None:
            RECORDER.node.release(self.slot)

    # -- auth -----------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def login(self) -> None:
        body = {
            "org_id": CORPUS["org_id"],
            "user_id": self.user_id,
            "device_id": self.device_id,
            "otp": CORPUS["otp"],
        }
        with self.client.post(
            "/v1/auth/login", json=body, name="POST /v1/auth/login", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))
                return
            pair = resp.json()
            self.token, self.refresh_token = pair["access_token"], pair["refresh_token"]

    def refresh(self) -> None:
        if not self.refresh_token:
            self.login()
            return
        with self.client.post(
            "/v1/auth/refresh",
            json={"refresh_token": self.refresh_token},
            name="POST /v1/auth/refresh",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))
                return
            pair = resp.json()
            self.token, self.refresh_token = pair["access_token"], pair["refresh_token"]

    # -- the socket -----------------------------------------------------------------------

    def connect(self) -> None:
        if not self.token:
            return
        started = time.perf_counter()
        try:
            batch = PROFILE.behaviour.push_batch
            ws = websocket.create_connection(
                WS_URL + (f"?batch={batch}" if batch else ""),
                header=[f"Authorization: Bearer {self.token}"],
                timeout=30,
                enable_multithread=True,
            )
        except Exception as exc:  # refused, reset, handshake status: all count as failures
            _fire("WS", "connect", started, error=_error_kind(exc))
            return
        _fire("WS", "connect", started)
        self.ws = ws
        self.connected_at = time.time()
        gevent.spawn(self._reader, ws)

    def disconnect(self) -> None:
        ws, self.ws = self.ws, None
        # Sends still awaiting their response when we drop the socket ourselves: the relay
        # may or may not have queued them. Counted (not as errors: the outage is ours).
        for _ in range(len(self.pending_sends)):
            _fire_ms("WS", "send abandoned at disconnect", 0.0)
        self.pending_sends.clear()
        if ws is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to report
                ws.close(timeout=1)

    def _send_frame(self, frame: str) -> bool:
        ws = self.ws
        if ws is None:
            return False
        try:
            with self.ws_lock:
                ws.send(frame)
            return True
        except Exception as exc:
            _fire_ms("WS", "send frame", 0.0, error=_error_kind(exc))
            return False

    def _reader(self, ws: websocket.WebSocket) -> None:
        while True:
            try:
                text = ws.recv()
            except Exception as exc:
                if self.ws is ws and not self.stopping:
                    _fire_ms("WS", "connection", 0.0, error=f"dropped: {_error_kind(exc)}")
                    self.ws = None
                return
            if not text:
                if self.ws is ws and not self.stopping:
                    _fire_ms("WS", "connection", 0.0, error="closed by relay")
                    self.ws = None
                return
            try:
                frame = json.loads(text)
            except ValueError:
                _fire_ms("WS", "frame", 0.0, error="not JSON")
                continue
            if not isinstance(frame, dict):
                _fire_ms("WS", "frame", 0.0, error="not a JSON object")
            elif frame.get("type") == "batch":  # several replies in one frame (?batch=N)
                for sub in frame.get("frames") or ():
                    if isinstance(sub, dict):
                        self._on_frame(sub, len(text))
            else:
                self._on_frame(frame, len(text))

    def _on_frame(self, frame: dict[str, Any], size: int) -> None:
        kind = frame.get("type")
        if kind == "envelope":
            self._on_envelope(frame, size)
        elif kind == "envelopes":  # a batched push: the frame's bytes shared by its envelopes
            envelopes = frame.get("envelopes") or []
            for envelope in envelopes:
                self._on_envelope(envelope, size // max(1, len(envelopes)))
        elif kind == "acked":
            if self.ack_started:
                started, _count = self.ack_started.popleft()
                _fire("WS", "ack", started)
        elif kind == "response":
            self._on_response(frame)
        elif kind == "error":
            _fire_ms("WS", "frame", 0.0, error=f"error {frame.get('error')}")

    def _on_envelope(self, frame: dict[str, Any], size: int) -> None:
        now = time.time()
        message_id = frame.get("message_id", "")
        stamped = read_stamp(message_id)
        sent = stamped.sent_at if stamped else None
        if sent is not None and sent >= self.connected_at:
            _fire_ms("WS", DELIVERED, max(0.0, (now - sent) * 1000), size)
        else:
            waited = (now - sent) * 1000 if sent is not None else 0.0
            _fire_ms("WS", BACKLOG, max(0.0, waited), size)
        self.pending_acks.append(frame["delivery_id"])
        file_id = stamped.file_id if stamped else None
        if file_id and PROFILE.attachments.download:
            gevent.spawn(self.download, file_id)
        if len(self.pending_acks) >= PROFILE.behaviour.ack_batch:
            self.flush_acks()

    def _on_response(self, frame: dict[str, Any]) -> None:
        pending = self.pending_sends.pop(str(frame.get("request_id")), None)
        if pending is None:
            return
        started, name, _message_id, envelopes = pending
        status = frame.get("status")
        if status == 200:
            _fire("WS", name, started)
            RECORDER.envelopes(name, envelopes)
        else:
            body = frame.get("body") or {}
            _fire("WS", name, started, error=f"{status} {body.get('error', 'error')}")

    def flush_acks(self) -> None:
        if not self.pending_acks or self.ws is None:
            return
        ids, self.pending_acks = self.pending_acks[:500], self.pending_acks[500:]
        frame = json.dumps({"type": "ack", "delivery_ids": ids}, separators=(",", ":"))
        self.ack_started.append((time.perf_counter(), len(ids)))
        if not self._send_frame(frame):
            self.ack_started.pop()
            self.pending_acks[:0] = ids

    def _housekeeping(self) -> None:
        while not self.stopping:
            gevent.sleep(PROFILE.behaviour.ack_interval)
            self.flush_acks()
            if Outage.generation != self.generation:
                self.generation = Outage.generation
                self._outage()

    def _outage(self) -> None:
        """Everyone loses the relay at once; everyone comes back at once."""
        self.disconnect()
        self.pending_acks.clear()
        self.ack_started.clear()
        gevent.sleep(PROFILE.reconnect.outage_length)
        if PROFILE.reconnect.refresh_tokens:
            self.refresh()
        self.connect()

    # -- actions --------------------------------------------------------------------------

    def _next(self, key: str, pos_attr: str) -> tuple[dict[str, Any], bool] | None:
        entries = self.me[key]
        if not entries:
            return None
        pos = getattr(self, pos_attr)
        setattr(self, pos_attr, pos + 1)
        return entries[pos % len(entries)], pos >= len(entries)

    def _send_body(self, to: str, message_id: str, body: str, envelopes: int, name: str) -> None:
        if PROFILE.behaviour.send_via == "websocket" and self.ws is not None:
            request_id = uuid.uuid4().hex
            frame = (
                f'{{"type":"send","request_id":"{request_id}","user_id":"{to}",'
                f'"message":{body}}}'
            )
            self.pending_sends[request_id] = (time.perf_counter(), name, message_id, envelopes)
            if not self._send_frame(frame):
                self.pending_sends.pop(request_id, None)
            return
        label = "PUT /v1/messages/{user_id}"
        with self.client.put(
            f"/v1/messages/{to}",
            data=body,
            headers={**self._auth(), "Content-Type": "application/json"},
            name=label,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))
            else:
                RECORDER.envelopes(label, envelopes)

    def _send_entry(self, entry: dict[str, Any], file_id: str | None = None) -> str:
        message_id, body = _fresh(entry, "body", time.time(), file_id)
        self._send_body(entry["to"], message_id, body, entry["envelopes"], "send")
        if entry.get("sync"):
            sync = entry["sync"].replace(entry["message_id"], message_id, 1)
            self._send_body(self.user_id, message_id, sync, entry["sync_envelopes"], "send sync")
        return message_id

    def send(self) -> None:
        picked = self._next("outbox", "outbox_pos")
        if picked is not None:
            self._send_entry(picked[0])

    def attachment(self) -> None:
        picked = self._next("attachments", "attach_pos")
        if picked is None:
            return
        entry, _replay = picked
        blob_meta = CORPUS["blobs"][entry["blob"]]
        declare = {
            "size": blob_meta["size"],
            "sha256": blob_meta["sha256"],
            "recipients": [entry["to"]],
        }
        with self.client.post(
            "/v1/attachments", json=declare, headers=self._auth(),
            name="POST /v1/attachments", catch_response=True,
        ) as resp:
            if resp.status_code != 201:
                resp.failure(_code(resp))
                return
            file_id = resp.json()["file_id"]
        with self.client.put(
            f"/v1/attachments/{file_id}",
            data=BLOBS[entry["blob"]],
            headers={**self._auth(), "Content-Type": "application/octet-stream"},
            name="PUT /v1/attachments/{file_id}",
            catch_response=True,
        ) as resp:
            if resp.status_code != 204:
                resp.failure(_code(resp))
                return
        self._send_entry(entry, file_id)

    def download(self, file_id: str) -> None:
        with self.client.get(
            f"/v1/attachments/{file_id}", headers=self._auth(),
            name="GET /v1/attachments/{file_id}", catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))

    def fetch_bundle(self) -> None:
        if not self.me["contacts"]:
            return
        contact = random.choice(self.me["contacts"])
        with self.client.get(
            f"/v1/keys/{contact}", headers=self._auth(), name="GET /v1/keys/{user_id}",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))
                return
            devices = resp.json().get("devices", [])
        for device in devices:
            name = "bundle with one-time prekey" if device.get("opk") else (
                "bundle without one-time prekey"
            )
            _fire_ms("KEYS", name, 0.0)

    def replenish(self) -> None:
        with self.client.get(
            "/v1/keys", headers=self._auth(), name="GET /v1/keys", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))
                return
            count = int(resp.json()["opk_count"])
        batches = self.me["opk_batches"]
        if count >= PROFILE.prekeys.low_water or self.opk_batch >= len(batches):
            return
        batch, self.opk_batch = batches[self.opk_batch], self.opk_batch + 1
        with self.client.post(
            "/v1/keys/opks", json={"opks": batch}, headers=self._auth(),
            name="POST /v1/keys/opks", catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))

    def poll(self) -> None:
        with self.client.get(
            "/v1/messages?limit=100", headers=self._auth(), name="GET /v1/messages",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_code(resp))

    def reconnect(self) -> None:
        self.disconnect()
        self.refresh()
        self.connect()

    def idle(self) -> None:
        """Online and listening only (a broadcast recipient, a quiet member)."""


def _weigh(cls: type[DeviceUser], weights: dict[str, int]) -> None:
    """The profile's task weights, as locust's weighted task list."""
    cls.tasks = [getattr(cls, name) for name, weight in weights.items() for _ in range(weight)]


_weigh(DeviceUser, PROFILE.behaviour.tasks)


class BroadcasterUser(User):
    """The organisation admin sending broadcasts (POST /v1/broadcasts) to every member."""

    fixed_count = 1 if PROFILE.broadcast.enabled and CORPUS.get("admin") else 0
    weight = 1
    wait_time = constant(PROFILE.broadcast.interval)
    host = CORPUS["url"]
    abstract = not (PROFILE.broadcast.enabled and CORPUS.get("admin"))

    def on_start(self) -> None:
        self.http = HTTPClient.from_url(
            URL(CORPUS["url"]), concurrency=1, network_timeout=120.0, connection_timeout=10.0
        )
        self.admin = CORPUS["admin"]
        self.refresh_token = self.admin["refresh_token"]
        self.token = ""
        self.pos = 0
        self._call("POST", "/v1/auth/refresh", "POST /v1/auth/refresh",
                   json.dumps({"refresh_token": self.refresh_token}), auth=False)
        # The first broadcast waits one interval, so recipient devices spawned with it are
        # online and measure push latency rather than a backlog.
        gevent.sleep(PROFILE.broadcast.interval)

    def _call(self, method: str, path: str, name: str, body: str, auth: bool = True) -> Any:
        # A fresh connection per call: broadcasts are seconds apart, longer than the relay's
        # keep-alive, and a reused connection the relay already closed failed the request.
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        started = time.perf_counter()
        try:
            resp = self.http.request(method, path, body=body, headers=headers)
            text = resp.read()
        except Exception as exc:
            _fire("HTTP", name, started, error=_error_kind(exc))
            return None
        status = resp.status_code
        data = json.loads(text) if text else {}
        if status >= 400:
            _fire(method, name, started, len(text), error=f"{status} {data.get('error', '')}")
            return None
        _fire(method, name, started, len(text))
        if "refresh_token" in data:
            self.token, self.refresh_token = data["access_token"], data["refresh_token"]
        return data

    @task
    def broadcast(self) -> None:
        items = self.admin["broadcasts"]
        entry = items[self.pos % len(items)]
        self.pos += 1
        _message_id, body = _fresh(entry, "body", time.time())
        out = self._call("POST", "/v1/broadcasts", "POST /v1/broadcasts", body)
        if out is not None:
            RECORDER.envelopes("POST /v1/broadcasts", int(out.get("deliveries", 0)))


if not BroadcasterUser.fixed_count:
    del BroadcasterUser
