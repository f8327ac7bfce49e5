"""``copilot vcon import`` and ``copilot vcon export``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from copilot.cli import main
from copilot.services.assistant import LoadReport
from copilot.services.vcon import load_vcon, parse_vcon

SAMPLE = "demos/vcon-web-chat-overdue-bill.vcon.json"


class _SharedIndex:
    """The session's index must stay open for other tests: closing it here does nothing."""

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _hashing_pipeline(monkeypatch: pytest.MonkeyPatch, hashing_backend: Any) -> None:
    """The commands run the session's hashing-embedder pipeline instead of loading the model."""

    def build(*args: Any, **kwargs: Any) -> tuple[Any, Any, LoadReport]:
        return hashing_backend.assistant, _SharedIndex(), LoadReport()

    monkeypatch.setattr("copilot.services.assistant.build_assistant", build)
    monkeypatch.setattr("copilot.commands._common.embedder", lambda args: None)


def test_import_json_prints_one_object_with_every_snapshot(
    sample_content: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vcon", "import", str(sample_content / SAMPLE), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    payload = json.loads(out)
    assert payload["import"]["turns"] == 12
    assert payload["import"]["skipped"] == [
        {"path": "dialog[6]", "reason": "a recording dialog; only text dialogs are imported"}
    ]
    assert len(payload["snapshots"]) == 12
    assert payload["snapshots"][-1]["turn_count"] == 12
    assert "4111 1111" not in out


def test_import_text_shows_roles_and_skipped_dialogs_then_the_final_snapshot(
    sample_content: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vcon", "import", str(sample_content / SAMPLE), "--final-only"]) == 0
    captured = capsys.readouterr()
    assert "parties[2] is the agent (role field)" in captured.err
    assert "skipped dialog[6]: a recording dialog" in captured.err
    assert "SUMMARY" in captured.out and captured.out.count("SUMMARY") == 1


def test_import_of_a_malformed_vcon_names_the_file_and_the_json_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "uuid": "u-1",
                "parties": [{"role": "customer"}],
                "dialog": [{"type": "text", "start": "last Tuesday", "parties": [0], "body": "hi"}],
            }
        )
    )
    assert main(["vcon", "import", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: dialog[0].start:" in err and "RFC 3339" in err
    assert main(["vcon", "import", str(tmp_path / "missing.json")]) == 2
    assert "no such vCon" in capsys.readouterr().err


def test_export_of_a_transcript_writes_a_redacted_vcon_with_analysis(
    sample_content: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo-07.vcon.json"
    source = sample_content / "demos" / "07-card-payline-transfer.jsonl"
    assert main(["vcon", "export", str(source), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["conversation_id"] == "demo-07"
    assert report["dialogs"] == 18  # the final turns only; partial transcripts are not dialog
    assert report["analysis"] == ["summary", "flags", "sentiment", "intent", "policy"]

    text = out.read_text(encoding="utf-8")
    assert "5412 7556" not in text  # the card number the customer began to read out
    exported = load_vcon(out)
    imported = parse_vcon(exported)
    assert imported.uuid == report["uuid"]
    assert [e.turn_id for e in imported.events][:3] == ["t01", "t02", "t03"]
    assert {a["vendor"] for a in exported["analysis"]} == {"agent-copilot"}


def test_export_of_a_vcon_records_the_source_it_was_redacted_from(
    sample_content: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "chat.json"
    shutil.copy(sample_content / SAMPLE, source)
    out = tmp_path / "chat.redacted.json"
    assert main(["vcon", "export", str(source), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    exported = load_vcon(out)
    assert exported["redacted"]["uuid"] == load_vcon(source)["uuid"]
    assert "4111" not in out.read_text(encoding="utf-8")


def test_export_needs_a_conversation_when_the_transcript_holds_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "two.jsonl"
    source.write_text(
        "".join(
            json.dumps({"conversation_id": c, "turn_id": "t1", "role": "customer", "text": "hi"})
            + "\n"
            for c in ("a", "b")
        )
    )
    out = tmp_path / "out.json"
    assert main(["vcon", "export", str(source), "--out", str(out)]) == 2
    assert "several conversations (a, b): pass --conversation ID" in capsys.readouterr().err
    assert not out.exists()
    assert main(["vcon", "export", str(source), "--out", str(out), "--conversation", "b"]) == 0
    assert len(load_vcon(out)["dialog"]) == 1
    assert main(["vcon", "export", str(source), "--out", str(source)]) == 2
    assert "must not be the source" in capsys.readouterr().err
