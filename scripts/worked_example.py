"""The worked example: the whole pipeline on real, dated documents — the CPC National Congress reports
(1982–2022) and the government work reports (1954–2025) in ../shared/corpora — with a trained model.

    .venv/bin/python scripts/worked_example.py [--model models/default]

Ingest + segment into build/worked_example/ (the repository's own data/ is never touched), predict
with the model, then trends and charts; the figures go to docs/worked-example/figures/, which
docs/worked-example.md describes. The stages run with params.yaml's settings, except that trends pool
`--years-per-period` years (default 5): the series are dated by year only, with one or two reports a
year. Without ../shared/corpora the script says so and exits 0.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
from pathlib import Path

from pipeline import charts, config, segment, trends
from pipeline.classifiers.base import MODEL_CARD
from pipeline.ingest import stage as ingest
from pipeline.predict import PredictSettings, resolve_model_dir
from pipeline.predict import run as predict

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO.parent / "shared" / "corpora"
SERIES = ("cpc_congress_reports.jsonl", "gov_work_reports_1954-2025.jsonl")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default",
                        help="a saved model directory, or best | dictionary | baseline | bert as in params.yaml "
                             "predict.model (default: models/default)")
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="folder holding the two series")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "worked_example",
                        help="folder for the intermediate outputs (default: build/worked_example)")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "worked-example" / "figures",
                        help="where the figures go (default: docs/worked-example/figures)")
    parser.add_argument("--years-per-period", type=int, default=5,
                        help="years pooled into one period (default 5: most years have one or two reports, "
                             "too few documents for a bootstrap interval)")
    parser.add_argument("--params", type=Path, default=REPO / config.PARAMS_FILE, help="params file")
    return parser.parse_args(argv)


def copy_series(corpora: Path, raw: Path) -> None:
    """Make `raw` hold exactly the two series (copies: ingest never follows a link out of its folder)."""
    raw.mkdir(parents=True, exist_ok=True)
    for stale in raw.iterdir():
        stale.unlink()
    for name in SERIES:
        shutil.copyfile(corpora / name, raw / name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    missing = [name for name in SERIES if not (args.corpora / name).is_file()]
    if missing:
        print(f"worked example skipped: {args.corpora} lacks {', '.join(missing)} "
              "(the shared corpora are not part of a clone)")
        return 0
    predict_settings = config.stage_settings("predict", PredictSettings, args.params)
    model_dir = resolve_model_dir(args.model, predict_settings.models_dir)
    if not (model_dir / MODEL_CARD).is_file():
        print(f"worked example: no trained model in '{model_dir}' (no {MODEL_CARD}). Train one with "
              "`dvc repro` (the select_model stage writes models/default) or pass --model models/<method>.",
              file=sys.stderr)
        return 1

    interim, processed, reports = args.work / "data/interim", args.work / "data/processed", args.work / "reports"
    paragraphs, themes = interim / "paragraphs.parquet", processed / "paragraph_themes.parquet"
    copy_series(args.corpora, args.work / "raw")
    ingest_settings = config.stage_settings("ingest", config.IngestSettings, args.params)
    ingest.run(dataclasses.replace(ingest_settings, raw_dir=str(args.work / "raw"), out_dir=str(interim)))
    segment.run(config.stage_settings("segment", config.SegmentSettings, args.params),
                str(interim / "documents.parquet"), str(paragraphs))
    predict(dataclasses.replace(predict_settings, model=str(model_dir), paragraphs=str(paragraphs),
                                output=str(themes)))
    trend_settings = dataclasses.replace(config.stage_settings("trends", trends.TrendsSettings, args.params),
                                         period="year", years_per_period=args.years_per_period)
    result = trends.run(trend_settings, paragraphs, themes, reports)
    written = charts.run(config.stage_settings("charts", charts.ChartsSettings, args.params),
                         reports / "tables", None, args.figures)

    s = result.summary
    print(f"\nworked example: {s['documents']} documents in {s['periods']} periods "
          f"({s['first_period']} … {s['last_period']}); tables in {reports / 'tables'}")
    print(result.top[["comparison", "direction", "label", "from_period", "to_period", "change", "lo", "hi"]]
          .round(3).to_string(index=False))
    print("figures:\n" + "\n".join(f"  {path}" for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
