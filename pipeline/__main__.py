"""Command line: one subcommand per DVC stage, plus parse / classify / kwic / annotate / refresh.

Stage subcommands read their section of params.yaml (as `dvc.yaml` declares) and take no other input;
--engine/--ray-address (and params.yaml `execution:`) change where a stage runs, never what it writes.
"""
from __future__ import annotations

import argparse
import importlib
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
    from pipeline.parse import write_paragraphs

    ingest_settings = config.stage_settings("ingest", config.IngestSettings, args.params)
    segment_settings = config.stage_settings("segment", config.SegmentSettings, args.params)
    result = write_paragraphs(args.paths, ingest_settings, segment_settings, args.output)
    for status, rows in (("rejected", result.rejected), ("warning", result.warnings)):
        for row in rows:
            print(f"parse: {status} {row['path']}: {row['reason']}", file=sys.stderr)
    destination = "" if not args.output else f" → {args.output}" if result.documents else (
        f"; {args.output} not written")
    print(f"parse: {result.documents} documents, {result.paragraphs} paragraphs, {len(result.rejected)} rejected, "
          f"{len(result.warnings)} warnings, {len(result.duplicates)} duplicates{destination}", file=sys.stderr)
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
    "formulations": ("pipeline.formulations", "FormulationsSettings",
                     "paragraphs → formulations (提法) and emerging terms over time → reports/formulations"),
    "export": ("pipeline.exports", "ExportSettings",
               "paragraph predictions + trends tables → reports/exports (CSV with BOM, XLSX)"),
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

    pretrain.run(pretrain.pretrain_settings(config.load_params(args.params).get("pretrain"),
                                            f"{args.params}:pretrain"))
    return 0


def _distill(args) -> int:
    from pipeline import distill

    distill.run(distill.distill_settings(config.load_params(args.params).get("distill"), f"{args.params}:distill"),
                args.params)
    return 0


def _predict(args) -> int:
    from pipeline import predict

    predict.run(config.stage_settings("predict", predict.PredictSettings, args.params), _engine(args),
                _cache(args, "predict"))
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


def _kwic(args) -> int:
    from pipeline import kwic

    kwic.run(args.pattern, args.variants, args.input, args.width, args.output, args.limit)
    return 0


def _annotate(args) -> int:
    from pipeline.labels import annotate, audit

    settings = config.stage_settings("annotate", annotate.AnnotateSettings, args.params)
    if args.action == "export":
        paths = (audit.export_audit if args.audit else annotate.export)(settings, args.n, args.model)
        print(f"annotate: tasks written to {paths['json']} (Label Studio) and {paths['csv']}"
              + (f"; the sample's design in {paths['sample']}" if args.audit else ""))
    elif args.action == "import":
        written = annotate.import_files(args.files, settings, args.annotator, audit=args.audit)
        print(f"annotate: imported {written}")
    elif args.action == "adjudicate":
        summary = annotate.adjudicate(args.files, settings, args.name, args.decisions, audit=args.audit)
        print(f"annotate: {summary['agreed']} agreed + {summary['decided']} decided → {summary['gold']}")
        if summary["pending"]:
            print(f"annotate: {summary['pending']} need a decision: fill themes (none = no theme) and primary in "
                  f"{summary['sheet']}, then rerun with --decisions {summary['sheet']}")
    else:
        annotate.agreement(settings, args.output, args.annotations_dir)
        print(Path(args.output).with_suffix(".md").read_text(encoding="utf-8"))
    return 0


def _evaluate(args) -> int:
    if not args.audit:
        if args.model:
            raise ValueError("evaluate --model goes with --audit; the evaluate stage scores every method in models/")
        return _simple_stage("evaluate")(args)
    from pipeline import evaluate
    from pipeline.labels import annotate, audit

    settings = config.stage_settings("annotate", annotate.AnnotateSettings, args.params)
    metrics_dir = config.stage_settings("evaluate", evaluate.EvaluateSettings, args.params).metrics_dir
    print(audit.audit_table(audit.evaluate_audit(settings, metrics_dir, args.model)))
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

    def simple(name: str) -> argparse.ArgumentParser:
        stage = sub.add_parser(name, help=f"stage: {SIMPLE_STAGES[name][2]}")
        stage.set_defaults(func=_simple_stage(name))
        return stage

    simple("weak_label")
    simple("split")
    for name, func, text in [
        ("dictionary", _train("dictionary"), "stage: the codebook-keyword method → models/dictionary"),
        ("baseline", _train("baseline"), "stage: TF-IDF + logistic regression → models/baseline"),
        ("pretrain", _pretrain, "not a default stage: MLM-pretrain a Chinese BERT → models/pretrained/"),
        ("distill", _distill, "not a default stage: the TF-IDF model teaches a BERT on unlabeled real "
                              "paragraphs → models/pretrained/"),
        ("train_bert", _train("bert"), "stage: fine-tune BERT → models/bert"),
    ]:
        sub.add_parser(name, help=text).set_defaults(func=func)
    evaluate = simple("evaluate")
    evaluate.add_argument("--audit", action="store_true", help="instead: score the predictions against your coded "
                          "audit sample → metrics/audit.json, data/annotations/audit/error_rates.json")
    evaluate.add_argument("--model", help="--audit: score this model directory instead of the predict output")
    evaluate.set_defaults(func=_evaluate)
    simple("select_model")
    sub.add_parser("predict", parents=[engine], help="stage: score every paragraph → "
                   "data/processed/paragraph_themes.parquet").set_defaults(func=_predict)
    for name in ("trends", "charts", "report", "formulations", "export"):
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
    classify.add_argument("--output", required=True, help="output .jsonl, or .csv (Excel) / .xlsx (written only if "
                          "all input is valid)")
    classify.add_argument("--batch-size", type=int, default=2048,
                          help="paragraphs per model call (BERT sorts each call's chunks by length: larger pads less)")
    classify.set_defaults(func=_classify)
    kwic = sub.add_parser("kwic", help="keyword in context: every match of a pattern with its document, date, "
                          "title and heading path, in date order")
    kwic.add_argument("pattern", nargs="?", help="a regular expression, e.g. '两个(维护|确立)'")
    kwic.add_argument("--variants", nargs="+", metavar="V", help="instead: literal strings, any of which matches")
    kwic.add_argument("--input", default="data/interim/paragraphs.parquet",
                      help="paragraphs.parquet, or JSON lines from parse/classify (default: %(default)s)")
    kwic.add_argument("--width", type=int, default=20, help="characters of context on each side (default: 20)")
    kwic.add_argument("-o", "--output", help="write every line: .csv (Excel), .xlsx, else JSON lines")
    kwic.add_argument("--limit", type=int, default=100, help="lines printed (0: all; default: 100)")
    kwic.set_defaults(func=_kwic)
    annotate = sub.add_parser("annotate", help="annotation round trip: export | import | agreement | adjudicate "
                              "(docs/annotation.md)")
    actions = annotate.add_subparsers(dest="action", required=True)
    audit = argparse.ArgumentParser(add_help=False)
    audit.add_argument("--audit", action="store_true", help="the audit sample of your corpus (data/annotations/audit): "
                       "random, stratified by predicted theme, coded without the model's suggestions")
    export = actions.add_parser("export", parents=[audit], help="a sample to code → Label Studio tasks + CSV")
    export.add_argument("--n", type=int, help="sample size (default: annotate.sample_size)")
    export.add_argument("--model", help="rank by this model's uncertainty; --audit: stratify by its predictions "
                        "instead of the predict stage's output")
    imports = actions.add_parser("import", parents=[audit], help="coders' files → data/annotations/<annotator>.jsonl")
    imports.add_argument("files", nargs="+", help="Label Studio JSON exports, CSVs (UTF-8 or GB18030), JSONL")
    imports.add_argument("--annotator", help="annotator name for files that carry none")
    agree = actions.add_parser("agreement", help="kappa (with bootstrap CI) and alpha per theme → "
                               "reports/agreement.{json,md}")
    agree.add_argument("--annotations-dir", help="folder of coders' *.jsonl, one coder per file "
                       "(default: annotate.annotations_dir), e.g. data/annotations/reliability")
    agree.add_argument("--output", default="reports/agreement.json", help="report path (.md beside it)")
    adjudicate = actions.add_parser("adjudicate", parents=[audit], help="agreed codings → gold; the rest → a sheet "
                                    "for an adjudicator, whose decisions → gold")
    adjudicate.add_argument("files", nargs="+", help="two or more coders' files (one coder per file)")
    adjudicate.add_argument("--decisions", help="the adjudicator's decisions: the filled-in sheet, or JSONL with "
                            "para_id, themes, primary")
    adjudicate.add_argument("--name", default="adjudicated", help="gold file name (default: adjudicated)")
    annotate.set_defaults(func=_annotate)
    return parser


# Commands outside the DAG check only the sections they read: their start-up is part of their speed.
ONE_OFF_COMMAND_SECTIONS = {"parse": ("ingest", "segment", "execution"), "classify": (), "kwic": ()}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:  # before any work; a stage checks every section, so a bad value for a late stage stops the first one
        config.validate_params(args.params, ONE_OFF_COMMAND_SECTIONS.get(args.command))
    except config.SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
