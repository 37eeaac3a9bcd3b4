"""The ingest stage: data/raw/ → data/interim/documents.parquet (+ rejected.csv, duplicates.csv, report)."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import pyarrow as pa
from datasketch import MinHash
from tqdm import tqdm

from pipeline import io
from pipeline.cache import ResultCache, cached_map, code_version, file_digest, fingerprint
from pipeline.config import IngestSettings
from pipeline.engines import Engine
from pipeline.ingest import metadata
from pipeline.ingest.dedup import Deduplicator, content_hash, minhash
from pipeline.ingest.junk import JunkRules
from pipeline.ingest.normalize import count_cjk, normalize_text, to_simplified
from pipeline.ingest.readers import RawDocument, RejectedRecord, join_wrapped_lines, read_source

log = logging.getLogger("pipeline.ingest")

DOCUMENTATION_NAMES = {"readme.md", "readme.txt"}  # documentation beside the corpus, not corpus
MAX_LINE_CHARS = 200_000  # a "document" on one line longer than this is a dump, not a paper
NOT_PER_FILE = ("raw_dir", "out_dir", "workers")  # settings that change no single file's result
READER_LIBRARIES = ("trafilatura", "lxml", "python-docx", "pypdfium2", "charset-normalizer", "opencc")

DOCUMENT_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("path", pa.string()), ("record", pa.int64()), ("format", pa.string()),
    ("encoding", pa.string()), ("title", pa.string()), ("title_rule", pa.string()),
    ("date", pa.string()), ("date_rule", pa.string()), ("year", pa.int64()),
    ("source", pa.string()), ("source_rule", pa.string()), ("doc_type", pa.string()),
    ("doc_type_rule", pa.string()), ("text", pa.string()), ("n_chars", pa.int64()),
    ("junk_lines", pa.int64()), ("simplified", pa.bool_()), ("content_hash", pa.string()),
])


@dataclass
class Prepared:
    """A document ready for dedup (with its MinHash sketch, computed where the file is read so that it
    is cached and parallel), or a rejection; `junk` counts removed lines per rule."""

    document: dict | None = None
    rejected: RejectedRecord | None = None
    junk: Counter | None = None
    sketch: MinHash | None = None


def list_sources(paths: Iterable[str | Path], metadata_csv: str = "metadata.csv") -> list[tuple[Path, str]]:
    """Files under the given files/directories in a stable order, each with the path shown to users;
    READMEs, sidecar metadata files and hidden files are not documents."""
    skipped = DOCUMENTATION_NAMES | {metadata_csv.lower()}
    found = []
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file()
            and p.name.lower() not in skipped and not any(part.startswith(".") for part in p.relative_to(root).parts))
        found.extend((path.absolute(), str(path)) for path in files)  # absolute: Ray workers' cwd differs
    return found


class DocumentBuilder:
    """Turns raw documents into normalised, junk-free documents with metadata (picklable for workers)."""

    def __init__(self, settings: IngestSettings):
        self.settings = settings
        self.junk = JunkRules.load(settings.junk_rules or None)
        self.sidecar = metadata.SidecarMetadata(settings.metadata_csv)

    @cached_property
    def version(self) -> str:
        """Everything a file's result depends on besides the file: per-file settings, rules, code."""
        settings = {k: v for k, v in dataclasses.asdict(self.settings).items() if k not in NOT_PER_FILE}
        return fingerprint(settings, self.junk.rules,
                           code_version(["pipeline.ingest", "pipeline.text"], distributions=READER_LIBRARIES))

    def cache_key(self, source: tuple[Path, str]) -> str:
        """The key of `prepare_file(source)`: the file's bytes, the path shown, its sidecar metadata."""
        path, rel = source
        try:
            content = file_digest(path)
        except OSError as err:  # prepare_file rejects it; the rejection is cached like any result
            content = f"unreadable: {err}"
        return fingerprint(self.version, content, rel, self.sidecar.lookup(path))

    def prepare_file(self, source: tuple[Path, str]) -> list[Prepared]:
        path, rel = source
        out = []
        for item in read_source(path, rel, self.settings):
            if isinstance(item, RejectedRecord):
                out.append(Prepared(rejected=item))
            else:
                out.append(self.prepare(item, path))
        return out

    def prepare(self, raw: RawDocument, path: Path) -> Prepared:
        text = normalize_text(raw.text)
        text, simplified = to_simplified(text, self.settings.to_simplified)
        lines, junk = self.junk.clean(text.split("\n"))
        sidecar = self.sidecar.lookup(path) if raw.record < 0 else {}
        title, title_rule = self._title(raw, sidecar, lines, path)
        if lines and title and lines[0] == title:
            lines = lines[1:]
        byline = metadata.parse_byline(lines[0]) if lines else None
        if byline is not None:  # 来源/发布时间 of a web page: metadata, not a paragraph
            lines = lines[1:]
        byline = byline or {}
        if raw.format == "pdf":  # after the title line is taken, which is never part of a paragraph
            lines = join_wrapped_lines(lines)
        longest = max((len(line) for line in lines), default=0)
        if longest > MAX_LINE_CHARS:
            return self._reject(raw, f"a single line of {longest:,} characters: a data dump, not a "
                                     f"document (limit {MAX_LINE_CHARS:,})")
        body = "\n".join(lines)
        cjk = count_cjk(body)
        if cjk < self.settings.min_chinese_chars:
            return self._reject(raw, f"no usable Chinese text ({cjk} Chinese characters; "
                                     f"ingest.min_chinese_chars={self.settings.min_chinese_chars})")
        date, date_rule = self._date(raw, sidecar, byline, path, body)
        source, source_rule = self._first(
            (raw.fields.get("source"), "field"), (sidecar.get("source"), "metadata.csv"),
            (byline.get("source"), "byline"), (junk.site, "junk_site"), (Path(raw.path.split("#")[0]).parent.name or None, "folder"))
        doc_type, doc_type_rule = self._first(
            (raw.fields.get("doc_type"), "field"), (sidecar.get("doc_type"), "metadata.csv"),
            (metadata.doc_type_from_title(title), "title_keyword"))
        chash = content_hash(body)
        document = {
            "doc_id": "d" + chash[:12], "path": raw.path, "record": raw.record, "format": raw.format,
            "encoding": raw.encoding, "title": title, "title_rule": title_rule, "date": date,
            "date_rule": date_rule, "year": int(date[:4]) if date else None, "source": source,
            "source_rule": source_rule, "doc_type": doc_type, "doc_type_rule": doc_type_rule,
            "text": body, "n_chars": len(body), "junk_lines": len(junk.removed),
            "simplified": simplified, "content_hash": chash,
        }
        return Prepared(document=document, junk=Counter(rule for rule, _ in junk.removed),
                        sketch=minhash(body, self.settings.dedup))

    @staticmethod
    def _reject(raw: RawDocument, reason: str) -> Prepared:
        return Prepared(rejected=RejectedRecord(raw.path, reason))

    @staticmethod
    def _first(*candidates):
        for value, rule in candidates:
            if value not in (None, ""):
                return str(value).strip(), rule
        return None, None

    def _title(self, raw, sidecar, lines, path):
        first = lines[0] if lines else ""
        return self._first(
            (raw.fields.get("title"), "field"), (sidecar.get("title"), "metadata.csv"),
            (first if raw.format != "records" and metadata.looks_like_title(first) else None, "first_line"),
            (path.stem if raw.record < 0 else None, "file_name"))

    def _date(self, raw, sidecar, byline, path, body):
        candidates = [
            (metadata.parse_date_value(raw.fields.get("date")), "field"),
            (metadata.parse_date_value(raw.fields.get("year")), "field"),
            (metadata.parse_date_value(sidecar.get("date")), "metadata.csv"),
            (byline.get("date"), "byline"),
            (metadata.date_from_filename(path.name) if raw.record < 0 else None, "file_name"),
            (metadata.date_from_text(body), "text"),
        ]
        return self._first(*candidates)


def prepare_all(sources: list[tuple[Path, str]], builder: DocumentBuilder, engine: Engine,
                cache: ResultCache | None = None) -> Iterator[Prepared]:
    """Prepared documents in input order, on `engine`; files unchanged since a cached run are not read."""
    for prepared in cached_map(builder.prepare_file, lambda: sources, builder.cache_key, cache, engine):
        yield from prepared


@dataclass
class IngestResult:
    documents: int
    rejected: list[dict]
    duplicates: list[dict]
    report: dict  # written as the stage's metric, so it holds counts only (no timings)
    seconds: float


def ingest(sources: list[tuple[Path, str]], settings: IngestSettings, sink, engine: Engine | None = None,
           cache: ResultCache | None = None) -> IngestResult:
    """Stream documents of `sources` into `sink(document)`; duplicates and rejections are collected.
    Files are prepared on `engine` (default: `settings.workers` local processes), reusing `cache`."""
    builder = DocumentBuilder(settings)
    dedup = Deduplicator(settings.dedup)
    rejected, duplicates = [], []
    formats, junk, kept, simplified = Counter(), Counter(), 0, 0
    started = time.perf_counter()
    progress = tqdm(total=len(sources), desc="ingest", unit="file", disable=None)
    last_path = None
    engine = engine or Engine(processes=settings.workers)
    for item in prepare_all(sources, builder, engine, cache):
        if item.rejected:
            log.warning("ingest: rejected %s: %s", item.rejected.path, item.rejected.reason)
            rejected.append({"path": item.rejected.path, "reason": item.rejected.reason})
            file_path = item.rejected.path.split("#")[0]
        else:
            doc = item.document
            file_path = doc["path"].split("#")[0]
            formats[doc["format"]] += 1
            junk.update(item.junk)
            dup = dedup.check(doc["doc_id"], doc["content_hash"], item.sketch)
            if dup:
                duplicates.append({"doc_id": doc["doc_id"], "path": doc["path"], "title": doc["title"],
                                   "kind": dup.kind, "kept_doc_id": dup.kept_doc_id,
                                   "similarity": dup.similarity})
            else:
                kept += 1
                simplified += doc["simplified"]
                sink(doc)
        if file_path != last_path:
            progress.update(1)
            last_path = file_path
    progress.close()
    report = {
        "files": len(sources), "documents_read": sum(formats.values()), "documents_kept": kept,
        "by_format": dict(sorted(formats.items())), "rejected": len(rejected),
        "duplicates_exact": sum(d["kind"] == "exact" for d in duplicates),
        "duplicates_near": sum(d["kind"] == "near" for d in duplicates),
        "junk_lines_removed": sum(junk.values()), "junk_lines_by_rule": dict(sorted(junk.items())),
        "converted_to_simplified": simplified,
    }
    return IngestResult(kept, rejected, duplicates, report, time.perf_counter() - started)


def run(settings: IngestSettings, engine: Engine | None = None,
        cache: ResultCache | None = None) -> IngestResult:
    """The DVC stage: ingest `settings.raw_dir` into `settings.out_dir`."""
    out = Path(settings.out_dir)
    sources = list_sources([settings.raw_dir], settings.metadata_csv)
    with io.ParquetStream(out / "documents.parquet", DOCUMENT_SCHEMA) as stream:
        result = ingest(sources, settings, stream.write, engine, cache)
        if result.documents == 0:
            raise SystemExit(f"ingest: no usable document in {settings.raw_dir} "
                             f"({len(result.rejected)} rejected; see the log above)")
    io.write_csv(out / "rejected.csv", pd.DataFrame(result.rejected, columns=["path", "reason"]))
    io.write_csv(out / "duplicates.csv", pd.DataFrame(
        result.duplicates, columns=["doc_id", "path", "title", "kind", "kept_doc_id", "similarity"]))
    io.write_json(out / "ingest_report.json", result.report)
    log.info("ingest: %d files → %d documents kept (%s), %d rejected, %d exact + %d near duplicates, "
             "%d junk lines removed, %.1fs → %s", result.report["files"], result.documents,
             result.report["by_format"], len(result.rejected), result.report["duplicates_exact"],
             result.report["duplicates_near"], result.report["junk_lines_removed"],
             result.seconds, out / "documents.parquet")
    return result
