"""The segment stage: documents → paragraphs with their outline structure (heading_path).

Outline markers (一、 （一） 1. 1、 （1） ① 第一章 第一节 第一条) are recognised at line starts and,
in run-on lines (a scrape that flattened a paper onto one line), inside the text. An inline marker is
accepted only where the outline expects it — the next number of a marker type already open, or 1 of a
new, deeper type — and only after a sentence end or right after a heading, never inside quotes or
brackets; so 2015年, 1.5倍 and 第1页 never split a paragraph. A marker's level is its depth in the
document's own outline (the order in which marker types open), not a fixed table.

A numbered line whose first sentence is short is a run-in heading (`（三）坚持和健全民主集中制，增强党的
活力和团结统一。民主集中制是…`): the sentence is the heading, the rest its body. A speech's front matter
(title lines, `——在…上的报告`, `（2017年10月18日）`, the speaker) and its closing (from the salutation
`同志们！`/`各位代表！` after the last section) are their own kinds, `front_matter` and `closing`, so they
are neither body text of the first or last section nor counted in its themes.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING

from tqdm import tqdm

from pipeline import io
from pipeline.cache import ResultCache, cached_map, code_version, fingerprint
from pipeline.config import SegmentSettings
from pipeline.engines import Engine
from pipeline.text import CLOSERS, OPENERS, cn_number, cut_at_word_boundary, sentence_spans, word_starts

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("pipeline.segment")

_CN = "一二三四五六七八九十"
MARKERS: list[tuple[str, str]] = [  # (marker type, pattern whose group named after the type is the number)
    ("part", f"第(?P<part>[{_CN}百零〇]+)编[ \u3000]*"),
    ("chapter", f"第(?P<chapter>[{_CN}百零〇]+)章[ \u3000]*"),
    ("section", f"第(?P<section>[{_CN}百零〇]+)节[ \u3000]*"),
    ("article", f"第(?P<article>[{_CN}百零〇]+)条[ \u3000]*"),
    ("cn_dun", f"(?P<cn_dun>[{_CN}]{{1,3}})、"),
    ("cn_paren", f"[（(](?P<cn_paren>[{_CN}]{{1,3}})[）)]"),
    ("num_paren", r"[（(](?P<num_paren>\d{1,2})[）)]"),
    # an Arabic number is an outline item only before Chinese text or an opening bracket: "1.5",
    # "3、4" and "2. 5倍" are numbers
    ("num_dot", r"(?P<num_dot>\d{1,2})[.．](?![\d.．])\s*" + f"(?=[\u4e00-\u9fff{re.escape(OPENERS)}]|\\Z)"),
    ("num_dun", r"(?P<num_dun>\d{1,2})、" + f"(?=[\u4e00-\u9fff{re.escape(OPENERS)}]|\\Z)"),
    ("circled", "(?P<circled>[①-⑳])"),
]
# One pattern for all: alternatives are tried in the order above, the first that matches wins.
_MARKER = re.compile("|".join(pattern for _, pattern in MARKERS))
_MARKER_FIRST = frozenset(f"第（(0123456789{_CN}" + "".join(map(chr, range(ord("①"), ord("⑳") + 1))))
NOT_HEADINGS = {"article"}  # 第一条 opens a paragraph of a regulation, not a section
_SENTENCE_END = "。！？；：…" + CLOSERS
_HEADING_END = "。！？；：，"
# Words that open body text: where a heading ran straight into its body, the heading ends before the
# first of them that stands at a word boundary (jieba), at least 6 characters into the heading.
BODY_OPENERS = re.compile(
    "(经过|当前|目前|近年来|近些年来|长期以来|多年来|党的(?:十[八九]|二十)大以来|新时代以来|随着|面对|针对|"
    "对于|我们|一些|有的|少数|一是|首先|其中|同时|但是|然而|由于|因此|只有|作为|要|必须|应当|这是|对此)")
# A speech's salutation: it opens the speech proper (front matter stands before it) and, after the last
# section, opens the closing.
SALUTATION = re.compile("(?:同志们|各位代表|代表们|同志们、朋友们)[、，,！!：:]")
SUBTITLE = re.compile("^[—─-]{1,3}")  # ——在中国共产党第二十次全国代表大会上的报告
DATE_LINE = re.compile(r"[（(]?\d{4}年\d{1,2}月\d{1,2}日[）)]?")
FRONT_MATTER_LINES = 8  # front matter is looked for among a document's first lines only
FRONT_MATTER_CHARS = 80  # a title and its subtitle run together (1989年政府工作报告坚决贯彻…——1989年3月20日在…)
CLOSING_SERIES = "同志们"  # the salutation of a closing that spans several paragraphs (mark_closing)
CLOSING_SERIES_GAP = 3  # at most this many paragraphs from one of its salutations to the next
_NOT_IN_HEADER = re.compile("[。！？；]")
_SHORT_LABEL = re.compile("[^，。！？；：、]{1,20}")  # 结束语, 国务院总理李鹏: short, no punctuation
SALUTATION_WITHIN = 40  # a speaker's name and office run into the salutation are at most this long
KINDS = ("heading", "body", "front_matter", "closing")
DOCUMENT_COLUMNS = ["doc_id", "path", "text", "title", "date", "year", "doc_type", "source", "url", "extra"]
GROUP_DOCUMENTS = 500  # documents of one source file segmented and cached together, at most


def paragraph_schema():
    """paragraphs.parquet's columns. pandas and pyarrow are imported where tables are made, not with this
    module: `parse` makes none, and its start-up is part of its speed."""
    import pyarrow as pa

    return pa.schema([
        ("para_id", pa.string()), ("doc_id", pa.string()), ("order", pa.int64()), ("kind", pa.string()),
        ("level", pa.int64()), ("heading_path", pa.list_(pa.string())), ("text", pa.string()),
        ("n_chars", pa.int64()), ("title", pa.string()), ("date", pa.string()), ("year", pa.int64()),
        ("doc_type", pa.string()), ("source", pa.string()), ("url", pa.string()), ("extra", pa.string()),
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
    if pos >= len(text) or text[pos] not in _MARKER_FIRST:  # most lines: no regex at all
        return None
    m = _MARKER.match(text, pos)
    if m is None:
        return None
    return m.lastgroup, _number(m.lastgroup, m.group(m.lastgroup)), m.end()


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
        ch, prev = line[i], line[i - 1]
        if prev.isdigit() or prev in "第.．" or (ch in _CN and prev in _CN):
            continue
        marker = match_marker(line, i)
        if marker is None:
            continue
        while k < len(brackets) and brackets[k][0] < i:
            depth = depth + 1 if brackets[k][1] else max(depth - 1, 0)
            k += 1
        if not depth:
            found.append((i, *marker))
    return found


@dataclass
class Unit:
    kind: str  # one of KINDS
    level: int
    heading_path: list[str]
    text: str


def _split_heading(text: str, marker_end: int, inline: bool, settings: SegmentSettings,
                   body_follows: bool = False) -> int | None:
    """Where the heading of a numbered unit ends (index in `text`), or None if it is a plain paragraph.
    `body_follows`: the next line is unnumbered or opens a deeper level, so a numbered line of one short
    sentence heads it rather than being an item of a list."""
    rest = text[marker_end:]
    if not rest:
        return None
    if len(text) <= settings.heading_max_chars and not any(c in rest for c in "。！？"):
        return len(text)
    limit = settings.inline_heading_max_chars
    punct = next((i for i, ch in enumerate(rest[: limit + 1]) if ch in _HEADING_END), None)
    if punct is not None and rest[punct] in "。！？；：" and (punct + 1 < len(rest) or inline or body_follows):
        return marker_end + punct + 1  # "1.要坚决维护党中央权威。党中央…": the first sentence is the heading
    if not inline:
        # At a line start a first sentence with commas heads the rest of the line when it is as short
        # as an inline heading (a longer one opens a numbered paragraph: its gist must stay body text),
        # and heads the next lines when it is the whole line and no longer than a heading.
        end = next((i + 1 for i, ch in enumerate(rest[: settings.heading_max_chars - marker_end])
                    if ch in "。！？；："), None)
        if end is not None and (end <= limit + 1 < len(rest) or (end == len(rest) and body_follows)):
            return marker_end + end
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
                                                       distributions=("rjieba",)))

    def cache_key(self, documents: list[dict]) -> str:
        return fingerprint(self.version, documents)

    def units(self, text: str) -> Iterator[Unit]:
        """Headings and raw body pieces of a document, in order, with heading paths."""
        outline = Outline()
        lines = text.split("\n")
        for index, line in enumerate(lines):
            pieces = self._pieces(line, outline)
            following = lines[index + 1] if index + 1 < len(lines) else None
            for position, (marker, piece) in enumerate(pieces):
                if marker is None:
                    yield Unit("body", len(outline.stack), outline.path(), piece)
                    continue
                marker_type, number, marker_end, inline = marker
                body_follows = position + 1 < len(pieces) or _opens_body(following, outline, marker_type)
                end = None if marker_type in NOT_HEADINGS else _split_heading(
                    piece, marker_end, inline, self.settings, body_follows)
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
        """Front matter, then units with over-long bodies split at sentence ends and short fragments
        merged, the closing marked as such. Without `outline` (or for a headline: one short line) each
        line is a body paragraph of its own."""
        if not self.settings.outline or (len(text) <= self.settings.heading_max_chars and "\n" not in text):
            return self._split_long([Unit("body", 0, [], line) for line in text.split("\n")])
        front, body_lines = split_front_matter(text.split("\n"))
        units = mark_closing(list(self.units("\n".join(body_lines))) if body_lines else [])
        return ([Unit("front_matter", 0, [], line) for line in front]
                + merge_short(self._split_long(units), self.settings.min_chars, self.settings.max_chars))

    def _split_long(self, units: list[Unit]) -> list[Unit]:
        split: list[Unit] = []
        for unit in units:
            if unit.kind in MERGED_KINDS and len(unit.text) > self.settings.max_chars:
                split.extend(Unit(unit.kind, unit.level, unit.heading_path, chunk)
                             for chunk in chunk_sentences(unit.text, self.settings.max_chars))
            else:
                split.append(unit)
        return split


def _opens_body(line: str | None, outline: Outline, marker_type: str) -> bool:
    """Whether `line`, coming after an item of `marker_type`, is that item's body: unnumbered, or
    numbered at a level not open yet (deeper); a sibling or a shallower item means the item has none."""
    if line is None:
        return False
    marker = match_marker(line)
    if marker is None:
        return True
    return marker[0] != marker_type and all(item.marker_type != marker[0] for item in outline.stack)


def _header_like(line: str) -> bool:
    """A line that can be front matter: short, no sentence inside, no outline marker, no salutation."""
    return (len(line) <= FRONT_MATTER_CHARS and not _NOT_IN_HEADER.search(line) and match_marker(line) is None
            and not SALUTATION.search(line, 0, SALUTATION_WITHIN))


def split_front_matter(lines: list[str]) -> tuple[list[str], list[str]]:
    """(front matter lines, the rest). Front matter is the run of header-like lines a document opens
    with, when a salutation follows it (a speech: title, `——在…上的报告`, date, speaker, then `同志们：`;
    a speaker's name run into the salutation, `国务院总理李鹏各位代表：`, is split off) or, without a
    salutation, when the run holds a subtitle or a date line. Anything else opens with its body."""
    run = 0
    while run < min(len(lines) - 1, FRONT_MATTER_LINES) and _header_like(lines[run]):
        run += 1
    if run < len(lines):
        salutation = SALUTATION.search(lines[run], 0, SALUTATION_WITHIN)
        prefix = lines[run][:salutation.start()].strip() if salutation else ""
        if salutation and (run or prefix) and _SHORT_LABEL.fullmatch(prefix or "x"):
            return lines[:run] + ([prefix] if prefix else []), [lines[run][salutation.start():], *lines[run + 1:]]
    if any(SUBTITLE.match(line) or DATE_LINE.fullmatch(line) for line in lines[:run]):
        return lines[:run], lines[run:]
    return [], lines


def mark_closing(units: list[Unit]) -> list[Unit]:
    """`units` with the closing marked, to the end: it opens with the last salutation (`各位代表！…`)
    after the last top-level heading, in the document's last third, or with the series of `同志们！…`
    paragraphs that ends there (a party congress report closes with several, a few paragraphs apart;
    a government report addresses 各位代表！ at each unnumbered topic of its last part, so only its last
    one opens the closing); a short title before it (结束语) is part of it. A closing stands under no
    heading."""
    last_top = max((i for i, unit in enumerate(units) if unit.kind == "heading" and unit.level == 1), default=-1)
    first = max(last_top + 1, 1, len(units) * 2 // 3)
    openers = [i for i in range(first, len(units)) if units[i].kind == "body" and SALUTATION.match(units[i].text)]
    if not openers:
        return units
    start = openers.pop()
    while (openers and start - openers[-1] <= CLOSING_SERIES_GAP
           and units[start].text.startswith(CLOSING_SERIES) and units[openers[-1]].text.startswith(CLOSING_SERIES)):
        start = openers.pop()
    if start - 1 > last_top and units[start - 1].kind == "body" and _SHORT_LABEL.fullmatch(units[start - 1].text):
        start -= 1
    return units[:start] + [Unit("closing", 0, [], unit.text) for unit in units[start:]]


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


MERGED_KINDS = ("body", "closing")  # text that is split when long and merged when short


def merge_short(units: list[Unit], min_chars: int, max_chars: int) -> list[Unit]:
    """Merge body (or closing) fragments shorter than `min_chars` into the next unit of their kind under
    the same headings (or the previous one, for a document's last fragment)."""
    out: list[Unit] = []
    carry: Unit | None = None
    for unit in units:
        if unit.kind not in MERGED_KINDS:
            if carry:
                out.append(carry)
                carry = None
            out.append(unit)
            continue
        if (carry and carry.kind == unit.kind and carry.heading_path == unit.heading_path
                and len(carry.text) + len(unit.text) <= max_chars):
            unit = Unit(unit.kind, unit.level, unit.heading_path, carry.text + unit.text)
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
        if previous and previous.kind == carry.kind and previous.heading_path == carry.heading_path:
            out[-1] = Unit(carry.kind, previous.level, previous.heading_path, previous.text + carry.text)
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
            "url": document.get("url"), "extra": document.get("extra"),
        })
    return rows


def group_rows(documents: list[dict], segmenter: Segmenter) -> list[dict]:
    """The paragraph rows of a group of documents (`document_groups`), in order."""
    return [row for document in documents for row in paragraph_rows(document, segmenter)]


def document_groups(documents: Iterable[dict], size: int = GROUP_DOCUMENTS) -> Iterator[list[dict]]:
    """Consecutive documents of one source file (`path` before '#'; without a path, each document on
    its own), at most `size` together, cut at fixed counts from the file's first document. A group is
    the unit of work and of the cache: a refresh that adds a day's file computes that file's group,
    and two million headlines make a few thousand cache entries rather than two million."""
    group: list[dict] = []
    origin = None
    for document in documents:
        here = (document.get("path") or document["doc_id"]).split("#")[0]
        if group and (here != origin or len(group) == size):
            yield group
            group = []
        group.append(document)
        origin = here
    if group:
        yield group


def run(settings: SegmentSettings, documents_path: str = "data/interim/documents.parquet",
        out_path: str = "data/interim/paragraphs.parquet", engine: Engine | None = None,
        cache: ResultCache | None = None) -> int:
    """The DVC stage: segment every document, streaming batches of documents from parquet, on `engine`
    (default: this process); groups of documents unchanged since a cached run are not segmented again."""
    import pyarrow.parquet as pq

    segmenter = Segmenter(settings)
    started = time.perf_counter()
    source = pq.ParquetFile(documents_path)
    columns = [c for c in DOCUMENT_COLUMNS if c in source.schema_arrow.names]
    kinds = dict.fromkeys(KINDS, 0)

    def groups() -> Iterator[list[dict]]:
        return document_groups(doc for batch in source.iter_batches(batch_size=1024, columns=columns)
                               for doc in batch.to_pylist())

    rows_of = partial(group_rows, segmenter=segmenter)
    with io.ParquetStream(out_path, paragraph_schema()) as out, \
            tqdm(total=source.metadata.num_rows, desc="segment", unit="doc", disable=None) as bar:
        engine = engine or Engine(processes=settings.workers)
        for rows in cached_map(rows_of, groups, segmenter.cache_key, cache, engine, batch=1):
            for row in rows:
                kinds[row["kind"]] += 1
                out.write(row)
            bar.update(len({row["doc_id"] for row in rows}))
    log.info("segment: %d documents → %d paragraphs + %d headings, %d front-matter and %d closing paragraphs "
             "in %.1fs → %s", source.metadata.num_rows, kinds["body"], kinds["heading"], kinds["front_matter"],
             kinds["closing"], time.perf_counter() - started, out_path)
    return kinds["body"]


def paragraphs_frame(documents: list[dict], settings: SegmentSettings) -> pd.DataFrame:
    import pandas as pd

    segmenter = Segmenter(settings)
    rows = [row for document in documents for row in paragraph_rows(document, segmenter)]
    return pd.DataFrame(rows, columns=paragraph_schema().names)


