"""Throughput of `python -m pipeline classify`: paragraphs/s through the real command line, and peak memory.

Draws N real paragraphs (seeded, with replacement) from the government work reports in
../shared/corpora (`text` split on blank lines; about 185 characters each), writes them as JSONL and
runs `python -m pipeline classify --model DIR --input X --output Y` on them in a child process. A
second run on one paragraph measures the start-up (interpreter, imports, model loading), so the
rate is reported with it and without it. Peak RSS is the child's own high-water mark (wait4).

    python scripts/bench_classify.py [--model models/baseline] [--paragraphs 20000] [--repeats 3]

Without the corpora it says so and exits 0. When the default models/baseline is missing it is
trained first with `dvc repro baseline` (its upstream stages run on the demo corpus). Each run appends
one record to docs/bench_classify_results.json and prints a markdown table row.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from pipeline import io  # noqa: E402

REPORTS = ROOT.parent / "shared" / "corpora" / "gov_work_reports_1954-2025.jsonl"
RESULTS = ROOT / "docs" / "bench_classify_results.json"
DEFAULT_MODEL = ROOT / "models" / "baseline"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "CPU"


def real_paragraphs(n: int, seed: int = 0) -> list[str]:
    pool = [p.strip() for line in REPORTS.open(encoding="utf-8")
            for p in json.loads(line)["text"].split("\n\n") if p.strip()]
    rng = random.Random(seed)
    return [rng.choice(pool) for _ in range(n)]


def write_input(path: Path, texts: list[str]) -> None:
    io.write_jsonl(path, ({"id": f"p{i:06d}", "text": text} for i, text in enumerate(texts)))


def run_cli(model: Path, src: Path, out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one `classify` run."""
    cmd = [sys.executable, "-m", "pipeline", "classify", "--model", str(model), "--input", str(src),
           "--output", str(out)]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"classify failed ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
    process.stderr.close()
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports kilobytes


def ensure_model(model: Path) -> None:
    if (model / "model.json").is_file():
        return
    if model.resolve() != DEFAULT_MODEL.resolve():
        raise SystemExit(f"{model} is not a model directory: train one (e.g. `dvc repro baseline`) or pass --model")
    print(f"{model} is missing: training it with `dvc repro baseline`", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "baseline"], cwd=ROOT, check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model directory (default: models/baseline)")
    parser.add_argument("--paragraphs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=1, help="runs of the full input (each recorded)")
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench_classify"))
    parser.add_argument("--out", default=str(RESULTS), help="results file (a JSON list)")
    parser.add_argument("--note", default="", help="what this run measures, kept in its record")
    args = parser.parse_args(argv)
    if not REPORTS.is_file():
        print(f"skipped: {REPORTS} is absent (the benchmark needs the real reports)")
        return 0
    model = Path(args.model).absolute()
    ensure_model(model)
    work = Path(args.work_dir)
    texts = real_paragraphs(args.paragraphs)
    full, single = work / "paragraphs.jsonl", work / "one.jsonl"
    write_input(full, texts)
    write_input(single, texts[:1])
    method = json.loads((model / "model.json").read_text(encoding="utf-8")).get("method")
    print("| model | paragraphs | mean chars | start-up s | total s | para/s (with start-up) "
          "| para/s (without) | CPU s | para per CPU-s (without start-up) | peak RSS MB | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.repeats):
        startup_s, startup_cpu_s, _ = run_cli(model, single, work / "one_out.jsonl")
        total_s, cpu_s, peak_mb = run_cli(model, full, work / "out.jsonl")
        record = {
            "date": time.strftime("%Y-%m-%d"), "machine": f"{cpu_name()}, {os.cpu_count()} cores",
            "python": platform.python_version(), "model": os.path.relpath(model, ROOT), "method": method,
            "note": args.note,
            "source": "../shared/corpora/gov_work_reports_1954-2025.jsonl", "paragraphs": len(texts),
            "mean_chars": round(sum(map(len, texts)) / len(texts), 1), "startup_s": round(startup_s, 2),
            "total_s": round(total_s, 2), "para_per_s_with_startup": round(len(texts) / total_s),
            "para_per_s_without_startup": round(len(texts) / max(total_s - startup_s, 1e-9)),
            "startup_cpu_s": round(startup_cpu_s, 2), "cpu_s": round(cpu_s, 2),
            "para_per_cpu_s_without_startup": round(len(texts) / max(cpu_s - startup_cpu_s, 1e-9)),
            "load_average": round(os.getloadavg()[0], 1),  # other jobs on a shared box slow the wall clock
            "peak_rss_mb": round(peak_mb, 1),
        }
        io.append_record(args.out, record)
        print(f"| {record['model']} ({method}) | {len(texts):,} | {record['mean_chars']} | {record['startup_s']} | "
              f"{record['total_s']} | {record['para_per_s_with_startup']:,} | "
              f"{record['para_per_s_without_startup']:,} | {record['cpu_s']} | "
              f"{record['para_per_cpu_s_without_startup']:,} | {record['peak_rss_mb']} | {record['load_average']} |",
              flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
