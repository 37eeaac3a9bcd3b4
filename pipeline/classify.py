"""`python -m pipeline classify`: apply any saved model to arbitrary JSONL records.

Input records need at least `id` and `text`; optional `title` (of the paragraph's document) and
`heading_path` (the headings above it: a list, or one string joined by " > ") are read as its context,
as the predict stage reads them; every other field is passed through. Each output record
gains `"scores": {theme: probability}` for all nine themes and `"themes": [ids over threshold]`; an
output ending in .csv (UTF-8 with BOM, for Excel) or .xlsx is a table instead, one score column per theme.
Traditional-script text is scored as Simplified (OpenCC t2s, as ingest converts it); the output keeps
the text as given.
The whole input is validated before anything is written, so a bad line leaves no partial output.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from pipeline import io
from pipeline.classifiers.base import load_model
from pipeline.exports import TABLE_SUFFIXES, write_table
from pipeline.ingest.normalize import to_simplified
from pipeline.text import paragraph_context

log = logging.getLogger("pipeline.classify")


def read_records(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input '{path}' does not exist")
    records, problems = [], []
    for lineno, record in io.read_jsonl(path):
        problem = record_problem(record)
        if problem:
            problems.append(f"{path}:{lineno}: {problem}")
        records.append(record)
    if problems:  # all of them at once, so one round of fixes suffices
        more = f"\n… and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError("\n".join(problems[:10]) + more)
    return records


def record_problem(record: dict) -> str | None:
    """Why a record cannot be classified, or None."""
    record_id = record.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)) or record_id == "":
        return "record has no 'id' (a string or an integer is required: it ties each output line to its input)"
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        return "record has no 'text' (a non-empty string is required)"
    if record.get("title") is not None and not isinstance(record["title"], str):
        return "'title' must be a string"
    path = record.get("heading_path")
    if path is not None and not isinstance(path, str) and not (
            isinstance(path, list) and all(isinstance(h, str) for h in path)):
        return "'heading_path' must be a list of strings or one string (headings joined by ' > ')"
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a value holds an escaped lone surrogate (\\ud800-\\udfff), which is no character: fix the input"
    return None


def classify_file(model_dir: str, input_path: str, output_path: str, batch_size: int = 2048) -> int:
    model = load_model(model_dir)
    records = read_records(input_path)
    started = time.perf_counter()

    def rows():
        with tqdm(total=len(records), desc=f"classify ({model.method})", unit="para", disable=None) as bar:
            for start in range(0, len(records), batch_size):
                batch = records[start:start + batch_size]
                # the models learnt Simplified text: Traditional is converted as ingest converts it
                scores, themes = model.predict(
                    [to_simplified(r["text"])[0] for r in batch],
                    [to_simplified(paragraph_context(r.get("title"), r.get("heading_path")))[0] for r in batch])
                for record, row, hits in zip(batch, scores, themes):
                    yield {**record, "scores": {t: round(float(s), 5) for t, s in zip(model.themes, row)},
                           "themes": hits}
                bar.update(len(batch))

    if Path(output_path).suffix.lower() in TABLE_SUFFIXES:
        table = pd.DataFrame([{**{k: v for k, v in row.items() if k not in ("scores", "themes")},
                               "themes": ", ".join(row["themes"]), **row["scores"]} for row in rows()])
        write_table(table, output_path, sheet="classify")
        written = len(table)
    else:
        written = io.write_jsonl(output_path, rows())
    log.info("classify: %d records with %s (%s) in %.1fs → %s", written, model_dir, model.method,
             time.perf_counter() - started, output_path)
    return written


