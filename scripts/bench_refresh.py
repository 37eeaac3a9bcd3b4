"""Benchmark incremental refresh at scale: one more day of 新闻联播 after the whole archive
(examples/real/xwlb, after `python examples/real/run.py`).

  full      `dvc repro --force` of the xwlb pipeline with its per-file caches removed (what every run cost
            without them), unless --no-full
  hold out  the archive's last day moves to the watched folder (examples/real/inbox/xwlb) and the pipeline
            is reproduced without it (the state before that day arrives)
  +1 day    `python -m pipeline refresh --no-repro` collects the day into data/raw/refresh/, then `dvc repro`
            (each stage's seconds; its log says how many cached results it reused and how many it computed)

The day then stays in data/raw/refresh/ (content-addressed), so the corpus is the archive, whole, again.

    python scripts/bench_refresh.py
Writes docs/bench_refresh_results.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "examples" / "real"
CORPUS = REAL / "xwlb"
sys.path.insert(0, str(REAL))
from run import reproduce  # noqa: E402  (examples/real/run.py: dvc repro, timed per stage)

from pipeline import io  # noqa: E402

RESULTS = ROOT / "docs" / "bench_refresh_results.json"


def documents_kept() -> int:
    report = json.loads((CORPUS / "data" / "interim" / "ingest_report.json").read_text(encoding="utf-8"))
    return report["documents_kept"]


def refresh() -> float:
    """`python -m pipeline refresh --no-repro` in the corpus folder; its seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "refresh", "--no-repro"], cwd=CORPUS, check=True)
    return time.perf_counter() - started


def stage_times(stages: list[dict]) -> str:
    return ", ".join(f"{stage['stage'].split(':')[-1]} {stage['seconds']}" for stage in stages)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-full", action="store_true", help="skip the full run without caches")
    args = parser.parse_args(argv)
    days = sorted((CORPUS / "data" / "raw" / "assets").glob("*/*.json"))
    if not days:
        print(f"bench_refresh: skipped: {CORPUS}/data/raw holds no archive (run examples/real/run.py first)")
        return 0
    record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "load_average": round(os.getloadavg()[0], 1)}
    if not args.no_full:
        shutil.rmtree(CORPUS / ".cache", ignore_errors=True)
        record["full"] = reproduce(["xwlb"], force=True)
    inbox = REAL / "inbox" / "xwlb"
    inbox.mkdir(parents=True, exist_ok=True)
    day = days[-1]
    shutil.move(day, inbox / day.name)  # keeps its modification time: old enough for refresh.min_age_s
    record["held_out"] = {"day": day.name, "stages": reproduce(["xwlb"], force=False)}
    before = documents_kept()
    record["refresh_s"] = round(refresh(), 1)
    record["plus_one_day"] = reproduce(["xwlb"], force=False)
    record["documents_added"] = documents_kept() - before
    io.append_record(RESULTS, record)
    full = sum(s["seconds"] for s in record.get("full", []))
    plus = record["refresh_s"] + sum(s["seconds"] for s in record["plus_one_day"])
    print("| run | seconds | stages |\n|---|---|---|")
    if full:
        print(f"| full (no cache) | {full:.0f} | {stage_times(record['full'])} |")
    print(f"| +1 day ({day.name}, {record['documents_added']} documents): refresh + dvc repro | {plus:.0f} | "
          f"refresh {record['refresh_s']}, {stage_times(record['plus_one_day'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
