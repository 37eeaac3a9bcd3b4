"""Apply a model to the real reports in ../shared/corpora and write, per theme, the paragraphs it is
most and least sure of — for reading its errors (what we learned goes into models/README.md).

    python scripts/read_real_errors.py [--model models/default] [--per-theme 8] [--out reports/real_reading.md]

Skips (exit 0) where ../shared/corpora is absent. The model is never trained on these texts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.classifiers.base import load_model
from pipeline.config import IngestSettings, SegmentSettings
from pipeline.parse import parse_paths

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"


def real_paragraphs() -> pd.DataFrame:
    rows = []
    parse_paths([str(CORPORA)], IngestSettings(), SegmentSettings(), rows.append)
    frame = pd.DataFrame(rows)
    return frame[frame["kind"] == "body"].reset_index(drop=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--per-theme", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "reports" / "real_reading.md"))
    args = parser.parse_args(argv)
    if not CORPORA.is_dir():
        print(f"skipped: {CORPORA} is absent")
        return 0
    model = load_model(args.model)
    paragraphs = real_paragraphs()
    scores, themes = model.predict(paragraphs["text"].tolist())
    paragraphs["themes"] = themes
    lines = [f"# What `{args.model}` ({model.method}) says about the real reports", "",
             f"{len(paragraphs)} body paragraphs of the congress and government work reports; "
             f"{np.mean([bool(t) for t in themes]):.1%} get at least one theme.", ""]
    for doc_type, group in paragraphs.groupby("doc_type"):
        flagged = group["themes"].map(bool).mean()
        lines.append(f"- {doc_type}: {len(group)} paragraphs, {flagged:.1%} with a theme")
    for j, theme in enumerate(model.themes):
        order = np.argsort(-scores[:, j], kind="stable")
        over = scores[:, j] >= model.thresholds[j]
        near = np.argsort(np.abs(scores[:, j] - model.thresholds[j]), kind="stable")
        lines += ["", f"## {model.codebook[theme].label}: {int(over.sum())} paragraphs over the threshold "
                      f"{model.thresholds[j]:.2f}", "", "Most sure:"]
        lines += [f"- {scores[i, j]:.2f} [{paragraphs.date[i]}] {paragraphs.text[i][:160]}"
                  for i in order[:args.per_theme]]
        lines += ["", "Least sure (nearest the threshold):"]
        lines += [f"- {scores[i, j]:.2f} [{paragraphs.date[i]}] {paragraphs.text[i][:160]}"
                  for i in near[:args.per_theme]]
    io.write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
