"""Benchmark ingest + segment: throughput (MB/s) and peak memory, one process and with workers.

Builds a corpus of N MB of distinct plain-text documents (paragraphs of the real reports in
../shared/corpora, or of the demo corpus when those are absent, recombined by a seeded shuffle so that
documents are not duplicates of each other), then runs the ingest and segment stages in a child process
while sampling the resident memory of its whole process tree.

    python scripts/bench_ingest.py --mb 200 --workers 1 2
Writes docs/bench_ingest_results.json (one record per run) and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pipeline import io

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
RESULTS = ROOT / "docs" / "bench_ingest_results.json"


def wait_with_peak_rss(process: psutil.Popen, interval: float = 0.1) -> int:
    """Wait for `process`; the peak resident bytes of it and its children together, polled."""
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:  # a child ended between listing and reading it
            pass
        time.sleep(interval)
    return peak


def paragraph_pool() -> tuple[list[str], str]:
    if SHARED.is_dir():
        texts = [json.loads(line)["text"] for path in sorted(SHARED.glob("*.jsonl")) for line in open(path, encoding="utf-8")]
        source = "../shared/corpora"
    else:
        texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "data" / "raw").rglob("*.txt"))]
        source = "data/raw (demo)"
    pool = [p.strip() for text in texts for p in text.replace("\n\n", "\n").split("\n") if len(p.strip()) >= 20]
    return pool, source


def build_corpus(folder: Path, megabytes: float, seed: int = 0) -> tuple[int, int]:
    pool, _ = paragraph_pool()
    rng = random.Random(seed)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    target, written, n = megabytes * 2**20, 0, 0
    while written < target:
        paragraphs = rng.sample(pool, 40)
        data = (f"基准测试文档第{n}号\n" + "\n".join(paragraphs) + "\n").encode("utf-8")
        (folder / f"{2000 + n % 25}-01-01_doc{n:06d}.txt").write_bytes(data)
        written += len(data)
        n += 1
    return n, written


def child(corpus: str, out: str, workers: int) -> None:
    from pipeline import segment
    from pipeline.config import IngestSettings, SegmentSettings
    from pipeline.ingest import stage

    started = time.perf_counter()
    stage.run(IngestSettings(raw_dir=corpus, out_dir=out, workers=workers))
    ingested = time.perf_counter()
    paragraphs = segment.run(SegmentSettings(workers=workers), f"{out}/documents.parquet",
                             f"{out}/paragraphs.parquet")
    print(json.dumps({"ingest_s": ingested - started, "segment_s": time.perf_counter() - ingested,
                      "paragraphs": paragraphs}))


def measure(corpus: Path, out: Path, workers: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(corpus), str(out), str(workers)]
    process = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = wait_with_peak_rss(process)
    stdout = process.stdout.read()
    if process.returncode:
        raise SystemExit(f"benchmark child failed ({process.returncode})")
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mb": round(peak / 2**20, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[200.0], help="corpus sizes in MB")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="ingest and segment processes")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench_ingest"))
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    work = Path(args.work_dir)
    _, source = paragraph_pool()
    print("| corpus MB | docs | workers | ingest MB/s | segment MB/s | ingest+segment MB/s | per core | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for megabytes in args.mb:
        docs, size = build_corpus(work / "corpus", megabytes)
        for workers in args.workers:
            result = measure(work / "corpus", work / f"out{workers}", workers)
            mb = size / 2**20
            total = result["ingest_s"] + result["segment_s"]
            record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {psutil.cpu_count()} cores",
                      "source": source, "corpus_mb": round(mb, 1), "documents": docs, "workers": workers,
                      "ingest_mb_s": round(mb / result["ingest_s"], 2), "segment_mb_s": round(mb / result["segment_s"], 2),
                      "total_mb_s": round(mb / total, 2), "per_core_mb_s": round(mb / total / workers, 2),
                      **{k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}}
            io.append_record(RESULTS, record)
            print(f"| {record['corpus_mb']} | {docs} | {workers} | {record['ingest_mb_s']} | {record['segment_mb_s']} | "
                  f"{record['total_mb_s']} | {record['per_core_mb_s']} | {record['peak_rss_mb']} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
