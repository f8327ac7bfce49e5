"""The demo conversations show what ``knowledge/demos/expected.yaml`` says a reviewer expects.

Each demo is replayed turn by turn the way the live pipeline sees it (``Conversation.apply``,
so redacted on arrival); after every final turn the pack's signals are aggregated over the
customer turns and the behaviour spec is evaluated with those flags and the annotated channel,
once with the annotated intent (standing in for the intent model, so no model is loaded) and
once with no intent at all (the model unsure), since the checks must not hang on it. Then:

- every annotated flag kind was raised at some turn, and no absent flag kind ever was;
- every annotated policy finding was shown at some turn;
- the ledger after the last turn has the annotated status for each listed step.

A change to ``signals.yaml`` or ``policies.yaml`` that breaks a demo fails here, naming the demo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from copilot.core.conversation import Conversation, Role, parse_turn_event
from copilot.core.policy import PolicySpec, evaluate
from copilot.core.signals import SignalConfig, TurnSignals, aggregate, analyse_turn
from copilot.services.content_policy import load_policy_spec
from copilot.services.content_signals import load_signal_config

PACK = Path(__file__).resolve().parents[3] / "knowledge"
DEMOS = PACK / "demos"
DEMO_FILES = sorted(p.name for p in DEMOS.glob("*.jsonl"))


@cache
def expected() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((DEMOS / "expected.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@cache
def signal_config() -> SignalConfig:
    return load_signal_config(PACK)


@cache
def policy_spec() -> PolicySpec:
    return load_policy_spec(PACK)


@dataclass(frozen=True)
class Replay:
    """What the panel would have shown over the whole demo, and the ledger at its end."""

    flag_kinds: frozenset[str]
    finding_ids: frozenset[str]
    ledger: dict[str, str]


INTENT = ["annotated-intent", "no-intent"]


@cache
def replay(name: str, intent: str) -> Replay:
    note = expected()[name]
    config, spec = signal_config(), policy_spec()
    conversation = Conversation()
    analysed: dict[tuple[str, str], TurnSignals] = {}  # each customer turn is scored once
    kinds: set[str] = set()
    findings: set[str] = set()
    ledger: dict[str, str] = {}
    for line in (DEMOS / name).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        turn = parse_turn_event(json.loads(line))
        conversation = conversation.apply(turn)
        if not turn.is_final:
            continue
        per_turn = []
        for t in conversation.turns:
            if t.role is not Role.CUSTOMER:
                continue
            key = (t.turn_id, t.text)
            if key not in analysed:
                analysed[key] = analyse_turn(t.text, turn_id=t.turn_id, config=config)
            per_turn.append(analysed[key])
        signals = aggregate(per_turn, config)
        kinds |= {str(f.kind) for f in signals.flags}
        result = evaluate(
            conversation.turns,
            signals.flags,
            note["intent"] if intent == "annotated-intent" else None,
            spec,
            channel=note["channel"],
            history=signals.history,
        )
        findings |= {f.rule_id for f in result.findings}
        ledger = {e.rule_id: e.status.value for e in result.ledger}
    return Replay(frozenset(kinds), frozenset(findings), ledger)


@pytest.mark.parametrize("name", DEMO_FILES)
def test_annotated_flags_are_raised(name: str) -> None:
    missing = set(expected()[name]["flags"]) - replay(name, INTENT[0]).flag_kinds
    assert not missing, f"{name}: never raised {sorted(missing)}"


@pytest.mark.parametrize("name", DEMO_FILES)
def test_absent_flags_are_never_raised(name: str) -> None:
    wrong = set(expected()[name]["absent_flags"]) & replay(name, INTENT[0]).flag_kinds
    assert not wrong, f"{name}: raised {sorted(wrong)}, annotated as absent"


@pytest.mark.parametrize("intent", INTENT)
@pytest.mark.parametrize("name", DEMO_FILES)
def test_annotated_policy_findings_are_shown(name: str, intent: str) -> None:
    missing = set(expected()[name]["policy_findings"]) - replay(name, intent).finding_ids
    assert not missing, f"{name}: never showed {sorted(missing)}"


@pytest.mark.parametrize("intent", INTENT)
@pytest.mark.parametrize("name", DEMO_FILES)
def test_ledger_after_the_last_turn(name: str, intent: str) -> None:
    ledger = replay(name, intent).ledger
    wanted: dict[str, str] = expected()[name]["ledger"]
    got = {rule_id: ledger.get(rule_id, "absent") for rule_id in wanted}
    assert got == wanted, name


def test_the_calm_demos_raise_no_findings_at_all() -> None:
    # The demos annotated with no findings are the pack's "nothing to see" baseline: a stray
    # finding there is a false alarm an agent would learn to ignore.
    calm = [name for name in DEMO_FILES if not expected()[name]["policy_findings"]]
    assert len(calm) >= 5
    noisy = {
        name: sorted(found)
        for name in calm
        if (found := replay(name, INTENT[0]).finding_ids | replay(name, INTENT[1]).finding_ids)
    }
    assert not noisy
