"""`python -m pipeline refresh`: collect new documents into data/raw, then `dvc repro` and `dvc push`.

Sources (params.yaml `refresh:`): watched folders, and URLs fetched with conditional requests (ETag /
Last-Modified). New content lands in `raw_subdir` named by its sha256, so the same content never lands
twice; `metadata.csv` beside it (the ingest sidecar) records where each file came from. Raw data is
append-only: a page that changes lands as a new file beside the old one.

Unattended runs stay bounded and safe (docs/security.md): links in watched folders are never followed,
a file that changes while it is read is left for the next run, each URL has a total deadline (a server
that trickles bytes cannot hold the run) and so has the whole collection, a lock held longer than
`stale_lock_s` is reported as stuck with its holder's pid, and temp files a killed run left are removed.

Exit codes, for schedulers: 0 ok (also: nothing new), 1 error (dvc repro/push failed), 2 bad
configuration, 3 partial (some sources failed; they are retried next run, the rest was stored and
processed), 4 stuck (the lock's holder has held it longer than `stale_lock_s`: look at that process),
75 another run holds the lock (EX_TEMPFAIL: try later).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import requests
from filelock import FileLock, Timeout

from pipeline import io
from pipeline.config import IngestSettings, Settings, SettingsError, setting
from pipeline.ingest.layouts import match_layout
from pipeline.ingest.metadata import SidecarMetadata, date_from_filename
from pipeline.ingest.normalize import printable_path
from pipeline.ingest.readers import FORMATS
from pipeline.ingest.stage import list_sources

log = logging.getLogger("pipeline.refresh")

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_PARTIAL, EXIT_STUCK, EXIT_LOCKED = 0, 1, 2, 3, 4, 75
CONTENT_TYPES = {  # what a server says it sends → the suffix ingest reads it by
    "text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt", "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
MANIFEST_COLUMNS = ["file", "title", "date", "source", "doc_type", "origin", "sha256", "added"]


@dataclass
class RefreshSettings(Settings):
    watch_dirs: list[str] = setting([])  # folders whose files are collected (copied)
    urls: list[str] = setting([])  # pages fetched over HTTP(S)
    raw_subdir: str = setting("data/raw/refresh", nonempty=True)  # where new documents land; inside ingest.raw_dir
    state_file: str = setting("data/refresh_state.json", nonempty=True)  # ETag / Last-Modified per URL
    lock_file: str = setting("logs/refresh.lock", nonempty=True)
    run_log: str = setting("logs/refresh.jsonl", nonempty=True)  # one JSON line per run
    timeout_s: float = setting(30.0, gt=0)  # per network operation: connecting, and each read
    request_deadline_s: float = setting(300.0, gt=0)  # one URL's whole fetch, however the server trickles
    run_deadline_s: float = setting(1800.0, gt=0)  # all collecting; sources not reached wait for the next run
    stale_lock_s: float = setting(21600.0, gt=0)  # a lock held longer: its holder is reported as stuck (exit 4)
    user_agent: str = setting("dangjian-pipeline-refresh/0.1", nonempty=True)
    max_mb: float = setting(64.0, gt=0)  # a larger download is refused (as ingest.max_file_mb refuses a larger file)
    min_age_s: float = setting(60.0, ge=0)  # a watched file modified more recently may still be being written

    def __post_init__(self):
        super().__post_init__()
        for i, url in enumerate(self.urls):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise SettingsError(f"urls[{i}]", f"{url!r} is not an http(s) URL", "http:// or https:// URLs")
        if self.stale_lock_s < self.run_deadline_s:
            raise SettingsError("stale_lock_s", f"{self.stale_lock_s:g} is shorter than run_deadline_s "
                                f"({self.run_deadline_s:g}): a healthy run would be reported stuck",
                                "at least run_deadline_s, plus the time dvc repro takes")


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
    lock_path = root / settings.lock_file
    try:
        with FileLock(lock_path, blocking=False):
            holder = _holder_file(lock_path)  # who holds the lock, for a run that finds it taken
            io.write_json(holder, {"pid": os.getpid(), "host": socket.gethostname(), "started": started})
            try:
                code = _refresh(settings, ingest, root, repro, record)
            finally:
                holder.unlink(missing_ok=True)
    except Timeout:
        code = _locked_out(settings, lock_path, record)
    except (ValueError, OSError) as err:  # bad params, or a disk that refuses writes: nothing half-done
        print(f"refresh: error: {err}", file=sys.stderr)
        code = EXIT_CONFIG if isinstance(err, ValueError) else EXIT_ERROR
        record.update(status="error", errors=[{"source": "refresh", "error": str(err)}])
    record.update(duration_s=round(time.perf_counter() - clock, 2), exit_code=code)
    io.append_jsonl(root / settings.run_log, record)
    return code


def _locked_out(settings: RefreshSettings, lock_path: Path, record: dict) -> int:
    """The exit code of a run that found the lock taken: 75 (try later), or 4 when the holder has held it
    longer than `stale_lock_s` — a wedged run must not be hidden by schedulers that ignore 75."""
    holder = _read_holder(_holder_file(lock_path))
    record["holder"] = holder
    who = (f"pid {holder['pid']} on {holder['host']}, started {holder['started']}" if holder
           else "its pid is not recorded")
    if holder and holder["held_s"] > settings.stale_lock_s:
        print(f"refresh: the run holding {settings.lock_file} ({who}) has held it for {holder['held_s']:.0f}s, longer "
              f"than refresh.stale_lock_s={settings.stale_lock_s:g}s, and looks stuck: check that process (ps -p "
              f"{holder['pid']}) and stop it if it is; exiting with {EXIT_STUCK}", file=sys.stderr)
        record["status"] = "stuck"
        return EXIT_STUCK
    print(f"refresh: another refresh is running ({who}; it holds {settings.lock_file}); exiting with "
          f"{EXIT_LOCKED} so the scheduler tries later", file=sys.stderr)
    record["status"] = "locked"
    return EXIT_LOCKED


def _holder_file(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".holder.json")  # filelock truncates the lock file itself


def _read_holder(path: Path) -> dict | None:
    """{pid, host, started, held_s} of the run holding the lock, or None when unknown (the file is written
    atomically, so it is whole or absent; anything else in it is not trusted)."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        held = datetime.now(timezone.utc) - datetime.fromisoformat(holder["started"])
        return {"pid": int(holder["pid"]), "host": str(holder["host"]), "started": holder["started"],
                "held_s": round(held.total_seconds())}
    except (OSError, ValueError, KeyError, TypeError):  # TypeError: also a start time without a time zone
        return None


def _refresh(settings: RefreshSettings, ingest: IngestSettings, root: Path, repro: bool, record: dict) -> int:
    _check_layout(settings, ingest, root)
    cleaned = remove_leftovers(settings, root)
    deadline = time.monotonic() + settings.run_deadline_s
    store = RawStore(root / settings.raw_subdir, ingest.metadata_csv)
    outcome = Outcome()
    for folder in settings.watch_dirs:
        collect_folder(root / folder, folder, store, settings, ingest, outcome, deadline)
    state_file = root / settings.state_file
    state = load_state(state_file)
    new_state = collect_urls(settings, state, store, outcome, deadline)
    store.save()  # the manifest first: the state then never says "stored" of a file it lacks
    if new_state != state:
        io.write_json(state_file, new_state)
    record.update(sources_checked=outcome.checked, new_documents=outcome.new, skipped=outcome.skipped,
                  errors=outcome.errors, cleaned=cleaned, stages_rerun=[], pushed=False)
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


def remove_leftovers(settings: RefreshSettings, root: Path) -> list[str]:
    """Delete the temp files (pipeline/io.py's `.<name>.<random>.tmp`) a killed run left in raw_subdir,
    which only refresh writes, and beside the state and lock-holder files; their paths. Runs under the
    lock, so no live writer owns them. Left there, they would be committed with data/raw and change
    its DVC hash on every run."""
    state, holder = root / settings.state_file, _holder_file(root / settings.lock_file)
    leftovers = [*io.leftover_temp_files(root / settings.raw_subdir),
                 *io.leftover_temp_files(state.parent, state.name), *io.leftover_temp_files(holder.parent, holder.name)]
    for path in leftovers:
        path.unlink(missing_ok=True)
        log.info("refresh: removed %s, left by an interrupted run", path)
    return [os.path.relpath(path, root) for path in leftovers]


def load_state(path: Path) -> dict:
    """URL → its validators (etag, last_modified) and sha256, as the last successful fetch left them."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}): delete it, and the next "
                         "run fetches every URL once without conditions") from None


class NotCollected(Exception):
    """A watched file left where it is (this run, or for good); the message says why."""


def collect_folder(folder: Path, shown: str, store: RawStore, settings: RefreshSettings,
                   ingest: IngestSettings, outcome: Outcome, deadline: float) -> None:
    """Copy the files of a watched folder that ingest can read and whose content is new. Symbolic links
    are never followed (data/raw is committed: a link to /etc/passwd must not land there); they are
    listed under `skipped`. Files are read until the run's `deadline` (time.monotonic())."""
    if not folder.is_dir():
        outcome.errors.append({"source": shown, "error": f"watched folder {folder} does not exist: create it "
                                                         "or remove it from refresh.watch_dirs"})
        return
    folder = folder.absolute()
    for link in sorted(p for p in folder.rglob("*") if p.is_symlink()):  # the walk does not enter them
        outcome.skipped.append({"source": printable_path(Path(shown) / link.relative_to(folder))[0],
                                "reason": f"a symbolic link (to {printable_path(os.readlink(link))[0]}): links "
                                          "are never followed"})
    sidecar = SidecarMetadata(ingest.metadata_csv)
    files = [path for path, _ in list_sources([folder], ingest.metadata_csv) if not _through_link(path, folder)]
    for position, path in enumerate(files):
        rel = printable_path(Path(shown) / path.relative_to(folder))[0]  # a name that is not UTF-8, too
        if time.monotonic() > deadline:
            outcome.errors.append({"source": shown, "error": f"{len(files) - position} files not read: "
                                   f"refresh.run_deadline_s={settings.run_deadline_s:g} reached (next run)"})
            return
        outcome.checked["files"] += 1
        if not _ingest_reads(path.suffix.lower(), store, ingest):
            outcome.skipped.append({"source": rel, "reason": f"'{path.suffix}' is no format ingest reads, and no "
                                                             "ingest.sources layout matches it where it would land"})
            continue
        try:
            data = read_settled(path, settings)
        except NotCollected as reason:
            outcome.skipped.append({"source": rel, "reason": str(reason)})
            continue
        except OSError as err:  # unreadable now (permissions, removed meanwhile): retried next run
            outcome.errors.append({"source": rel, "error": f"{type(err).__name__}: {err}"})
            continue
        # the hash name hides the file name, so its date moves to the sidecar, where ingest looks first
        meta = {"date": date_from_filename(path.name), **{k: v for k, v in sidecar.lookup(path).items() if v}}
        name = store.add(data, path.suffix.lower(), rel, **meta)
        if name:
            outcome.new.append({"file": name, "origin": rel})


def _ingest_reads(suffix: str, store: RawStore, ingest: IngestSettings) -> bool:
    """Whether ingest reads a file of `suffix` once stored: a format it reads by suffix, or an archive
    layout (`ingest.sources`) whose glob matches where it lands (`refresh/*.json`: a day's JSON dump)."""
    landing = store.folder.absolute() / f"{'0' * 64}{suffix}"  # stored files are named by their sha256
    return suffix in FORMATS or match_layout(landing, ingest.sources) is not None


def _through_link(path: Path, folder: Path) -> bool:
    """Whether `path`, or a folder between `folder` and it, is a symbolic link."""
    parts = path.relative_to(folder).parts
    return any(folder.joinpath(*parts[:depth]).is_symlink() for depth in range(1, len(parts) + 1))


def read_settled(path: Path, settings: RefreshSettings) -> bytes:
    """The bytes of a regular file old enough (`min_age_s`) and small enough (`max_mb`) that did not
    change while it was read; NotCollected otherwise. A file still being written — even one older than
    min_age_s — is thus never stored torn: its size or mtime moves during the read, and the next run
    tries again."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # no link; no FIFO wait
    with open(os.open(path, flags), "rb") as fh:
        before = os.fstat(fh.fileno())
        if not stat.S_ISREG(before.st_mode):
            raise NotCollected("not a regular file")
        if time.time() - before.st_mtime < settings.min_age_s:
            raise NotCollected(f"modified less than refresh.min_age_s={settings.min_age_s:g}s ago: next run")
        if before.st_size > settings.max_mb * 2**20:
            raise NotCollected(f"larger than refresh.max_mb={settings.max_mb:g}")
        data = fh.read(before.st_size + 1)  # one byte more shows a file that grew
        after = os.fstat(fh.fileno())
    if len(data) != before.st_size or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise NotCollected("changed while it was read (still being written?): next run")
    return data


def collect_urls(settings: RefreshSettings, state: dict, store: RawStore, outcome: Outcome,
                 deadline: float) -> dict:
    """Fetch each URL unless the server says it has not changed; the new state. A failed URL keeps its
    old state (if any), so it is fetched again next run. Each fetch ends by `request_deadline_s`, and
    none starts after the run's `deadline` (time.monotonic())."""
    state = dict(state)
    for url in settings.urls:
        outcome.checked["urls"] += 1
        if time.monotonic() >= deadline:
            outcome.errors.append({"source": url, "error": f"not fetched: refresh.run_deadline_s="
                                                           f"{settings.run_deadline_s:g} reached (retried next run)"})
            continue
        request_deadline = min(deadline, time.monotonic() + settings.request_deadline_s)
        limit = (f"refresh.request_deadline_s={settings.request_deadline_s:g}" if request_deadline < deadline
                 else f"refresh.run_deadline_s={settings.run_deadline_s:g}")
        try:
            page = fetch_before(request_deadline, url, state.get(url, {}), settings)
        except TimeoutError:
            outcome.errors.append({"source": url, "error": f"no complete answer within {limit}s: abandoned "
                                                           "(retried next run)"})
            continue
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


def fetch_before(deadline: float, url: str, previous: dict,
                 settings: RefreshSettings) -> tuple[bytes, str, dict] | None:
    """`fetch` on a worker thread, given up at `deadline` (time.monotonic()) with TimeoutError.

    `timeout_s` bounds each network read, not a whole request: a server that sends a byte a second —
    in its headers or its body — would otherwise hold the run, and the lock, for ever. The worker only
    reads (the caller stores what it returns), so an abandoned one changes nothing; it is a daemon
    thread and ends with the process, or when the server gives up."""
    result: dict = {}

    def work() -> None:
        try:
            with requests.Session() as session:
                session.headers["User-Agent"] = settings.user_agent
                result["page"] = fetch(session, url, previous, settings)
        except Exception as err:  # handed to the caller's thread as it is
            result["error"] = err

    worker = threading.Thread(target=work, name=f"refresh fetch {url}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise TimeoutError()
    if "error" in result:
        raise result["error"]
    return result["page"]


def fetch(session: requests.Session, url: str, previous: dict,
          settings: RefreshSettings) -> tuple[bytes, str, dict] | None:
    """(content, suffix, validators) of `url`, or None when the server answers 304 Not Modified."""
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
