"""``copilot bench ingest``: the local ingest API under load, end to end over real HTTP.

Starts the real engine and ingest server in this process on a free 127.0.0.1 port (the pipeline
as ``copilot serve`` runs it, without the feedback store, with a temporary token that is never
saved), then runs N concurrent conversations replaying the demo conversations' final turns (each
replay with a new conversation id) at a fixed total rate: one thread and one keep-alive
``http.client`` connection per conversation, in a child process as real connectors are (the
server answers HTTP/1.0 and closes after each reply, so the client reconnects per request), with
requests scheduled open-loop so that a slow server shows as a lower achieved rate. A client's 2nd
turn, and every 25th after it, is posted twice on purpose: the repeat must be answered
``duplicate``; a request whose connection fails is resent (turn ids make that harmless) and
counted.

It then checks that every turn was applied exactly once (the engine holds each turn id once, and
the API's snapshot of every conversation counts all its turns) and that every turn is reflected
in a snapshot, and reports the achieved rate and the latency from sending the POST to the first
snapshot that includes the turn (taken from the engine's snapshot listener, in this process).

All bench clients share 127.0.0.1 and so one rate-limit bucket; the server's per-client limit is
raised to twice the offered load so that the bench measures the pipeline, not the limiter (429s,
if any, are counted and retried).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from copilot.commands import _common

REPEAT_EVERY = 25  # a client posts its 2nd turn, and every 25th after it, twice
_MAX_RETRIES = 5
_BACKENDS = ("onnx", "torch", "hashing")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load the local ingest API: concurrent conversations over real HTTP, latency to"
        " snapshot",
        description=__doc__,
    )
    parser.add_argument(
        "--conversations",
        type=int,
        default=50,
        metavar="N",
        help="concurrent conversations, one client thread each (default 50)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=200.0,
        metavar="TURNS_PER_S",
        help="turns posted per second, all conversations together (default 200)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to post (default 30)")
    parser.add_argument(
        "--backend",
        choices=_BACKENDS,
        default="onnx",
        help="embedding backend: onnx (default, as the app runs), torch, or hashing (a fast"
        " stand-in that tests the plumbing only)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the client threads in this process (default: a child process, as real"
        " connectors are separate programs)",
    )
    _common.add_content_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


# --- the load ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Post:
    conversation_id: str
    turn_id: str
    repeat: bool
    sent: float
    acked: float = 0.0
    status: str = ""  # applied | duplicate | partial, or "error <code>"
    generation: int = 0
    retried: bool = False  # sent again after a connection failure or a 429


@dataclass(slots=True)
class _Client:
    """One conversation's client thread: its connection and what it sent."""

    index: int
    posts: list[_Post] = field(default_factory=list)
    conversations: dict[str, list[str]] = field(default_factory=dict)  # id -> turn ids sent
    errors: list[str] = field(default_factory=list)
    connection_failures: list[str] = field(default_factory=list)  # retried
    throttled: int = 0
    connections: int = 0


class _Load:
    def __init__(
        self,
        port: int,
        token: str,
        demos: Sequence[Sequence[tuple[str, str, str]]],
        *,
        clients: int,
        rate: float,
        seconds: float,
        run_id: str,
    ) -> None:
        self.port = port
        self.token = token
        self.demos = demos
        self.clients = [_Client(i) for i in range(clients)]
        self.interval = clients / rate  # seconds between two turns of one client
        self.seconds = seconds
        self.run_id = run_id
        self.started = 0.0
        self.finished = 0.0

    def results(self) -> dict[str, Any]:
        """What the clients saw, JSON-ready (sent from the client process to the bench)."""
        return {
            "started": self.started,
            "finished": self.finished,
            "clients": [
                {
                    "posts": [
                        [
                            p.conversation_id,
                            p.turn_id,
                            p.repeat,
                            p.sent,
                            p.acked,
                            p.status,
                            p.generation,
                            p.retried,
                        ]
                        for p in c.posts
                    ],
                    "conversations": c.conversations,
                    "errors": c.errors,
                    "connection_failures": c.connection_failures,
                    "throttled": c.throttled,
                    "connections": c.connections,
                }
                for c in self.clients
            ],
        }

    def load_results(self, results: dict[str, Any]) -> None:
        """Take over the results a client process reported."""
        self.started = float(results["started"])
        self.finished = float(results["finished"])
        for client, data in zip(self.clients, results["clients"], strict=True):
            client.posts = [_Post(*row) for row in data["posts"]]
            client.conversations = data["conversations"]
            client.errors = data["errors"]
            client.connection_failures = data["connection_failures"]
            client.throttled = data["throttled"]
            client.connections = data["connections"]

    def run(self) -> None:
        self.started = time.perf_counter() + 0.2  # let every thread reach its first wait
        threads = [
            threading.Thread(target=self._client, args=(c,), name=f"bench-client-{c.index}")
            for c in self.clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.finished = time.perf_counter()

    def _client(self, client: _Client) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        # Staggered so that the clients together post at an even rate.
        offset = self.interval * client.index / len(self.clients)
        end = self.started + self.seconds
        k = 0
        cycle = 0
        try:
            while True:
                demo = self.demos[(client.index + cycle) % len(self.demos)]
                conversation_id = f"bench-{self.run_id}-{client.index}-{cycle}"
                cycle += 1
                sent_ids = client.conversations.setdefault(conversation_id, [])
                for turn_id, role, text in demo:
                    due = self.started + offset + k * self.interval
                    if due >= end:
                        return
                    k += 1
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    event = {
                        "conversation_id": conversation_id,
                        "turn_id": turn_id,
                        "role": role,
                        "text": text,
                    }
                    self._post(connection, client, event, repeat=False)
                    sent_ids.append(turn_id)
                    if k % REPEAT_EVERY == 2:  # the 2nd turn, then every 25th
                        self._post(connection, client, event, repeat=True)
        finally:
            connection.close()

    def _post(
        self,
        connection: http.client.HTTPConnection,
        client: _Client,
        event: dict[str, Any],
        *,
        repeat: bool,
    ) -> None:
        body = json.dumps(event).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
        }
        # Latency counts from the first attempt: a retry is part of what the client waits for.
        post = _Post(event["conversation_id"], event["turn_id"], repeat, time.perf_counter())
        for attempt in range(_MAX_RETRIES + 1):
            try:
                if connection.sock is None:
                    client.connections += 1
                connection.request("POST", "/v1/turns", body, headers)
                response = connection.getresponse()
                payload = response.read()
                post.acked = time.perf_counter()
            except (OSError, http.client.HTTPException) as exc:
                # Turn ids make a repeat harmless, so a connector resends what may not have
                # arrived; the failure is still counted.
                connection.close()
                client.connection_failures.append(f"{type(exc).__name__}: {exc}")
                post.retried = True
                time.sleep(0.05 * (attempt + 1))
                continue
            if response.status == 429:
                client.throttled += 1
                post.retried = True
                time.sleep(min(2.0, float(response.getheader("Retry-After") or 1)))
                continue
            if response.status != 200:
                client.errors.append(f"HTTP {response.status}: {payload[:200]!r}")
                post.status = f"error {response.status}"
                break
            result = json.loads(payload)["results"][0]
            post.status = result["status"]
            post.generation = int(result["generation"])
            break
        else:
            post.status = "error gave up"
            client.errors.append(f"no answer after {_MAX_RETRIES + 1} attempts")
        client.posts.append(post)


def _run_in_client_process(load: _Load, demos: Sequence[Sequence[tuple[str, str, str]]]) -> None:
    """Run `load` in a child Python process; its results are copied back into `load`.

    The configuration (token included) goes over stdin, never the command line. Both processes
    read the same system-wide monotonic clock (``time.perf_counter``), so send times from the
    child and snapshot times from this process can be subtracted.
    """
    import subprocess

    config = {
        "port": load.port,
        "token": load.token,
        "demos": [list(map(list, demo)) for demo in demos],
        "clients": len(load.clients),
        "rate": len(load.clients) / load.interval,
        "seconds": load.seconds,
        "run_id": load.run_id,
    }
    code = "from copilot.commands.bench_ingest import client_process_main; client_process_main()"
    child = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        timeout=load.seconds + 120,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"the client process failed: {child.stderr.strip()[-2000:]}")
    load.load_results(json.loads(child.stdout))


def client_process_main() -> None:
    """The client process: read the configuration from stdin, post, print the results."""
    config = json.load(sys.stdin)
    load = _Load(
        config["port"],
        config["token"],
        [[tuple(turn) for turn in demo] for demo in config["demos"]],
        clients=config["clients"],
        rate=config["rate"],
        seconds=config["seconds"],
        run_id=config["run_id"],
    )
    load.run()
    json.dump(load.results(), sys.stdout)


# --- the report --------------------------------------------------------------------------------


def _demo_turns(content: Path) -> list[list[tuple[str, str, str]]]:
    """Each demo conversation's final turns as (turn id, role, text)."""
    from copilot.services.transcripts import BadLine, read_events

    demos = []
    for path in sorted((content / "demos").glob("*.jsonl")):
        turns: dict[str, tuple[str, str, str]] = {}
        for event in read_events(path):
            if isinstance(event, BadLine) or not event.is_final:
                continue
            turns[event.turn_id] = (event.turn_id, event.role.value, event.text)
        if turns:
            demos.append(list(turns.values()))
    return demos


def _ms(values: Sequence[float]) -> dict[str, float]:
    from copilot.core.metrics import percentile

    return {
        "p50": round(percentile(values, 50) * 1000, 2),
        "p95": round(percentile(values, 95) * 1000, 2),
        "max": round(max(values, default=0.0) * 1000, 2),
    }


def _first_snapshot_at(snapshots: dict[str, list[tuple[int, float]]], post: _Post) -> float | None:
    """When the first snapshot of the turn's conversation at or after its generation was ready."""
    for generation, ready in snapshots.get(post.conversation_id, ()):
        if generation >= post.generation:
            return ready
    return None


def _get_snapshot(port: int, token: str, conversation_id: str) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        path = f"/v1/conversations/{quote(conversation_id, safe='')}/snapshot"
        for _ in range(_MAX_RETRIES + 1):
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 429:
                return response.status, json.loads(payload)
            time.sleep(min(2.0, float(response.getheader("Retry-After") or 1)))
        return 429, None
    finally:
        connection.close()


def measure(
    assistant: Any,
    demos: Sequence[Sequence[tuple[str, str, str]]],
    *,
    conversations: int,
    rate: float,
    seconds: float,
    separate_process: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the load against a real engine and ingest server around `assistant`; the report.

    Args:
        assistant: the per-turn pipeline (used by the engine's one worker thread only).
        demos: conversations as lists of (turn id, role, text), replayed in turn.
        conversations: concurrent client threads.
        rate: turns per second, all clients together.
        seconds: how long to post.
        separate_process: run the client threads in a child Python process, as real
            connectors are, so that they do not compete with the server for this process's
            GIL; False runs them on threads here.
        progress: called with a line of progress now and then.
    """
    from copilot.services.engine import MAX_CONVERSATIONS, HeadlessEngine
    from copilot.services.ingest_server import IngestServer

    say = progress or (lambda line: None)
    snapshots: dict[str, list[tuple[int, float]]] = {}

    def on_snapshot(snapshot: Any) -> None:  # the engine's worker thread only
        ready = time.perf_counter()
        snapshots.setdefault(snapshot.conversation_id, []).append((snapshot.generation, ready))

    engine = HeadlessEngine(assistant, max_conversations=MAX_CONVERSATIONS)
    engine.add_listener(on_snapshot)
    token = secrets.token_urlsafe(32)  # this run only: never saved anywhere
    limit = max(200.0, 2 * rate)
    server = IngestServer(engine, token, port=0, rate=limit, burst=int(limit * 2))
    load_before = os.getloadavg()
    times_before = os.times()  # portable; children's times are 0 on Windows
    engine.start()
    try:
        server.start()
        try:
            load = _Load(
                server.port,
                token,
                demos,
                clients=conversations,
                rate=rate,
                seconds=seconds,
                run_id=secrets.token_hex(3),
            )
            say(f"posting for {seconds:g} s to {server.url} ...")
            if separate_process:
                _run_in_client_process(load, demos)
            else:
                load.run()
            drained = engine.wait_idle(60.0)
            drain_s = time.perf_counter() - load.finished
            say("checking every conversation ...")
            report = _report(load, engine, snapshots, server.port, token)
        finally:
            server.stop()
    finally:
        engine.stop()
    times_after = os.times()
    cpu = (times_after.user - times_before.user) + (times_after.system - times_before.system)
    client_cpu = (times_after.children_user - times_before.children_user) + (
        times_after.children_system - times_before.children_system
    )
    report["drained"] = drained
    report["drain_s"] = round(drain_s, 3)
    report["cpu_s"] = round(cpu, 2)  # this process: server, engine and checks
    report["client_cpu_s"] = round(client_cpu, 2)  # the client process, when there is one
    report["load_average"] = {
        "before": round(load_before[0], 2),
        "after": round(os.getloadavg()[0], 2),
    }
    report["cpus"] = os.cpu_count()
    report["rate_limit_per_client"] = limit
    return report


def _report(
    load: _Load,
    engine: Any,
    snapshots: dict[str, list[tuple[int, float]]],
    port: int,
    token: str,
) -> dict[str, Any]:
    posts = [p for c in load.clients for p in c.posts]
    originals = [p for p in posts if not p.repeat]
    repeats = [p for p in posts if p.repeat]
    # A resent turn answered "duplicate" was applied by an attempt whose answer was lost.
    applied = [
        p for p in originals if p.status == "applied" or (p.retried and p.status == "duplicate")
    ]
    errors = [e for c in load.clients for e in c.errors]
    failures = [e for c in load.clients for e in c.connection_failures]
    applied_ids = {id(p) for p in applied}
    not_applied = [p for p in originals if id(p) not in applied_ids]
    repeats_wrong = [p for p in repeats if p.status != "duplicate"]

    # Exactly once: the engine holds each turn once, in the order posted.
    sent: dict[str, list[str]] = {}
    for client in load.clients:
        sent.update(client.conversations)
    mismatched: list[str] = []
    live = 0
    for conversation_id, turn_ids in sent.items():
        if not turn_ids:
            continue
        conversation = engine.conversation(conversation_id)
        if conversation is None:
            continue  # evicted (more than MAX_CONVERSATIONS): checked by the listener only
        live += 1
        held = [t.turn_id for t in conversation.turns]
        if held != turn_ids:
            mismatched.append(conversation_id)
    # The API's own view: every live conversation's snapshot counts all its turns.
    http_checked = 0
    http_wrong: list[str] = []
    for conversation_id, turn_ids in sent.items():
        if not turn_ids or engine.conversation(conversation_id) is None:
            continue
        status, body = _get_snapshot(port, token, conversation_id)
        http_checked += 1
        if (
            status != 200
            or body.get("turn_count") != len(turn_ids)
            or body.get("last_turn_id") != turn_ids[-1]
        ):
            http_wrong.append(conversation_id)

    latencies: list[float] = []
    unreflected = 0
    for post in applied:
        ready = _first_snapshot_at(snapshots, post)
        if ready is None:
            unreflected += 1
        else:
            latencies.append(max(0.0, ready - post.sent))
    acks = [p.acked - p.sent for p in posts if p.acked]
    sending_s = max(1e-9, load.finished - load.started)
    ok = not (errors or not_applied or repeats_wrong or mismatched or http_wrong or unreflected)
    return {
        "ok": ok,
        "conversations_concurrent": len(load.clients),
        "conversations_total": sum(1 for ids in sent.values() if ids),
        "target_rate": round(len(load.clients) / load.interval, 1),
        "seconds": load.seconds,
        "sending_s": round(sending_s, 3),
        "turns_posted": len(originals),
        "repeats_posted": len(repeats),
        "achieved_rate": round(len(originals) / sending_s, 1),
        "requests_per_s": round(len(posts) / sending_s, 1),
        "applied_once": len(applied),
        "repeats_answered_duplicate": len(repeats) - len(repeats_wrong),
        "turns_not_applied": len(not_applied),
        "repeats_not_duplicate": len(repeats_wrong),
        "errors": len(errors),
        "error_samples": errors[:5],
        "throttled_429": sum(c.throttled for c in load.clients),
        "connection_failures_retried": len(failures),
        "connection_failure_samples": sorted(set(failures))[:3],
        "connections_opened": sum(c.connections for c in load.clients),
        "engine_conversations_checked": live,
        "engine_turns_mismatched": mismatched[:5],
        "http_snapshots_checked": http_checked,
        "http_snapshots_wrong": http_wrong[:5],
        "turns_reflected": len(latencies),
        "turns_unreflected": unreflected,
        "analyses": engine.analyses,
        "engine_error": engine.last_error,
        "ack_ms": _ms(acks),
        "post_to_snapshot_ms": _ms(latencies),
    }


# --- the command --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from copilot.cli import UserError
    from copilot.services.assistant import build_assistant
    from copilot.services.embedders import load_embedder

    if args.conversations < 1 or args.rate <= 0 or args.seconds <= 0:
        raise UserError("--conversations, --rate and --seconds must be positive")
    content = _common.content_dir(args)
    demos = _demo_turns(content)
    if not demos:
        raise UserError(f"no demo conversations in {content / 'demos'}")
    data = _common.data_dir(args)
    quiet = args.json

    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    say(f"loading the pipeline ({args.backend}) ...")
    embedder = load_embedder(args.backend, data)
    assistant, index, _ = build_assistant(content, data, embedder)
    try:
        report = measure(
            assistant,
            demos,
            conversations=args.conversations,
            rate=args.rate,
            seconds=args.seconds,
            separate_process=not args.in_process and not getattr(sys, "frozen", False),
            progress=say,
        )
    finally:
        index.close()
    report["backend"] = args.backend
    report["clients"] = "in-process" if args.in_process else "child process"
    if args.json:
        _common.print_json(report)
    else:
        print(_text(report))
    return 0 if report["ok"] else 1


def _text(r: dict[str, Any]) -> str:
    ack, snap = r["ack_ms"], r["post_to_snapshot_ms"]
    lines = [
        f"Ingest API: {r['conversations_concurrent']} concurrent conversations, target"
        f" {r['target_rate']:g} turns/s for {r['seconds']:g} s, backend {r['backend']},"
        f" clients in {r['clients']},"
        f" {r['cpus']} CPUs, load average {r['load_average']['before']} ->"
        f" {r['load_average']['after']}",
        f"  sent       {r['turns_posted']} turns + {r['repeats_posted']} deliberate repeats in"
        f" {r['sending_s']:.2f} s: {r['achieved_rate']:g} turns/s achieved"
        f" ({r['conversations_total']} conversations)",
        f"  accepted   {r['applied_once']} applied once; {r['repeats_answered_duplicate']}/"
        f"{r['repeats_posted']} repeats answered duplicate; errors {r['errors']};"
        f" 429s {r['throttled_429']}; connection failures retried"
        f" {r['connection_failures_retried']}",
        f"  reflected  {r['turns_reflected']}/{r['applied_once']} turns in a snapshot;"
        f" {r['http_snapshots_checked']} conversations checked over HTTP,"
        f" {len(r['http_snapshots_wrong'])} wrong;"
        f" engine turn lists mismatched: {len(r['engine_turns_mismatched'])}",
        f"  POST -> acknowledged    p50 {ack['p50']:.1f} ms  p95 {ack['p95']:.1f} ms"
        f"  max {ack['max']:.1f} ms",
        f"  POST -> snapshot ready  p50 {snap['p50']:.1f} ms  p95 {snap['p95']:.1f} ms"
        f"  max {snap['max']:.1f} ms",
        f"  analyses   {r['analyses']} for {r['applied_once']} turns (latest wins);"
        f" drained in {r['drain_s']:.2f} s; CPU: server {r['cpu_s']:.1f} s,"
        f" clients {r['client_cpu_s']:.1f} s",
    ]
    if r["connection_failure_samples"]:
        lines.append("  connection failures: " + "; ".join(r["connection_failure_samples"]))
    if r["error_samples"]:
        lines.append("  first errors: " + "; ".join(r["error_samples"]))
    if r["engine_error"]:
        lines.append(f"  engine error: {r['engine_error']}")
    lines.append("  OK" if r["ok"] else "  FAILED: see the counts above")
    return "\n".join(lines)
