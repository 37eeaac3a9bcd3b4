"""What the archive readers (feeds.py, archives.py) share: matching a file to its `ingest.sources`
layout, HTML bodies to paragraph text, and one record's values to a document or a rejection.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from email.utils import parsedate_to_datetime
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import PurePath

from lxml import etree, html

from pipeline.config import DOCUMENT_FIELDS, SourceLayout
from pipeline.ingest.metadata import parse_date_value
from pipeline.ingest.readers import RawDocument, RejectedRecord

# Elements whose start and end break a paragraph; everything else is inline text.
BLOCK_TAGS = frozenset(
    "p div br h1 h2 h3 h4 h5 h6 li ul ol dl dt dd tr table thead tbody blockquote section article header "
    "footer aside nav pre hr figure figcaption center address main caption".split())
# Elements whose text is never article text.
DROPPED_TAGS = ("script", "style", "noscript", "template", "head", "title", "iframe", "object", "svg",
                "button", "select", "textarea", "form")
_HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?\s*>")
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")
# The HTML parser for untrusted bodies: no network, no comments or processing instructions, and the
# default size limits (no huge_tree). It is given UTF-8 bytes: lxml refuses a str that carries an
# encoding declaration (<?xml … encoding="utf-8"?> before XHTML).
_HTML_PARSER = html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, encoding="utf-8")


def path_matches(path: PurePath, pattern: str) -> bool:
    """Whether the end of `path` matches `pattern` folder by folder (`*`, `?`, `[..]` within a name;
    a `**` folder spans any number of folders): 'titles1/*.csv' matches '/a/b/titles1/1946-10.csv'."""
    parts, wanted = path.parts, [p for p in pattern.strip("/").split("/") if p]

    def match(i: int, j: int) -> bool:  # does wanted[j:] match parts[i:] exactly?
        if j == len(wanted):
            return i == len(parts)
        if wanted[j] == "**":
            return any(match(k, j + 1) for k in range(i, len(parts) + 1))
        return i < len(parts) and fnmatchcase(parts[i], wanted[j]) and match(i + 1, j + 1)

    return any(match(start, 0) for start in range(len(parts)))


def match_layout(path: PurePath, layouts: Iterable[SourceLayout]) -> SourceLayout | None:
    """The first layout whose glob matches the (absolute) path, or None."""
    return next((layout for layout in layouts if path_matches(path, layout.glob)), None)


@lru_cache(maxsize=32)
def _xpath(expression: str) -> etree.XPath:
    return etree.XPath(expression)


def html_to_text(markup: str, body_xpath: str = "") -> str:
    """The text of an HTML body, one paragraph per line: block elements (p, div, br, h1, li …) break
    paragraphs, whitespace inside a paragraph collapses as a browser shows it, scripts and styles go.
    With `body_xpath`, only the elements it selects (in document order) are read; where it selects
    nothing (another page layout) the whole body is, so no text is lost."""
    if not markup.strip():
        return ""
    try:
        root = html.document_fromstring(markup.encode("utf-8", "replace"), parser=_HTML_PARSER)
    except etree.ParserError:  # nothing but comments or whitespace
        return ""
    for element in root.iter(*DROPPED_TAGS):
        element.drop_tree()  # keeps its tail text
    selected = _xpath(body_xpath)(root) if body_xpath else []
    parts = [part for part in selected if isinstance(part, (etree._Element, str))] or [root]
    return "\n".join(_element_text(part) if isinstance(part, etree._Element) else str(part) for part in parts)


def _element_text(root) -> str:
    for element in root.iter():
        text = _HTML_SPACE.sub(" ", element.text) if element.text else ""
        tail = _HTML_SPACE.sub(" ", element.tail) if element.tail else ""
        if element.tag in BLOCK_TAGS:
            text, tail = "\n" + text, "\n" + tail
        element.text, element.tail = text or None, tail or None
    lines = (line.strip() for line in "".join(root.itertext()).split("\n"))
    return "\n".join(line for line in lines if line)


def body_text(body: str, layout: SourceLayout) -> str:
    """A record's body as paragraph text: HTML bodies through `html_to_text`, plain ones as they are."""
    is_html = layout.body_format == "html" or (layout.body_format == "auto" and _HTML_TAG.search(body))
    if is_html:
        return html_to_text(body, layout.body_xpath)
    return "\n".join(line.strip() for line in body.splitlines() if line.strip())


def iso_date(value: str | None) -> str | None:
    """An ISO date for a record's date: feeds write RFC 822 ('Wed, 06 May 2026 07:16:56 +0800': the
    date as written, in its own time zone); other forms are left to the ingest date rules."""
    if value is None or parse_date_value(value):
        return value
    try:
        moment: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return value
    return moment.date().isoformat()


def scalar_text(value) -> str | None:
    """A field value as text: strings stripped, numbers and booleans written out, containers as JSON."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None
    text = str(value).strip()
    return text or None


class DocumentMaker:
    """One record's values (field name → raw value, as `layout.fields` names them) → a RawDocument, or a
    RejectedRecord that says why: no body, a placeholder body, a body with no text once markup is gone."""

    def __init__(self, layout: SourceLayout, fmt: str, encoding: str | None = "utf-8"):
        self.layout, self.format, self.encoding = layout, fmt, encoding
        self.title_pattern = re.compile(layout.title_pattern) if layout.title_pattern else None
        self.placeholders = {p.strip() for p in layout.placeholders}
        self.min_chinese_chars = layout.min_chinese_chars if layout.min_chinese_chars >= 0 else None

    def make(self, values: dict, where: str, number: int, body_from: str) -> RawDocument | RejectedRecord:
        """`where` names the record (file#number); `body_from` says where the body was looked for."""
        body = values.pop("text", None)
        if body is None or (isinstance(body, str) and not body.strip()):
            return RejectedRecord(where, f"no body: {body_from} is missing or empty")
        if not isinstance(body, str):
            return RejectedRecord(where, f"no body: {body_from} holds a {type(body).__name__}, not text")
        text = body_text(body, self.layout)
        if not text:
            return RejectedRecord(where, f"no body: {body_from} holds no text once the markup is removed")
        if text.strip() in self.placeholders:
            return RejectedRecord(where, f"placeholder body '{text.strip()}' instead of an article "
                                         "(listed in this layout's placeholders)")
        fields = {name: scalar_text(value) for name, value in values.items()}
        title = fields.get("title")
        found = self.title_pattern.search(title) if title and self.title_pattern else None
        if found:  # e.g. [01版：要闻] 标题 → page, section, title
            fields.update({k: v.strip() for k, v in found.groupdict().items() if v and v.strip()})
        fields["date"] = iso_date(fields.get("date"))
        for name in ("source", "doc_type"):
            if getattr(self.layout, name):
                fields[name] = getattr(self.layout, name)
        known = {k: v for k, v in fields.items() if k in DOCUMENT_FIELDS and v is not None}
        extra = {k: v for k, v in sorted(fields.items()) if k not in DOCUMENT_FIELDS and v is not None}
        if extra:
            known["extra"] = extra
        return RawDocument(where, self.format, text, record=number, encoding=self.encoding, fields=known,
                           min_chinese_chars=self.min_chinese_chars, dedup=self.layout.dedup)
