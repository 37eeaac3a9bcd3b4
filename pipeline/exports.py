"""Tables researchers open in Excel: CSV with a UTF-8 byte-order mark, and XLSX.

`write_table(frame, path)` writes by the path's suffix: `.csv` (UTF-8 with BOM, so Excel shows Chinese
instead of mojibake), `.xlsx` (openpyxl), anything else JSON lines. `classify`, `kwic` and the
formulations stage write through it. The `export` stage writes the paragraph-level predictions (text,
heading path, themes, every theme's score) and every table of the trends stage under reports/exports/.

What a spreadsheet cannot hold is made safe, never dropped silently:
- list cells become text ('一、总体要求 > （一）…' for a heading path, 'a, b' otherwise), mappings JSON;
- text that a spreadsheet would run as a formula (= + - @ first) is kept as text: an XLSX cell is typed
  as a string, a CSV cell gets a leading apostrophe (Excel hides it); JSONL keeps the text unchanged;
- XLSX: control characters XML cannot carry are removed, a cell longer than Excel's 32,767 characters is
  cut (the CSV keeps it whole; both logged), and a table longer than a sheet continues on the next sheet.
XLSX files are byte-for-byte reproducible (fixed timestamps), so DVC sees no change when nothing changed.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.config import Settings, setting
from pipeline.text import HEADING_SEPARATOR

log = logging.getLogger("pipeline.exports")

PARAGRAPHS = "data/interim/paragraphs.parquet"
PARAGRAPH_THEMES = "data/processed/paragraph_themes.parquet"
TABLES_DIR = "reports/tables"
FORMATS = ("csv", "xlsx")
TABLE_SUFFIXES = (".csv", ".xlsx")  # outputs written as tables; any other suffix: JSON lines
PERIOD_COLUMNS = ("period", "from_period", "to_period", "first_period", "last_period")  # '2019' stays text
XLSX_MAX_ROWS = 1_048_576  # Excel's sheet limit, the header row included
XLSX_MAX_CELL = 32_767
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_FORMULA_START = re.compile(r"[=+\-@\t\r]")
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_CORE_TIMES = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class ExportSettings(Settings):
    out_dir: str = setting("reports/exports", nonempty=True)
    formats: list[str] = setting(list(FORMATS), choices=FORMATS, nonempty=True)  # csv (UTF-8 BOM) | xlsx


# ------------------------------------------------------------------------------------------ writers

def write_table(frame: pd.DataFrame, path: str | Path, sheet: str = "data") -> Path:
    """`frame` written by `path`'s suffix: .csv (UTF-8 BOM), .xlsx (one sheet, continued if too long),
    else JSON lines. Atomic, as every output."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        write_csv(frame, path)
    elif path.suffix.lower() == ".xlsx":
        write_workbook({sheet: frame}, path)
    else:
        io.write_jsonl(path, json_records(frame))
    return path


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """CSV in UTF-8 with a byte-order mark, lists as text, formula-like text kept as text."""
    flat = flat_table(frame)
    for column in flat.columns[flat.dtypes.map(_holds_text)]:
        text = flat[column]
        risky = text.map(lambda v: isinstance(v, str) and bool(_FORMULA_START.match(v)))
        flat[column] = text.mask(risky, "'" + text.astype(str))
    with io.atomic_path(path) as tmp:
        flat.to_csv(tmp, index=False, encoding="utf-8-sig")


def write_workbook(sheets: dict[str, pd.DataFrame], path: str | Path) -> None:
    """An XLSX workbook with one sheet per table (named by the keys), reproducible byte for byte."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    used: set[str] = set()
    cut = 0
    for name, frame in sheets.items():
        flat = flat_table(frame)
        rows_per_sheet = XLSX_MAX_ROWS - 1
        for part, start in enumerate(range(0, max(len(flat), 1), rows_per_sheet)):
            sheet = workbook.create_sheet(_sheet_name(name, part, used))
            sheet.append([str(c) for c in flat.columns])
            for row in flat.iloc[start:start + rows_per_sheet].itertuples(index=False):
                cut += sum(isinstance(value, str) and len(value) > XLSX_MAX_CELL for value in row)
                sheet.append([_xlsx_cell(sheet, value) for value in row])
    if cut:
        log.warning("%s: %d cell(s) longer than Excel's %d characters were cut; the CSV export keeps them whole",
                    path, cut, XLSX_MAX_CELL)
    with io.atomic_path(path) as tmp:
        raw = tmp.with_name(tmp.name + ".raw")
        try:
            workbook.save(raw)
            _with_fixed_times(raw, tmp)
        finally:
            raw.unlink(missing_ok=True)


def json_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: numpy values as Python ones, missing values as null, lists kept."""
    return [{column: _plain(value) for column, value in zip(frame.columns, row)}
            for row in frame.itertuples(index=False)]


def flat_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose cells a spreadsheet can hold: lists as text, mappings as JSON."""
    flat = frame.copy()
    for column in flat.columns[flat.dtypes.map(_holds_text)]:
        joiner = HEADING_SEPARATOR if column == "heading_path" else ", "
        flat[column] = flat[column].map(functools.partial(_flat_cell, joiner=joiner))
    return flat


def _holds_text(dtype) -> bool:
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def _flat_cell(value, joiner: str):
    if isinstance(value, (list, tuple, np.ndarray)):
        return joiner.join(str(_plain(v)) for v in value)
    if isinstance(value, dict):
        return json.dumps(_plain(value), ensure_ascii=False)
    return value


def _plain(value):
    """A numpy or pandas value as the Python value JSON can hold."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT or value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _xlsx_cell(sheet, value):
    value = _plain(value)
    if not isinstance(value, str):
        return value
    value = _XML_ILLEGAL.sub("", value)
    if len(value) > XLSX_MAX_CELL:
        value = value[: XLSX_MAX_CELL - 1] + "…"
    if not value.startswith("="):
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"  # openpyxl would store text starting with = as a formula
    return cell


def _sheet_name(name: str, part: int, used: set[str]) -> str:
    """A unique sheet name Excel accepts: ≤ 31 characters, none of []:*?/\\ ; continuations numbered."""
    base = _SHEET_FORBIDDEN.sub("_", str(name)).strip("'") or "sheet"
    suffix = f" ({part + 1})" if part else ""
    candidate, n = base[: 31 - len(suffix)] + suffix, 1
    while candidate.lower() in used:
        n += 1
        tail = f"{suffix}~{n}"
        candidate = base[: 31 - len(tail)] + tail
    used.add(candidate.lower())
    return candidate


def _with_fixed_times(source: Path, target: Path) -> None:
    """Copy the zip `source` to `target` with fixed member times and document-property times."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for member in zin.infolist():
            info = zipfile.ZipInfo(member.filename, FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            if member.filename == "docProps/core.xml":
                zout.writestr(info, _CORE_TIMES.sub(rb"\g<1>2000-01-01T00:00:00Z\g<2>", zin.read(member)))
                continue
            with zin.open(member) as src, zout.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


# ------------------------------------------------------------------------------------- the stage

def paragraph_table(body: pd.DataFrame, theme_ids: list[str], labels: dict[str, str]) -> pd.DataFrame:
    """One row per body paragraph (as `trends.load_inputs` returns them): document, heading path,
    text, assigned themes (ids and labels) and every theme's score."""
    table = body[["doc_id", "date", "year", "title", "doc_type", "source", "para_id", "order", "heading_path",
                  "text"]].copy()
    table["themes"] = body["themes"].map(lambda themes: ", ".join(themes))
    table["theme_labels"] = body["themes"].map(lambda themes: "、".join(labels[t] for t in themes))
    for theme in theme_ids:
        table[theme] = body[theme].round(4)
    return table.sort_values(["date", "doc_id", "order"], na_position="last", kind="stable").reset_index(drop=True)


def trends_tables(tables_dir: str | Path = TABLES_DIR) -> dict[str, pd.DataFrame]:
    """Every CSV table the trends stage wrote, by file stem (sorted); period labels stay text."""
    tables = {}
    for path in sorted(Path(tables_dir).glob("*.csv")):
        tables[path.stem] = pd.read_csv(path, dtype={c: str for c in PERIOD_COLUMNS})
    return tables


def run(settings: ExportSettings, paragraphs_path: str | Path = PARAGRAPHS,
        themes_path: str | Path = PARAGRAPH_THEMES, tables_dir: str | Path = TABLES_DIR) -> list[Path]:
    """The DVC stage: paragraph predictions and trends tables → `settings.out_dir`. Returns the files."""
    from pipeline import trends
    from pipeline.codebook import load_codebook

    codebook = load_codebook()
    body = trends.load_inputs(paragraphs_path, themes_path, codebook)
    paragraphs = paragraph_table(body, codebook.ids, {t.id: t.name_zh for t in codebook.themes})
    tables = trends_tables(tables_dir)
    if not tables:
        log.warning("export: no trends tables in %s; run the trends stage to export them", tables_dir)
    out = Path(settings.out_dir)
    written = []
    for fmt in settings.formats:
        written.append(write_table(paragraphs, out / f"paragraph_themes.{fmt}", sheet="paragraph_themes"))
        if fmt == "csv":
            for name, table in tables.items():
                written.append(write_table(table, out / "trends" / f"{name}.csv"))
        elif tables:
            write_workbook(tables, out / "trends.xlsx")
            written.append(out / "trends.xlsx")
    log.info("export: %d paragraphs, %d trends tables → %s (%s)", len(paragraphs), len(tables), out,
             ", ".join(settings.formats))
    return written
