"""Carry the demo authors' hand codes from data/demo_sources/ onto the segmented demo paragraphs.

The authors coded each paragraph they wrote against the coding guide. Each gold row carries its
document, year and heading path, so training never depends on the corpus in data/raw. After ingest and segment, a
corpus paragraph is labelled with the codes of the source paragraphs it consists of (a scrape that
was flattened merges several: their themes are united, the primary is the longest one's). Paragraphs
that cannot be traced to their sources completely are left out rather than guessed.

    dvc repro segment && python scripts/build_demo_gold.py   # writes data/annotations/gold/demo.jsonl
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from pipeline import io
from pipeline.ingest.normalize import normalize_line

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "annotations" / "gold" / "demo.jsonl"


def main() -> int:
    paragraphs = pd.read_parquet(ROOT / "data" / "interim" / "paragraphs.parquet")
    documents = pd.read_parquet(ROOT / "data" / "interim" / "documents.parquet", columns=["doc_id", "path"])
    stems = dict(zip(documents["doc_id"], documents["path"].map(lambda p: Path(p).stem)))
    sources = {path.stem: json.loads(path.read_text(encoding="utf-8"))
               for path in sorted((ROOT / "data" / "demo_sources").glob("*.json"))}
    rows, skipped = [], 0
    for para in paragraphs[paragraphs["kind"] == "body"].itertuples():
        source = sources.get(stems[para.doc_id])
        coded = [(normalize_line(p["text"]), p) for p in source["paragraphs"] if not p.get("heading")]
        parts = [p for text, p in coded if text and text in para.text]
        covered = sum(len(normalize_line(p["text"])) for p in parts)
        if not parts or covered < 0.9 * len(para.text):
            skipped += 1
            continue
        themes = sorted({t for p in parts for t in p["themes"]}, key=lambda t: t)
        longest = max((p for p in parts if p.get("primary")), key=lambda p: len(p["text"]), default=None)
        row = {"para_id": para.para_id, "doc_id": para.doc_id, "year": None if pd.isna(para.year) else int(para.year),
               "heading_path": list(para.heading_path), "text": para.text, "themes": themes,
               "primary": longest["primary"] if longest else None, "coder": "demo-authors"}
        if len(parts) > 1:
            row["note"] = f"merged from {len(parts)} source paragraphs"
        rows.append(row)
    io.write_jsonl(OUT, rows)
    print(f"demo gold: {len(rows)} paragraphs coded, {skipped} not traceable to their sources → {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
