"""Loading articles from Markdown, HTML, text and PDF; broken files are reported and skipped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from copilot.core.models import ArticleStatus
from copilot.services.loaders import ArticleError, load_article, load_articles

MARKDOWN = """---
id: KB-T-001
title: Double charge on a card
product: account
tags: [billing, double-charge]
audience: agent
owner: billing-team
updated: 2026-09-14
expires: 2027-09-30
status: published
---
# Double charge on a card

Intro line about duplicates.

## Check the payment history
Look for **two payments** of the same amount on the same day. See [the guide](http://x).

### Direct Debit
The Direct Debit Guarantee applies.

## Refund
Refunds take 3-5 working days.
"""


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_markdown_front_matter_and_heading_paths(tmp_path: Path) -> None:
    article = load_article(write(tmp_path, "a.md", MARKDOWN)).article
    assert article.id == "KB-T-001"
    assert article.title == "Double charge on a card"
    assert article.tags == ("billing", "double-charge")
    assert article.expires == dt.date(2027, 9, 30)
    assert article.status is ArticleStatus.PUBLISHED
    paths = [s.heading_path for s in article.sections]
    assert paths == [
        ("Double charge on a card",),
        ("Double charge on a card", "Check the payment history"),
        ("Double charge on a card", "Check the payment history", "Direct Debit"),
        ("Double charge on a card", "Refund"),
    ]
    # Markdown syntax is stripped from the text that gets indexed.
    assert "Look for two payments" in article.sections[1].text
    assert "**" not in article.body and "http://x" not in article.body


def test_html_article_reads_meta_and_headings(tmp_path: Path) -> None:
    html = """<!doctype html><html><head><title>Hub 3 lights</title>
    <meta name="kb-id" content="KB-TEC-900"><meta name="product" content="broadband">
    <meta name="tags" content="router, lights"><meta name="status" content="published">
    <script>var x = "do not index";</script></head>
    <body><h1>Hub 3 lights</h1><p>What each light means.</p>
    <h2>Red light</h2><ul><li>Restart the hub.</li><li>Check the cable &amp; filter.</li></ul>
    </body></html>"""
    article = load_article(write(tmp_path, "kb.html", html)).article
    assert article.id == "KB-TEC-900"
    assert article.product == "broadband"
    assert article.tags == ("router", "lights")
    assert ("Hub 3 lights", "Red light") in [s.heading_path for s in article.sections]
    assert "Check the cable & filter." in article.body
    assert "do not index" not in article.body


def test_text_article_with_header_lines(tmp_path: Path) -> None:
    text = (
        "id: KB-TXT-1\ntitle: Porting your number\nproduct: mobile\nstatus: published\n\n"
        "You can keep your number when you leave.\n\nHOW TO GET A PAC\n"
        "Text PAC to 65075.\nThe code is valid for 30 days.\n\nFees:\nThere is no fee.\n"
    )
    article = load_article(write(tmp_path, "kb.txt", text)).article
    assert article.id == "KB-TXT-1"
    assert article.product == "mobile"
    headings = [s.heading_path[-1] for s in article.sections]
    assert headings == ["Porting your number", "HOW TO GET A PAC", "Fees"]
    assert "Text PAC to 65075. The code is valid for 30 days." in article.body


def test_pdf_article(tmp_path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = tmp_path / "kb-pdf-001.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle("Engineer visit checklist")
    pdf.setKeywords("product=broadband; status=published")
    y = 800
    for line in ["Engineer visit checklist", "", "BEFORE THE VISIT", "Confirm the slot by text."]:
        pdf.drawString(72, y, line)
        y -= 20
    pdf.save()
    article = load_article(path).article
    assert article.id == "KB-PDF-001"
    assert article.title == "Engineer visit checklist"
    assert article.product == "broadband"
    assert "Confirm the slot by text." in article.body


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad-yaml.md", "---\nid: [oops\n---\nbody text here\n", "front matter at line"),
        ("no-id.md", "---\ntitle: T\n---\nbody text here\n", "id: missing"),
        ("bad-date.md", "---\nid: X\ntitle: T\nexpires: soon\n---\nbody\n", "expires: 'soon'"),
        ("bad-status.md", "---\nid: X\ntitle: T\nstatus: live\n---\nbody\n", "status: 'live'"),
        ("empty.md", "---\nid: X\ntitle: T\n---\n\n", "no text"),
        ("no-fm.md", "just text", "front matter: missing"),
        ("binary.md", b"\xff\xfe\x00garbage", "not valid UTF-8"),
        ("broken.pdf", b"%PDF-1.4 this is not a pdf", "PDF"),
    ],
)
def test_broken_files_give_a_reason(
    tmp_path: Path, name: str, content: str | bytes, reason: str
) -> None:
    with pytest.raises(ArticleError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        load_article(write(tmp_path, name, content))


def test_directory_load_skips_broken_and_duplicate_files(tmp_path: Path) -> None:
    write(tmp_path, "good.md", MARKDOWN)
    write(tmp_path, "dupe.md", MARKDOWN)
    write(tmp_path, "broken.md", "---\nid: [\n---\nx\n")
    write(tmp_path, "notes.docx", "ignored: unsupported suffix")
    (tmp_path / ".hidden").mkdir()
    write(tmp_path / ".hidden", "x.md", MARKDOWN)
    result = load_articles(tmp_path)
    assert [la.article.id for la in result.articles] == ["KB-T-001"]
    reasons = {Path(f.path).name: f.reason for f in result.failures}
    assert set(reasons) == {"broken.md", "good.md"} or set(reasons) == {"broken.md", "dupe.md"}
    assert any("duplicate article id" in r for r in reasons.values())


def test_sample_pack_loads_without_failures(sample_content: Path) -> None:
    result = load_articles(sample_content / "articles")
    assert result.failures == []
    assert len(result.articles) >= 60
    statuses = {la.article.status for la in result.articles}
    assert statuses == {ArticleStatus.PUBLISHED, ArticleStatus.ARCHIVED, ArticleStatus.DRAFT}
    today = dt.date(2026, 11, 23)
    expired = [la for la in result.articles if la.article.expires and la.article.expires < today]
    assert len(expired) >= 3
