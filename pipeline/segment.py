"""The segment stage: documents → paragraphs with their outline structure (heading_path).

Outline markers (一、 （一） 1. 1、 （1） ① 第一章 第一节 第一条) are recognised at line starts and,
in run-on lines (a scrape that flattened a paper onto one line), inside the text. An inline marker is
accepted only where the outline expects it — the next number of a marker type already open, or 1 of a
new, deeper type — and only after a sentence end or right after a heading, never inside quotes or
brackets; so 2015年, 1.5倍 and 第1页 never split a paragraph. A marker's level is its depth in the
document's own outline (the order in which marker types open), not a fixed table.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property, partial

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from pipeline import io
from pipeline.cache import ResultCache, cached_map, code_version, fingerprint
from pipeline.config import SegmentSettings
from pipeline.engines import Engine
from pipeline.text import CLOSERS, OPENERS, cn_number, cut_at_word_boundary, sentence_spans, word_starts

log = logging.getLogger("pipeline.segment")

_CN = "一二三四五六七八九十"
MARKERS: list[tuple[str, re.Pattern]] = [  # (marker type, pattern with the number as group 1)
    ("part", re.compile(f"第([{_CN}百零〇]+)编[ \u3000]*")),
    ("chapter", re.compile(f"第([{_CN}百零〇]+)章[ \u3000]*")),
    ("section", re.compile(f"第([{_CN}百零〇]+)节[ \u3000]*")),
    ("article", re.compile(f"第([{_CN}百零〇]+)条[ \u3000]*")),
    ("cn_dun", re.compile(f"([{_CN}]{{1,3}})、")),
    ("cn_paren", re.compile(f"[（(]([{_CN}]{{1,3}})[）)]")),
    ("num_paren", re.compile(r"[（(](\d{1,2})[）)]")),
    ("num_dot", re.compile(r"(\d{1,2})[.．](?![\d.．])\s*")),
    ("num_dun", re.compile(r"(\d{1,2})、")),
    ("circled", re.compile("([①-⑳])")),
]
NOT_HEADINGS = {"article"}  # 第一条 opens a paragraph of a regulation, not a section
_SENTENCE_END = "。！？；：…" + CLOSERS
_HEADING_END = "。！？；：，"
# Words that open body text: where a heading ran straight into its body, the heading ends before the
# first of them that stands at a word boundary (jieba), at least 6 characters into the heading.
BODY_OPENERS = re.compile(
    "(经过|当前|目前|近年来|近些年来|长期以来|多年来|党的(?:十[八九]|二十)大以来|新时代以来|随着|面对|针对|"
    "对于|我们|一些|有的|少数|一是|首先|其中|同时|但是|然而|由于|因此|只有|作为|要|必须|应当|这是|对此)")
PARAGRAPH_SCHEMA = pa.schema([
    ("para_id", pa.string()), ("doc_id", pa.string()), ("order", pa.int64()), ("kind", pa.string()),
    ("level", pa.int64()), ("heading_path", pa.list_(pa.string())), ("text", pa.string()),
    ("n_chars", pa.int64()), ("title", pa.string()), ("date", pa.string()), ("year", pa.int64()),
    ("doc_type", pa.string()), ("source", pa.string()),
])


def _number(marker_type: str, raw: str) -> int:
    if marker_type == "circled":
        return ord(raw) - ord("①") + 1
    if raw.isdigit():
        return int(raw)
    try:
        return cn_number(raw.replace("百", "").replace("零", "").replace("〇", ""))
    except (KeyError, ValueError):
        return 0


def match_marker(text: str, pos: int = 0) -> tuple[str, int, int] | None:
    """(marker type, number, end) of an outline marker starting at `pos`, else None."""
    for marker_type, pattern in MARKERS:
        m = pattern.match(text, pos)
        if m:
            end = m.end()
            if marker_type in ("num_dot", "num_dun") and end < len(text) and not _is_cjk_or_open(text[end]):
                continue  # "1.5", "3、4" and "2. 5倍" are numbers, not outline items
            return marker_type, _number(marker_type, m.group(1)), end
    return None


def _is_cjk_or_open(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or ch in OPENERS


@dataclass
class _Open:
    marker_type: str
    number: int
    label: str | None  # the heading text, or None for a numbered paragraph that is no heading


@dataclass
class Outline:
    """The stack of open outline levels of one document."""

    stack: list[_Open] = field(default_factory=list)

    def expects(self, marker_type: str, number: int) -> bool:
        for item in self.stack:
            if item.marker_type == marker_type:
                return number == item.number + 1
        return number == 1

    def open(self, marker_type: str, number: int, label: str | None) -> int:
        """Open an item; return its level (1 = outermost)."""
        for i, item in enumerate(self.stack):
            if item.marker_type == marker_type:
                del self.stack[i:]
                break
        self.stack.append(_Open(marker_type, number, label))
        return len(self.stack)

    def path(self) -> list[str]:
        return [item.label for item in self.stack if item.label]


_CANDIDATE_START = re.compile(f"[（(①-⑳第0-9{_CN}]")
_BRACKET = re.compile(f"[{re.escape(OPENERS + CLOSERS)}]")


def _inline_candidates(line: str) -> list[tuple[int, str, int, int]]:
    """Positions where an outline marker could start inside a run-on line: not inside quotes, 《》 or
    brackets (depth counted from the brackets before the position; a marker's own （一） nets zero)."""
    brackets = [(m.start(), m.group(0) in OPENERS) for m in _BRACKET.finditer(line)]
    found, depth, k = [], 0, 0
    for m in _CANDIDATE_START.finditer(line, 1):
        i = m.start()
        while k < len(brackets) and brackets[k][0] < i:
            depth = depth + 1 if brackets[k][1] else max(depth - 1, 0)
            k += 1
        if depth:
            continue
        ch, prev = line[i], line[i - 1]
        if prev.isdigit() or prev in "第.．" or (ch in _CN and prev in _CN):
            continue
        marker = match_marker(line, i)
        if marker:
            found.append((i, *marker))
    return found


@dataclass
class Unit:
    kind: str  # "heading" or "body"
    level: int
    heading_path: list[str]
    text: str


def _split_heading(text: str, marker_end: int, inline: bool, settings: SegmentSettings) -> int | None:
    """Where the heading of a numbered unit ends (index in `text`), or None if it is a plain paragraph."""
    rest = text[marker_end:]
    if not rest:
        return None
    if len(text) <= settings.heading_max_chars and not any(c in rest for c in "。！？"):
        return len(text)
    limit = settings.inline_heading_max_chars
    punct = next((i for i, ch in enumerate(rest[: limit + 1]) if ch in _HEADING_END), None)
    if punct is not None and rest[punct] in "。！？；：":
        return marker_end + punct + 1  # "1.要坚决维护党中央权威。党中央…": the first sentence is the heading
    if not inline:
        return None
    opener = _body_opener(rest, 6, punct if punct is not None else limit)
    if opener is not None:
        return marker_end + opener
    if punct is not None:
        return marker_end + punct
    return marker_end + cut_at_word_boundary(rest, limit)


def _body_opener(text: str, first: int, last: int) -> int | None:
    """Start of the first body-opening word in text[first:last] that begins a jieba word."""
    starts = None
    for m in BODY_OPENERS.finditer(text, first, last + 2):
        if m.start() > last:
            break
        if starts is None:
            starts = word_starts(text[: last + 8])
        if m.start() in starts:
            return m.start()
    return None


class Segmenter:
    def __init__(self, settings: SegmentSettings):
        self.settings = settings

    @cached_property
    def version(self) -> str:
        """Everything a document's paragraphs depend on besides the document: settings and code."""
        return fingerprint(self.settings, code_version(["pipeline.segment", "pipeline.text"],
                                                       distributions=("jieba", "spacy")))

    def cache_key(self, document: dict) -> str:
        return fingerprint(self.version, document)

    def units(self, text: str) -> Iterator[Unit]:
        """Headings and raw body pieces of a document, in order, with heading paths."""
        outline = Outline()
        for line in text.split("\n"):
            pieces = self._pieces(line, outline)
            for marker, piece in pieces:
                if marker is None:
                    yield Unit("body", len(outline.stack), outline.path(), piece)
                    continue
                marker_type, number, marker_end, inline = marker
                end = None if marker_type in NOT_HEADINGS else _split_heading(
                    piece, marker_end, inline, self.settings)
                if end is None:
                    level = outline.open(marker_type, number, None)
                    yield Unit("body", level, outline.path(), piece)
                    continue
                heading = piece[:end].rstrip("。；：，")
                level = outline.open(marker_type, number, heading)
                yield Unit("heading", level, outline.path()[:-1], heading)
                body = piece[end:].lstrip("，、；： ")
                if body:
                    yield Unit("body", level, outline.path(), body)

    def _pieces(self, line: str, outline: Outline):
        """Split a line at accepted markers: [(marker or None, text)], updating expectations as it goes."""
        start_marker = match_marker(line)
        cuts: list[tuple[int, tuple | None]] = []
        if start_marker:
            cuts.append((0, (*start_marker, False)))
        else:
            cuts.append((0, None))
        if len(line) > self.settings.run_on_line_chars:
            shadow = Outline(list(outline.stack))  # simulate acceptance to check sequence numbers
            if start_marker:
                shadow.open(start_marker[0], start_marker[1], "x")
            last_marker_at = 0 if start_marker else None
            for pos, marker_type, number, end in _inline_candidates(line):
                if pos < cuts[-1][0] + 2 or not shadow.expects(marker_type, number):
                    continue
                after_sentence = line[pos - 1] in _SENTENCE_END
                after_heading = (last_marker_at is not None
                                 and pos - last_marker_at <= self.settings.inline_heading_max_chars + 6)
                if not (after_sentence or after_heading or marker_type == "cn_paren"):
                    continue
                shadow.open(marker_type, number, "x")
                cuts.append((pos, (marker_type, number, end - pos, True)))
                last_marker_at = pos
        pieces = []
        for i, (pos, marker) in enumerate(cuts):
            stop = cuts[i + 1][0] if i + 1 < len(cuts) else len(line)
            piece = line[pos:stop].strip()
            if piece:
                pieces.append((marker, piece))
        return pieces

    def paragraphs(self, text: str) -> list[Unit]:
        """Units with over-long bodies split at sentence ends and short fragments merged."""
        split: list[Unit] = []
        for unit in self.units(text):
            if unit.kind == "body" and len(unit.text) > self.settings.max_chars:
                split.extend(Unit("body", unit.level, unit.heading_path, chunk)
                             for chunk in chunk_sentences(unit.text, self.settings.max_chars))
            else:
                split.append(unit)
        return merge_short(split, self.settings.min_chars, self.settings.max_chars)


def chunk_sentences(text: str, max_chars: int) -> list[str]:
    """Pack whole sentences into chunks of at most `max_chars` (a longer sentence is cut at a comma)."""
    chunks, current = [], ""
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        while len(sentence) > max_chars:
            cut = sentence.rfind("，", 0, max_chars) + 1 or max_chars
            sentence, rest = sentence[cut:], sentence[:cut]
            if current:
                chunks.append(current)
                current = ""
            chunks.append(rest)
        if current and len(current) + len(sentence) > max_chars:
            chunks.append(current)
            current = ""
        current += sentence
    if current:
        chunks.append(current)
    return [c.strip() for c in chunks if c.strip()]


def merge_short(units: list[Unit], min_chars: int, max_chars: int) -> list[Unit]:
    """Merge body fragments shorter than `min_chars` into the next body unit under the same headings
    (or the previous one, for a document's last fragment)."""
    out: list[Unit] = []
    carry: Unit | None = None
    for unit in units:
        if unit.kind != "body":
            if carry:
                out.append(carry)
                carry = None
            out.append(unit)
            continue
        if carry and carry.heading_path == unit.heading_path and len(carry.text) + len(unit.text) <= max_chars:
            unit = Unit("body", unit.level, unit.heading_path, carry.text + unit.text)
            carry = None
        elif carry:
            out.append(carry)
            carry = None
        if len(unit.text) < min_chars:
            carry = unit
        else:
            out.append(unit)
    if carry:
        previous = out[-1] if out else None
        if previous and previous.kind == "body" and previous.heading_path == carry.heading_path:
            out[-1] = Unit("body", previous.level, previous.heading_path, previous.text + carry.text)
        else:
            out.append(carry)
    return out


def paragraph_rows(document: dict, segmenter: Segmenter) -> list[dict]:
    """The paragraph rows of one document; para_id = doc_id + hash of the text (+ repeat count)."""
    rows, seen = [], {}
    for order, unit in enumerate(segmenter.paragraphs(document["text"])):
        digest = hashlib.sha1(unit.text.encode("utf-8")).hexdigest()[:10]
        seen[digest] = seen.get(digest, 0) + 1
        suffix = "" if seen[digest] == 1 else f"-{seen[digest]}"
        rows.append({
            "para_id": f"{document['doc_id']}-{digest}{suffix}", "doc_id": document["doc_id"],
            "order": order, "kind": unit.kind, "level": unit.level, "heading_path": unit.heading_path,
            "text": unit.text, "n_chars": len(unit.text), "title": document.get("title"),
            "date": document.get("date"), "year": document.get("year"),
            "doc_type": document.get("doc_type"), "source": document.get("source"),
        })
    return rows


def run(settings: SegmentSettings, documents_path: str = "data/interim/documents.parquet",
        out_path: str = "data/interim/paragraphs.parquet", engine: Engine | None = None,
        cache: ResultCache | None = None) -> int:
    """The DVC stage: segment every document, streaming batches of documents from parquet, on `engine`
    (default: this process); documents unchanged since a cached run are not segmented again."""
    import pyarrow.parquet as pq

    segmenter = Segmenter(settings)
    started = time.perf_counter()
    source = pq.ParquetFile(documents_path)
    columns = ["doc_id", "text", "title", "date", "year", "doc_type", "source"]
    kinds = {"heading": 0, "body": 0}

    def documents() -> Iterator[dict]:
        for batch in source.iter_batches(batch_size=256, columns=columns):
            yield from batch.to_pylist()

    rows_of = partial(paragraph_rows, segmenter=segmenter)
    with io.ParquetStream(out_path, PARAGRAPH_SCHEMA) as out, \
            tqdm(total=source.metadata.num_rows, desc="segment", unit="doc", disable=None) as bar:
        engine = engine or Engine(processes=settings.workers)
        for rows in cached_map(rows_of, documents, segmenter.cache_key, cache, engine, batch=16):
            for row in rows:
                kinds[row["kind"]] += 1
                out.write(row)
            bar.update(1)
    log.info("segment: %d documents → %d paragraphs + %d headings in %.1fs → %s",
             source.metadata.num_rows, kinds["body"], kinds["heading"], time.perf_counter() - started,
             out_path)
    return kinds["body"]


def paragraphs_frame(documents: list[dict], settings: SegmentSettings) -> pd.DataFrame:
    segmenter = Segmenter(settings)
    rows = [row for document in documents for row in paragraph_rows(document, segmenter)]
    return pd.DataFrame(rows, columns=PARAGRAPH_SCHEMA.names)


