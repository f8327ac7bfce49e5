"""Killing the co-pilot mid-write never loses an acknowledged action nor corrupts the database.

A child process records actions in a loop and prints each action id once `record()` has
returned (the moment the panel would acknowledge it). It is killed with SIGKILL at a random
moment, 100 times against the same database; after each kill every acknowledged id must be
stored, ``PRAGMA integrity_check`` must say ok, and the summary counts must match the actions
(the triggers commit with the insert or not at all). A second test kills children while they
create a new database (migrations included): the file must always open at the current schema.

Importing the store takes about half a second here, so the child is forked from a small
long-lived script (a "zygote") that has already imported it: each round costs a fork, not an
interpreter start, and the whole test stays near 10 s.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

ROUNDS = 100

ZYGOTE = r"""
import os
import sys

from copilot.core.feedback import FeedbackAction, FeedbackKind
from copilot.services.feedback_store import FeedbackStore

KINDS = (
    FeedbackKind.SUGGESTION_SHOWN,
    FeedbackKind.ACCEPT,
    FeedbackKind.EDIT,
    FeedbackKind.DISCARD,
    FeedbackKind.FLAG_SHOWN,
)


def action(round_, n):
    kind = KINDS[n % len(KINDS)]
    fields = {
        "kind": kind,
        "conversation_id": f"c{round_}-{n // 10}",
        "action_id": f"{round_}-{n}",
        "intent": "billing_double_charge",
        "agent_id": "agent1",
    }
    if kind is FeedbackKind.FLAG_SHOWN:
        fields["flag_kind"] = "frustration"
    else:
        item = f"billing.template_{n % 7}"
        fields.update(item_id=item, suggestion_id=item, suggestion_kind="template", rank=1)
        fields["shown_text"] = "Let me look into those two payments for you."
    if kind in (FeedbackKind.ACCEPT, FeedbackKind.EDIT):
        fields["sent_text"] = f"Let me look into those two payments for you ({n})."
    if kind is FeedbackKind.DISCARD:
        fields["reason"] = "wrong_topic"
    if kind is FeedbackKind.SUGGESTION_SHOWN:
        fields["latency_ms"] = 4.5
    return FeedbackAction(**fields)


def say(line):
    # One write() per line: a pipe write this small is atomic, so a kill cannot cut a line
    # in two (print() may write the text and the newline separately, e.g. PYTHONUNBUFFERED).
    os.write(1, (line + "\n").encode())


def child(path, round_):
    say(f"pid {os.getpid()}")
    store = FeedbackStore(path)
    n = 0
    while True:
        a = action(round_, n)
        store.record(a)
        say(f"ack {a.action_id}")  # printed and flushed only once record() has returned
        n += 1


for line in sys.stdin:
    line = line.strip()
    if not line or line == "quit":
        break
    round_, path = line.split(" ", 1)
    pid = os.fork()
    if pid == 0:
        try:
            child(path, int(round_))
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
    say("dead")
"""


def check(path: Path, acknowledged: set[str]) -> int:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "counts_total" not in tables:
            # Killed before the schema was complete: nothing can have been acknowledged yet.
            assert not acknowledged
            return 0
        stored = {row[0] for row in conn.execute("SELECT action_id FROM actions")}
        lost = acknowledged - stored
        assert not lost, f"acknowledged but lost: {sorted(lost)[:5]}"
        counted = conn.execute("SELECT COUNT(*) FROM actions WHERE counted = 1").fetchone()[0]
        summed = conn.execute("SELECT COALESCE(SUM(n), 0) FROM counts_total").fetchone()[0]
        assert counted == summed
        return len(stored)
    finally:
        conn.close()


class Zygote:
    """The long-lived script that forks a recording child per round."""

    def __init__(self, tmp_path: Path) -> None:
        script = tmp_path / "zygote.py"
        script.write_text(ZYGOTE, encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        # Never hang the test run: a stuck zygote is killed, and reading its output then fails.
        self.watchdog = threading.Timer(120, self.proc.kill)
        self.watchdog.daemon = True
        self.watchdog.start()

    def kill_round(self, round_: int, path: Path, delay: float) -> set[str]:
        """Start a child recording into `path`, SIGKILL it after `delay` s; the acked ids."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{round_} {path}\n")
        self.proc.stdin.flush()
        first = self.proc.stdout.readline().split()
        assert first[:1] == ["pid"], first
        time.sleep(delay)
        os.kill(int(first[1]), signal.SIGKILL)
        acked = set()
        while (line := self.proc.stdout.readline()) != "dead\n":
            assert re.fullmatch(r"ack \d+-\d+\n", line), repr(line)
            acked.add(line[4:-1])
        return acked

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.watchdog.cancel()


def test_sigkill_at_random_moments_loses_no_acknowledged_action(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    rng = random.Random(20250303)
    acknowledged: set[str] = set()
    started = time.monotonic()
    zygote = Zygote(tmp_path)
    stored = 0
    try:
        for round_ in range(ROUNDS):
            # Mostly mid-stream of commits; every tenth round early, while the store opens.
            delay = rng.choice((0.0, 0.002, 0.01)) if round_ % 10 == 0 else rng.uniform(0, 0.1)
            acknowledged |= zygote.kill_round(round_, path, delay)
            stored = check(path, acknowledged)
    finally:
        zygote.close()
    assert len(acknowledged) > ROUNDS  # the kills did land mid-stream
    assert stored >= len(acknowledged)
    assert time.monotonic() - started < 60


def test_sigkill_while_a_new_database_is_created_leaves_one_that_opens(tmp_path: Path) -> None:
    from copilot.services.feedback_store import SCHEMA_VERSION, FeedbackStore

    rng = random.Random(7)
    zygote = Zygote(tmp_path)
    try:
        for round_ in range(15):
            path = tmp_path / f"fresh-{round_}.sqlite3"
            acked = zygote.kill_round(round_, path, rng.uniform(0, 0.03))
            check(path, acked)
            with FeedbackStore(path) as store:
                assert store.schema_version == SCHEMA_VERSION
                # At most one action committed but killed before its id was printed.
                assert len(acked) <= store.counts()["actions"] <= len(acked) + 1
    finally:
        zygote.close()
