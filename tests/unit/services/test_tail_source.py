"""Following a JSONL transcript as it grows."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from copilot.core.conversation import Turn
from copilot.services.engine import HeadlessEngine
from copilot.services.tail_source import MAX_LINE_BYTES, JsonlTail
from copilot.services.transcripts import BadLine


def line(turn_id: str, text: str = "hello", **extra: Any) -> str:
    event = {"conversation_id": "c1", "turn_id": turn_id, "role": "customer", "text": text}
    return json.dumps(event | extra) + "\n"


class Collector:
    def __init__(self) -> None:
        self.turns: list[Turn] = []
        self.bad: list[BadLine] = []


def follow(path: Path, **options: Any) -> tuple[JsonlTail, Collector]:
    got = Collector()
    return JsonlTail(path, got.turns.append, got.bad.append, **options), got


def append(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with path.open("ab") as handle:
        handle.write(data)


def test_lines_are_read_as_they_are_appended(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    tail, got = follow(path)
    assert tail.poll() == 0  # no file yet
    append(path, line("t1") + line("t2"))
    assert tail.poll() == 2
    append(path, line("t3"))
    assert tail.poll() == 1
    assert tail.poll() == 0
    assert [t.turn_id for t in got.turns] == ["t1", "t2", "t3"]


def test_a_line_being_written_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    tail, got = follow(path)
    whole = line("t1", "my router is down")
    append(path, whole[:10])
    assert tail.poll() == 0 and got.turns == []
    append(path, whole[10:])
    assert tail.poll() == 1
    assert got.turns[0].text == "my router is down"


def test_a_malformed_line_is_reported_with_its_number_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    append(path, line("t1") + "{not json\n" + "\n" + line("t2", role="robot") + "[1]\n")
    append(path, line("t3"))
    tail, got = follow(path)
    tail.poll()
    assert [t.turn_id for t in got.turns] == ["t1", "t3"]
    assert [(b.line, b.reason.split(" (")[0]) for b in got.bad] == [
        (2, "not valid JSON"),
        (4, "role: must be one of customer, agent, system"),
        (5, "a turn event must be a JSON object"),
    ]
    assert str(got.bad[0]).startswith(f"{path}:2: ")


def test_an_overlong_line_is_skipped_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    tail, got = follow(path)
    append(path, b"x" * (MAX_LINE_BYTES + 10))
    tail.poll()
    append(path, b"yyy\n" + line("t2").encode())
    tail.poll()
    assert [b.line for b in got.bad] == [1]
    assert "longer than" in got.bad[0].reason
    assert [t.turn_id for t in got.turns] == ["t2"]


def test_from_the_end_skips_existing_lines_but_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    append(path, line("old1") + line("old2"))
    tail, got = follow(path, from_start=False)
    assert tail.poll() == 0
    append(path, "oops\n" + line("new"))
    tail.poll()
    assert [t.turn_id for t in got.turns] == ["new"]
    assert got.bad[0].line == 3


def test_a_truncated_or_replaced_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    append(path, line("t1") + line("t2"))
    tail, got = follow(path)
    tail.poll()
    path.write_text(line("r1"))  # truncated and rewritten
    tail.poll()
    replacement = tmp_path / "new.jsonl"
    replacement.write_text("bad\n" + line("r2"))
    replacement.replace(path)  # rotated: a new file under the same name
    tail.poll()
    assert [t.turn_id for t in got.turns] == ["t1", "t2", "r1", "r2"]
    assert [b.line for b in got.bad] == [1]


def test_the_thread_feeds_the_engine_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    analysed = threading.Event()

    class Counter:
        def analyse(self, conversation: Any, *, generation: int = 0, channel: Any = None) -> Any:
            analysed.set()
            raise RuntimeError("not needed here")

    with HeadlessEngine(Counter()) as engine:
        tail = JsonlTail(path, engine.submit, poll_interval=0.02)
        with tail:
            append(path, line("t1", "card 4111 1111 1111 1111") + line("t2"))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                conversation = engine.conversation("c1")
                if conversation is not None and len(conversation.turns) == 2:
                    break
                time.sleep(0.02)
        assert analysed.wait(5)
    conversation = engine.conversation("c1")
    assert conversation is not None and len(conversation.turns) == 2
    assert "4111 1111" not in conversation.turns[0].text  # redacted on arrival
    assert not [t for t in threading.enumerate() if t.name.startswith("copilot-tail")]
