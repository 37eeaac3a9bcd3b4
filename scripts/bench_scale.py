"""Benchmark memory as the corpus grows: `python -m pipeline parse` over 10k, 100k and 1M real documents.

The documents are rows of the People's Daily headline archive (../shared/corpora/news, 1946 onwards, in
file order), one document per headline (the per-row layout: the most documents per byte, so the most
per-document bookkeeping), read through an `ingest.sources` layout with `dedup: same_date`. Each size
runs in a fresh process; its whole process tree's resident memory is sampled (scripts/bench_parse.py).

    python scripts/bench_scale.py --docs 10000 100000 1000000
Writes docs/bench_scale_results.json (one record per size) and prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tarfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_parse import measure  # noqa: E402  (scripts/ is this script's folder)

from pipeline import io  # noqa: E402

RESULTS = ROOT / "docs" / "bench_scale_results.json"
ARCHIVE = ROOT.parent / "shared" / "corpora" / "news" / "peoples_daily_headlines_1946-2022.tar.xz"
UNPACKED = ROOT / "examples" / "real" / "headlines" / "data" / "raw" / "src" / "assets" / "titles1"
LAYOUT = {"glob": "titles1/*.csv", "kind": "headlines_csv", "columns": ["title", "date", "month"],
          "fields": {"text": "title", "date": "date"}, "source": "人民日报", "min_chinese_chars": 2,
          "dedup": "same_date"}


def headline_files(work: Path) -> list[Path]:
    """The archive's monthly CSV files in time order: unpacked by examples/real/run.py, else from the archive."""
    if not UNPACKED.is_dir():
        if not ARCHIVE.is_file():
            raise SystemExit(f"bench_scale: neither {UNPACKED} nor {ARCHIVE} exists: the real headlines are needed")
        with tarfile.open(ARCHIVE, "r:xz") as archive:
            archive.extractall(work / "archive", filter="data")
        return sorted((work / "archive" / "src" / "assets" / "titles1").glob("*.csv"))
    return sorted(UNPACKED.glob("*.csv"))


def build(folder: Path, files: list[Path], rows: int) -> int:
    """`folder`/titles1 with the first `rows` rows of `files`, month files kept as they are; rows written."""
    target = folder / "titles1"
    shutil.rmtree(folder, ignore_errors=True)
    target.mkdir(parents=True)
    written = 0
    for path in files:
        lines = path.read_bytes().splitlines(keepends=True)[: rows - written]
        (target / path.name).write_bytes(b"".join(lines))
        written += len(lines)
        if written >= rows:
            break
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench_scale"))
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    files = headline_files(work)
    params = work / "params.yaml"
    # one process, as when the curve in docs/benchmarks.md was measured: the curve is of memory as documents grow
    params.write_text(yaml.safe_dump({"ingest": {"sources": [LAYOUT], "workers": 1}}, allow_unicode=True),
                      encoding="utf-8")
    print("| documents | MB | wall s | CPU s | documents/CPU-second | peak RSS MB |\n|---|---|---|---|---|---|")
    for docs in args.docs:
        rows = build(work / "corpus", files, docs)
        size = sum(p.stat().st_size for p in (work / "corpus" / "titles1").iterdir()) / 2**20
        result = measure([sys.executable, "-m", "pipeline", "--params", str(params), "parse", str(work / "corpus"),
                          "-o", str(work / "out.jsonl")])
        record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {psutil.cpu_count()} cores",
                  "load_average": round(os.getloadavg()[0], 1), "rows": rows, "mb": round(size, 1), **result,
                  "docs_per_cpu_s": round(rows / result["cpu_s"])}
        io.append_record(RESULTS, record)
        print(f"| {rows:,} | {size:.1f} | {result['wall_s']} | {result['cpu_s']} | {record['docs_per_cpu_s']:,} | "
              f"{result['peak_rss_mb']} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
