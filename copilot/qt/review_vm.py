"""The team-lead review window's view-model: feedback report, filters, actions, export.

Every read of the feedback database runs on the ``db`` lane (the one thread SQLite is touched
from) with a short-lived `FeedbackStore` opened and closed in the same call, so the window never
shares the panel's connection and never blocks the GUI thread. Results come back as plain dicts
and lists; the Qt item models here are thin adapters over them.

Text that agents and customers wrote is shown through `word_diff_html`, which escapes every
piece before adding its own ``<span>`` markup: a reply containing ``<b>`` or ``<img>`` is
displayed as those characters, never interpreted.
"""

from __future__ import annotations

import datetime as dt
import difflib
import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from copilot.qt.tasks import DB, TaskRunner, failure_message

Index = QModelIndex | QPersistentModelIndex

#: How many of the newest answered suggestions the actions table shows.
ACTION_LIMIT = 500
ANSWER_KINDS: tuple[str, ...] = ("accept", "edit", "discard")
KIND_CHOICES: tuple[tuple[str, str | None], ...] = (
    ("All suggestions", None),
    ("Templates", "template"),
    ("Articles", "article"),
)
#: Where a suggestion came from: the offline pipeline or the optional language model.
SOURCE_CHOICES: tuple[tuple[str, str | None], ...] = (
    ("All sources", None),
    ("Offline", "offline"),
    ("AI-generated", "generated"),
)

# --- pure helpers ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\s+|[^\s]+")
DELETED_STYLE = "background-color:#f8d0d0;text-decoration:line-through;"
INSERTED_STYLE = "background-color:#c8f0c8;"


def word_diff_html(shown: str | None, sent: str | None) -> tuple[str, str]:
    """Word diff of a suggestion and what was sent, as two HTML fragments.

    Every piece of text is escaped with `html.escape` before markup is added, so customer or
    agent text is never interpreted as HTML. Removed words are struck through on the left,
    added words highlighted on the right.

    Returns:
        (shown_html, sent_html).
    """
    left = _TOKEN.findall(shown or "")
    right = _TOKEN.findall(sent or "")
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    out_left: list[str] = []
    out_right: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        old = html.escape("".join(left[i1:i2]))
        new = html.escape("".join(right[j1:j2]))
        if op == "equal":
            out_left.append(old)
            out_right.append(new)
            continue
        if old:
            out_left.append(f'<span style="{DELETED_STYLE}">{old}</span>')
        if new:
            out_right.append(f'<span style="{INSERTED_STYLE}">{new}</span>')
    return "".join(out_left), "".join(out_right)


def percent(value: Any) -> str:
    """0.375 -> "37.5 %"; "" for None."""
    if value is None:
        return ""
    return f"{float(value) * 100:.1f} %"


# --- a thin table model over a list of dicts ------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a `RecordTableModel`: the dict key, its header, how to format it."""

    key: str
    header: str
    fmt: Callable[[Any], str] = field(default=lambda v: "" if v is None else str(v))
    numeric: bool = False


class RecordTableModel(QAbstractTableModel):
    """A read-only table over a list of dicts; one reset per new list.

    ``Qt.DisplayRole`` is the formatted text, `SORT_ROLE` the raw value, `RECORD_ROLE` the
    whole row dict. Columns can be hidden (per-agent figures) without rebuilding the model.
    """

    SORT_ROLE: ClassVar[int] = int(Qt.ItemDataRole.UserRole) + 1
    RECORD_ROLE: ClassVar[int] = int(Qt.ItemDataRole.UserRole) + 2

    def __init__(self, columns: Sequence[Column], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._all_columns = tuple(columns)
        self._hidden: set[str] = set()
        self._columns = self._all_columns
        self._rows: tuple[Mapping[str, Any], ...] = ()

    @property
    def rows(self) -> tuple[Mapping[str, Any], ...]:
        return self._rows

    @property
    def column_keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self._columns)

    def set_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = tuple(rows)
        self.endResetModel()

    def set_hidden_columns(self, keys: Sequence[str]) -> None:
        """Leave these columns out (e.g. the agent when per-agent figures are off)."""
        self.beginResetModel()
        self._hidden = set(keys)
        self._columns = tuple(c for c in self._all_columns if c.key not in self._hidden)
        self.endResetModel()

    def record(self, row: int) -> Mapping[str, Any]:
        return self._rows[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        if index.column() >= len(self._columns):
            return None
        column = self._columns[index.column()]
        row = self._rows[index.row()]
        value = row.get(column.key)
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return column.fmt(value)
        if role == self.SORT_ROLE:
            return value if isinstance(value, int | float | str) else column.fmt(value)
        if role == self.RECORD_ROLE:
            return dict(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            if 0 <= section < len(self._columns):
                return self._columns[section].header
            return None
        return str(section + 1)


def _int(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def _ms(value: Any) -> str:
    return "" if value is None else f"{float(value):,.0f} ms"


RATE_COLUMNS: tuple[Column, ...] = (
    Column("shown", "Shown", _int, True),
    Column("acceptance_rate", "Accepted", percent, True),
    Column("edit_rate", "Edited", percent, True),
    Column("discard_rate", "Discarded", percent, True),
    Column("ignored_rate", "Ignored", percent, True),
)


def _short(text: Any, limit: int = 120) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _source(generated: Any) -> str:
    return "AI-generated" if generated else "Offline"


ACTION_COLUMNS: tuple[Column, ...] = (
    Column("ts", "When", lambda v: str(v or "")[:16].replace("T", " ")),
    Column("kind", "Action"),
    Column("intent", "Intent"),
    Column("queue", "Queue"),
    Column("item_id", "Suggestion"),
    Column("generated", "Source", _source),
    Column("reason", "Reason"),
    Column("agent_id", "Agent"),
    Column("shown_text", "Suggested", _short),
    Column("sent_text", "Sent", _short),
)


# --- loading (db lane) ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFilters:
    """What the review shows: a day range (inclusive, UTC), an intent, a suggestion kind
    ("template" or "article"), a queue and a source ("offline" or "generated")."""

    since: dt.date | None = None
    until: dt.date | None = None
    intent: str | None = None
    kind: str | None = None
    queue: str | None = None
    source: str | None = None


def load_review(db_path: Path, filters: ReviewFilters, limit: int = ACTION_LIMIT) -> dict[str, Any]:
    """Blocking: the report, the intents and queues seen, and the newest answered suggestions.

    Opens and closes its own `FeedbackStore`; run it on the db lane.
    """
    from copilot.services.feedback_store import FeedbackStore

    with FeedbackStore(db_path) as store:
        report = store.report(
            since=filters.since,
            until=filters.until,
            intent=filters.intent,
            kind=filters.kind,  # type: ignore[arg-type]
            queue=filters.queue,
            source=filters.source,  # type: ignore[arg-type]
        )
        # The per-queue counts' key starts with the queue: this reads one row per queue.
        queues = sorted(
            row[0] for row in store.db.conn.execute("SELECT DISTINCT queue FROM counts_queue_daily")
        )
        intents = sorted(
            {
                row[0]
                for row in store.db.conn.execute(
                    "SELECT DISTINCT intent FROM counts_total WHERE intent != ''"
                )
            }
        )
        actions = _newest_answers(store.db.conn, filters, limit)
    return {"report": report, "intents": intents, "queues": queues, "actions": actions}


_ANSWER_COLUMNS: tuple[str, ...] = (
    "action_id",
    "kind",
    "conversation_id",
    "item_id",
    "suggestion_kind",
    "generated",
    "intent",
    "queue",
    "reason",
    "agent_id",
    "shown_text",
    "sent_text",
    "edit_distance",
    "ts",
)


def _newest_answers(conn: Any, filters: ReviewFilters, limit: int) -> list[dict[str, Any]]:
    """The newest accepts, edits and discards matching the filters, newest first.

    Read with one indexed-order query and a LIMIT rather than `FeedbackStore.iter_actions`,
    which streams every action of the period: a store holds millions.
    """
    where = [f"kind IN ({', '.join('?' for _ in ANSWER_KINDS)})"]
    params: list[Any] = list(ANSWER_KINDS)
    if filters.since is not None:
        where.append("ts >= ?")
        params.append(_day_start(filters.since))
    if filters.until is not None:
        where.append("ts < ?")
        params.append(_day_start(filters.until) + 86400.0)
    if filters.intent is not None:
        where.append("intent = ?")
        params.append(filters.intent)
    if filters.kind is not None:
        where.append("suggestion_kind = ?")
        params.append(filters.kind)
    if filters.queue is not None:
        where.append("queue = ?")
        params.append(filters.queue)
    if filters.source is not None:
        where.append("generated = ?")
        params.append(1 if filters.source == "generated" else 0)
    cursor = conn.execute(
        f"SELECT {', '.join(_ANSWER_COLUMNS)} FROM actions WHERE {' AND '.join(where)}"
        " ORDER BY id DESC LIMIT ?",
        [*params, limit],
    )
    rows = []
    for values in cursor:
        row = dict(zip(_ANSWER_COLUMNS, values, strict=True))
        row["ts"] = dt.datetime.fromtimestamp(row["ts"], dt.UTC).isoformat(timespec="seconds")
        rows.append(row)
    return rows


def _day_start(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()


def export_feedback(db_path: Path, out_path: Path, fmt: str, filters: ReviewFilters) -> int:
    """Blocking: write the actions matching every filter of the window to `out_path`.

    The day range, the intent, the suggestion kind, the queue and the source all apply: a team
    lead who exports what the window shows must not get every other intent's rows as well.

    Returns:
        How many actions were written.
    """
    from copilot.services.feedback_store import FeedbackStore

    with FeedbackStore(db_path) as store, out_path.open("w", encoding="utf-8", newline="") as out:
        return store.export(
            out,
            fmt=fmt,  # type: ignore[arg-type]
            since=filters.since,
            until=filters.until,
            intent=filters.intent,
            kind=filters.kind,  # type: ignore[arg-type]
            queue=filters.queue,
            source=filters.source,  # type: ignore[arg-type]
        )


# --- the view-model -------------------------------------------------------------------------


class ReviewViewModel(QObject):
    """State of the review window: filters, the last report, and its tables.

    Signals:
        sig_report_ready(dict): a new report was loaded (the `FeedbackStore.report` dict).
        sig_busy_changed(bool): a load is running.
        sig_failed(str): a readable message (load or export failed).
        sig_exported(str): a file was written (its path).
    """

    sig_report_ready = Signal(dict)
    sig_busy_changed = Signal(bool)
    sig_failed = Signal(str)
    sig_exported = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        db_path: Path,
        *,
        show_per_agent: bool = False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._db_path = Path(db_path)
        self._show_per_agent = show_per_agent
        self._filters = ReviewFilters()
        self._busy = False
        self.report: dict[str, Any] = {}
        self.intents: tuple[str, ...] = ()
        self.queues: tuple[str, ...] = ()
        self.by_intent = RecordTableModel((Column("intent", "Intent"), *RATE_COLUMNS), self)
        self.by_template = RecordTableModel(
            (Column("template_id", "Template"), *RATE_COLUMNS), self
        )
        self.by_article = RecordTableModel((Column("article_id", "Article"), *RATE_COLUMNS), self)
        self.most_discarded = RecordTableModel(
            (
                Column("item_id", "Item"),
                Column("kind", "Kind"),
                Column("discarded", "Discarded", _int, True),
                Column("shown", "Shown", _int, True),
                Column("discard_rate", "Rate", percent, True),
                Column("top_reason", "Main reason"),
            ),
            self,
        )
        self.discard_reasons = RecordTableModel(
            (Column("reason", "Reason"), Column("count", "Count", _int, True)), self
        )
        self.flag_precision = RecordTableModel(
            (
                Column("flag", "Flag / rule"),
                Column("shown", "Shown", _int, True),
                Column("wrong", "Marked wrong", _int, True),
                Column("precision", "Precision", percent, True),
            ),
            self,
        )
        self.actions = RecordTableModel(ACTION_COLUMNS, self)
        self.actions.set_hidden_columns(() if show_per_agent else ("agent_id",))

    # -- properties --------------------------------------------------------------------------

    @property
    def filters(self) -> ReviewFilters:
        return self._filters

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def show_per_agent(self) -> bool:
        return self._show_per_agent

    def item_models(self) -> tuple[RecordTableModel, ...]:
        return (
            self.by_intent,
            self.by_template,
            self.by_article,
            self.most_discarded,
            self.discard_reasons,
            self.flag_precision,
            self.actions,
        )

    # -- commands ----------------------------------------------------------------------------

    def set_show_per_agent(self, on: bool) -> None:
        """Follow ``settings.show_per_agent_figures``: hides the agent column when off."""
        self._show_per_agent = on
        self.actions.set_hidden_columns(() if on else ("agent_id",))

    def set_filters(
        self,
        *,
        since: dt.date | None = None,
        until: dt.date | None = None,
        intent: str | None = None,
        kind: str | None = None,
        queue: str | None = None,
        source: str | None = None,
    ) -> None:
        """Change the filters and reload the report."""
        if since and until and since > until:
            self.sig_failed.emit("The first day is after the last day.")
            return
        if kind not in (None, "template", "article"):
            raise ValueError(f"unknown suggestion kind {kind!r}")
        if source not in (None, "offline", "generated"):
            raise ValueError(f"unknown suggestion source {source!r}")
        self._filters = ReviewFilters(
            since=since,
            until=until,
            intent=intent or None,
            kind=kind,
            queue=queue or None,
            source=source,
        )
        self.refresh()

    def refresh(self) -> None:
        """Reload the report for the current filters on the db lane (latest request wins)."""
        self._set_busy(True)
        self._runner.run(
            DB,
            load_review,
            self._db_path,
            self._filters,
            on_success=self._loaded,
            on_failure=self._load_failed,
            generation_key=f"review:{id(self)}",
            description="Loading the feedback report",
        )

    def export(self, path: Path, fmt: str) -> None:
        """Write the actions matching every filter as ``csv`` or ``json``."""
        if fmt not in ("csv", "json"):
            raise ValueError(f"format must be csv or json, not {fmt!r}")
        target = Path(path)
        self._runner.run(
            DB,
            export_feedback,
            self._db_path,
            target,
            fmt,
            self._filters,
            on_success=lambda _count: self.sig_exported.emit(str(target)),
            on_failure=lambda exc: self.sig_failed.emit(
                failure_message(f"Exporting to {target.name}", exc)
            ),
            description="Exporting feedback",
        )

    # -- results -----------------------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.sig_busy_changed.emit(busy)

    def _loaded(self, result: dict[str, Any]) -> None:
        self._set_busy(False)
        report = result["report"]
        self.report = report
        self.intents = tuple(result["intents"])
        self.queues = tuple(result["queues"])
        self.by_intent.set_rows(report["by_intent"])
        self.by_template.set_rows(report["by_template"])
        self.by_article.set_rows(report["by_article"])
        self.most_discarded.set_rows(report["most_discarded"])
        self.discard_reasons.set_rows(
            [{"reason": k, "count": v} for k, v in report["discard_reasons"].items()]
        )
        self.flag_precision.set_rows(report["flag_precision"])
        self.actions.set_rows(result["actions"])
        self.sig_report_ready.emit(report)

    def _load_failed(self, error: BaseException) -> None:
        self._set_busy(False)
        self.sig_failed.emit(failure_message("Loading the feedback report", error))
