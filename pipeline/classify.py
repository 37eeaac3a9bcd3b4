"""`python -m pipeline classify`: apply any saved model to arbitrary JSONL records.

Input records need at least `id` and `text`; every other field is passed through. Each output record
gains `"scores": {theme: probability}` for all nine themes and `"themes": [ids over threshold]`.
The whole input is validated before anything is written, so a bad line leaves no partial output.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from tqdm import tqdm

from pipeline import io
from pipeline.classifiers.base import load_model

log = logging.getLogger("pipeline.classify")


def read_records(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input '{path}' does not exist")
    records = []
    for lineno, record in io.read_jsonl(path):
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{lineno}: record has no 'text' (a non-empty string is required)")
        records.append(record)
    return records


def classify_file(model_dir: str, input_path: str, output_path: str, batch_size: int = 256) -> int:
    model = load_model(model_dir)
    records = read_records(input_path)
    started = time.perf_counter()

    def rows():
        with tqdm(total=len(records), desc=f"classify ({model.method})", unit="para", disable=None) as bar:
            for start in range(0, len(records), batch_size):
                batch = records[start:start + batch_size]
                scores, themes = model.predict([r["text"] for r in batch])
                for record, row, hits in zip(batch, scores, themes):
                    yield {**record, "scores": {t: round(float(s), 5) for t, s in zip(model.themes, row)},
                           "themes": hits}
                bar.update(len(batch))

    written = io.write_jsonl(output_path, rows())
    log.info("classify: %d records with %s (%s) in %.1fs → %s", written, model_dir, model.method,
             time.perf_counter() - started, output_path)
    return written


