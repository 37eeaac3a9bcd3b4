"""Command line: one subcommand per DVC stage, plus parse / classify / annotate / refresh.

Stage subcommands read their section of params.yaml (as `dvc.yaml` declares) and take no other input;
--engine/--ray-address (and params.yaml `execution:`) change where a stage runs, never what it writes.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from pipeline import config
from pipeline.engines import ENGINES, Engine, ExecutionSettings


def _engine(args, processes: int = 1) -> Engine:
    """The engine a stage runs on: its --engine/--ray-address flags, else params.yaml `execution:`."""
    execution = config.stage_settings("execution", ExecutionSettings, args.params)
    return Engine(args.engine or execution.engine, processes, args.ray_address or execution.ray_address,
                  execution.ray_cpus)


def _cache(args, stage: str):
    from pipeline.cache import ResultCache

    cache_dir = config.stage_settings("execution", ExecutionSettings, args.params).cache_dir
    return ResultCache(Path(cache_dir) / stage) if cache_dir else None


def _ingest(args) -> int:
    from pipeline.ingest import stage

    settings = config.stage_settings("ingest", config.IngestSettings, args.params)
    stage.run(settings, _engine(args, settings.workers), _cache(args, "ingest"))
    return 0


def _segment(args) -> int:
    from pipeline import segment

    settings = config.stage_settings("segment", config.SegmentSettings, args.params)
    segment.run(settings, engine=_engine(args, settings.workers), cache=_cache(args, "segment"))
    return 0


def _parse(args) -> int:
    from pipeline.parse import parse_paths

    ingest_settings = config.stage_settings("ingest", config.IngestSettings, args.params)
    segment_settings = config.stage_settings("segment", config.SegmentSettings, args.params)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        result = parse_paths(args.paths, ingest_settings, segment_settings,
                             lambda row: out.write(json.dumps(row, ensure_ascii=False) + "\n"))
    finally:
        if args.output:
            out.close()
    for row in result.rejected:
        print(f"parse: rejected {row['path']}: {row['reason']}", file=sys.stderr)
    print(f"parse: {result.documents} documents, {result.paragraphs} paragraphs, "
          f"{len(result.rejected)} rejected, {len(result.duplicates)} duplicates"
          + (f" → {args.output}" if args.output else ""), file=sys.stderr)
    return 0 if result.documents else 1


# Stages that only read their params section: name → (module, settings class, help).
SIMPLE_STAGES = {
    "weak_label": ("pipeline.labels.weak_label", "WeakLabelSettings",
                   "codebook labelling functions → silver labels + LF report"),
    "split": ("pipeline.labels.split", "SplitSettings", "gold + training corpus + silver → train/dev/test splits"),
    "evaluate": ("pipeline.evaluate", "EvaluateSettings", "every model on the gold test split → metrics/"),
    "select_model": ("pipeline.select_model", "SelectSettings",
                     "best dev macro-F1 → models/default (+ model card)"),
    "trends": ("pipeline.trends", "TrendsSettings", "paragraph themes → reports/tables, reports/plots"),
    "charts": ("pipeline.charts", "ChartsSettings", "trend tables + evaluation → reports/figures"),
    "report": ("pipeline.report", "ReportSettings", "everything → reports/index.html (works offline)"),
}


def _simple_stage(name: str):
    def command(args) -> int:
        module_name, settings_name, _ = SIMPLE_STAGES[name]
        module = importlib.import_module(module_name)
        module.run(config.stage_settings(name, getattr(module, settings_name), args.params))
        return 0
    return command


def _train(method: str):
    def command(args) -> int:
        from pipeline import train

        train.run(method, config.load_params(args.params).get(method) or {})
        return 0
    return command


def _pretrain(args) -> int:
    from pipeline import pretrain
    from pipeline.classifiers.bert import bert_settings

    scratch = bert_settings(config.load_params(args.params).get("bert"), f"{args.params}:bert").scratch
    pretrain.run(config.stage_settings("pretrain", pretrain.PretrainSettings, args.params), scratch)
    return 0


def _predict(args) -> int:
    from pipeline import predict

    predict.run(config.stage_settings("predict", predict.PredictSettings, args.params), _engine(args))
    return 0


def _refresh(args) -> int:
    from pipeline import refresh

    settings = config.stage_settings("refresh", refresh.RefreshSettings, args.params)
    ingest_settings = config.stage_settings("ingest", config.IngestSettings, args.params)
    return refresh.run(settings, ingest_settings, repro=not args.no_repro)


def _classify(args) -> int:
    from pipeline.classify import classify_file

    classify_file(args.model, args.input, args.output, args.batch_size)
    return 0


def _annotate(args) -> int:
    from pipeline.labels import annotate

    settings = config.stage_settings("annotate", annotate.AnnotateSettings, args.params)
    if args.action == "export":
        paths = annotate.export(settings, args.n, args.model)
        print(f"annotate: tasks written to {paths['json']} (Label Studio) and {paths['csv']}")
    elif args.action == "import":
        written = annotate.import_files(args.files, settings, args.annotator)
        print(f"annotate: imported {written}")
    else:
        result = annotate.agreement(settings, args.output)
        print(f"{'theme':<16} {'alpha':>7}  pairwise kappa")
        for theme, row in result["per_theme"].items():
            kappas = ", ".join(f"{k} {v['cohen_kappa']:.2f} (n={v['n']})" for k, v in row["pairs"].items())
            alpha = "n/a" if row["krippendorff_alpha"] is None else f"{row['krippendorff_alpha']:.3f}"
            print(f"{theme:<16} {alpha:>7}  {kappas}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE, help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    engine = argparse.ArgumentParser(add_help=False)  # the flags of stages that can run on Ray
    engine.add_argument("--engine", choices=ENGINES, help="where per-item work runs (default: execution.engine)")
    engine.add_argument("--ray-address", help="a Ray cluster (default: execution.ray_address, else "
                                              "$RAY_ADDRESS, else a local Ray)")
    sub.add_parser("ingest", parents=[engine], help="stage: data/raw → data/interim/documents.parquet"
                   ).set_defaults(func=_ingest)
    sub.add_parser("segment", parents=[engine], help="stage: documents → data/interim/paragraphs.parquet"
                   ).set_defaults(func=_segment)

    def simple(name: str) -> None:
        sub.add_parser(name, help=f"stage: {SIMPLE_STAGES[name][2]}").set_defaults(func=_simple_stage(name))

    simple("weak_label")
    simple("split")
    for name, func, text in [
        ("dictionary", _train("dictionary"), "stage: the codebook-keyword method → models/dictionary"),
        ("baseline", _train("baseline"), "stage: TF-IDF + logistic regression → models/baseline"),
        ("pretrain", _pretrain, "stage (optional): MLM-pretrain the scratch BERT → models/pretrained_scratch"),
        ("train_bert", _train("bert"), "stage: fine-tune BERT → models/bert"),
    ]:
        sub.add_parser(name, help=text).set_defaults(func=func)
    simple("evaluate")
    simple("select_model")
    sub.add_parser("predict", parents=[engine], help="stage: score every paragraph → "
                   "data/processed/paragraph_themes.parquet").set_defaults(func=_predict)
    for name in ("trends", "charts", "report"):
        simple(name)
    refresh = sub.add_parser("refresh", help="collect new documents (watched folders, URLs) into data/raw, "
                             "then dvc repro and dvc push; exit codes in docs/refresh.md")
    refresh.add_argument("--no-repro", action="store_true", help="only collect: skip dvc repro and dvc push")
    refresh.set_defaults(func=_refresh)
    parse = sub.add_parser("parse", help="ingest + segment files or folders in memory → paragraphs JSONL")
    parse.add_argument("paths", nargs="+", help="files or directories")
    parse.add_argument("-o", "--output", help="output .jsonl (default: standard output)")
    parse.set_defaults(func=_parse)
    classify = sub.add_parser("classify", help="apply a saved model to JSONL records {id, text, ...}")
    classify.add_argument("--model", required=True, help="a model directory, e.g. models/default")
    classify.add_argument("--input", required=True, help="input .jsonl")
    classify.add_argument("--output", required=True, help="output .jsonl (written only if all input is valid)")
    classify.add_argument("--batch-size", type=int, default=256)
    classify.set_defaults(func=_classify)
    annotate = sub.add_parser("annotate", help="annotation round-trip: export | import | agreement")
    annotate.add_argument("action", choices=["export", "import", "agreement"])
    annotate.add_argument("files", nargs="*", help="import: Label Studio JSON exports and/or CSVs")
    annotate.add_argument("--n", type=int, help="export: sample size (default: annotate.sample_size)")
    annotate.add_argument("--model", help="export: rank by this model's uncertainty")
    annotate.add_argument("--annotator", help="import: annotator name for files that carry none")
    annotate.add_argument("--output", default="reports/agreement.json", help="agreement: report path")
    annotate.set_defaults(func=_annotate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
