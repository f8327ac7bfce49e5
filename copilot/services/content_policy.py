"""Load and validate the behaviour spec (``policies.yaml``) of a content pack.

Every problem is reported with the file, the rule id and a reason a knowledge manager can act
on ("unknown type 'requried_step'", "pattern '(?:a': not a valid regular expression ...",
"article KB-XYZ-001 does not exist in knowledge/articles"); all problems are collected and
raised together as one `PolicySpecError`, so one edit-and-reload cycle fixes them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from copilot.core.policy import (
    LEVELS,
    Condition,
    ConditionKind,
    Cue,
    CueError,
    PolicyRule,
    PolicySpec,
    RuleType,
    Severity,
)
from copilot.services.loaders import iter_article_files, load_article

__all__ = [
    "POLICY_FILE",
    "PolicyProblem",
    "PolicySpecError",
    "article_ids",
    "load_policy_spec",
]

POLICY_FILE = "policies.yaml"
INTENTS_FILE = "intents.yaml"
# The C loader when PyYAML has it: several times faster on a long pack.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
_FLAG_KIND = re.compile(r"^[a-z][a-z0-9_]*\*?$")
_COMMON_KEYS = {"id", "type", "severity", "message", "article", "title", "description"}
_TYPE_KEYS: Mapping[RuleType, set[str]] = {
    RuleType.REQUIRED_STEP: {"trigger", "unless", "done_when", "deadline", "done_before_trigger"},
    RuleType.ESCALATION: {"trigger", "unless", "done_when", "deadline"},
    RuleType.PROHIBITED: {"agent_says", "unless_agent_says", "when", "amount_over"},
    RuleType.CARD_READBACK: set(),
}
_CONDITION_KEYS = {k.value for k in ConditionKind}
_MODIFIERS: Mapping[ConditionKind, set[str]] = {
    ConditionKind.CUSTOMER_SAYS: {"count"},
    ConditionKind.AGENT_SAYS: {"count"},
    ConditionKind.FLAG: {"min_level", "consecutive"},
}
_TOP_KEYS = {"version", "channels", "flag_groups", "cues", "rules"}


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong with the policy file; `rule_id` is None for file-level problems."""

    path: str
    rule_id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"rule {self.rule_id!r}: " if self.rule_id else ""
        return f"{self.path}: {where}{self.reason}"


class PolicySpecError(ValueError):
    """The policy file cannot be used; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[PolicyProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _Invalid(Exception):
    """A problem inside one rule; caught per rule so the other rules are still checked."""


def article_ids(articles: Path) -> frozenset[str]:
    """The ids of every article file under `articles`, found by a quick scan of each file.

    Markdown front matter and plain-text headers are read with a regex (``id:`` line); HTML
    ``<meta name="kb-id">``; anything else (PDF, files without an explicit id) goes through the
    article loader, so the ids agree with what the knowledge index uses.
    """
    if not articles.is_dir():
        return frozenset()
    ids: set[str] = set()
    for path in iter_article_files(articles):
        found = _quick_id(path)
        if found is None:
            try:
                found = load_article(path).article.id
            except Exception:  # a broken article is the article loader's to report
                continue
        ids.add(found)
    return frozenset(ids)


_MD_ID = re.compile(r"^id:\s*[\"']?([A-Za-z0-9][A-Za-z0-9._-]*)[\"']?\s*$", re.MULTILINE)
_HTML_ID = re.compile(
    r"<meta\s+name=[\"'](?:kb-)?id[\"']\s+content=[\"']([^\"']+)[\"']", re.IGNORECASE
)


def _quick_id(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix not in (".md", ".markdown", ".txt", ".html", ".htm"):
        return None
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return None
    if suffix in (".html", ".htm"):
        m = _HTML_ID.search(head)
        return m.group(1).strip() if m else None
    if suffix == ".txt":
        header = head.split("\n\n", 1)[0]
    else:
        if not head.startswith("---"):
            return None
        header = head[3:].split("\n---", 1)[0]
    m = _MD_ID.search(header)
    return m.group(1) if m else None


def _known_intents(content: Path) -> frozenset[str] | None:
    """Intent ids from the pack's intents.yaml, or None when absent or not in a known shape."""
    path = content / INTENTS_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # the intents loader reports its own file's problems
    items: Any = data.get("intents") if isinstance(data, Mapping) else data
    if isinstance(items, Mapping):
        ids = {str(k) for k in items}
    elif isinstance(items, list):
        ids = {str(i["id"]) for i in items if isinstance(i, Mapping) and "id" in i}
    else:
        return None
    return frozenset(ids) or None


def load_policy_spec(
    content_dir: str | os.PathLike[str], *, path: str | os.PathLike[str] | None = None
) -> PolicySpec:
    """Load and validate ``policies.yaml`` from a content pack.

    Args:
        content_dir: the content pack (holds ``articles/`` and ``policies.yaml``).
        path: another policy file to read instead of ``<content_dir>/policies.yaml``.

    Returns:
        The spec, with every pattern compiled.

    Raises:
        PolicySpecError: listing every problem (file, rule id, reason): invalid YAML, an
            unknown rule type, key, severity or level, a missing message, a bad regex, an
            article id that is not in the pack's articles, an unknown intent id (when the pack
            has an intents.yaml), duplicate rule ids.
    """
    content = Path(content_dir)
    file = Path(path) if path is not None else content / POLICY_FILE
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicySpecError([PolicyProblem(name, None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicySpecError([PolicyProblem(name, None, f"cannot be read: {exc}")]) from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader (CSafeLoader/SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        reason = f"invalid YAML{where}: {problem}"
        raise PolicySpecError([PolicyProblem(name, None, reason)]) from None
    parser = _Parser(name, article_ids(content / "articles"), _known_intents(content))
    return parser.parse(data)


class _Parser:
    def __init__(self, name: str, articles: frozenset[str], intents: frozenset[str] | None) -> None:
        self.name = name
        self.articles = articles
        self.intents = intents
        self.problems: list[PolicyProblem] = []
        self.cue_sets: dict[str, tuple[str, ...]] = {}
        self.flag_groups: dict[str, tuple[str, ...]] = {}
        self._cues: dict[tuple[str, ...], Cue] = {}

    def problem(self, rule_id: str | None, reason: str) -> None:
        self.problems.append(PolicyProblem(self.name, rule_id, reason))

    def parse(self, data: Any) -> PolicySpec:
        if not isinstance(data, Mapping):
            self.problem(None, "expected a mapping with a 'rules:' list at the top level")
            raise PolicySpecError(self.problems)
        for key in data:
            if key not in _TOP_KEYS:
                self.problem(None, f"unknown top-level key {key!r} (expected {sorted(_TOP_KEYS)})")
        self._parse_cue_sets(data.get("cues") or {})
        self._parse_flag_groups(data.get("flag_groups") or {})
        channels = self._parse_channels(data.get("channels") or {})
        raw_rules = data.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            self.problem(None, "'rules:' must be a non-empty list")
            raise PolicySpecError(self.problems)
        rules: list[PolicyRule] = []
        seen: set[str] = set()
        for number, raw in enumerate(raw_rules, start=1):
            rule_id = raw.get("id") if isinstance(raw, Mapping) else None
            label = str(rule_id) if rule_id else f"#{number}"
            try:
                rule = self._rule(raw, label)
            except _Invalid as exc:
                self.problem(label, str(exc))
                continue
            if rule.id in seen:
                self.problem(rule.id, "duplicate rule id")
                continue
            seen.add(rule.id)
            rules.append(rule)
        if self.problems:
            raise PolicySpecError(self.problems)
        return PolicySpec(tuple(rules), channels, source=self.name)

    # -- top-level sections ------------------------------------------------------------------

    def _parse_cue_sets(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            self.problem(None, "'cues:' must map names to lists of patterns")
            return
        for name, patterns in raw.items():
            items = [patterns] if isinstance(patterns, str) else patterns
            if not isinstance(items, list) or not items:
                self.problem(None, f"cues.{name}: must be a non-empty list of patterns")
                continue
            if any(not isinstance(p, str) or p.startswith("@") for p in items):
                self.problem(None, f"cues.{name}: items must be patterns (no '@' references)")
                continue
            try:
                Cue.compile(items)
            except CueError as exc:
                self.problem(None, f"cues.{name}: {exc}")
                continue
            self.cue_sets[str(name)] = tuple(items)

    def _parse_flag_groups(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            self.problem(None, "'flag_groups:' must map names to lists of flag kinds")
            return
        for name, kinds in raw.items():
            items = [kinds] if isinstance(kinds, str) else kinds
            bad = (
                not isinstance(items, list)
                or not items
                or any(not isinstance(k, str) or not _FLAG_KIND.match(k) for k in items)
            )
            if bad:
                self.problem(None, f"flag_groups.{name}: must be a list of flag kinds")
                continue
            self.flag_groups[str(name)] = tuple(items)

    def _parse_channels(self, raw: Any) -> dict[str, Cue]:
        if not isinstance(raw, Mapping):
            self.problem(None, "'channels:' must map channel names to lists of patterns")
            return {}
        out: dict[str, Cue] = {}
        for name, patterns in raw.items():
            try:
                out[str(name).lower()] = self._cue(patterns, f"channels.{name}")
            except _Invalid as exc:
                self.problem(None, str(exc))
        return out

    # -- rules -------------------------------------------------------------------------------

    def _rule(self, raw: Any, label: str) -> PolicyRule:
        if not isinstance(raw, Mapping):
            raise _Invalid("must be a mapping")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
            raise _Invalid(
                "id: required; lower-case letters, digits, '-', '_' or '.' (e.g. no-cvv-request)"
            )
        type_name = raw.get("type")
        try:
            rule_type = RuleType(str(type_name))
        except ValueError:
            expected = ", ".join(t.value for t in RuleType)
            raise _Invalid(f"unknown type {type_name!r} (expected one of {expected})") from None
        allowed = _COMMON_KEYS | _TYPE_KEYS[rule_type]
        unknown = [str(k) for k in raw if k not in allowed]
        if unknown:
            raise _Invalid(
                f"unknown key(s) {', '.join(unknown)} for a {rule_type.value} rule"
                f" (allowed: {', '.join(sorted(allowed))})"
            )
        sev_name = raw.get("severity")
        try:
            severity = Severity(str(sev_name))
        except ValueError:
            expected = ", ".join(s.value for s in Severity)
            raise _Invalid(f"unknown severity {sev_name!r} (expected one of {expected})") from None
        message = raw.get("message")
        if not isinstance(message, str) or not message.strip():
            raise _Invalid("message: is required (what the agent sees, short and imperative)")
        article = raw.get("article")
        if not isinstance(article, str) or not article.strip():
            raise _Invalid("article: is required (the id of the article that backs the rule)")
        if article not in self.articles:
            raise _Invalid(f"article {article} does not exist in the pack's articles")
        title = raw.get("title", "")
        if not isinstance(title, str):
            raise _Invalid("title: must be text")
        if rule_type in (RuleType.REQUIRED_STEP, RuleType.ESCALATION) and not title.strip():
            raise _Invalid("title: is required for a required step or escalation (ledger label)")
        fields: dict[str, Any] = {}
        if rule_type in (RuleType.REQUIRED_STEP, RuleType.ESCALATION):
            fields.update(self._step_fields(raw))
        elif rule_type is RuleType.PROHIBITED:
            fields.update(self._prohibited_fields(raw))
        try:
            return PolicyRule(
                id=rule_id,
                type=rule_type,
                severity=severity,
                message=message.strip(),
                article_id=article.strip(),
                title=title.strip(),
                **fields,
            )
        except ValueError as exc:
            raise _Invalid(str(exc)) from None

    def _step_fields(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        if "trigger" not in raw:
            raise _Invalid("trigger: is required (when the step becomes required)")
        fields: dict[str, Any] = {"trigger": self._condition(raw["trigger"], "trigger")}
        if raw.get("unless") is not None:
            fields["unless"] = self._condition(raw["unless"], "unless")
        done = raw.get("done_when")
        if not isinstance(done, Mapping) or set(done) != {"agent_says"}:
            raise _Invalid("done_when: must be a mapping with 'agent_says: [patterns]'")
        fields["done_when"] = self._cue(done["agent_says"], "done_when.agent_says")
        deadline = raw.get("deadline")
        if deadline is not None:
            if not isinstance(deadline, Mapping) or len(deadline) != 1:
                raise _Invalid(
                    "deadline: must have exactly one of before_agent_says, within_agent_turns"
                )
            ((key, value),) = deadline.items()
            if key == "before_agent_says":
                fields["deadline_cue"] = self._cue(value, "deadline.before_agent_says")
            elif key == "within_agent_turns":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise _Invalid("deadline.within_agent_turns: must be a whole number >= 1")
                fields["deadline_agent_turns"] = value
            else:
                raise _Invalid(
                    f"deadline: unknown key {key!r} (expected before_agent_says or"
                    " within_agent_turns)"
                )
        early = raw.get("done_before_trigger", True)
        if not isinstance(early, bool):
            raise _Invalid(f"done_before_trigger: must be true or false, got {early!r}")
        if not early:
            fields["done_before_trigger"] = False
        return fields

    def _prohibited_fields(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        if "agent_says" not in raw:
            raise _Invalid("agent_says: is required (the words the agent must not use)")
        fields: dict[str, Any] = {"says": self._cue(raw["agent_says"], "agent_says")}
        if raw.get("unless_agent_says") is not None:
            fields["unless_says"] = self._cue(raw["unless_agent_says"], "unless_agent_says")
        if raw.get("when") is not None:
            fields["when"] = self._condition(raw["when"], "when")
        if raw.get("amount_over") is not None:
            value = raw["amount_over"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise _Invalid("amount_over: must be a number of pounds >= 0")
            if not fields["says"].captures_amount:
                raise _Invalid("amount_over: agent_says patterns must capture (?P<amount>...)")
            fields["amount_over"] = float(value)
        return fields

    # -- conditions, cues, flags -------------------------------------------------------------

    def _condition(self, raw: Any, where: str) -> Condition:
        if not isinstance(raw, Mapping):
            raise _Invalid(f"{where}: must be a mapping such as {{flag: legal_threat}}")
        main = [k for k in raw if k in _CONDITION_KEYS]
        if len(main) != 1:
            expected = ", ".join(sorted(_CONDITION_KEYS))
            raise _Invalid(f"{where}: needs exactly one of {expected} (found {sorted(raw)})")
        kind = ConditionKind(main[0])
        allowed = _MODIFIERS.get(kind, set())
        extra = [str(k) for k in raw if k != kind.value and k not in allowed]
        if extra:
            raise _Invalid(f"{where}: unknown key(s) {', '.join(extra)} for {kind.value}")
        value = raw[kind.value]
        sub = f"{where}.{kind.value}"
        if kind is ConditionKind.AT_START:
            if value is not True:
                raise _Invalid(f"{sub}: must be true")
            return Condition(kind)
        if kind in (ConditionKind.ALL, ConditionKind.ANY):
            if not isinstance(value, list) or not value:
                raise _Invalid(f"{sub}: must be a non-empty list of conditions")
            children = tuple(self._condition(c, f"{sub}[{i}]") for i, c in enumerate(value))
            return Condition(kind, children=children)
        if kind in (ConditionKind.CUSTOMER_SAYS, ConditionKind.AGENT_SAYS):
            count = self._positive_int(raw.get("count", 1), f"{where}.count")
            return Condition(kind, cue=self._cue(value, sub), count=count)
        names = self._names(value, sub)
        if kind is ConditionKind.CHANNEL:
            return Condition(kind, values=tuple(n.lower() for n in names))
        if kind is ConditionKind.INTENT:
            if self.intents is not None:
                unknown = [n for n in names if n not in self.intents]
                if unknown:
                    raise _Invalid(f"{sub}: unknown intent id(s) {', '.join(unknown)}")
            return Condition(kind, values=names)
        min_level = str(raw.get("min_level", "low"))
        if min_level not in LEVELS:
            raise _Invalid(
                f"{where}.min_level: unknown level {min_level!r} (expected {', '.join(LEVELS)})"
            )
        consecutive = self._positive_int(raw.get("consecutive", 1), f"{where}.consecutive")
        return Condition(
            kind, values=self._flag_kinds(names, sub), min_level=min_level, consecutive=consecutive
        )

    def _positive_int(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _Invalid(f"{where}: must be a whole number >= 1")
        return value

    def _names(self, value: Any, where: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise _Invalid(f"{where}: must be a name or a list of names")
        return tuple(i.strip() for i in items)

    def _flag_kinds(self, names: tuple[str, ...], where: str) -> tuple[str, ...]:
        out: list[str] = []
        for name in names:
            if name.startswith("@"):
                group = self.flag_groups.get(name[1:])
                if group is None:
                    raise _Invalid(f"{where}: unknown flag group {name!r}")
                out.extend(group)
            elif _FLAG_KIND.match(name):
                out.append(name)
            else:
                raise _Invalid(f"{where}: {name!r} is not a flag kind (e.g. legal_threat)")
        return tuple(dict.fromkeys(out))

    def _cue(self, value: Any, where: str) -> Cue:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise _Invalid(f"{where}: must be a non-empty list of patterns")
        patterns: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise _Invalid(f"{where}: pattern {item!r} must be text (quote it in YAML)")
            if item.startswith("@"):
                named = self.cue_sets.get(item[1:])
                if named is None:
                    raise _Invalid(f"{where}: unknown cue list {item!r} (define it under cues:)")
                patterns.extend(named)
            else:
                patterns.append(item)
        key = tuple(dict.fromkeys(patterns))
        cue = self._cues.get(key)
        if cue is None:
            try:
                cue = Cue.compile(key)
            except CueError as exc:
                raise _Invalid(f"{where}: {exc}") from None
            self._cues[key] = cue
        return cue
