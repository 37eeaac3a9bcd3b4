"""`python -m pipeline refresh`: collect new documents into data/raw, then `dvc repro` and `dvc push`.

Sources (params.yaml `refresh:`): watched folders, and URLs fetched with conditional requests (ETag /
Last-Modified). New content lands in `raw_subdir` named by its sha256, so the same content never lands
twice; `metadata.csv` beside it (the ingest sidecar) records where each file came from. Raw data is
append-only: a page that changes lands as a new file beside the old one.

Exit codes, for schedulers: 0 ok (also: nothing new), 1 error (dvc repro/push failed), 2 bad
configuration, 3 partial (some sources failed; they are retried next run, the rest was stored and
processed), 75 another run holds the lock (EX_TEMPFAIL: try later).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import requests
from filelock import FileLock, Timeout

from pipeline import io
from pipeline.config import IngestSettings
from pipeline.ingest.metadata import SidecarMetadata, date_from_filename
from pipeline.ingest.readers import FORMATS
from pipeline.ingest.stage import list_sources

log = logging.getLogger("pipeline.refresh")

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_PARTIAL, EXIT_LOCKED = 0, 1, 2, 3, 75
CONTENT_TYPES = {  # what a server says it sends → the suffix ingest reads it by
    "text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
MANIFEST_COLUMNS = ["file", "title", "date", "source", "doc_type", "origin", "sha256", "added"]


@dataclass
class RefreshSettings:
    watch_dirs: list[str] = field(default_factory=list)  # folders whose files are collected (copied)
    urls: list[str] = field(default_factory=list)  # pages fetched over HTTP(S)
    raw_subdir: str = "data/raw/refresh"  # where new documents land; must lie inside ingest.raw_dir
    state_file: str = "data/refresh_state.json"  # ETag / Last-Modified per URL, for conditional requests
    lock_file: str = "logs/refresh.lock"
    run_log: str = "logs/refresh.jsonl"  # one JSON line per run
    timeout_s: float = 30.0  # per HTTP request
    user_agent: str = "dangjian-pipeline-refresh/0.1"
    max_mb: float = 64.0  # a larger download is refused (as ingest.max_file_mb refuses a larger file)
    min_age_s: float = 60.0  # a watched file modified more recently may still be being written: next run


@dataclass
class Outcome:
    """What one run found: the run log line is made from it."""

    checked: dict = field(default_factory=lambda: {"files": 0, "urls": 0, "not_modified": 0})
    new: list[dict] = field(default_factory=list)  # {"file", "origin"}
    skipped: list[dict] = field(default_factory=list)  # {"source", "reason"}: not errors, not collected
    errors: list[dict] = field(default_factory=list)  # {"source", "error"}: retried next run


class RawStore:
    """`raw_subdir`: one file per distinct content, named <sha256><suffix>, and its manifest — the
    ingest sidecar `metadata.csv` — with the origin of each file and any title/date/source it had."""

    def __init__(self, folder: Path, manifest_name: str):
        self.folder, self.manifest = folder, folder / manifest_name
        self.rows: dict[str, dict] = {}
        if self.manifest.is_file():
            with open(self.manifest, encoding="utf-8", newline="") as fh:
                self.rows = {row["file"]: row for row in csv.DictReader(fh)}
        self.stored: dict[str, str] = {}  # sha256 → file name; dot files are io.py's temp files
        if folder.is_dir():
            self.stored = {p.stem: p.name for p in folder.iterdir()
                           if p.is_file() and p.name != manifest_name and not p.name.startswith(".")}
        self.changed = False

    def add(self, data: bytes, suffix: str, origin: str, **meta: str | None) -> str | None:
        """Store `data` unless its content is stored already; the new file's name, else None."""
        digest = hashlib.sha256(data).hexdigest()
        name = self.stored.get(digest)
        new = name is None
        if new:
            name = digest + suffix
            io.write_bytes(self.folder / name, data)
            self.stored[digest] = name
        if name not in self.rows:  # also heals a file whose run died before it saved the manifest
            self.rows[name] = {"file": name, "origin": origin, "sha256": digest,
                               "added": _now(), **{k: v or "" for k, v in meta.items()}}
            self.changed = True
        return name if new else None

    def save(self) -> None:
        if self.changed:
            io.write_csv(self.manifest, pd.DataFrame(list(self.rows.values()), columns=MANIFEST_COLUMNS))
            self.changed = False


def run(settings: RefreshSettings, ingest: IngestSettings, root: Path = Path("."),
        repro: bool = True) -> int:
    """One refresh under the lock; append its run-log line; return the exit code (module docstring)."""
    started, clock = _now(), time.perf_counter()
    record: dict = {"started": started}
    lock = FileLock(root / settings.lock_file, blocking=False)
    try:
        with lock:
            code = _refresh(settings, ingest, root, repro, record)
    except Timeout:
        print(f"refresh: another refresh is running (it holds {settings.lock_file}); exiting with "
              f"{EXIT_LOCKED} so the scheduler tries later", file=sys.stderr)
        code, record["status"] = EXIT_LOCKED, "locked"
    except (ValueError, OSError) as err:  # bad params, or a disk that refuses writes: nothing half-done
        print(f"refresh: error: {err}", file=sys.stderr)
        code = EXIT_CONFIG if isinstance(err, ValueError) else EXIT_ERROR
        record.update(status="error", errors=[{"source": "refresh", "error": str(err)}])
    record.update(duration_s=round(time.perf_counter() - clock, 2), exit_code=code)
    io.append_jsonl(root / settings.run_log, record)
    return code


def _refresh(settings: RefreshSettings, ingest: IngestSettings, root: Path, repro: bool, record: dict) -> int:
    _check_layout(settings, ingest, root)
    store = RawStore(root / settings.raw_subdir, ingest.metadata_csv)
    outcome = Outcome()
    for folder in settings.watch_dirs:
        collect_folder(root / folder, folder, store, settings, ingest, outcome)
    state_file = root / settings.state_file
    state = load_state(state_file)
    new_state = collect_urls(settings, state, store, outcome)
    store.save()  # the manifest first: the state then never says "stored" of a file it lacks
    if new_state != state:
        io.write_json(state_file, new_state)
    record.update(sources_checked=outcome.checked, new_documents=outcome.new, skipped=outcome.skipped,
                  errors=outcome.errors, stages_rerun=[], pushed=False)
    for item in outcome.new:
        log.info("refresh: new %s ← %s", item["file"], item["origin"])
    code = EXIT_PARTIAL if outcome.errors else EXIT_OK
    if repro:
        try:
            record["stages_rerun"] = reproduce(root)
            record["pushed"] = push_if_remote(root)
        except RuntimeError as err:
            record["errors"].append({"source": "dvc", "error": str(err)})
            print(f"refresh: {err}", file=sys.stderr)
            code = EXIT_ERROR
    record["status"] = {EXIT_OK: "ok" if outcome.new else "nothing_new", EXIT_PARTIAL: "partial",
                        EXIT_ERROR: "error"}[code]
    log.info("refresh: %d new, %d errors, stages rerun: %s", len(outcome.new), len(outcome.errors),
             ", ".join(record["stages_rerun"]) or "none")
    return code


def _check_layout(settings: RefreshSettings, ingest: IngestSettings, root: Path) -> None:
    raw, target = (root / ingest.raw_dir).resolve(), (root / settings.raw_subdir).resolve()
    if raw not in target.parents:
        raise ValueError(f"refresh.raw_subdir={settings.raw_subdir} is not inside ingest.raw_dir="
                         f"{ingest.raw_dir}: the ingest stage would never read what refresh collects")
    for folder in settings.watch_dirs:
        watched = (root / folder).resolve()
        if raw == watched or raw in watched.parents:
            raise ValueError(f"refresh.watch_dirs: {folder} is inside ingest.raw_dir={ingest.raw_dir}, whose "
                             "files are ingested already; watch a folder outside it")


def load_state(path: Path) -> dict:
    """URL → its validators (etag, last_modified) and sha256, as the last successful fetch left them."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}): delete it, and the next "
                         "run fetches every URL once without conditions") from None


def collect_folder(folder: Path, shown: str, store: RawStore, settings: RefreshSettings,
                   ingest: IngestSettings, outcome: Outcome) -> None:
    """Copy the files of a watched folder that ingest can read and whose content is new."""
    if not folder.is_dir():
        outcome.errors.append({"source": shown, "error": f"watched folder {folder} does not exist: create it "
                                                         "or remove it from refresh.watch_dirs"})
        return
    sidecar = SidecarMetadata(ingest.metadata_csv)
    for path, _ in list_sources([folder], ingest.metadata_csv):
        outcome.checked["files"] += 1
        rel = str(Path(shown) / path.absolute().relative_to(folder.absolute()))
        if path.suffix.lower() not in FORMATS:
            outcome.skipped.append({"source": rel, "reason": f"'{path.suffix}' is no format ingest reads"})
            continue
        try:
            stat = path.stat()
            if time.time() - stat.st_mtime < settings.min_age_s:
                outcome.skipped.append({"source": rel, "reason": f"modified less than refresh.min_age_s="
                                                                 f"{settings.min_age_s:g}s ago: next run"})
                continue
            if stat.st_size > settings.max_mb * 2**20:
                outcome.skipped.append({"source": rel,
                                        "reason": f"larger than refresh.max_mb={settings.max_mb:g}"})
                continue
            data = path.read_bytes()
        except OSError as err:  # unreadable now (permissions, removed meanwhile): retried next run
            outcome.errors.append({"source": rel, "error": f"{type(err).__name__}: {err}"})
            continue
        # the hash name hides the file name, so its date moves to the sidecar, where ingest looks first
        meta = {"date": date_from_filename(path.name), **{k: v for k, v in sidecar.lookup(path).items() if v}}
        name = store.add(data, path.suffix.lower(), rel, **meta)
        if name:
            outcome.new.append({"file": name, "origin": rel})


def collect_urls(settings: RefreshSettings, state: dict, store: RawStore, outcome: Outcome) -> dict:
    """Fetch each URL unless the server says it has not changed; the new state. A failed URL keeps its
    old state (if any), so it is fetched again next run."""
    state = dict(state)
    with requests.Session() as session:
        session.headers["User-Agent"] = settings.user_agent
        for url in settings.urls:
            outcome.checked["urls"] += 1
            try:
                page = fetch(session, url, state.get(url, {}), settings)
            except (requests.RequestException, ValueError) as err:
                log.warning("refresh: %s failed: %s (retried next run)", url, err)
                outcome.errors.append({"source": url, "error": str(err)})
                continue
            if page is None:
                outcome.checked["not_modified"] += 1
                continue
            data, suffix, validators = page
            name = store.add(data, suffix, url, source=urlsplit(url).hostname)
            state[url] = {**validators, "sha256": hashlib.sha256(data).hexdigest()}
            if name:
                outcome.new.append({"file": name, "origin": url})
    return state


def fetch(session: requests.Session, url: str, previous: dict,
          settings: RefreshSettings) -> tuple[bytes, str, dict] | None:
    """(content, suffix, validators) of `url`, or None when the server answers 304 Not Modified."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL: fix refresh.urls in params.yaml")
    headers = {}
    if previous.get("etag"):
        headers["If-None-Match"] = previous["etag"]
    if previous.get("last_modified"):
        headers["If-Modified-Since"] = previous["last_modified"]
    with session.get(url, headers=headers, timeout=settings.timeout_s, stream=True) as response:
        if response.status_code == 304:
            return None
        response.raise_for_status()
        suffix = _suffix(response, url)
        data = _read_capped(response, int(settings.max_mb * 2**20))
        validators = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
    return data, suffix, {k: v for k, v in validators.items() if v}


def _suffix(response: requests.Response, url: str) -> str:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    suffix = CONTENT_TYPES.get(content_type) or Path(urlsplit(url).path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"content type '{content_type}' is no format ingest reads "
                         f"({', '.join(sorted(CONTENT_TYPES))})")
    return suffix


def _read_capped(response: requests.Response, limit: int) -> bytes:
    data = bytearray()
    for chunk in response.iter_content(chunk_size=1 << 16):
        data += chunk
        if len(data) > limit:
            raise ValueError(f"larger than refresh.max_mb={limit / 2**20:g}: raise it or drop the URL")
    return bytes(data)


def reproduce(root: Path) -> list[str]:
    """`dvc repro` (DVC reruns only stages whose inputs changed); the names of the stages it ran."""
    return re.findall(r"Running stage '([^']+)'", _dvc(root, "repro"))


def push_if_remote(root: Path) -> bool:
    """`dvc push` when a remote is configured; whether it pushed."""
    if not _dvc(root, "remote", "list", echo=False).strip():
        return False
    _dvc(root, "push")
    return True


def _dvc(root: Path, *args: str, echo: bool = True) -> str:
    """Run dvc with this interpreter, its output shown as it comes; the output, or RuntimeError."""
    # Stage commands say `python -m pipeline …`: this interpreter's folder first on PATH makes `python`
    # this virtual environment's, even when a scheduler starts us without activating it.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=root, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if echo:
            sys.stderr.write(line)
    if process.wait():
        tail = "".join(lines[-5:]).strip()
        raise RuntimeError(f"dvc {' '.join(args)} failed (exit {process.returncode}) in {root}: {tail}")
    return "".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
