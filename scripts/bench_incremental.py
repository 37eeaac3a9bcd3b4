"""Benchmark incremental ingest + segment: a full run over N documents vs a cached run after adding 10.

Builds N distinct plain-text documents from paragraphs of ../shared/corpora (or of the demo corpus; it
exits cleanly when neither is there), then times, each in a fresh child process:
  full      ingest + segment with no cache                          (what every run cost before)
  cold      the same with an empty cache                            (the cache's own overhead)
  +10 full  10 new documents added, no cache                        (the baseline for the next line)
  +10 incr  the same with the cache from `cold`                     (what a refresh run costs now)
and checks that the cached outputs are byte-identical to the uncached ones.

    python scripts/bench_incremental.py --docs 2000 --new 10
Writes docs/bench_incremental_results.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_ingest import paragraph_pool  # noqa: E402  (scripts/ is this script's folder)

from pipeline import io  # noqa: E402

RESULTS = ROOT / "docs" / "bench_incremental_results.json"
OUTPUTS = ("documents.parquet", "rejected.csv", "duplicates.csv", "paragraphs.parquet")


def write_documents(folder: Path, first: int, count: int, pool: list[str], paragraphs: int) -> int:
    """Documents number `first` … `first + count - 1`, each `paragraphs` paragraphs drawn by a seeded
    shuffle, so a document's bytes depend only on its number. Returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for n in range(first, first + count):
        rng = random.Random(n)
        data = (f"基准测试文档第{n}号\n" + "\n".join(rng.sample(pool, paragraphs)) + "\n").encode("utf-8")
        (folder / f"{2000 + n % 25}-01-01_doc{n:06d}.txt").write_bytes(data)
        written += len(data)
    return written


def child(raw: str, out: str, cache_dir: str) -> None:
    from pipeline import segment
    from pipeline.cache import ResultCache
    from pipeline.config import IngestSettings, SegmentSettings
    from pipeline.ingest import stage

    caches = {name: ResultCache(Path(cache_dir) / name) if cache_dir != "-" else None
              for name in ("ingest", "segment")}
    started = time.perf_counter()
    stage.run(IngestSettings(raw_dir=raw, out_dir=out), cache=caches["ingest"])
    ingested = time.perf_counter()
    segment.run(SegmentSettings(), f"{out}/documents.parquet", f"{out}/paragraphs.parquet",
                cache=caches["segment"])
    hits = {f"{name}_reused": cache.hits if cache else 0 for name, cache in caches.items()}
    print(json.dumps({"ingest_s": ingested - started, "segment_s": time.perf_counter() - ingested, **hits}))


def measure(raw: Path, out: Path, cache_dir: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(raw), str(out), str(cache_dir or "-")]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    if result.returncode:
        raise SystemExit(f"benchmark child failed ({result.returncode}): {' '.join(cmd)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--paragraphs", type=int, default=20, help="paragraphs per document")
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench_incremental"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    pool, source = paragraph_pool()
    if len(pool) < args.paragraphs:
        print("bench_incremental: skipped: no corpus (../shared/corpora or data/raw) to build documents from")
        return 0
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    raw, cache = work / "raw", work / "cache"
    size = write_documents(raw, 0, args.docs, pool, args.paragraphs)
    runs = {"full": measure(raw, work / "full", None), "cold": measure(raw, work / "cold", cache)}
    size += write_documents(raw, args.docs, args.new, pool, args.paragraphs)
    runs["+new full"] = measure(raw, work / "new_full", None)
    runs["+new incremental"] = measure(raw, work / "new_incremental", cache)
    identical = all(filecmp.cmp(work / a / name, work / b / name, shallow=False) for name in OUTPUTS
                    for a, b in [("full", "cold"), ("new_full", "new_incremental")])
    record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {platform.python_version()}",
              "source": source, "documents": args.docs, "new": args.new, "corpus_mb": round(size / 2**20, 1),
              "identical_outputs": identical,
              "runs": {name: {k: round(v, 2) if isinstance(v, float) else v for k, v in run.items()}
                       for name, run in runs.items()}}
    print(f"{args.docs} documents ({record['corpus_mb']} MB, from {source}), then +{args.new}; "
          f"outputs identical with and without the cache: {identical}")
    print("| run | ingest s | segment s | total s | files reused (ingest) | documents reused (segment) |")
    print("|---|---|---|---|---|---|")
    for name, run in record["runs"].items():
        print(f"| {name} | {run['ingest_s']} | {run['segment_s']} | {round(run['ingest_s'] + run['segment_s'], 2)} | "
              f"{run['ingest_reused']} | {run['segment_reused']} |")
    io.append_record(RESULTS, record)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
