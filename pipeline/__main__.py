"""Command line: one subcommand per DVC stage, plus parse / classify / annotate / refresh.

Stage subcommands read their section of params.yaml (as `dvc.yaml` declares) and take no other input.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipeline import config


def _ingest(args) -> int:
    from pipeline.ingest import stage

    stage.run(config.stage_settings("ingest", config.IngestSettings, args.params))
    return 0


def _segment(args) -> int:
    from pipeline import segment

    settings = config.stage_settings("segment", config.SegmentSettings, args.params)
    segment.run(settings)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    parser.add_argument("--params", default=config.PARAMS_FILE, help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ingest", help="stage: data/raw → data/interim/documents.parquet").set_defaults(func=_ingest)
    sub.add_parser("segment", help="stage: documents → data/interim/paragraphs.parquet").set_defaults(
        func=_segment)
    parse = sub.add_parser("parse", help="ingest + segment files or folders in memory → paragraphs JSONL")
    parse.add_argument("paths", nargs="+", help="files or directories")
    parse.add_argument("-o", "--output", help="output .jsonl (default: standard output)")
    parse.set_defaults(func=_parse)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
