"""Benchmark the Ray engine: ingest, segment and predict on a local Ray with 1 vs 2 workers (CPUs),
against the default single-process path, on the same corpus as scripts/bench_incremental.py builds or, with
--corpus, on a real corpus of examples/real (its data/raw and the ingest layouts of its params.yaml).

Each configuration runs in a fresh child process (a fresh Ray); Ray's start-up is timed apart from the
stages, and every Ray output is checked to be byte-identical to the single-process one.

    python scripts/bench_ray.py --docs 600 --cpus 1 2
    python scripts/bench_ray.py --corpus examples/real/rmrb --cpus 1 2     # after examples/real/run.py
Writes docs/bench_ray_results.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import filecmp
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_incremental import write_documents  # noqa: E402  (scripts/ is this script's folder)
from bench_ingest import paragraph_pool  # noqa: E402

from pipeline import io  # noqa: E402

RESULTS = ROOT / "docs" / "bench_ray_results.json"
OUTPUTS = ("documents.parquet", "rejected.csv", "duplicates.csv", "paragraphs.parquet", "themes.parquet")


def child(raw: str, out: str, model: str, engine_kind: str, cpus: int, params: str) -> None:
    import dataclasses

    from pipeline import predict, segment
    from pipeline.config import IngestSettings, SegmentSettings, stage_settings
    from pipeline.engines import Engine, connect_ray
    from pipeline.ingest import stage

    layouts = stage_settings("ingest", IngestSettings, params) if params else IngestSettings()
    ingest_settings = dataclasses.replace(layouts, raw_dir=raw, out_dir=out)

    engine = Engine(engine_kind, ray_cpus=cpus)
    times = {}
    started = time.perf_counter()
    if engine_kind == "ray":
        connect_ray(engine)
    times["start_s"] = time.perf_counter() - started
    for name, run in [
        ("ingest_s", lambda: stage.run(ingest_settings, engine)),
        ("segment_s", lambda: segment.run(SegmentSettings(), f"{out}/documents.parquet",
                                          f"{out}/paragraphs.parquet", engine=engine)),
        ("predict_s", lambda: predict.run(predict.PredictSettings(
            model=model, paragraphs=f"{out}/paragraphs.parquet", output=f"{out}/themes.parquet"), engine)),
    ]:
        started = time.perf_counter()
        run()
        times[name] = time.perf_counter() - started
    print(json.dumps(times))


def measure(raw: Path, out: Path, model: Path, engine_kind: str, cpus: int, params: str = "") -> dict:
    cmd = [sys.executable, __file__, "--child", str(raw), str(out), str(model), engine_kind, str(cpus), params]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a fresh local Ray, never a cluster
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    if result.returncode:
        raise SystemExit(f"benchmark child failed ({result.returncode}): {' '.join(cmd)}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--paragraphs", type=int, default=20, help="paragraphs per document")
    parser.add_argument("--cpus", type=int, nargs="+", default=[1, 2], help="Ray workers to compare")
    parser.add_argument("--corpus", type=Path, help="a corpus folder of examples/real (params.yaml, data/raw) "
                        "instead of built documents")
    parser.add_argument("--work-dir", default=str(ROOT / "build" / "bench_ray"))
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        raw, out, model, kind, cpus, params = args.child
        child(raw, out, model, kind, int(cpus), params)
        return 0
    if importlib.util.find_spec("ray") is None:
        print("bench_ray: skipped: Ray is not installed (pip install -e '.[ray]')")
        return 0
    from pipeline.classifiers.dictionary import DictionaryClassifier
    from pipeline.codebook import load_codebook

    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    if args.corpus:
        raw, params, source = args.corpus.resolve() / "data" / "raw", str(args.corpus.resolve() / "params.yaml"), str(args.corpus)
        if not raw.is_dir():
            print(f"bench_ray: skipped: {raw} does not exist (run examples/real/run.py first)")
            return 0
        size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
        args.docs = "all"
    else:
        pool, source = paragraph_pool()
        if len(pool) < args.paragraphs:
            print("bench_ray: skipped: no corpus (../shared/corpora or data/raw) to build documents from")
            return 0
        raw, params = work / "raw", ""
        size = write_documents(raw, 0, args.docs, pool, args.paragraphs)
    model = DictionaryClassifier(load_codebook()).save(work / "model")
    runs = {"local, 1 process": (measure(raw, work / "local", model, "local", 1, params), work / "local")}
    for cpus in args.cpus:
        out = work / f"ray{cpus}"
        runs[f"ray, {cpus} worker{'s' if cpus > 1 else ''}"] = (measure(raw, out, model, "ray", cpus, params), out)
    identical = all(filecmp.cmp(work / "local" / name, out / name, shallow=False)
                    for _, out in runs.values() for name in OUTPUTS)
    record = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} cores",
              "source": source, "documents": args.docs, "corpus_mb": round(size / 2**20, 1),
              "identical_outputs": identical,
              "runs": {name: {k: round(v, 2) for k, v in times.items()} for name, (times, _) in runs.items()}}
    print(f"{args.docs} documents ({record['corpus_mb']} MB, from {source}) on {record['machine']}; "
          f"Ray outputs byte-identical to the single-process ones: {identical}")
    print("| engine | Ray start s | ingest s | segment s | predict s | stages total s |")
    print("|---|---|---|---|---|---|")
    for name, times in record["runs"].items():
        total = round(times["ingest_s"] + times["segment_s"] + times["predict_s"], 2)
        print(f"| {name} | {times['start_s']} | {times['ingest_s']} | {times['segment_s']} | "
              f"{times['predict_s']} | {total} |")
    io.append_record(RESULTS, record)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
