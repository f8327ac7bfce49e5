"""Qt item models for the panel's lists: thin adapters over immutable snapshot parts.

Each model holds a tuple of plain objects (flags, policy rows, suggestions, article hits,
conversation rows) and answers `data()` with the texts the panel shows, one role per field, so
a widget never formats a core object itself and every text the agent reads is decided (and
tested) here. A new snapshot replaces a model's rows with one reset; the conversation list, which
a combo box shows, changes row by row instead so the combo keeps its selection.

Every text stays plain: customer words are never interpreted as markup by these models or by
the widgets that show them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtCore import QAbstractListModel, QByteArray, QModelIndex, QObject, Qt
from PySide6.QtGui import Qt as GuiQt

from copilot.core.models import ArticleHit
from copilot.core.policy import PolicyResult
from copilot.core.slots import SLOT_LABELS
from copilot.core.suggestions import Suggestion

# --- shared wording -----------------------------------------------------------------------------

LEVEL_ORDER: tuple[str, ...] = ("low", "medium", "high", "critical")
#: A symbol per level, shown beside the level's word (never instead of it).
LEVEL_ICONS: Mapping[str, str] = {"critical": "⚠", "high": "▲", "medium": "◆", "low": "●"}
STATUS_MARKS: Mapping[str, str] = {
    "missed": "✗",
    "breach": "✗",
    "pending": "…",
    "done": "✓",
}
LAYER_LABELS: Mapping[str, str] = {
    "ai_autonomous": "AI autonomous (a glance is enough)",
    "ai_assisted": "AI-assisted (you lead, the co-pilot drafts)",
    "human_only": "Human only (suggestions are reference only)",
}


def _text(value: object) -> str:
    return str(getattr(value, "value", value))


def kind_label(kind: object) -> str:
    """``legal_threat`` -> "Legal threat"."""
    text = _text(kind).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def level_rank(level: object) -> int:
    """0 (low) .. 3 (critical); -1 for an unknown level."""
    try:
        return LEVEL_ORDER.index(_text(level).lower())
    except ValueError:
        return -1


def level_text(level: object) -> str:
    """The level as the panel writes it: ``"HIGH"``."""
    return _text(level).upper()


def layer_label(layer: object) -> str:
    text = _text(layer)
    return LAYER_LABELS.get(text, kind_label(text))


def heading_below_title(heading_path: Sequence[str], title: str) -> str:
    """The heading path without the article title it usually starts with: "Step 2 › Check"."""
    parts = [h for h in heading_path if h and h != title]
    return " › ".join(parts)


# --- the base -----------------------------------------------------------------------------------

ItemRole = int(Qt.ItemDataRole.UserRole) + 1
_FIRST_ROLE = ItemRole + 1


class TupleListModel(QAbstractListModel):
    """A read-only list model over a tuple of items; subclasses map items to role values.

    Subclasses define ``ROLES`` (role number -> name) and `_value(item, row, role)`.
    """

    ROLES: ClassVar[Mapping[int, str]] = {}

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: tuple[Any, ...] = ()

    # -- Qt API --------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        if parent is not None and parent.isValid():
            return 0  # a list: no children
        return len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.parent().isValid():
            return None
        row = index.row()
        if not 0 <= row < len(self._items) or index.column() != 0:
            return None
        item = self._items[row]
        if role == ItemRole:
            return item
        value = self._value(item, row, int(role))
        if role == Qt.ItemDataRole.ToolTipRole and isinstance(value, str):
            # Views show tooltips as rich text when they look like HTML: customer words in a
            # tooltip must read literally ("<img src=x>"), so they are escaped here.
            return GuiQt.convertFromPlainText(value, Qt.WhiteSpaceMode.WhiteSpaceNormal)
        return value

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names[ItemRole] = QByteArray(b"item")
        for role, name in self.ROLES.items():
            names[role] = QByteArray(name.encode("ascii"))
        return names

    # -- ours ----------------------------------------------------------------------------------

    def set_items(self, items: Iterable[Any]) -> None:
        """Replace every row (one model reset)."""
        self.beginResetModel()
        self._items = tuple(items)
        self.endResetModel()

    def items(self) -> tuple[Any, ...]:
        return self._items

    def item(self, row: int) -> Any:
        """The item at ``row``, or None."""
        return self._items[row] if 0 <= row < len(self._items) else None

    def value(self, row: int, role: int) -> Any:
        """``data()`` for a row number (what the widgets call)."""
        return self.data(self.index(row, 0), role)

    def _value(self, item: Any, row: int, role: int) -> Any:
        raise NotImplementedError


# --- flags --------------------------------------------------------------------------------------


class FlagListModel(TupleListModel):
    """Signal flags (`copilot.core.signals.Flag`), highest level first."""

    LevelRole = _FIRST_ROLE
    LevelTextRole = _FIRST_ROLE + 1
    IconRole = _FIRST_ROLE + 2
    KindRole = _FIRST_ROLE + 3
    KindLabelRole = _FIRST_ROLE + 4
    MessageRole = _FIRST_ROLE + 5
    EvidenceRole = _FIRST_ROLE + 6
    ROLES: ClassVar[Mapping[int, str]] = {
        LevelRole: "level",
        LevelTextRole: "levelText",
        IconRole: "icon",
        KindRole: "kind",
        KindLabelRole: "kindLabel",
        MessageRole: "message",
        EvidenceRole: "evidence",
    }

    def _value(self, flag: Any, row: int, role: int) -> Any:
        level = _text(flag.level).lower()
        quotes = " · ".join(f"“{e.quote}”" for e in tuple(flag.evidence)[-2:])
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{level_text(level)} · {kind_label(flag.kind)}"
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            said = f" The customer said: {quotes}." if quotes else ""
            return f"{level_text(level)} flag: {kind_label(flag.kind)}. {flag.message}.{said}"
        if role == self.LevelRole:
            return level
        if role == self.LevelTextRole:
            return level_text(level)
        if role == self.IconRole:
            return LEVEL_ICONS.get(level, "●")
        if role == self.KindRole:
            return _text(flag.kind)
        if role == self.KindLabelRole:
            return kind_label(flag.kind)
        if role == self.MessageRole:
            return str(flag.message)
        if role == self.EvidenceRole:
            return quotes
        return None


# --- policy -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One line of the policy checklist.

    Attributes:
        status: ``breach`` (something said that must not be), ``missed``, ``pending`` or
            ``done``.
        severity: ``critical``, ``warning`` or ``info``.
        title: what the line is about ("Identity verified", the rule's message for a breach).
        detail: the words that caused it, or what to do.
        article_id: the policy article that backs it.
        rule_id: the rule (for "not right" feedback).
    """

    status: str
    severity: str
    title: str
    detail: str
    article_id: str
    rule_id: str

    @property
    def mark(self) -> str:
        return STATUS_MARKS.get(self.status, "•")

    @property
    def status_text(self) -> str:
        if self.status == "breach":
            return "CRITICAL" if self.severity == "critical" else "WARNING"
        return self.status.upper()


_STATUS_ORDER = {"breach": 0, "missed": 1, "pending": 2, "done": 3}


def policy_rows(result: PolicyResult | None) -> tuple[PolicyRow, ...]:
    """The checklist for a policy result: breaches, then missed, pending and done steps.

    Findings about steps (missed, escalations) are already ledger entries, so only breaches
    (prohibited words, a card number read back) come from the findings, once per rule.
    """
    if result is None:
        return ()
    rows: list[PolicyRow] = []
    seen: set[str] = set()
    for finding in result.findings:
        if finding.status is not None or finding.rule_id in seen:
            continue
        seen.add(finding.rule_id)
        evidence = f"Said: “{finding.evidence}”" if finding.evidence else ""
        rows.append(
            PolicyRow(
                "breach",
                _text(finding.severity),
                finding.message,
                evidence,
                finding.article_id,
                finding.rule_id,
            )
        )
    messages = {f.rule_id: f.message for f in result.findings if f.status is not None}
    for entry in result.ledger:
        status = _text(entry.status)
        if status not in _STATUS_ORDER:
            continue  # not applicable to this conversation
        detail = ""
        if status in ("missed", "pending"):
            detail = messages.get(entry.rule_id) or entry.message
        rows.append(
            PolicyRow(
                status,
                _text(entry.severity),
                entry.title,
                detail,
                entry.article_id,
                entry.rule_id,
            )
        )
    rows.sort(key=lambda r: (_STATUS_ORDER[r.status], -_severity_rank(r.severity)))
    return tuple(rows)


def _severity_rank(severity: str) -> int:
    return {"critical": 2, "warning": 1}.get(severity, 0)


class PolicyListModel(TupleListModel):
    """The policy checklist (`PolicyRow`s)."""

    StatusRole = _FIRST_ROLE
    StatusTextRole = _FIRST_ROLE + 1
    MarkRole = _FIRST_ROLE + 2
    TitleRole = _FIRST_ROLE + 3
    DetailRole = _FIRST_ROLE + 4
    ArticleRole = _FIRST_ROLE + 5
    SeverityRole = _FIRST_ROLE + 6
    RuleRole = _FIRST_ROLE + 7
    ROLES: ClassVar[Mapping[int, str]] = {
        StatusRole: "status",
        StatusTextRole: "statusText",
        MarkRole: "mark",
        TitleRole: "title",
        DetailRole: "detail",
        ArticleRole: "articleId",
        SeverityRole: "severity",
        RuleRole: "ruleId",
    }

    def _value(self, row_item: PolicyRow, row: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{row_item.mark} {row_item.status_text} {row_item.title}"
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            detail = f" {row_item.detail}" if row_item.detail else ""
            source = f" (policy article {row_item.article_id})" if row_item.article_id else ""
            return f"{row_item.status_text}: {row_item.title}.{detail}{source}"
        if role == self.StatusRole:
            return row_item.status
        if role == self.StatusTextRole:
            return row_item.status_text
        if role == self.MarkRole:
            return row_item.mark
        if role == self.TitleRole:
            return row_item.title
        if role == self.DetailRole:
            return row_item.detail
        if role == self.ArticleRole:
            return row_item.article_id
        if role == self.SeverityRole:
            return row_item.severity
        if role == self.RuleRole:
            return row_item.rule_id
        return None


# --- suggestions --------------------------------------------------------------------------------


def suggestion_source(suggestion: Suggestion) -> str:
    """Where a suggestion comes from, with its citations: "Reply template … · KB-BIL-001"."""
    cites = ", ".join(dict.fromkeys(c.article_id for c in suggestion.citations))
    if suggestion.kind == "template":
        origin = f"Reply template {suggestion.source}"
    else:
        passage = next((c.passage_id for c in suggestion.citations if c.passage_id), None)
        origin = f"Article passage {passage or suggestion.source}"
        cites = ""
    return f"{origin} · cites {cites}" if cites else origin


class SuggestionListModel(TupleListModel):
    """Suggested replies (`copilot.core.suggestions.Suggestion`), best first."""

    TitleRole = _FIRST_ROLE
    TextRole = _FIRST_ROLE + 1
    ConfidenceRole = _FIRST_ROLE + 2
    ConfidenceTextRole = _FIRST_ROLE + 3
    WhyRole = _FIRST_ROLE + 4
    SourceRole = _FIRST_ROLE + 5
    RankRole = _FIRST_ROLE + 6
    MissingSlotsRole = _FIRST_ROLE + 7
    IdRole = _FIRST_ROLE + 8
    ROLES: ClassVar[Mapping[int, str]] = {
        TitleRole: "title",
        TextRole: "text",
        ConfidenceRole: "confidence",
        ConfidenceTextRole: "confidenceText",
        WhyRole: "why",
        SourceRole: "source",
        RankRole: "rank",
        MissingSlotsRole: "missingSlots",
        IdRole: "suggestionId",
    }

    def _value(self, s: Suggestion, row: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{row + 1}. {s.title}"
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            return f"Suggested reply {row + 1}, {s.confidence:.0%} confidence: {s.text}"
        if role == self.TitleRole:
            return s.title
        if role == self.TextRole:
            return s.text
        if role == self.ConfidenceRole:
            return float(s.confidence)
        if role == self.ConfidenceTextRole:
            return f"{s.confidence:.0%}"
        if role == self.WhyRole:
            return s.why
        if role == self.SourceRole:
            return suggestion_source(s)
        if role == self.RankRole:
            return row + 1
        if role == self.MissingSlotsRole:
            return ", ".join(SLOT_LABELS.get(n, n.replace("_", " ")) for n in s.missing_slots)
        if role == self.IdRole:
            return s.id
        return None


# --- articles -----------------------------------------------------------------------------------


class ArticleListModel(TupleListModel):
    """Knowledge articles (`copilot.core.models.ArticleHit`), best first, each with its passage."""

    TitleRole = _FIRST_ROLE
    ArticleIdRole = _FIRST_ROLE + 1
    HeadingRole = _FIRST_ROLE + 2
    PassageRole = _FIRST_ROLE + 3
    ScoreRole = _FIRST_ROLE + 4
    PassageIdRole = _FIRST_ROLE + 5
    ROLES: ClassVar[Mapping[int, str]] = {
        TitleRole: "title",
        ArticleIdRole: "articleId",
        HeadingRole: "heading",
        PassageRole: "passage",
        ScoreRole: "score",
        PassageIdRole: "passageId",
    }

    def _value(self, hit: ArticleHit, row: int, role: int) -> Any:
        passage = hit.best.passage
        if role == Qt.ItemDataRole.DisplayRole:
            return hit.title
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            heading = heading_below_title(passage.heading_path, hit.title)
            where = f", section {heading}" if heading else ""
            return f"Article {hit.article_id}: {hit.title}{where}"
        if role == self.TitleRole:
            return hit.title
        if role == self.ArticleIdRole:
            return hit.article_id
        if role == self.HeadingRole:
            return heading_below_title(passage.heading_path, hit.title)
        if role == self.PassageRole:
            return passage.text
        if role == self.ScoreRole:
            return float(hit.score)
        if role == self.PassageIdRole:
            return passage.passage_id
        return None


# --- conversations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """What the switcher shows for one conversation."""

    conversation_id: str
    customer: str
    intent: str
    worst_level: str
    worst_kind: str
    turns: int

    @property
    def label(self) -> str:
        """ "Nadia Rahman · ⚠ CRITICAL · Refund request": the flag before the intent, since a
        narrow switcher cuts the end off."""
        parts = [self.customer]
        if self.worst_level:
            parts.append(f"{LEVEL_ICONS.get(self.worst_level, '●')} {level_text(self.worst_level)}")
        if self.intent:
            parts.append(self.intent)
        return " · ".join(parts)

    @property
    def description(self) -> str:
        flag = ""
        if self.worst_level:
            flag = f", worst flag {level_text(self.worst_level)} {kind_label(self.worst_kind)}"
        intent = f", intent {self.intent}" if self.intent else ""
        return f"{self.customer}{flag}{intent} ({self.turns} turns, id {self.conversation_id})"


class ConversationListModel(TupleListModel):
    """The open conversations, in the order they started; changed row by row."""

    IdRole = _FIRST_ROLE
    CustomerRole = _FIRST_ROLE + 1
    IntentRole = _FIRST_ROLE + 2
    LevelRole = _FIRST_ROLE + 3
    ROLES: ClassVar[Mapping[int, str]] = {
        IdRole: "conversationId",
        CustomerRole: "customer",
        IntentRole: "intent",
        LevelRole: "worstLevel",
    }

    def _value(self, row_item: ConversationRow, row: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return row_item.label
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            return row_item.description
        if role == self.IdRole:
            return row_item.conversation_id
        if role == self.CustomerRole:
            return row_item.customer
        if role == self.IntentRole:
            return row_item.intent
        if role == self.LevelRole:
            return row_item.worst_level
        return None

    def row_of(self, conversation_id: str) -> int:
        """The row showing ``conversation_id``, or -1."""
        for row, item in enumerate(self._items):
            if item.conversation_id == conversation_id:
                return row
        return -1

    def upsert(self, row_item: ConversationRow) -> None:
        """Update the row of this conversation in place, or append it."""
        row = self.row_of(row_item.conversation_id)
        if row < 0:
            self.beginInsertRows(QModelIndex(), len(self._items), len(self._items))
            self._items = (*self._items, row_item)
            self.endInsertRows()
            return
        if self._items[row] == row_item:
            return
        self._items = (*self._items[:row], row_item, *self._items[row + 1 :])
        index = self.index(row, 0)
        self.dataChanged.emit(index, index)

    def remove(self, conversation_id: str) -> None:
        row = self.row_of(conversation_id)
        if row < 0:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        self._items = (*self._items[:row], *self._items[row + 1 :])
        self.endRemoveRows()
