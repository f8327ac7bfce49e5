"""What a reindex would change for agents: demo conversations replayed on two index generations.

Before a new index generation is swapped in, every demo conversation of the content pack is run
through the same pipeline against the live index and against the candidate, and this module
compares, turn by turn, what an agent would see: the suggested replies (with the articles and
passages they cite) and the knowledge articles (with the passage that matched). A knowledge
manager reads the result as "demo 02, turn t05: article KB-BIL-004 added at rank 2" and
decides whether to swap the candidate in, so a bad edit is caught before agents see it.

Pure: the replay itself (files, the embedder, the indexes) is in
`copilot.services.index_preview`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from copilot.core.models import Passage
from copilot.core.pipeline import Snapshot

__all__ = [
    "Change",
    "IndexPreview",
    "ShownItem",
    "TurnOutput",
    "diff_outputs",
    "group_by_demo",
    "turn_output",
]

Section = Literal["suggestion", "article"]
ChangeKind = Literal["added", "removed", "moved", "changed"]
#: How much of the turn's text a change carries (enough to recognise the moment).
TURN_TEXT_CHARS = 90


@dataclass(frozen=True, slots=True)
class ShownItem:
    """One suggestion or article as shown after a turn.

    Attributes:
        key: what it is matched on between the two runs: a suggestion's `item_id` (template id
            or passage id), an article's id.
        label: its title.
        detail: a suggestion's text; an article's best passage (article and heading).
        cites: the articles and passages a suggestion cites.
        fingerprint: a hash of the text the agent reads (the reply, the matched passage), so
            an edit that keeps the item and its rank still shows as "changed".
    """

    key: str
    label: str
    detail: str = ""
    cites: tuple[str, ...] = ()
    fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class TurnOutput:
    """What the panel showed after one turn of a demo conversation."""

    turn_id: str
    position: int  # 1-based position of the turn in the conversation
    role: str
    text: str
    suggestions: tuple[ShownItem, ...] = ()
    articles: tuple[ShownItem, ...] = ()


def _passage_label(article_id: str, passage: Passage) -> str:
    """``KB-BIL-001 › What to say``: passage ids are ordinals, renumbered when a section is
    added or removed above them, so a passage is named (and compared) by its heading."""
    heading = passage.heading_path[-1] if passage.heading_path else ""
    return f"{article_id} › {heading}" if heading else passage.passage_id


def _fingerprint(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:12]


def turn_output(snapshot: Snapshot, *, position: int, role: str, text: str) -> TurnOutput:
    """The parts of a snapshot a reindex can change, ready to compare."""
    passages = {
        p.passage.passage_id: p.passage for hit in snapshot.hits for p in (hit.best, *hit.passages)
    }

    def cite(article_id: str, passage_id: str | None) -> str:
        passage = passages.get(passage_id or "")
        if passage is not None:
            return _passage_label(article_id, passage)
        return f"{article_id}#{passage_id}" if passage_id else article_id

    suggestions = []
    for s in snapshot.suggestions:
        cites = tuple(cite(c.article_id, c.passage_id) for c in s.citations)
        # A reply quoted from a passage is known by the passage it quotes (its item id is
        # the passage's ordinal id, which other sections' edits renumber).
        key = cites[0] if s.kind == "article" and cites else s.item_id
        suggestions.append(
            ShownItem(
                key=key,
                label=s.title,
                detail=s.text,
                cites=cites,
                fingerprint=_fingerprint(s.text),
            )
        )
    articles = tuple(
        ShownItem(
            key=h.article_id,
            label=h.title,
            detail=_passage_label(h.article_id, h.best.passage),
            fingerprint=_fingerprint(h.best.passage.text),
        )
        for h in snapshot.hits
    )
    short = " ".join(text.split())
    if len(short) > TURN_TEXT_CHARS:
        short = short[: TURN_TEXT_CHARS - 1] + "…"
    return TurnOutput(
        turn_id=snapshot.last_turn_id or "",
        position=position,
        role=role,
        text=short,
        suggestions=tuple(suggestions),
        articles=articles,
    )


@dataclass(frozen=True, slots=True)
class Change:
    """One difference an agent would see after a turn of a demo conversation.

    Attributes:
        demo: the demo conversation (its file name without extension).
        turn_id: the turn after which it shows.
        position: the turn's 1-based position in the conversation.
        turn_text: the start of that turn's text.
        section: "suggestion" or "article".
        key: the suggestion's item id or the article id.
        label: its title.
        change: "added", "removed", "moved" (same item, other rank) or "changed" (same item and
            rank, different text, citations or matched passage).
        before_rank, after_rank: 1-based ranks in the live and candidate run (None: absent).
        detail: readable specifics, e.g. "cites KB-BIL-001#kb-bil-001-2 → KB-BIL-001#...".
        through_turn_id, through_position: the last of the consecutive turns the same change
            shows after (`diff_outputs` reports a lasting change once, not once per turn).
    """

    demo: str
    turn_id: str
    position: int
    turn_text: str
    section: Section
    key: str
    label: str
    change: ChangeKind
    before_rank: int | None
    after_rank: int | None
    detail: str = ""
    through_turn_id: str = ""
    through_position: int = 0

    @property
    def turns(self) -> str:
        """``t05``, or ``t05–t07`` when the same change shows over consecutive turns."""
        if self.through_turn_id and self.through_turn_id != self.turn_id:
            return f"{self.turn_id}–{self.through_turn_id}"
        return self.turn_id

    def same_as(self, other: Change) -> bool:
        """The same difference (item, kind, ranks, detail), whatever the turn."""
        return (
            self.demo,
            self.section,
            self.key,
            self.change,
            self.before_rank,
            self.after_rank,
            self.detail,
        ) == (
            other.demo,
            other.section,
            other.key,
            other.change,
            other.before_rank,
            other.after_rank,
            other.detail,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "demo": self.demo,
            "turn_id": self.turn_id,
            "through_turn_id": self.through_turn_id or self.turn_id,
            "position": self.position,
            "turn_text": self.turn_text,
            "section": self.section,
            "key": self.key,
            "label": self.label,
            "change": self.change,
            "before_rank": self.before_rank,
            "after_rank": self.after_rank,
            "detail": self.detail,
        }


def _rank(item: int | None) -> str:
    return "-" if item is None else str(item)


def _diff_items(
    demo: str,
    turn: TurnOutput,
    section: Section,
    before: Sequence[ShownItem],
    after: Sequence[ShownItem],
) -> list[Change]:
    old = {item.key: (rank, item) for rank, item in enumerate(before, start=1)}
    new = {item.key: (rank, item) for rank, item in enumerate(after, start=1)}
    changes: list[Change] = []

    def add(
        key: str, label: str, kind: ChangeKind, b: int | None, a: int | None, detail: str
    ) -> None:
        changes.append(
            Change(
                demo=demo,
                turn_id=turn.turn_id,
                position=turn.position,
                turn_text=turn.text,
                section=section,
                key=key,
                label=label,
                change=kind,
                before_rank=b,
                after_rank=a,
                detail=detail,
            )
        )

    for key, (rank, item) in new.items():
        if key not in old:
            add(key, item.label, "added", None, rank, _describe(section, item))
    for key, (rank, item) in old.items():
        if key not in new:
            add(key, item.label, "removed", rank, None, _describe(section, item))
    # "Moved" means reordered relative to the items both runs show: an item that only shifts
    # because one above it was added or removed is not news (that add/remove is reported).
    common_before = [item.key for item in before if item.key in new]
    common_after = [item.key for item in after if item.key in old]
    relative_before = {key: i for i, key in enumerate(common_before)}
    relative_after = {key: i for i, key in enumerate(common_after)}
    for key, (after_rank, item) in new.items():
        if key not in old:
            continue
        before_rank, previous = old[key]
        what = _what_changed(section, previous, item)
        if relative_before[key] != relative_after[key] and before_rank != after_rank:
            detail = f"rank {before_rank} → {after_rank}" + (f"; {what}" if what else "")
            add(key, item.label, "moved", before_rank, after_rank, detail)
        elif what:
            add(key, item.label, "changed", before_rank, after_rank, what)
    order = {"removed": 0, "added": 1, "moved": 2, "changed": 3}
    changes.sort(key=lambda c: (order[c.change], c.after_rank or c.before_rank or 0))
    return changes


def _describe(section: Section, item: ShownItem) -> str:
    if section == "article":
        return f"passage {item.detail}"
    return f"cites {', '.join(item.cites)}" if item.cites else "cites nothing"


def _what_changed(section: Section, before: ShownItem, after: ShownItem) -> str:
    parts = []
    if section == "article":
        if before.detail != after.detail:
            parts.append(f"matched passage {before.detail} → {after.detail}")
        elif before.fingerprint != after.fingerprint:
            parts.append(f"text of {after.detail} changed")
        return "; ".join(parts)
    if before.cites != after.cites:
        parts.append(f"cites {', '.join(before.cites) or '-'} → {', '.join(after.cites) or '-'}")
    if before.fingerprint != after.fingerprint:
        parts.append("reply text changed")
    return "; ".join(parts)


def diff_outputs(
    demo: str, before: Sequence[TurnOutput], after: Sequence[TurnOutput]
) -> list[Change]:
    """Every difference between two runs of the same demo, turn by turn, in turn order.

    Turns are matched by turn id (both runs replay the same file); a turn only one run has is
    compared with an empty output.
    """
    by_id = {t.turn_id: t for t in after}
    seen: set[str] = set()
    per_turn: list[list[Change]] = []
    for turn in before:
        seen.add(turn.turn_id)
        other = by_id.get(
            turn.turn_id, TurnOutput(turn.turn_id, turn.position, turn.role, turn.text)
        )
        per_turn.append(
            _diff_items(demo, turn, "suggestion", turn.suggestions, other.suggestions)
            + _diff_items(demo, turn, "article", turn.articles, other.articles)
        )
    for turn in after:
        if turn.turn_id not in seen:
            per_turn.append(
                _diff_items(demo, turn, "suggestion", (), turn.suggestions)
                + _diff_items(demo, turn, "article", (), turn.articles)
            )
    return _merge_lasting(per_turn)


def _merge_lasting(per_turn: Sequence[Sequence[Change]]) -> list[Change]:
    """Report a change that shows over consecutive turns once, with the turns it spans.

    An agent's reply does not change the query, so the same difference usually shows after
    several turns in a row; listing it once per turn would bury the next, different one.
    """
    changes: list[Change] = []
    open_changes: list[int] = []  # indexes into `changes` that the previous turn extended
    for turn_changes in per_turn:
        still_open: list[int] = []
        for change in turn_changes:
            match = next((i for i in open_changes if changes[i].same_as(change)), None)
            if match is not None:
                changes[match] = replace(
                    changes[match],
                    through_turn_id=change.turn_id,
                    through_position=change.position,
                )
                still_open.append(match)
            else:
                changes.append(change)
                still_open.append(len(changes) - 1)
        open_changes = still_open
    return changes


@dataclass(frozen=True, slots=True)
class IndexPreview:
    """The demos replayed on the live index and on a candidate, and what differs.

    Attributes:
        base_generation: the live generation compared against (None: there was none).
        candidate_generation: the generation that would be swapped in.
        demos: every demo replayed, in order.
        turns: turns analysed per run.
        changes: every difference, demo by demo, turn by turn.
        seconds: how long the replay took.
        note: why nothing was replayed, when nothing was.
    """

    base_generation: str | None
    candidate_generation: str
    demos: tuple[str, ...] = ()
    turns: int = 0
    changes: tuple[Change, ...] = ()
    seconds: float = 0.0
    note: str = ""
    stats: Mapping[str, Any] = field(default_factory=dict)

    @property
    def changed_demos(self) -> tuple[str, ...]:
        """The demos with at least one change, in replay order."""
        changed = {c.demo for c in self.changes}
        return tuple(d for d in self.demos if d in changed)

    def counts(self) -> dict[str, int]:
        """How many changes of each kind ("added", "removed", "moved", "changed")."""
        out = {"added": 0, "removed": 0, "moved": 0, "changed": 0}
        for change in self.changes:
            out[change.change] += 1
        return out

    def headline(self) -> str:
        """One sentence for a status line or a terminal."""
        if self.note and not self.demos:
            return self.note
        if not self.changes:
            return (
                f"No suggestion or article changes in {len(self.demos)} demo conversations"
                f" ({self.turns} turns)."
            )
        counts = self.counts()
        parts = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        return (
            f"{len(self.changes)} changes ({parts}) in {len(self.changed_demos)} of"
            f" {len(self.demos)} demo conversations ({self.turns} turns)."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_generation": self.base_generation,
            "candidate_generation": self.candidate_generation,
            "demos": list(self.demos),
            "changed_demos": list(self.changed_demos),
            "turns": self.turns,
            "counts": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
            "seconds": round(self.seconds, 3),
            "note": self.note,
            "stats": dict(self.stats),
            "headline": self.headline(),
        }


def group_by_demo(changes: Iterable[Change]) -> dict[str, list[Change]]:
    """Changes per demo, keeping order."""
    out: dict[str, list[Change]] = {}
    for change in changes:
        out.setdefault(change.demo, []).append(change)
    return out
