"""Speed and score drift of `bert.cpu_inference` (fp32, bf16, dynamic int8) for one BERT model directory.

    python scripts/bench_cpu_inference.py MODEL_DIR [--paragraphs 2000]

Scores N real paragraphs of the government work reports (../shared/corpora; seeded draw) in-process
with each arithmetic and reports paragraphs per second (wall and CPU), the largest and mean absolute
score difference from fp32, and the share of paragraphs whose theme set changes. Appends one record
to docs/bench_cpu_inference_results.json. Without the corpora it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from pipeline import io  # noqa: E402
from pipeline.classifiers.base import load_model  # noqa: E402
from pipeline.classifiers.bert import quantized_for_cpu  # noqa: E402
from bench_classify import REPORTS, real_paragraphs  # noqa: E402  (scripts/ is this script's folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a BERT model directory (models/bert)")
    parser.add_argument("--paragraphs", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_cpu_inference_results.json"))
    args = parser.parse_args(argv)
    if not REPORTS.is_file():
        print(f"skipped: {REPORTS} is absent (the benchmark needs the real reports)")
        return 0
    texts = real_paragraphs(args.paragraphs, seed=1)
    runs = {}
    for mode in ("fp32", "bf16", "int8"):
        model = load_model(args.model)
        model.settings.cpu_inference = mode
        model.model = quantized_for_cpu(model.model, mode)  # what loading does with this setting
        cpu, wall = time.process_time(), time.perf_counter()
        scores, themes = model.predict(texts)
        runs[mode] = (scores, themes, len(texts) / (time.process_time() - cpu), len(texts) / (time.perf_counter() - wall))
    reference_scores, reference_themes = runs["fp32"][:2]
    rows = []
    for mode, (scores, themes, per_cpu_s, per_s) in runs.items():
        diff = np.abs(scores - reference_scores)
        rows.append({"mode": mode, "para_per_cpu_s": round(per_cpu_s, 1), "para_per_s": round(per_s, 1),
                     "max_abs_diff": round(float(diff.max()), 5), "mean_abs_diff": round(float(diff.mean()), 6),
                     "theme_sets_changed": round(float(np.mean([a != b for a, b in zip(themes, reference_themes)])), 4)})
    record = {"date": time.strftime("%Y-%m-%d"), "model": args.model, "paragraphs": len(texts),
              "threads": torch.get_num_threads(), "rows": rows}
    io.append_record(args.out, record)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
