"""Pack what the GPU pretraining run needs, and the device machine lacks, into build/device/.

    python scripts/build_pretrain_corpus.py --out build/pretrain_corpus    # here, beside ../shared
    python scripts/pack_for_device.py                                      # → build/device/
    # the device tool, carry ["build/device"]:  MINUTES=7 bash scripts/pretrain_gpu.sh

A device machine receives the repository's files and what `carry` names, 64 MiB in all, and nothing
else: not ../shared (the corpora, the vocabulary), not a package index. So this writes

* build/device/corpus/: the built corpus as `train.jsonl.xz` + `heldout.jsonl.xz` (pretrain reads them),
  every report document kept and news documents drawn (seeded) until it fits what the repository and
  the wheels leave of the limit; its manifest.json says how much was kept (`packed`);
* build/device/wheels/: the packages `python -m pipeline pretrain` imports that the device's Python
  (CPython 3.12 with torch and transformers) lacks, at the versions installed here: rjieba (word
  boundaries for whole-word masking) and dvclive with the parts of dvc it imports. The list was found by
  running a tiny pretraining in a venv holding only the device's packages (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.pretrain_corpus import pack  # noqa: E402

MIB = 2**20
DEVICE_WHEELS = ("rjieba", "dvclive", "dvc", "dvc-data", "dvc-objects", "dvc-http", "dvc-render",
                 "dvc-studio-client", "dulwich", "scmrepo", "funcy", "ruamel.yaml", "flatten-dict", "voluptuous",
                 "pygtrie", "sqltrie", "diskcache", "dpath", "flufl.lock", "atpublic", "zc.lockfile",
                 "platformdirs", "configobj")
DEVICE_PYTHON = ["--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                 "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]


def travelling_bytes(repo: Path) -> int:
    """Bytes of the files that travel anyway: tracked, and untracked but not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            check=True, capture_output=True).stdout.split(b"\0")
    paths = {repo / name.decode() for name in listed if name}
    return sum(path.stat().st_size for path in paths if path.is_file())


def download_wheels(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={version(name)}" for name in DEVICE_WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    *DEVICE_PYTHON, "--dest", str(out), *pins], check=True)
    return sum(path.stat().st_size for path in out.glob("*.whl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="build/pretrain_corpus", help="a corpus build_pretrain_corpus.py wrote")
    parser.add_argument("--out", default="build/device")
    parser.add_argument("--limit-mib", type=float, default=64.0, help="what may travel to the device machine")
    parser.add_argument("--margin-mib", type=float, default=1.0, help="left free under the limit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    repo, out = Path(__file__).resolve().parents[1], Path(args.out)
    if not (Path(args.corpus) / "train.jsonl").is_file():
        sys.exit(f"{args.corpus}: no train.jsonl: build the corpus first "
                 "(python scripts/build_pretrain_corpus.py --out build/pretrain_corpus)")
    wheels = download_wheels(out / "wheels")
    budget = int((args.limit_mib - args.margin_mib) * MIB) - travelling_bytes(repo) - wheels
    manifest = pack(args.corpus, out / "corpus", budget, args.seed)
    packed = manifest["packed"]
    print(f"wheels: {wheels / MIB:.1f} MiB; corpus: {packed['bytes'] / MIB:.1f} MiB, {packed['train_documents']:,} of "
          f"{packed['train_documents_of']:,} training documents, {packed['train_chars'] / 1e6:.1f}M of "
          f"{packed['train_chars_of'] / 1e6:.1f}M characters → {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
