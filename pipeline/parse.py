"""`python -m pipeline parse`: ingest + segment in memory, one JSON object per paragraph."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import IngestSettings, SegmentSettings
from pipeline.ingest.stage import ingest, list_sources
from pipeline.segment import Segmenter, paragraph_rows

PARSE_FIELDS = ("para_id", "doc_id", "title", "date", "source", "doc_type", "kind", "level", "order",
                "heading_path", "text")


@dataclass
class ParseResult:
    documents: int
    paragraphs: int
    rejected: list[dict]
    duplicates: list[dict]


def parse_paths(paths: list[str], ingest_settings: IngestSettings, segment_settings: SegmentSettings,
                emit: Callable[[dict], None]) -> ParseResult:
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such file or directory: {', '.join(missing)}")
    segmenter = Segmenter(segment_settings)
    counted = {"paragraphs": 0}

    def sink(document: dict) -> None:
        for row in paragraph_rows(document, segmenter):
            emit({"path": document["path"], **{k: row[k] for k in PARSE_FIELDS}})
            counted["paragraphs"] += 1

    result = ingest(list_sources(paths, ingest_settings.metadata_csv), ingest_settings, sink)
    return ParseResult(result.documents, counted["paragraphs"], result.rejected, result.duplicates)
