"""Keyword in context (KWIC): every match of a pattern in the corpus, with the text around it and where
it stands (document, date, title, heading path), in date order.

`kwic_lines(paragraphs, pattern, width)` is shared by `python -m pipeline kwic`, the report's search and
the notebooks. A pattern is a regular expression, or literal variants joined by `variants_pattern`
(longest first, so that 中央八项规定 is matched whole, not as 八项规定 inside it).
"""
from __future__ import annotations

import logging
import re
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from pipeline import io

log = logging.getLogger("pipeline.kwic")

PARAGRAPHS = "data/interim/paragraphs.parquet"
# Columns of a KWIC table, in this order; doc_type, source and year follow when the input has them.
LINE_COLUMNS = ["date", "title", "heading_path", "left", "match", "right", "doc_id", "para_id", "offset"]
OPTIONAL_COLUMNS = ["year", "doc_type", "source"]
_LINE_BREAKS = re.compile(r"[\r\n\t]")


def variants_pattern(variants: Iterable[str]) -> str:
    """A regex matching any of the literal `variants`, the longest first (so a longer variant that
    contains a shorter one is matched whole)."""
    unique = sorted({v.strip() for v in variants if v and v.strip()}, key=lambda v: (-len(v), v))
    if not unique:
        raise ValueError("no variant to search for: give at least one non-empty variant")
    return "|".join(re.escape(v) for v in unique)


def compile_pattern(pattern: str | re.Pattern) -> re.Pattern:
    if isinstance(pattern, re.Pattern):
        return pattern
    if not pattern:
        raise ValueError("empty pattern: give a regular expression or --variants")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"'{pattern}' is not a regular expression ({err}); escape special characters "
                         r"(\( \[ \.) or give literal strings with --variants") from None


def kwic_lines(paragraphs: pd.DataFrame, pattern: str | re.Pattern, width: int = 20) -> pd.DataFrame:
    """One row per match of `pattern` in `paragraphs` (needs `text`; uses doc_id, para_id, title, date,
    year, heading_path, order when present): `width` characters of left and right context (line breaks
    as spaces), the match, and its character `offset` in the paragraph. Sorted by date (year when
    there is no date; undated last), then document, paragraph order and offset; empty matches skipped."""
    if width < 0:
        raise ValueError(f"context width {width} is negative: give 0 or more characters")
    regex = compile_pattern(pattern)
    texts = paragraphs["text"].to_numpy() if "text" in paragraphs else np.array([], dtype=object)
    rows, starts, ends = [], [], []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            continue
        for found in regex.finditer(text):
            if found.end() > found.start():
                rows.append(i)
                starts.append(found.start())
                ends.append(found.end())
    source = paragraphs.iloc[rows].reset_index(drop=True)
    lines = pd.DataFrame({column: source[column] if column in source else pd.Series([None] * len(rows),
                                                                                     dtype=object)
                          for column in ["date", "title", "heading_path", "doc_id", "para_id"]})
    context = [(_flat(t[max(0, s - width):s]), t[s:e], _flat(t[e:e + width]))
               for t, s, e in zip(texts[rows], starts, ends)]
    lines["left"] = [c[0] for c in context]
    lines["match"] = [c[1] for c in context]
    lines["right"] = [c[2] for c in context]
    lines["offset"] = np.array(starts, dtype=np.int64)
    lines["heading_path"] = lines["heading_path"].map(_heading_list)
    extra = [c for c in OPTIONAL_COLUMNS if c in source]
    for column in extra:
        lines[column] = source[column]
    order = pd.DataFrame({
        "when": _when(lines["date"], source["year"] if "year" in source else None),
        "doc": lines["doc_id"].astype("string"),
        "order": pd.to_numeric(source["order"], errors="coerce") if "order" in source else np.nan,
        "row": rows, "offset": starts})
    ranked = order.sort_values(list(order.columns), na_position="last", kind="stable").index
    return lines.loc[ranked, LINE_COLUMNS + extra].reset_index(drop=True)


def _flat(context: str) -> str:
    return _LINE_BREAKS.sub(" ", context)


def _heading_list(value) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    return [] if value is None or (np.ndim(value) == 0 and pd.isna(value)) else [str(value)]


def _when(date: pd.Series, year: pd.Series | None) -> pd.Series:
    """A sortable time per row: the ISO date as written ('2019', '2019-08', '2019-08-03' sort in time
    order), else the year, else missing."""
    when = date.astype("string").str.strip().replace("", pd.NA)
    if year is not None:
        years = pd.to_numeric(year, errors="coerce").astype("Int64").astype("string")
        when = when.fillna(years)
    return when


# ---------------------------------------------------------------------------------- input, output

def read_paragraphs(path: str | Path = PARAGRAPHS) -> pd.DataFrame:
    """Paragraphs from paragraphs.parquet, or JSON lines as `parse` and `classify` write them (records
    without a text are skipped, counted in one warning; `id` stands in for a missing `para_id`)."""
    path = Path(path)
    if not path.is_file():
        hint = "run `dvc repro segment` first, or " if str(path) == PARAGRAPHS else ""
        raise FileNotFoundError(f"{path} does not exist: {hint}give paragraphs with --input "
                                "(paragraphs.parquet, or JSON lines from `python -m pipeline parse`)")
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise ValueError(f"{path}: cannot read {path.suffix or 'a file without suffix'}; give a .parquet "
                         "(data/interim/paragraphs.parquet) or .jsonl (parse / classify output) file")
    records, skipped = [], 0
    for _, record in io.read_jsonl(path):
        if not isinstance(record.get("text"), str):
            skipped += 1
            continue
        record.setdefault("para_id", record.get("id"))
        records.append(record)
    if skipped:
        log.warning("%s: %d record(s) without a 'text' string skipped", path, skipped)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame({"text": pd.Series(dtype=object)})


def display_width(text: str) -> int:
    """Terminal columns `text` takes: two for each wide (CJK) character."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def format_lines(lines: pd.DataFrame, width: int) -> list[str]:
    """Concordance lines for a terminal: contexts aligned on the match, then date, title › heading path."""
    columns = 2 * width
    out = []
    for row in lines.itertuples(index=False):
        when = row.date if isinstance(row.date, str) and row.date else (
            str(row.year) if pd.notna(getattr(row, "year", None)) else "无日期")
        title = str(row.title) if isinstance(row.title, str) else ""
        title = title if len(title) <= 30 else title[:29] + "…"
        where = " › ".join([title, *row.heading_path]) if title or len(row.heading_path) else ""
        left = " " * max(0, columns - display_width(row.left)) + row.left
        right = row.right + " " * max(0, columns - display_width(row.right))
        out.append(f"{left}【{row.match}】{right}  {when}  {where}".rstrip())
    return out


def run(pattern: str | None, variants: list[str] | None, input_path: str | Path = PARAGRAPHS, width: int = 20,
        output: str | Path | None = None, limit: int = 100, stream: TextIO | None = None) -> pd.DataFrame:
    """`python -m pipeline kwic`: print up to `limit` lines (0: all), write every line to `output`
    (.csv, .xlsx, else JSON lines) when given; return the lines."""
    from pipeline.exports import write_table

    if pattern and variants:
        raise ValueError("give a PATTERN or --variants, not both (a variant list is a pattern of its own)")
    if not pattern and not variants:
        raise ValueError("nothing to search for: give a PATTERN (a regular expression) or --variants V1 V2 …")
    paragraphs = read_paragraphs(input_path)
    lines = kwic_lines(paragraphs, variants_pattern(variants) if variants else pattern, width)
    shown = lines if limit <= 0 else lines.head(limit)
    for text in format_lines(shown, width):
        print(text, file=stream or sys.stdout)
    hidden = len(lines) - len(shown)
    print(f"kwic: {len(lines)} matches in {lines['para_id'].nunique()} paragraphs of "
          f"{lines['doc_id'].nunique()} documents ({input_path})"
          + (f"; {hidden} more not shown (--limit 0 shows all)" if hidden else "")
          + (f" → {output}" if output else ""), file=sys.stderr)
    if output:
        write_table(lines, output, sheet="kwic")
    return lines
