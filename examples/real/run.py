"""The real corpora end to end: `python examples/real/run.py` from the repository root (docs/real-corpora.md).

1. Unpacks the news archives of ../shared/corpora/news into <corpus>/data/raw and copies the report corpora
   beside them (once: a marker records which archive was unpacked);
2. snapshots models/default, the model the main pipeline selected, into model/: nothing is trained here;
3. runs `dvc repro examples/real/dvc.yaml` (DVC reruns only stages whose inputs changed), timing each stage
   and sampling the memory of every process it starts;
4. prints, and writes to summary.json, per corpus what was read, rejected and deduplicated, the paragraphs
   and predictions, with each stage's seconds and peak memory.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPORA = {  # corpus → (archive under ../shared/corpora, the folder inside it that holds the corpus), or files
    "xwlb": ("news/xwlb_2012-2026.tar.xz", "assets/"),
    "rmrb": ("news/peoples_daily_rss_2026.tar.xz", "history/"),
    "headlines": ("news/peoples_daily_headlines_1946-2022.tar.xz", "src/assets/titles1/"),
    "reports": ["cpc_congress_reports.jsonl", "cpc_congress_reports_early.jsonl", "gov_work_reports_1954-2025.jsonl"],
}
MARKER = ".unpacked.json"  # hidden: ingest skips it
PUBLISHED_FIGURES = ("theme_small_multiples", "theme_composition")


def unpack(corpus: str, shared: Path) -> str:
    """Fill <corpus>/data/raw from ../shared/corpora unless it holds that archive already; what was done."""
    raw = HERE / corpus / "data" / "raw"
    spec = CORPORA[corpus]
    sources = [shared / spec[0]] if isinstance(spec, tuple) else [shared / name for name in spec]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise SystemExit(f"run: {', '.join(missing)} not found: pass --shared with the folder that holds the "
                         "corpora (../shared/corpora in the project's layout)")
    # name and size: a remounted ../shared changes mtimes, not the archive
    stamp = [{"file": p.name, "bytes": p.stat().st_size} for p in sources]
    marker = raw / MARKER
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == stamp:
        return "already unpacked"
    shutil.rmtree(raw, ignore_errors=True)  # the archive replaces what was there (days a refresh added included)
    raw.mkdir(parents=True)
    if isinstance(spec, tuple):
        with tarfile.open(sources[0], "r:xz") as archive:  # only the corpus folder: no LICENSE/README rows
            members = [m for m in archive.getmembers() if m.name.startswith(spec[1])]
            archive.extractall(raw, members=members, filter="data")  # "data": no links out, no devices
    else:
        for path in sources:
            shutil.copyfile(path, raw / path.name)
    marker.write_text(json.dumps(stamp), encoding="utf-8")
    return f"unpacked {', '.join(p.name for p in sources)}"


def snapshot_model(model: Path) -> str:
    """Copy `model` to model/ when it differs from the snapshot there."""
    if not (model / "model.json").is_file():
        raise SystemExit(f"run: no model in {model}: run `dvc repro select_model` (or `dvc pull`) at the repository "
                         "root first, or pass --model with a model directory such as models/baseline")
    target = HERE / "model"
    if target.is_dir() and not _differs(model, target):
        return f"model/ is {model} already"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(model, target)
    return f"model/ ← {model}"


def _differs(a: Path, b: Path) -> bool:
    compared = filecmp.dircmp(a, b)
    return bool(compared.left_only or compared.right_only or
                filecmp.cmpfiles(a, b, compared.common_files, shallow=False)[1])


class MemorySampler:
    """Peak resident memory of a process and all its children, sampled every 0.2 s in a thread."""

    def __init__(self, pid: int):
        import psutil

        self.process, self.peak, self.done = psutil.Process(pid), 0, False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        while not self.done:
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    def take_peak(self) -> int:
        """The peak since the last call, in bytes (resets it)."""
        peak, self.peak = self.peak, 0
        return peak


def reproduce(corpora: list[str], force: bool) -> list[dict]:
    """`dvc repro` of the corpora's report stages (and what they need): [{stage, seconds, peak_mb}]."""
    targets = [f"{HERE.relative_to(ROOT)}/dvc.yaml:report@{corpus}" for corpus in corpora]
    command = [sys.executable, "-m", "dvc", "repro", *(["--force"] if force else []), *targets]
    # stdout (DVC's "Running stage" lines) is read to time each stage; stderr, where the stages' logs and
    # progress bars go, stays on the terminal
    # stage commands say `python -m pipeline …`: this interpreter's folder first on PATH makes `python` this
    # virtual environment's, activated or not
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1)
    sampler = MemorySampler(process.pid)
    stages, current, started = [], None, time.perf_counter()

    def close_stage() -> None:
        if current:
            stages.append({"stage": current, "seconds": round(time.perf_counter() - started, 1),
                           "peak_mb": round(sampler.take_peak() / 2**20)})

    for line in process.stdout:
        sys.stdout.write(line)
        if line.startswith("Running stage '"):
            close_stage()
            current, started = line.split("'")[1], time.perf_counter()
            sampler.take_peak()
    close_stage()
    sampler.done = True
    if process.wait():
        raise SystemExit(f"run: dvc repro failed (exit {process.returncode}); the stage's error is above")
    return stages


def corpus_summary(corpus: str) -> dict:
    """What ingest read, rejected and deduplicated, what segment and predict made, the trend periods."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = HERE / corpus
    report = json.loads((folder / "data/interim/ingest_report.json").read_text(encoding="utf-8"))
    kinds = pc.value_counts(pq.read_table(folder / "data/interim/paragraphs.parquet", columns=["kind"])["kind"])
    trends = json.loads((folder / "reports/trends_summary.json").read_text(encoding="utf-8"))
    return {
        "files": report["files"], "documents_read": report["documents_read"], "rejected": report["rejected"],
        "duplicates_exact": report["duplicates_exact"], "duplicates_near": report["duplicates_near"],
        "documents_kept": report["documents_kept"],
        "paragraphs": {k["values"]: k["counts"] for k in kinds.to_pylist()},
        "predicted": pq.read_metadata(folder / "data/processed/paragraph_themes.parquet").num_rows,
        "periods": f"{trends['first_period']} … {trends['last_period']} ({trends['periods']} {trends['period']}s)",
    }


def publish_figures(corpora: list[str], folder: Path) -> list[Path]:
    """Each corpus's trend figures as small 256-colour PNGs in `folder` (docs/real-corpora: committed)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for corpus in corpora:
        for name in PUBLISHED_FIGURES:
            with Image.open(HERE / corpus / "reports" / "figures" / f"{name}.png") as figure:
                target = folder / f"{corpus}_{name}.png"
                figure.convert("RGB").quantize(256).save(target, optimize=True)
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "corpora",
                        help="the folder with news/*.tar.xz and the report .jsonl files (default ../shared/corpora)")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default",
                        help="the trained model to use (default models/default)")
    parser.add_argument("--force", action="store_true", help="rerun every stage (dvc repro --force)")
    parser.add_argument("--figures", type=Path, help="also copy the trend figures here as small PNGs "
                        "(docs/real-corpora)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for corpus in args.corpora:
        print(f"run: {corpus}: {unpack(corpus, args.shared)}", flush=True)
    print(f"run: {snapshot_model(args.model.resolve())}", flush=True)
    prepared = time.perf_counter() - started
    stages = reproduce(args.corpora, args.force)
    summary = {"corpora": {corpus: corpus_summary(corpus) for corpus in args.corpora}, "stages": stages,
               "prepare_seconds": round(prepared, 1), "seconds": round(time.perf_counter() - started, 1),
               "peak_mb": max((s["peak_mb"] for s in stages), default=0)}
    (HERE / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print("\n| corpus | files | documents read | rejected | duplicates (exact + near) | kept | body paragraphs | "
          "predicted | periods |\n|---|---|---|---|---|---|---|---|---|")
    for corpus, row in summary["corpora"].items():
        print(f"| {corpus} | {row['files']:,} | {row['documents_read']:,} | {row['rejected']:,} | "
              f"{row['duplicates_exact']:,} + {row['duplicates_near']:,} | {row['documents_kept']:,} | "
              f"{row['paragraphs'].get('body', 0):,} | {row['predicted']:,} | {row['periods']} |")
    if args.figures:
        print(f"run: {len(publish_figures(args.corpora, args.figures))} figures → {args.figures}")
    print(f"\nrun: {len(stages)} stages rerun in {summary['seconds']:.0f}s (unpacking {prepared:.0f}s); peak memory of "
          f"any stage {summary['peak_mb']:,} MB → {HERE / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
