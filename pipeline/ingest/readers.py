"""Readers: one function per format, each turning a file into raw documents or a rejection reason.

A reader raises `Rejected(reason)` for a file it cannot use; record files (.jsonl/.csv) yield a
`Rejected` per bad record and go on with the rest. Where a reader keeps a document but cannot be sure
it read all of it (or read it as written), it yields a `ReadWarning` beside it. Any other exception a
reader raises on a hostile file is a rejection too: one file never stops a run.
"""
from __future__ import annotations

import csv
import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import charset_normalizer
from lxml import etree

from pipeline.config import IngestSettings
from pipeline.ingest.normalize import count_cjk

TEXT_FORMATS = {".txt": "txt", ".md": "txt", ".text": "txt"}
FORMATS = {**TEXT_FORMATS, ".html": "html", ".htm": "html", ".docx": "docx", ".pdf": "pdf",
           ".jsonl": "records", ".csv": "records"}
LAYOUT_SUFFIXES = (".xml", ".rss", ".atom", ".json", ".ndjson")  # read only through an ingest.sources layout
_SENTENCE_END = ("。", "！", "？", "：", "；", "”", "」", "）", "…", "!", "?", ":", ";")


class Rejected(Exception):
    """A file or record that cannot be ingested; the message is the reason shown to the user."""


@dataclass
class RawDocument:
    path: str
    format: str
    text: str
    record: int = -1  # line/row number inside a record file, -1 for whole files
    encoding: str | None = None
    fields: dict = field(default_factory=dict)  # metadata the source itself carries
    min_chinese_chars: int | None = None  # an archive layout's own minimum (None: ingest.min_chinese_chars)
    dedup: str = "near"  # near | exact | same_date (see config.SourceLayout)


@dataclass
class RejectedRecord:
    path: str
    reason: str


@dataclass
class ReadWarning:
    """A document that was kept, but may be incomplete or not exactly as written; `message` says why."""

    path: str
    message: str


def read_source(path: Path, rel: str, settings: IngestSettings
                ) -> Iterator[RawDocument | RejectedRecord | ReadWarning]:
    """All raw documents of one file; a file-level problem becomes a single RejectedRecord."""
    fmt = FORMATS.get(path.suffix.lower())
    try:
        size = path.stat().st_size
        if size == 0:
            raise Rejected("empty file (0 bytes)")
        if size > settings.max_file_mb * 2**20:
            raise Rejected(f"file of {size / 2**20:.1f} MB exceeds ingest.max_file_mb={settings.max_file_mb}")
        from pipeline.ingest.archives import read_layout  # the archive readers import this module

        layout_items = read_layout(path, rel, settings)
        if layout_items is not None:
            yield from layout_items
        elif fmt == "records":
            yield from _read_records(path, rel, settings)
        elif fmt == "txt":
            text, encoding = decode_bytes(path.read_bytes())
            yield RawDocument(rel, "txt", text, encoding=encoding)
        elif fmt == "html":
            yield from _read_html(path, rel)
        elif fmt == "docx":
            yield from _read_docx(path, rel, settings)
        elif fmt == "pdf":
            yield _read_pdf(path, rel)
        else:
            layout_hint = (" (a feed or JSON dump? describe its layout under ingest.sources in params.yaml)"
                           if path.suffix.lower() in LAYOUT_SUFFIXES else "")
            raise Rejected(f"unsupported file type '{path.suffix}'{layout_hint}")
    except Rejected as err:
        yield RejectedRecord(rel, str(err))
    except (OSError, MemoryError) as err:
        yield RejectedRecord(rel, f"unreadable: {type(err).__name__}: {err}")
    except Exception as err:  # a parser's bug on a hostile file; documents read before it are kept
        yield RejectedRecord(rel, f"the {fmt or path.suffix} reader failed on this file ({type(err).__name__}: "
                                  f"{err}); what it read before failing was kept")


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode text bytes: UTF-8 (with or without BOM), else the detected GB18030/Big5/UTF-16 encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise Rejected("undecodable bytes (UTF-16 BOM but invalid UTF-16)") from None
    head = data[:65536]
    if b"\x00" in head:
        raise Rejected("binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    match = charset_normalizer.from_bytes(
        data[:200_000], cp_isolation=["gb18030", "big5", "utf_8"]).best()
    if match is None:
        raise Rejected("undecodable bytes: not UTF-8, GB18030 or Big5")
    encoding = "gb18030" if match.encoding in ("gb2312", "gbk", "gb18030") else match.encoding
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as err:
        raise Rejected(f"undecodable bytes as {encoding} at byte {err.start}") from None


def _field(record: dict, names: list[str]):
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return value
    return None


def _read_records(path: Path, rel: str, settings: IngestSettings
                  ) -> Iterator[RawDocument | RejectedRecord | ReadWarning]:
    names = settings.records
    if path.suffix.lower() == ".jsonl":
        rows = ((number, record, None) for number, record in _jsonl_rows(path))
    else:
        rows = _csv_rows(path)
    for number, record, warning in rows:
        where = f"{rel}#{number}"
        if warning:
            yield ReadWarning(where, warning)
        if isinstance(record, str):  # a parse error message
            yield RejectedRecord(where, record)
            continue
        text = _field(record, names.text)
        if not isinstance(text, str) or not text.strip():
            yield RejectedRecord(where, f"record has no text field (tried {names.text}; "
                                        "set ingest.records.text in params.yaml)")
            continue
        fields = {key: _field(record, getattr(names, key))
                  for key in ("title", "date", "year", "source", "doc_type", "url")}
        fields = {k: v for k, v in fields.items() if v is not None}
        taken = {name for key in ("text", *fields) for name in getattr(names, key)}
        extra = {key: value for key, value in sorted(record.items())  # congress, id …: carried, not dropped
                 if key not in taken and value not in (None, "", [], {})}
        yield RawDocument(where, "records", text, record=number, encoding="utf-8",
                          fields={**fields, "extra": extra} if extra else fields)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    """(line number, record, or why the line is no record); NaN and Infinity, which are not JSON but
    which Python and pandas write for a missing value, are read as missing (null)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8-sig"), parse_constant=lambda _: None)
            except UnicodeDecodeError as err:
                yield number, f"line is not valid UTF-8 (undecodable byte at column {err.start + 1})"
                continue
            except json.JSONDecodeError as err:
                yield number, f"malformed JSON line ({err.msg} at column {err.colno})"
                continue
            yield number, record if isinstance(record, dict) else "JSON line is not an object"


def _csv_rows(path: Path) -> Iterator[tuple[int, dict | str, str | None]]:
    """(line, record, warning) for each CSV record, `line` being where it starts and `record` a dict or
    why the line cannot be read. A quote that opens a field and never closes cleanly would swallow every
    row after it into that field (the strict parser notices it where the field ends): the line holding
    it is then read on its own, and reading resumes on the line after it."""
    text, _ = decode_bytes(path.read_bytes())
    csv.field_size_limit(2**31 - 1)
    lines = io.StringIO(text, newline="").readlines()  # split where the csv module splits: \n, \r\n, \r
    header: list[str] | None = None
    start = 0
    while start < len(lines):
        reader = csv.reader(map(lines.__getitem__, range(start, len(lines))), strict=True)
        consumed = 0  # lines of `reader` before the record being read
        try:
            for row in reader:
                first_line, consumed = start + consumed + 1, reader.line_num
                if not row:
                    continue
                if header is None:
                    header = row
                else:
                    yield first_line, *_csv_record(header, row)
            return
        except csv.Error as err:
            bad = start + consumed
            if header is None:
                raise Rejected(f"malformed CSV header (line {bad + 1}: {err})") from None
            yield bad + 1, *_csv_line_alone(lines[bad], header, str(err))
            start = bad + 1


def _csv_record(header: list[str], row: list[str]) -> tuple[dict, str | None]:
    if len(row) > len(header):
        return dict(zip(header, row)), (f"{len(row)} fields where the header has {len(header)}: the fields "
                                        "after the last column were not read (an unquoted comma?)")
    return dict(zip(header, row)), None


def _csv_line_alone(line: str, header: list[str], error: str) -> tuple[dict | str, str | None]:
    """A line whose quote broke the CSV, read on its own: quotes as CSV means them, else as plain
    characters, whichever gives as many fields as the header."""
    for quoting in (csv.QUOTE_MINIMAL, csv.QUOTE_NONE):
        try:
            row = next(csv.reader([line.rstrip("\r\n")], quoting=quoting), [])
        except csv.Error:
            continue
        if len(row) == len(header):
            return dict(zip(header, row)), (f"unbalanced quote ({error}): the line was read on its own as one "
                                            "row, so it did not swallow the rows after it; check its fields")
    return (f"unbalanced quote ({error}) and its fields cannot be told apart; the rows after it were read: "
            "fix the quoting of this line"), None


def _read_html(path: Path, rel: str) -> Iterator[RawDocument | ReadWarning]:
    import trafilatura

    html, encoding = decode_bytes(path.read_bytes())
    html = _OVERSIZE_ATTRIBUTE.sub(r'\1""', _DATA_URI.sub("data:,", html))
    tree = _parse_html(html)
    lost = _html_text_lost(html, tree)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = trafilatura.bare_extraction(tree, with_metadata=True, include_comments=False,
                                          include_tables=True) if tree is not None else None
    text = (doc.text if doc is not None else "") or ""
    if not text.strip():
        raise Rejected(lost or "no main text found in HTML (only scripts, navigation or boilerplate)")
    if lost:
        yield ReadWarning(rel, lost)
    title = doc.title
    lines = text.split("\n")
    if title and lines and lines[0].strip() == title.strip():
        text = "\n".join(lines[1:])  # the <h1> repeats the title
    fields = {"title": title, "date": doc.date, "source": doc.sitename}
    yield RawDocument(rel, "html", text, encoding=encoding, fields={k: v for k, v in fields.items() if v})


# Inline images (data:image/png;base64,…) hold no text, yet one of ~10 MB made libxml2 (at its default
# limits) drop the rest of a page; they are cut before parsing, as are other attribute values this long
# (serialised app state), which are data too.
_DATA_URI = re.compile(r"data:[^,\"'\s<>]{0,200},[^\"'\s<>()]{1024,}", re.IGNORECASE)
_OVERSIZE_ATTRIBUTE = re.compile(r"""(=\s*)(?:"[^"<>]{1000000,}"|'[^'<>]{1000000,}')""")
# What a browser never shows as text: comments, scripts, styles, the tags themselves.
_NOT_TEXT = re.compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>|<[^>]*>", re.DOTALL | re.IGNORECASE)


def _parse_html(html: str):
    """The page's tree, or None for a page with no elements. As trafilatura parses it, but without
    libxml2's default depth and text-size limits, whose silent stop lost every paragraph after a
    deeply nested layout (the limits guard against memory use, which the reader process bounds).
    Pages saved one after another in one file (a multi-page article) become one page: libxml2 leaves
    the later ones beside the root, where no extractor looks."""
    import lxml.html

    parser = lxml.html.HTMLParser(huge_tree=True, collect_ids=False, default_doctype=False, encoding="utf-8",
                                  remove_comments=True, remove_pis=True, no_network=True)
    try:
        tree = lxml.html.fromstring(html.encode("utf-8"), parser=parser)
    except etree.ParserError:  # nothing but whitespace or comments
        return None
    body = tree.find("body")
    for later in list(tree.itersiblings()):
        later_body = later.find("body")
        (tree if body is None else body).extend([later] if later_body is None else later_body)
    return tree


def _html_text_lost(html: str, tree) -> str | None:
    """Why the parsed page lacks text its source holds (an unclosed comment, markup that stopped the
    parser), or None when the tree holds all its Chinese characters."""
    in_source = count_cjk(_NOT_TEXT.sub(" ", html))
    in_tree = 0 if tree is None else count_cjk(
        "".join(tree.xpath(".//text()[not(ancestor::script) and not(ancestor::style)]")))
    missing = in_source - in_tree
    if missing <= max(10, in_source // 100):
        return None
    return (f"the HTML parser did not reach {missing:,} of the page's {in_source:,} Chinese characters "
            "(markup that hides the rest of the page, such as an unclosed <!-- comment); the document may "
            "be incomplete")


def _check_zip(path: Path, settings: IngestSettings) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise Rejected("corrupt docx (not a valid zip archive)") from None
    total = sum(info.file_size for info in infos)
    limit = settings.max_docx_uncompressed_mb * 2**20
    if total > limit:
        raise Rejected(f"docx unpacks to {total / 2**20:.0f} MB (zip bomb?); limit "
                       f"ingest.max_docx_uncompressed_mb={settings.max_docx_uncompressed_mb}")
    for info in infos:  # only large members: a small styles part may compress very well
        if info.compress_size and info.file_size > 2**20 and (
                info.file_size / info.compress_size > settings.max_docx_ratio):
            raise Rejected(f"docx member '{info.filename}' unpacks {info.file_size // info.compress_size}:1 "
                           f"({info.file_size / 2**20:.0f} MB from {info.compress_size / 2**10:.0f} KB; zip bomb?); "
                           f"limit ingest.max_docx_ratio={settings.max_docx_ratio:g}")


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _TBL, _TR, _TC = (_W + tag for tag in ("p", "tbl", "tr", "tc"))
_DOCX_NAMESPACES = {"w": _W[1:-1], "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006"}
_TITLE_STYLES = {"title", "heading 1"}
_RUN_CONTENT = etree.XPath(".//w:r[not(ancestor::mc:Fallback)]/*[self::w:t or self::w:tab or self::w:br or self::w:cr]",
                           namespaces=_DOCX_NAMESPACES)


def _read_docx(path: Path, rel: str, settings: IngestSettings) -> Iterator[RawDocument | ReadWarning]:
    """The body's paragraphs and tables in order, read from the XML itself: python-docx's table API
    stops on tables Word opens (a vertical merge in the first row, a non-numeric gridSpan), and its
    block API skips content controls (w:sdt). Each table row is one line, its cells joined by ' | '."""
    import docx

    _check_zip(path, settings)
    try:
        document = docx.Document(str(path))
    except Exception as err:  # python-docx raises many types for broken packages
        raise Rejected(f"corrupt docx ({type(err).__name__})") from None
    body = document.element.body
    if body is None:
        raise Rejected("corrupt docx (its main part has no w:body)")
    style_names = {style.get(_W + "styleId"): (name.get(_W + "val") or "").lower()
                   for style in document.styles.element.iter(_W + "style")
                   for name in style.iter(_W + "name")}
    lines, title = [], document.core_properties.title or None
    for block in _outermost(body, {_P, _TBL}):
        if block.tag == _TBL:
            for row in _outermost(block, {_TR}):
                cells = (_cell_text(cell) for cell in _outermost(row, {_TC}))
                lines.append(" | ".join(cell for cell in cells if cell))
            continue
        text = _paragraph_text(block)
        style = block.find(f"{_W}pPr/{_W}pStyle")
        if title is None and style is not None and style_names.get(style.get(_W + "val")) in _TITLE_STYLES:
            title = text.strip() or None
            continue
        lines.append(text)
    fields = {"title": title} if title else {}
    yield RawDocument(rel, "docx", "\n".join(lines), encoding=None, fields=fields)
    embedded = sum(1 for _ in body.iter(_W + "altChunk"))
    if embedded:
        yield ReadWarning(rel, f"{embedded} embedded document(s) (w:altChunk, e.g. pasted HTML) were not read: "
                               "open the file in Word and save it again to make their text part of it")


def _outermost(element, tags: set[str]):
    """The descendants of `element` with one of `tags` that lie in no other such descendant, in order."""
    for child in element.iterchildren():
        if child.tag in tags:
            yield child
        else:
            yield from _outermost(child, tags)


def _paragraph_text(paragraph) -> str:
    """Run text, tabs and line breaks, including tracked insertions and text boxes; not deleted text,
    nor the duplicate (mc:Fallback) copy of a text box."""
    return "".join(node.text or "" if node.tag == _W + "t" else "\t" if node.tag == _W + "tab" else "\n"
                   for node in _RUN_CONTENT(paragraph))


def _cell_text(cell) -> str:
    return "\n".join(_paragraph_text(p) for p in _outermost(cell, {_P})).strip()


def _read_pdf(path: Path, rel: str) -> RawDocument:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as err:
        raise Rejected(f"corrupt pdf ({err})") from None
    try:
        pages = [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    except pdfium.PdfiumError as err:
        raise Rejected(f"corrupt pdf page ({err})") from None
    finally:
        pdf.close()
    return RawDocument(rel, "pdf", "\n".join(pages), encoding=None)


def join_wrapped_lines(lines: list[str]) -> list[str]:
    """Undo PDF line wrapping: a line as wide as the page's text that does not end a sentence
    continues on the next line; shorter lines (headings, paragraph ends) stand alone."""
    if not lines:
        return lines
    widths = sorted(len(line) for line in lines)
    full_width = widths[int(0.9 * (len(widths) - 1))]
    out: list[str] = []
    wrapped = False
    for line in lines:
        if wrapped:
            out[-1] += line
        else:
            out.append(line)
        wrapped = len(line) >= 0.85 * full_width and not line.endswith(_SENTENCE_END)
    return out
