"""Gold labels (hand-coded, adjudicated) and the training corpus: loading and matching to paragraphs.

Gold rows are JSON lines `{"para_id", "text", "themes": [...], "primary": theme|null, "coder", "note"}`
under data/annotations/gold/. A row whose para_id no longer exists (a re-segmented corpus) is matched
by its exact text instead; rows matching neither are reported, never silently dropped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.io import read_jsonl

log = logging.getLogger("pipeline.labels")


def _validated(rows: list[dict], codebook: Codebook, where: str) -> list[dict]:
    for lineno, row in rows:
        at = f"{where}:{lineno}"
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            raise ValueError(f"{at}: row has no text")
        themes = row.get("themes")
        if not isinstance(themes, list):
            raise ValueError(f"{at}: 'themes' must be a list of theme ids")
        codebook.check_ids(themes, at)
        primary = row.get("primary")
        if primary is not None and primary not in themes:
            raise ValueError(f"{at}: primary '{primary}' is not among its themes {themes}")
    return [row for _, row in rows]


def load_coded_jsonl(paths: list[Path], codebook: Codebook) -> pd.DataFrame:
    rows = []
    for path in paths:
        rows.extend({**row, "file": path.name}
                    for row in _validated(list(read_jsonl(path)), codebook, str(path)))
    return pd.DataFrame(rows)


def load_gold(gold_dir: str | Path, codebook: Codebook) -> pd.DataFrame:
    return load_coded_jsonl(sorted(Path(gold_dir).glob("*.jsonl")), codebook)


def load_training_corpus(training_dir: str | Path, codebook: Codebook) -> pd.DataFrame:
    """The hand-coded training passages (data/training/*.jsonl: id, doc_id, genre, text, themes, primary)."""
    frame = load_coded_jsonl(sorted(Path(training_dir).glob("*.jsonl")), codebook)
    duplicated = frame["id"][frame["id"].duplicated()]
    if not duplicated.empty:
        raise ValueError(f"{training_dir}: duplicate passage ids {sorted(duplicated)[:5]}")
    return frame


REAL_FIELDS = ("id", "doc_id", "source", "date", "coder")


def load_real_corpus(real_dir: str | Path, codebook: Codebook) -> pd.DataFrame:
    """Hand-coded real paragraphs (data/training/real/*.jsonl: id, text, themes, primary, source, date,
    doc_id, coder; optional title, heading_path), with `year` taken from the date."""
    paths = sorted(Path(real_dir).glob("*.jsonl"))
    frame = load_coded_jsonl(paths, codebook)
    if frame.empty:
        return frame
    missing = [f for f in REAL_FIELDS if f not in frame or frame[f].isna().any()]
    if missing:
        raise ValueError(f"{real_dir}: coded rows without {missing} (every real paragraph needs its source, "
                         "date, document and coder)")
    duplicated = frame["id"][frame["id"].duplicated()]
    if not duplicated.empty:
        raise ValueError(f"{real_dir}: duplicate paragraph ids {sorted(duplicated)[:5]}")
    if "heading_path" not in frame:
        frame["heading_path"] = None  # split's _frame turns it into lists
    frame["year"] = pd.to_numeric(frame["date"].astype(str).str[:4], errors="coerce").astype("Int64")
    return frame


def match_gold(gold: pd.DataFrame, paragraphs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Gold rows with the para_id they label now (by para_id, else by exact text); (matched, unmatched)."""
    if gold.empty:
        return gold.assign(para_id=pd.Series(dtype=str)), 0
    by_id = set(paragraphs["para_id"])
    by_text = dict(zip(paragraphs["text"], paragraphs["para_id"]))
    ids = [pid if pid in by_id else by_text.get(text) for pid, text in zip(gold["para_id"], gold["text"])]
    matched = gold.assign(para_id=ids)
    unmatched = int(matched["para_id"].isna().sum())
    if unmatched:
        log.warning("labels: %d gold rows match no paragraph (changed segmentation?); they are not used",
                    unmatched)
    return matched.dropna(subset=["para_id"]).drop_duplicates("para_id", keep="last"), unmatched


def targets(themes_column: pd.Series, theme_ids: list[str]) -> np.ndarray:
    """Lists of theme ids → an n × n_themes 0/1 matrix in codebook order."""
    out = np.zeros((len(themes_column), len(theme_ids)))
    index = {t: j for j, t in enumerate(theme_ids)}
    for i, themes in enumerate(themes_column):
        for theme in themes:
            out[i, index[theme]] = 1.0
    return out
