"""Benchmark the archive layouts (ingest.sources) end to end: `python -m pipeline parse` on real archives.

Runs the command line a user runs, with the project's params.yaml (whose `ingest.sources` describes the
three news archives), on: one year of 新闻联播 day files (JSON-API dumps), every People's Daily RSS file,
and one year of People's Daily headline CSVs. The archives are read from /tmp/corpora when unpacked
there, else extracted from ../shared/corpora/news/*.tar.xz. Wall time, documents per second and the
peak resident memory of the command's process tree are measured.

    python scripts/bench_sources.py --xwlb-year 2020 --headlines-year 1990
Appends one record per set to docs/bench_sources_results.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psutil
import yaml

from pipeline import io
from pipeline.config import load_params

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_ingest import wait_with_peak_rss  # noqa: E402  (scripts/ is this script's folder)
NEWS = ROOT.parent / "shared" / "corpora" / "news"
UNPACKED = Path("/tmp/corpora")
RESULTS = ROOT / "docs" / "bench_sources_results.json"
ARCHIVES = {"xwlb": "xwlb_2012-2026.tar.xz", "rss": "peoples_daily_rss_2026.tar.xz",
            "headlines": "peoples_daily_headlines_1946-2022.tar.xz"}
SUMMARY = re.compile(r"parse: (\d+) documents, (\d+) paragraphs, (\d+) rejected,(?: \d+ warnings,)? (\d+) duplicates")


def input_folder(name: str, folder: str, work: Path) -> Path:
    """The archive folder `folder` (e.g. assets/2020), unpacked under /tmp/corpora or extracted to `work`."""
    if (UNPACKED / folder).is_dir():
        return UNPACKED / folder
    target = work / folder
    if not target.is_dir():
        with tarfile.open(NEWS / ARCHIVES[name], "r|xz") as tar:
            for member in tar:
                if member.isfile() and member.name.startswith(folder.rstrip("/") + "/"):
                    path = work / member.name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(tar.extractfile(member).read())
    return target


def parse_params(work: Path) -> Path:
    """The project params.yaml's ingest and segment sections (all that `parse` reads), on their own."""
    params = load_params(ROOT / "params.yaml")
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump({k: params[k] for k in ("ingest", "segment") if k in params},
                                   allow_unicode=True), encoding="utf-8")
    return path


def measure(paths: list[Path], out: Path, params: Path) -> dict:
    """Run `python -m pipeline parse` on `paths`, sampling the process tree's memory."""
    cmd = [sys.executable, "-m", "pipeline", "--params", str(params), "parse", *map(str, paths), "-o", str(out)]
    log = out.with_suffix(".log")  # a file, not a pipe: thousands of rejection lines would fill a pipe
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as stderr:
        process = psutil.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        peak = wait_with_peak_rss(process)
    seconds = time.perf_counter() - started
    stderr = log.read_text(encoding="utf-8")
    found = SUMMARY.search(stderr)
    if process.returncode or not found:
        raise SystemExit(f"parse failed ({process.returncode}):\n{stderr[-2000:]}")
    documents, paragraphs, rejected, duplicates = map(int, found.groups())
    return {"seconds": round(seconds, 1), "documents": documents, "paragraphs": paragraphs,
            "rejected": rejected, "duplicates": duplicates, "docs_per_s": round(documents / seconds, 1),
            "peak_rss_mb": round(peak / 2**20, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xwlb-year", default="2020", help="year of 新闻联播 day files (assets/YEAR)")
    parser.add_argument("--headlines-year", default="1990", help="year of headline CSVs (titles1/YEAR-*.csv)")
    parser.add_argument("--sets", nargs="+", default=["xwlb", "rss", "headlines"], choices=list(ARCHIVES))
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench_sources"))
    args = parser.parse_args(argv)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    params = parse_params(work)
    inputs = {
        "xwlb": lambda: [input_folder("xwlb", f"assets/{args.xwlb_year}", work)],
        "rss": lambda: [input_folder("rss", "history", work)],
        "headlines": lambda: sorted(input_folder("headlines", "src/assets/titles1", work).glob(
            f"{args.headlines_year}-*.csv")),
    }
    labels = {"xwlb": f"新闻联播 {args.xwlb_year} (JSON day files)", "rss": "人民日报 RSS 2026 (all files)",
              "headlines": f"人民日报 headlines {args.headlines_year} (CSV)"}
    print("| archive | files | MB | documents | paragraphs | rejected | duplicates | seconds | docs/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        paths = inputs[name]()
        files = [p for path in paths for p in ([path] if path.is_file() else sorted(path.rglob("*")))
                 if p.is_file()]
        size = sum(p.stat().st_size for p in files) / 2**20
        result = measure(paths, work / f"{name}.jsonl", params)
        record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {psutil.cpu_count()} cores",
                  "archive": labels[name], "files": len(files), "mb": round(size, 1), **result}
        io.append_record(RESULTS, record)
        print(f"| {labels[name]} | {len(files)} | {record['mb']} | {result['documents']:,} | {result['paragraphs']:,} | "
              f"{result['rejected']:,} | {result['duplicates']:,} | {result['seconds']} | {result['docs_per_s']} | "
              f"{result['peak_rss_mb']} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
