"""Load and validate the reply templates of a content pack (``knowledge/templates/*.yaml``).

A template file holds one area's templates::

    area: billing                       # optional; defaults to the file name
    templates:
      - id: billing.double_charge_check
        title: Check a reported double charge
        intents: [billing_double_charge]
        articles: [KB-BIL-001]          # optional: ids it is based on (cited with the reply)
        when: [frustration]             # optional: flag kinds that make it fit
        unless: [vulnerability_bereavement]  # optional: flag kinds that rule it out
        tone: empathetic                # optional: one of copilot.core.suggestions.TONES
        text: >-
          I'm sorry to see you've been charged twice, {customer_name}. ...

Slots are the names in `copilot.core.slots.SLOT_NAMES`. Every problem names the file, the
template id and the reason; a broken template is skipped and the rest still load (`strict=True`
raises `TemplateLibraryError` instead, for ``copilot`` commands and tests that check the pack).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from copilot.core.models import ArticleStatus
from copilot.core.protocols import Embedder
from copilot.core.slots import SLOT_NAMES, template_slots
from copilot.core.suggestions import (
    FLAG_ALIASES,
    FLAG_KINDS,
    FLAG_LEVELS,
    TONES,
    Citation,
    ReplyTemplate,
    TemplateLibrary,
    TemplateProblem,
)
from copilot.services import paths
from copilot.services.loaders import LoadResult, load_articles

__all__ = [
    "TEMPLATES_DIRNAME",
    "TemplateLibraryError",
    "load_template_library",
    "load_templates",
    "templates_dir",
]

TEMPLATES_DIRNAME = "templates"
INTENTS_FILE = "intents.yaml"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,79}$")
_INTENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELDS = frozenset({"id", "title", "text", "intents", "articles", "when", "unless", "tone"})
_MAX_TEXT = 2000


class TemplateLibraryError(ValueError):
    """The template pack has problems; ``str()`` lists each as "file: template id: reason"."""

    def __init__(self, problems: Collection[TemplateProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the reply templates:\n{lines}")


def templates_dir(content: Path) -> Path:
    return Path(content) / TEMPLATES_DIRNAME


class _ArticleInfo:
    __slots__ = ("audience", "expires", "status", "title")

    def __init__(
        self, title: str, status: ArticleStatus, expires: dt.date | None, audience: str
    ) -> None:
        self.title = title
        self.status = status
        self.expires = expires
        self.audience = audience


def _article_info(articles: LoadResult) -> dict[str, _ArticleInfo]:
    return {
        loaded.article.id: _ArticleInfo(
            loaded.article.title,
            loaded.article.status,
            loaded.article.expires,
            loaded.article.audience or "agent",
        )
        for loaded in articles.articles
    }


def _known_intents(content: Path) -> frozenset[str] | None:
    """Intent ids of the pack's taxonomy, or None when there is none (or it is unreadable).

    The taxonomy belongs to the intents loader; this only reads ids, tolerating the shapes a
    YAML taxonomy takes (``intents: [{id: ...}]``, a list, or a mapping keyed by id).
    """
    path = content / INTENTS_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if isinstance(data, Mapping) and "intents" in data:
        data = data["intents"]
    ids: set[str] = set()
    if isinstance(data, list):
        for item in data:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                ids.add(item["id"])
    elif isinstance(data, Mapping):
        ids.update(key for key in data if isinstance(key, str))
    return frozenset(ids) or None


def _str_list(value: Any, field_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"'{field_name}' must be a list of names")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _canonical_flag(condition: str) -> str:
    kind, colon, level = condition.partition(":")
    return FLAG_ALIASES.get(kind, kind) + colon + level


class _FileLoader:
    """Collects templates and problems across the files of one pack."""

    def __init__(
        self,
        articles: Mapping[str, _ArticleInfo],
        intents: frozenset[str] | None,
        today: dt.date,
    ) -> None:
        self.articles = articles
        self.intents = intents
        self.today = today
        self.templates: list[ReplyTemplate] = []
        self.problems: list[TemplateProblem] = []
        self.seen: dict[str, str] = {}

    def problem(self, path: Path, template_id: str, reason: str, *, skipped: bool = True) -> None:
        self.problems.append(TemplateProblem(str(path), template_id, reason, skipped))

    def load_file(self, path: Path) -> None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            self.problem(path, "", f"cannot read file: {exc.strerror or exc}")
            return
        except UnicodeDecodeError as exc:
            self.problem(path, "", f"not valid UTF-8 text (byte {exc.start})")
            return
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            self.problem(path, "", f"invalid YAML{where}: {getattr(exc, 'problem', exc)}")
            return
        area = path.stem
        if isinstance(data, Mapping):
            if isinstance(data.get("area"), str) and data["area"].strip():
                area = data["area"].strip()
            items = data.get("templates")
        else:
            items = data
        if not isinstance(items, list):
            self.problem(path, "", "expected a 'templates:' list")
            return
        for position, item in enumerate(items, start=1):
            self.load_item(path, area, position, item)

    def load_item(self, path: Path, area: str, position: int, item: Any) -> None:
        if not isinstance(item, Mapping):
            self.problem(path, f"#{position}", "each template must be a mapping with id and text")
            return
        template_id = item.get("id")
        if not isinstance(template_id, str) or not _ID_RE.match(template_id):
            self.problem(
                path,
                f"#{position}" if not isinstance(template_id, str) else template_id,
                "missing or invalid 'id' (lower-case letters, digits, '.', '_', '-')",
            )
            return
        if template_id in self.seen:
            self.problem(
                path, template_id, f"duplicate template id (also in {self.seen[template_id]})"
            )
            return
        try:
            template, advice = self.build(path, area, template_id, item)
        except ValueError as exc:
            self.problem(path, template_id, str(exc))
            return
        self.seen[template_id] = str(path)
        self.templates.append(template)
        for reason in advice:
            self.problem(path, template_id, reason, skipped=False)

    def build(
        self, path: Path, area: str, template_id: str, item: Mapping[str, Any]
    ) -> tuple[ReplyTemplate, list[str]]:
        unknown = sorted(str(key) for key in item if key not in _FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(unknown)} (expected {', '.join(sorted(_FIELDS))})"
            )
        title = item.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ValueError("missing 'title'")
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("missing 'text'")
        text = " ".join(text.split())
        if len(text) > _MAX_TEXT:
            raise ValueError(f"'text' is longer than {_MAX_TEXT} characters")
        slots = template_slots(text)  # ValueError on stray braces
        bad_slots = [name for name in slots if name not in SLOT_NAMES]
        if bad_slots:
            raise ValueError(
                f"unknown slot(s) {', '.join('{' + s + '}' for s in bad_slots)}"
                f" (known: {', '.join(sorted(SLOT_NAMES))})"
            )
        intents = _str_list(item.get("intents"), "intents")
        for intent in intents:
            if not _INTENT_RE.match(intent):
                raise ValueError(f"invalid intent id {intent!r}")
        when = tuple(_canonical_flag(c) for c in _str_list(item.get("when"), "when"))
        unless = tuple(_canonical_flag(c) for c in _str_list(item.get("unless"), "unless"))
        for condition in (*when, *unless):
            kind, colon, level = condition.partition(":")
            if kind not in FLAG_KINDS:
                raise ValueError(
                    f"unknown flag {kind!r} in when/unless (known: {', '.join(sorted(FLAG_KINDS))})"
                )
            if colon and (condition in unless or level not in FLAG_LEVELS):
                raise ValueError(
                    f"invalid flag condition {condition!r} (when: kind or kind:level with level"
                    f" one of {', '.join(FLAG_LEVELS)}; unless: kind only)"
                )
        tone = item.get("tone", "neutral")
        if tone not in TONES:
            raise ValueError(f"unknown tone {tone!r} (known: {', '.join(sorted(TONES))})")
        advice: list[str] = []
        citations: list[Citation] = []
        for article_id in _str_list(item.get("articles"), "articles"):
            info = self.articles.get(article_id)
            if info is None:
                raise ValueError(f"cites article {article_id} which does not exist")
            if info.status is not ArticleStatus.PUBLISHED:
                raise ValueError(f"cites article {article_id} which is {info.status.value}")
            if info.expires is not None and info.expires < self.today:
                advice.append(
                    f"cites article {article_id} which expired on {info.expires.isoformat()};"
                    " review the template"
                )
            citations.append(Citation(article_id, None, info.title))
        if self.intents is not None:
            unknown_intents = [i for i in intents if i not in self.intents]
            if unknown_intents:
                advice.append(
                    f"intent(s) {', '.join(unknown_intents)} not in {INTENTS_FILE}; the template"
                    " is only found by similarity and flags"
                )
        template = ReplyTemplate(
            id=template_id,
            title=" ".join(title.split()),
            text=text,
            intents=intents,
            when=when,
            unless=unless,
            citations=tuple(citations),
            tone=tone,
            area=area,
            source_path=str(path),
        )
        return template, advice


def load_templates(
    content_dir: Path,
    *,
    articles: LoadResult | None = None,
    today: dt.date | None = None,
) -> tuple[list[ReplyTemplate], list[TemplateProblem], dict[str, str]]:
    """Parse and validate every template file of a pack (no embedding).

    Args:
        content_dir: the content pack (templates in ``templates/``, articles in ``articles/``).
        articles: the pack's articles when already loaded (cited ids are checked against them).
        today: the date article expiry is judged against (default: today).

    Returns:
        The valid templates, the problems found, and article id -> audience.
    """
    content = Path(content_dir)
    if articles is None:
        articles = load_articles(paths.articles_dir(content))
    info = _article_info(articles)
    loader = _FileLoader(info, _known_intents(content), today or dt.date.today())
    directory = templates_dir(content)
    if not directory.is_dir():
        loader.problem(directory, "", "templates directory not found")
    else:
        files = sorted(
            p
            for p in directory.iterdir()
            if p.is_file() and p.suffix.lower() in (".yaml", ".yml") and not p.name.startswith(".")
        )
        for path in files:
            loader.load_file(path)
    audiences = {article_id: a.audience for article_id, a in info.items()}
    return loader.templates, loader.problems, audiences


def load_template_library(
    content_dir: Path,
    embedder: Embedder | None,
    *,
    strict: bool = False,
    articles: LoadResult | None = None,
    today: dt.date | None = None,
) -> TemplateLibrary:
    """Load the pack's reply templates and embed them once for `copilot.core.suggestions.suggest`.

    Args:
        content_dir: the content pack directory.
        embedder: embeds the templates (one batch); None leaves them without vectors, so they
            are ranked by intent and flags only.
        strict: raise on any problem instead of skipping the broken templates.
        articles: the pack's articles when already loaded.
        today: the date article expiry is judged against.

    Returns:
        The library; `TemplateLibrary.problems` lists what was skipped or needs review.

    Raises:
        TemplateLibraryError: with `strict`, when there is any problem.
    """
    templates, problems, audiences = load_templates(content_dir, articles=articles, today=today)
    if strict and problems:
        raise TemplateLibraryError(problems)
    return TemplateLibrary.build(
        templates, embedder, article_audiences=audiences, problems=problems
    )
