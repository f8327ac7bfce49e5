"""Load knowledge articles from the content pack: Markdown (YAML front matter), HTML, text, PDF.

A file that cannot be loaded becomes a `LoadFailure` with its path and a reason a knowledge manager
can act on; the rest still load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from markdown_it import MarkdownIt

from copilot.core.models import Article, ArticleStatus, LoadFailure, Section

SUPPORTED_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".txt", ".pdf")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_BYTES = 5 * 1024 * 1024


class ArticleError(ValueError):
    """A content file that is not a valid article; the message says why."""


@dataclass(frozen=True, slots=True)
class LoadedArticle:
    article: Article
    content_hash: str


@dataclass(slots=True)
class LoadResult:
    articles: list[LoadedArticle] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)

    def by_id(self) -> dict[str, LoadedArticle]:
        return {loaded.article.id: loaded for loaded in self.articles}


def iter_article_files(directory: Path) -> list[Path]:
    """Every supported file under `directory`, sorted, skipping hidden files and folders."""
    files = [
        path
        for path in directory.rglob("*")
        if path.is_file()
        and path.suffix.lower() in SUPPORTED_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]
    return sorted(files)


def load_articles(directory: Path) -> LoadResult:
    """Load every article under `directory`; broken files are reported, never fatal."""
    result = LoadResult()
    if not directory.is_dir():
        result.failures.append(LoadFailure(str(directory), "articles directory not found"))
        return result
    seen: dict[str, str] = {}
    for path in iter_article_files(directory):
        try:
            loaded = load_article(path)
        except ArticleError as exc:
            result.failures.append(LoadFailure(str(path), str(exc)))
            continue
        article_id = loaded.article.id
        if article_id in seen:
            result.failures.append(
                LoadFailure(
                    str(path), f"duplicate article id {article_id!r} (also in {seen[article_id]})"
                )
            )
            continue
        seen[article_id] = str(path)
        result.articles.append(loaded)
    return result


def load_article(path: Path) -> LoadedArticle:
    """Load one file. Raises `ArticleError` with a readable reason."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArticleError(f"cannot read file: {exc.strerror or exc}") from exc
    if len(raw) > _MAX_BYTES:
        raise ArticleError(f"file is larger than {_MAX_BYTES // (1024 * 1024)} MB")
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise ArticleError(f"unsupported file type {path.suffix!r}")
    article = loader(path, raw)
    return LoadedArticle(article=article, content_hash=hashlib.sha256(raw).hexdigest())


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArticleError(f"not valid UTF-8 text (byte {exc.start})") from exc


# --- metadata -------------------------------------------------------------------------------


def _as_date(value: Any, key: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ArticleError(f"{key}: {value!r} is not a date (expected YYYY-MM-DD)") from exc


def _as_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, Iterable):
        return tuple(str(t).strip() for t in value if str(t).strip())
    raise ArticleError("tags: must be a list or a comma-separated string")


def _build_article(
    meta: Mapping[str, Any], sections: list[Section], path: Path, fallback_title: str | None
) -> Article:
    article_id = str(meta.get("id") or "").strip()
    if not article_id:
        raise ArticleError("id: missing (every article needs a unique id)")
    if not _ID_PATTERN.match(article_id):
        raise ArticleError(f"id: {article_id!r} may only contain letters, digits, '.', '_' and '-'")
    title = str(meta.get("title") or fallback_title or "").strip()
    if not title:
        raise ArticleError("title: missing")
    status_raw = str(meta.get("status") or "published").strip().lower()
    try:
        status = ArticleStatus(status_raw)
    except ValueError as exc:
        allowed = ", ".join(s.value for s in ArticleStatus)
        raise ArticleError(f"status: {status_raw!r} is not one of {allowed}") from exc
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ArticleError("the article has no text")
    return Article(
        id=article_id,
        title=title,
        sections=tuple(sections),
        source_path=str(path),
        product=str(meta.get("product") or "").strip(),
        tags=_as_tags(meta.get("tags")),
        audience=str(meta.get("audience") or "").strip(),
        owner=str(meta.get("owner") or "").strip(),
        updated=_as_date(meta.get("updated"), "updated"),
        expires=_as_date(meta.get("expires"), "expires"),
        status=status,
    )


class _SectionBuilder:
    """Collects text under the current heading path."""

    def __init__(self, title: str | None = None) -> None:
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.buffer: list[str] = []
        self.title = title
        self.first_h1: str | None = None

    def heading(self, level: int, text: str) -> None:
        self.flush()
        text = " ".join(text.split())
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, text))

    def text(self, text: str) -> None:
        if text.strip():
            self.buffer.append(text.strip())

    def flush(self) -> None:
        if self.buffer:
            heading_path = tuple(h for _, h in self.path) or ((self.title or self.first_h1 or ""),)
            self.sections.append(Section(heading_path=heading_path, text="\n".join(self.buffer)))
            self.buffer = []

    def finish(self) -> list[Section]:
        self.flush()
        return self.sections


# --- Markdown -------------------------------------------------------------------------------

_md = MarkdownIt("commonmark", {"html": False}).enable("table")


def _load_markdown(path: Path, raw: bytes) -> Article:
    text = _decode(raw)
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ArticleError(f"front matter{where}: {problem}") from exc
    if not isinstance(post.metadata, Mapping) or not post.metadata:
        raise ArticleError("front matter: missing (expected a YAML block between --- lines)")
    builder = _SectionBuilder(title=str(post.metadata.get("title") or "") or None)
    tokens = _md.parse(post.content)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            level = int(token.tag[1])
            builder.heading(level, tokens[i + 1].content)
            i += 3
            continue
        if token.type == "inline":
            builder.text(_inline_text(token.content))
        elif token.type in ("fence", "code_block"):
            builder.text(token.content)
        i += 1
    sections = builder.finish()
    return _build_article(post.metadata, sections, path, builder.first_h1)


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def _inline_text(content: str) -> str:
    content = _MD_LINK.sub(r"\1", content)
    return _MD_EMPHASIS.sub(r"\2", content)


# --- HTML -----------------------------------------------------------------------------------

_BLOCK_TAGS = {"p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "div", "br", "tr"}
_SKIP_TAGS = {"script", "style", "nav", "footer", "header", "noscript", "template"}


class _ArticleHTMLParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self.builder = _SectionBuilder()
        self._skip = 0
        self._in_title = False
        self._heading_level: int | None = None
        self._heading_text: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = dict(attrs)
            name = (values.get("name") or "").lower()
            if name.startswith("kb-"):
                name = name[3:]
            if name and values.get("content") is not None:
                self.meta[name] = values["content"] or ""
        elif re.fullmatch(r"h[1-6]", tag):
            self._end_block()
            self._heading_level = int(tag[1])
            self._heading_text = []
        elif tag in _BLOCK_TAGS:
            self._end_block()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) and self._heading_level is not None:
            self.builder.heading(self._heading_level, "".join(self._heading_text))
            self._heading_level = None
        elif tag in _BLOCK_TAGS:
            self._end_block()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title += data
        elif self._heading_level is not None:
            self._heading_text.append(data)
        else:
            self._text.append(data)

    def _end_block(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.builder.text(text)
        self._text = []


def _load_html(path: Path, raw: bytes) -> Article:
    parser = _ArticleHTMLParser()
    try:
        parser.feed(_decode(raw))
        parser.close()
    except (ValueError, AssertionError) as exc:  # html.parser raises these on hopeless input
        raise ArticleError(f"HTML could not be parsed: {exc}") from exc
    parser._end_block()
    meta: dict[str, Any] = dict(parser.meta)
    meta.setdefault("title", html.unescape(parser.title).strip())
    meta.setdefault("id", path.stem.upper())
    parser.builder.title = meta.get("title") or None
    return _build_article(meta, parser.builder.finish(), path, parser.builder.first_h1)


# --- plain text -----------------------------------------------------------------------------

_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z_-]{1,20}):\s*(.*)$")
_KNOWN_KEYS = {
    "id",
    "title",
    "product",
    "tags",
    "audience",
    "owner",
    "updated",
    "expires",
    "status",
}


def _is_text_heading(line: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > 80:
        return False
    if stripped.endswith(":") and len(stripped.split()) <= 10:
        return True
    letters = [c for c in stripped if c.isalpha()]
    return len(letters) >= 3 and all(c.isupper() for c in letters)


def _load_text(path: Path, raw: bytes) -> Article:
    lines = _decode(raw).splitlines()
    meta: dict[str, Any] = {}
    body_start = 0
    for number, line in enumerate(lines):
        if not line.strip():
            body_start = number + 1
            break
        match = _HEADER_LINE.match(line)
        if not match or match.group(1).lower() not in _KNOWN_KEYS:
            body_start = number
            break
        meta[match.group(1).lower()] = match.group(2).strip()
    else:
        body_start = len(lines)
    meta.setdefault("id", path.stem.upper())
    builder = _SectionBuilder(title=meta.get("title"))
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            builder.text(" ".join(paragraph))
            paragraph.clear()

    for line in lines[body_start:]:
        if _is_text_heading(line):
            end_paragraph()
            builder.heading(2, line.strip().rstrip(":").strip())
        elif not line.strip():
            end_paragraph()
        elif line.lstrip().startswith(("-", "*", "•")):
            end_paragraph()
            paragraph.append(line.strip())
            end_paragraph()
        else:
            paragraph.append(line.strip())
    end_paragraph()
    first_line = next((ln.strip() for ln in lines[body_start:] if ln.strip()), None)
    return _build_article(meta, builder.finish(), path, first_line)


# --- PDF ------------------------------------------------------------------------------------


def _load_pdf(path: Path, raw: bytes) -> Article:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        info: Mapping[str, Any] = reader.metadata or {}
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ArticleError(f"PDF could not be read: {exc}") from exc
    meta: dict[str, Any] = {"id": path.stem.upper()}
    title = str(info.get("/Title") or "").strip()
    if title:
        meta["title"] = title
    # Extra metadata a PDF author can set in the document's keywords: "product=shop; tags=a,b".
    for part in str(info.get("/Keywords") or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in _KNOWN_KEYS and value.strip():
            meta[key.strip().lower()] = value.strip()
    builder = _SectionBuilder(title=meta.get("title"))
    paragraph: list[str] = []
    for line in "\n".join(pages).splitlines():
        if _is_text_heading(line):
            if paragraph:
                builder.text(" ".join(paragraph))
                paragraph = []
            builder.heading(2, line.strip().rstrip(":"))
        elif line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            builder.text(" ".join(paragraph))
            paragraph = []
    if paragraph:
        builder.text(" ".join(paragraph))
    first_line = next((ln.strip() for ln in "\n".join(pages).splitlines() if ln.strip()), None)
    if not any(p.strip() for p in pages):
        raise ArticleError("PDF has no extractable text (scanned image?)")
    return _build_article(meta, builder.finish(), path, first_line)


_LOADERS: dict[str, Callable[[Path, bytes], Article]] = {
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".txt": _load_text,
    ".pdf": _load_pdf,
}
