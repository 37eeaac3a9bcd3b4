"""Build the MLM pretraining corpus from the real corpora (see pipeline/pretrain_corpus.py).

    python scripts/build_pretrain_corpus.py [--corpora ../shared/corpora] [--news /tmp/corpora] \
        [--out build/pretrain_corpus] [--headlines]

The news archives must be unpacked first (`tar -xJf` each file of ../shared/corpora/news/ into --news).
The split shares and seed default to params.yaml's `split` section (real_dev_share, real_test_share,
seed), so the corpus leaves out exactly the dates the coded data holds out.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_params  # noqa: E402
from pipeline.labels.split import SplitSettings  # noqa: E402
from pipeline.pretrain_corpus import CorpusSettings, build  # noqa: E402


def main() -> int:
    defaults = CorpusSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=defaults.corpora_dir, help="folder of the report JSONL files")
    parser.add_argument("--news", default=defaults.news_dir, help="folder of the unpacked news archives")
    parser.add_argument("--out", default=defaults.out_dir)
    parser.add_argument("--headlines", action="store_true", help="add People's Daily headlines (short texts)")
    parser.add_argument("--params", default="params.yaml", help="params file whose `split` section is used")
    args = parser.parse_args()
    split = {**SplitSettings().__dict__, **(load_params(args.params).get("split") or {})}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    manifest = build(CorpusSettings(corpora_dir=args.corpora, news_dir=args.news, out_dir=args.out,
                                    headlines=args.headlines, dev_share=split["real_dev_share"],
                                    test_share=split["real_test_share"], seed=split["seed"]))
    for key, value in manifest.items():
        if key != "settings":
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
