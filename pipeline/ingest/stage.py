"""The ingest stage: data/raw/ → data/interim/documents.parquet (+ rejected.csv, duplicates.csv, report)."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from pipeline import io
from pipeline.cache import ResultCache, cached_map, code_version, file_digest, fingerprint
from pipeline.config import IngestSettings
from pipeline.engines import Engine
from pipeline.ingest import metadata
from pipeline.ingest.dedup import Deduplicator, Sketch, content_hash, minhash
from pipeline.ingest.junk import JunkRules
from pipeline.ingest.layouts import match_layout
from pipeline.ingest.guard import read_guarded
from pipeline.ingest.normalize import (count_cjk, has_surrogates, normalize_text, printable_path, to_simplified,
                                       without_surrogates)
from pipeline.ingest.readers import RawDocument, ReadWarning, RejectedRecord, join_wrapped_lines

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("pipeline.ingest")

DOCUMENTATION_NAMES = {"readme.md", "readme.txt"}  # documentation beside the corpus, not corpus
MAX_LINE_CHARS = 200_000  # a "document" on one line longer than this is a dump, not a paper
NOT_PER_FILE = ("raw_dir", "out_dir", "workers")  # settings that change no single file's result
READER_LIBRARIES = ("trafilatura", "lxml", "python-docx", "pypdfium2", "charset-normalizer", "opencc")
# `workers: 0` starts a process per core only for this much to read: each imports the readers, loads jieba's
# dictionary and sends its results back, which up to ~8 MB saves no time, only costs CPU (docs/benchmarks.md)
PER_CORE_MIN_MB = 16
FILES_PER_BATCH = 16  # files a worker gets at once: 30 MB of text parsed 15% faster than with batches of 4


def document_schema():
    """documents.parquet's columns. pandas and pyarrow are imported where tables are made, not with this
    module: `parse` makes none, and its start-up is part of its speed."""
    import pyarrow as pa

    return pa.schema([
        ("doc_id", pa.string()), ("path", pa.string()), ("record", pa.int64()), ("format", pa.string()),
        ("encoding", pa.string()), ("title", pa.string()), ("title_rule", pa.string()),
        ("date", pa.string()), ("date_rule", pa.string()), ("year", pa.int64()),
        ("source", pa.string()), ("source_rule", pa.string()), ("doc_type", pa.string()),
        ("doc_type_rule", pa.string()), ("text", pa.string()), ("n_chars", pa.int64()),
        ("junk_lines", pa.int64()), ("simplified", pa.bool_()), ("content_hash", pa.string()),
        ("url", pa.string()), ("extra", pa.string()),  # extra: JSON object of an archive layout's other fields
    ])


@dataclass
class Prepared:
    """A document ready for dedup (with its MinHash sketch, computed where the file is read so that it
    is cached and parallel), a rejection, or a warning about a kept document; `junk` counts removed
    lines per rule."""

    document: dict | None = None
    rejected: RejectedRecord | None = None
    warning: ReadWarning | None = None
    junk: Counter | None = None
    sketch: Sketch | None = None
    derived: list | None = None  # `DocumentBuilder.then` of the document (parse: its paragraphs)


@dataclass
class Sources:
    """The files to read, each with the path shown to users, and what was found but cannot be read."""

    files: list[tuple[Path, str]]
    unusable: list[RejectedRecord]


def find_sources(paths: Iterable[str | Path], metadata_csv: str = "metadata.csv") -> Sources:
    """Files under the given files/directories in a stable order, each with the path shown to users
    (printable where a name is not UTF-8); READMEs, sidecar metadata files and hidden files are not
    documents. Nothing is skipped in silence: dangling links, unreadable folders, pipes and devices are
    listed with the reason, and so are links leading out of a folder given, which are never followed
    (a link in data/raw must not make ingest read files elsewhere)."""
    skipped = DOCUMENTATION_NAMES | {metadata_csv.lower()}
    found = Sources([], [])

    def unreadable_folder(err: OSError) -> None:
        found.unusable.append(RejectedRecord(printable_path(err.filename)[0], f"unreadable folder "
                                             f"({type(err).__name__}: {err.strerror}): its files were not read; "
                                             "check its permissions"))

    for root in map(Path, paths):
        if not root.is_dir():  # a file named by the user is read as named
            found.files.append((root.absolute(), printable_path(root)[0]))  # absolute: Ray workers' cwd differs
            continue
        inside, files = root.resolve(), []
        for folder, folders, names in os.walk(root, onerror=unreadable_folder):  # links are not descended
            folders[:] = [name for name in folders if not name.startswith(".")]
            for name in folders:
                problem = _link_out(Path(folder, name), inside)
                if problem:
                    found.unusable.append(RejectedRecord(printable_path(Path(folder, name))[0], problem))
            for name in names:
                if name.startswith(".") or name.lower() in skipped:
                    continue
                path = Path(folder, name)
                problem = _link_out(path, inside) or _not_a_file(path)
                if problem:
                    found.unusable.append(RejectedRecord(printable_path(path)[0], problem))
                else:
                    files.append(path)
        found.files.extend((path.absolute(), printable_path(path)[0]) for path in sorted(files))
    return found


def list_sources(paths: Iterable[str | Path], metadata_csv: str = "metadata.csv") -> list[tuple[Path, str]]:
    """The readable files of `find_sources`."""
    return find_sources(paths, metadata_csv).files


def _link_out(path: Path, inside: Path) -> str | None:
    """Why the symbolic link `path` is not followed (it dangles, loops or leads out of `inside`), or None."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as err:  # RuntimeError: a loop of links
        return (f"dangling symbolic link (to {printable_path(os.readlink(path))[0]}; {type(err).__name__}): "
                "nothing to read")
    if not target.is_relative_to(inside):
        return (f"symbolic link to {printable_path(target)[0]}, outside {printable_path(inside)[0]}: not followed, "
                "so that no link makes ingest read files elsewhere; copy the file in to ingest it")
    return None


def _not_a_file(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return f"unreadable ({type(err).__name__}: {err.strerror})"
    return None if stat.S_ISREG(mode) else "not a regular file (a named pipe, socket or device): not read"


class DocumentBuilder:
    """Turns raw documents into normalised, junk-free documents with metadata (picklable for workers)."""

    def __init__(self, settings: IngestSettings, then: Callable[[dict], list] | None = None):
        self.settings = settings
        self.junk = JunkRules.load(settings.junk_rules or None)
        self.sidecar = metadata.SidecarMetadata(settings.metadata_csv)
        self.then = then  # run on each document where its file is read, so in the workers too

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
            content = f"unreadable: {type(err).__name__}"
        return fingerprint(self.version, content, rel, self.sidecar.lookup(path), self.sidecar.problem(path))

    def prepare_file(self, source: tuple[Path, str]) -> list[Prepared]:
        """The file's documents, rejections and warnings, read in the reader process (guard.py)."""
        path, rel = source
        notes = [printable_path(path)[1], self.sidecar.problem(path)]
        out = [Prepared(warning=ReadWarning(rel, note)) for note in notes if note]
        for item in read_guarded(path, rel, self.settings):
            if isinstance(item, RejectedRecord):
                out.append(Prepared(rejected=item))
            elif isinstance(item, ReadWarning):
                out.append(Prepared(warning=item))
            else:
                try:
                    out.append(self.prepare(item, path))
                except Exception as err:  # a bug of ours on a hostile document must not stop the run
                    out.append(self._reject(item, f"could not be prepared ({type(err).__name__}: {err}); "
                                                  "please report this as a bug"))
        if not any(item.document or item.rejected for item in out):  # e.g. a CSV with a header only
            out.append(Prepared(rejected=RejectedRecord(rel, "no document and no record in the file")))
        return out

    def prepare(self, raw: RawDocument, path: Path) -> Prepared:
        text = normalize_text(raw.text)
        text, simplified = to_simplified(text, self.settings.to_simplified)
        lines, junk = self.junk.clean(text.split("\n"))
        sidecar = self.sidecar.lookup(path) if raw.record < 0 else {}
        title, title_rule = self._title(raw, sidecar, lines)
        if len(lines) > 1 and title and lines[0] == title:  # a one-line document (a headline) is its title
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
        minimum = self.settings.min_chinese_chars if raw.min_chinese_chars is None else raw.min_chinese_chars
        if cjk < minimum:
            setting = "ingest.min_chinese_chars" if raw.min_chinese_chars is None else "its layout's min_chinese_chars"
            return self._reject(raw, f"no usable Chinese text ({cjk} Chinese characters; {setting}={minimum})")
        date, date_rule = self._date(raw, sidecar, byline, body)
        source, source_rule = self._first(
            (raw.fields.get("source"), "field"), (sidecar.get("source"), "metadata.csv"),
            (byline.get("source"), "byline"), (junk.site, "junk_site"),
            (lambda: Path(raw.path.split("#")[0]).parent.name or None, "folder"))
        doc_type, doc_type_rule = self._first(
            (raw.fields.get("doc_type"), "field"), (sidecar.get("doc_type"), "metadata.csv"),
            (metadata.doc_type_from_title(title), "title_keyword"))
        chash = content_hash(f"{date}\n{body}" if raw.dedup == "same_date" else body)
        document = {
            "doc_id": "d" + chash[:12], "path": raw.path, "record": raw.record, "format": raw.format,
            "encoding": raw.encoding, "title": title, "title_rule": title_rule, "date": date,
            "date_rule": date_rule, "year": int(date[:4]) if date else None, "source": source,
            "source_rule": source_rule, "doc_type": doc_type, "doc_type_rule": doc_type_rule,
            "text": body, "n_chars": len(body), "junk_lines": len(junk.removed),
            "simplified": simplified, "content_hash": chash, "url": raw.fields.get("url"),
            "extra": json.dumps(raw.fields["extra"], ensure_ascii=False) if raw.fields.get("extra") else None,
        }
        if has_surrogates("".join(value for value in document.values() if isinstance(value, str))):
            document = {key: without_surrogates(value) if isinstance(value, str) else value  # a JSON "\\ud800"
                        for key, value in document.items()}
        return Prepared(document=document, junk=Counter(rule for rule, _ in junk.removed),
                        sketch=minhash(body, self.settings.dedup) if raw.dedup == "near" else None,
                        derived=None if self.then is None else self.then(document))

    @staticmethod
    def _reject(raw: RawDocument, reason: str) -> Prepared:
        return Prepared(rejected=RejectedRecord(raw.path, reason))

    @staticmethod
    def _first(*candidates):
        """The first non-empty (value, rule); a value given as a function is computed only when every
        candidate before it is empty (most documents have their date and source in a field)."""
        for value, rule in candidates:
            if callable(value):
                value = value()
            if value not in (None, ""):
                return str(value).strip(), rule
        return None, None

    def _title(self, raw, sidecar, lines):
        first = lines[0] if lines else ""
        return self._first(
            (raw.fields.get("title"), "field"), (sidecar.get("title"), "metadata.csv"),
            (first if raw.format != "records" and metadata.looks_like_title(first) else None, "first_line"),
            (lambda: Path(raw.path).stem if raw.record < 0 else None, "file_name"))

    def _date(self, raw, sidecar, byline, body):
        candidates = [
            (metadata.parse_date_value(raw.fields.get("date")), "field"),
            (lambda: metadata.parse_date_value(raw.fields.get("year")), "field"),
            (lambda: metadata.parse_date_value(sidecar.get("date")), "metadata.csv"),
            (byline.get("date"), "byline"),
            (lambda: metadata.date_from_filename(Path(raw.path).name) if raw.record < 0 else None, "file_name"),
            (lambda: metadata.date_from_text(body), "text"),
        ]
        return self._first(*candidates)


def prepare_all(sources: list[tuple[Path, str]], builder: DocumentBuilder, engine: Engine,
                cache: ResultCache | None = None) -> Iterator[Prepared]:
    """Prepared documents in input order, on `engine`; files unchanged since a cached run are not read."""
    for prepared in cached_map(builder.prepare_file, lambda: sources, builder.cache_key, cache, engine,
                               batch=FILES_PER_BATCH):
        yield from prepared


@dataclass
class IngestResult:
    documents: int
    rejected: list[dict]  # {"path", "reason"}: files and records not used
    duplicates: list[dict]
    report: dict  # written as the stage's metric, so it holds counts only (no timings)
    seconds: float
    warnings: list[dict] = dataclasses.field(default_factory=list)  # {"path", "reason"}: kept, with a caveat


def ingest(sources: list[tuple[Path, str]], settings: IngestSettings, sink, engine: Engine | None = None,
           cache: ResultCache | None = None, unusable: Iterable[RejectedRecord] = (),
           then: Callable[[dict], list] | None = None) -> IngestResult:
    """Stream documents of `sources` into `sink(document)`; duplicates, rejections (with `unusable`,
    what `find_sources` could not read) and warnings are collected. Files are prepared on `engine`
    (default: `settings.workers` local processes), reusing `cache`. With `then`, a function of a
    document that runs where the document is prepared (in parallel with the rest), `sink` gets
    `then(document)` in place of the document; its results are not cached, so it goes without `cache`."""
    if then is not None and cache is not None:
        raise ValueError("ingest: the results of `then` are not cached; pass no cache with it")
    builder = DocumentBuilder(settings, then)
    dedup = Deduplicator(settings.dedup)
    if any(layout is None or layout.dedup == "near"
           for layout in (match_layout(path, settings.sources) for path, _ in sources)):
        dedup.load_index_early()
    rejected, warnings, duplicates = [], [], []
    formats, junk, kept, simplified = Counter(), Counter(), 0, 0
    started = time.perf_counter()
    progress = tqdm(total=len(sources), desc="ingest", unit="file", disable=None)
    last_path = None
    engine = engine or Engine(processes=settings.workers)
    if engine.kind == "local" and engine.processes == 0 and _megabytes(sources) < PER_CORE_MIN_MB:
        engine = dataclasses.replace(engine, processes=1)
    for problem in unusable:
        log.warning("ingest: rejected %s: %s", problem.path, problem.reason)
        rejected.append(_problem_row(problem.path, problem.reason))
    for item in prepare_all(sources, builder, engine, cache):
        if item.rejected:
            log.warning("ingest: rejected %s: %s", item.rejected.path, item.rejected.reason)
            rejected.append(_problem_row(item.rejected.path, item.rejected.reason))
            file_path = item.rejected.path.split("#")[0]
        elif item.warning:
            log.warning("ingest: warning %s: %s", item.warning.path, item.warning.message)
            warnings.append(_problem_row(item.warning.path, item.warning.message))
            file_path = item.warning.path.split("#")[0]
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
                sink(doc if then is None else item.derived)
        if file_path != last_path:
            progress.update(1)
            last_path = file_path
    progress.close()
    report = {
        "files": len(sources), "documents_read": sum(formats.values()), "documents_kept": kept,
        "by_format": dict(sorted(formats.items())), "rejected": len(rejected), "warnings": len(warnings),
        "duplicates_exact": sum(d["kind"] == "exact" for d in duplicates),
        "duplicates_near": sum(d["kind"] == "near" for d in duplicates),
        "junk_lines_removed": sum(junk.values()), "junk_lines_by_rule": dict(sorted(junk.items())),
        "converted_to_simplified": simplified,
    }
    return IngestResult(kept, rejected, duplicates, report, time.perf_counter() - started, warnings)


def _megabytes(sources: list[tuple[Path, str]]) -> float:
    total = 0
    for path, _ in sources:
        try:
            total += path.stat().st_size
        except OSError:  # read_source rejects it, with the reason
            pass
    return total / 2**20


def _problem_row(path: str, reason: str) -> dict:
    """A rejected.csv row; an exception's message may quote a name's undecodable bytes."""
    return {"path": without_surrogates(path), "reason": without_surrogates(reason)}


def problem_table(result: IngestResult) -> pd.DataFrame:
    """rejected.csv: every file or record not used (status `rejected`), then every document kept whose
    reader could not be sure it read all of it, or read it as written (status `warning`)."""
    import pandas as pd

    rows = [{**row, "status": "rejected"} for row in result.rejected]
    rows += [{**row, "status": "warning"} for row in result.warnings]
    return pd.DataFrame(rows, columns=["path", "reason", "status"])


def run(settings: IngestSettings, engine: Engine | None = None,
        cache: ResultCache | None = None) -> IngestResult:
    """The DVC stage: ingest `settings.raw_dir` into `settings.out_dir`."""
    import pandas as pd

    out = Path(settings.out_dir)
    sources = find_sources([settings.raw_dir], settings.metadata_csv)
    with io.ParquetStream(out / "documents.parquet", document_schema()) as stream:
        result = ingest(sources.files, settings, stream.write, engine, cache, sources.unusable)
        if result.documents == 0:
            raise SystemExit(f"ingest: no usable document in {settings.raw_dir} "
                             f"({len(result.rejected)} rejected; see the log above)")
    io.write_csv(out / "rejected.csv", problem_table(result))
    io.write_csv(out / "duplicates.csv", pd.DataFrame(
        result.duplicates, columns=["doc_id", "path", "title", "kind", "kept_doc_id", "similarity"]))
    io.write_json(out / "ingest_report.json", result.report)
    log.info("ingest: %d files → %d documents kept (%s), %d rejected, %d warnings, %d exact + %d near "
             "duplicates, %d junk lines removed, %.1fs → %s", result.report["files"], result.documents,
             result.report["by_format"], len(result.rejected), len(result.warnings), result.report["duplicates_exact"],
             result.report["duplicates_near"], result.report["junk_lines_removed"],
             result.seconds, out / "documents.parquet")
    return result
