"""Benchmark `python -m pipeline parse` over the command line: MB/s of real text, start-up included.

Builds N MB of distinct plain-text documents from paragraphs of the real reports in ../shared/corpora
(scripts/bench_ingest.py's corpus), then runs the command as a user does, each run a fresh process, and
measures its wall time, the CPU seconds of its whole process tree (the reader child included) and the tree's
peak resident memory. The start-up alone is measured on a one-document folder. On a shared machine the wall
time depends on other jobs; CPU seconds much less, so both are recorded (MB per CPU-second is the per-core
rate).

    python scripts/bench_parse.py --mb 30 --runs 3
Writes docs/bench_parse_results.json (one record per run) and prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_ingest import build_corpus, paragraph_pool, wait_with_peak_rss  # noqa: E402  (scripts/ is this script's folder)

from pipeline import io  # noqa: E402

RESULTS = ROOT / "docs" / "bench_parse_results.json"


def measure(command: list[str]) -> dict:
    """Wall seconds, CPU seconds (user + system, the process and all its children) and peak RSS of the
    process tree of `command`, sampled every 20 ms."""
    before = os.times()
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:  # a file, not a pipe: a long log never blocks
        process = psutil.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        peak = wait_with_peak_rss(process, interval=0.02)
        wall = time.perf_counter() - started
        after = os.times()
        if process.returncode:
            log.seek(0)
            raise SystemExit(f"bench_parse: {' '.join(command)} failed: {log.read()[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=30.0, help="corpus size in MB")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (a fresh process each)")
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench_parse"))
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    _, source = paragraph_pool()
    docs, size = build_corpus(work / "corpus", args.mb)
    one = work / "one"
    one.mkdir(exist_ok=True)
    first = sorted((work / "corpus").iterdir())[0]
    shutil.copy(first, one / first.name)
    parse = [sys.executable, "-m", "pipeline", "parse"]
    load = os.getloadavg()[0]
    print(f"corpus: {docs:,} documents, {size / 2**20:.1f} MB ({source}); load average {load:.1f} on "
          f"{psutil.cpu_count()} cores")
    print("| run | start-up wall s | start-up CPU s | wall s | CPU s | MB/s wall | MB/s per CPU-second | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for run in range(1, args.runs + 1):
        startup = measure([*parse, str(one), "-o", str(work / "one.jsonl")])
        full = measure([*parse, str(work / "corpus"), "-o", str(work / "out.jsonl")])
        mb = size / 2**20
        record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {psutil.cpu_count()} cores",
                  "load_average": round(load, 1), "source": source, "corpus_mb": round(mb, 1), "documents": docs,
                  "startup_wall_s": startup["wall_s"], "startup_cpu_s": startup["cpu_s"], **full,
                  "mb_s_wall": round(mb / full["wall_s"], 2), "mb_s_per_cpu_s": round(mb / full["cpu_s"], 2)}
        io.append_record(RESULTS, record)
        print(f"| {run} | {startup['wall_s']} | {startup['cpu_s']} | {full['wall_s']} | {full['cpu_s']} | "
              f"{record['mb_s_wall']} | {record['mb_s_per_cpu_s']} | {full['peak_rss_mb']} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
