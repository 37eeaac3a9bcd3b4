"""Refresh: new documents from watched folders and URLs land once, named by their content; a rerun with
nothing new changes nothing; overlapping runs are locked out; a failing URL is retried; ingest and segment
reuse cached per-file results and write the same bytes. Network: a server on 127.0.0.1 only."""
from __future__ import annotations

import csv
import filecmp
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml
from filelock import FileLock

from formats import write_html, write_txt
from pipeline import segment
from pipeline.__main__ import main
from pipeline.cache import ResultCache
from pipeline.config import IngestSettings, SegmentSettings
from pipeline.ingest import stage
from party_sentences import SENTENCES



def paragraphs(i: int) -> list[str]:
    """Three paragraphs that no other `i` (below 7) shares in full, so documents are no near-duplicates."""
    return [f"第{i}号文件。" + SENTENCES[(i + k) % len(SENTENCES)] for k in (0, 2, 5)]


def html_page(tmp_path: Path, title: str, i: int) -> bytes:
    path = tmp_path / f"page{i}.html"
    write_html(path, title, paragraphs(i), date="2024-06-01")
    return path.read_bytes()


class Site:
    """Pages served on 127.0.0.1: path → (status, body, ETag); every request's If-None-Match recorded."""

    def __init__(self):
        self.pages: dict[str, tuple[int, bytes, str | None]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path


def _handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            condition = self.headers.get("If-None-Match")
            site.requests.append((self.path, condition))
            status, body, etag = site.pages.get(self.path, (404, b"not found", None))
            if etag and condition == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if etag and status == 200:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the test output clean
            pass

    return Handler


@pytest.fixture
def site(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # 127.0.0.1 directly, never through a proxy
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    site.base = f"http://127.0.0.1:{server.server_port}"
    yield site
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def project(tmp_path, monkeypatch, site) -> Path:
    """A project with an inbox (two files, one an exact copy) and two pages; cwd is its root."""
    root = tmp_path / "project"
    (root / "inbox").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    write_txt(root / "inbox" / "2024-05-01_notice.txt", "关于加强基层党建工作的通知", paragraphs(0))
    (root / "inbox" / "copy.txt").write_bytes((root / "inbox" / "2024-05-01_notice.txt").read_bytes())
    (root / "inbox" / "budget.xlsx").write_bytes(b"PK not a document")
    site.pages["/a.html"] = (200, html_page(tmp_path, "党课讲稿", 1), '"a-1"')
    site.pages["/b.html"] = (200, html_page(tmp_path, "工作总结", 2), '"b-1"')
    write_params(root, [site.url("/a.html"), site.url("/b.html")])
    monkeypatch.chdir(root)
    return root


def write_params(root: Path, urls: list[str]) -> None:
    params = {"ingest": {"raw_dir": "data/raw", "out_dir": "data/interim"},
              "refresh": {"watch_dirs": ["inbox"], "urls": urls, "min_age_s": 0, "timeout_s": 5}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def refresh() -> int:
    return main(["refresh", "--no-repro"])


def last_run(root: Path) -> dict:
    return json.loads((root / "logs" / "refresh.jsonl").read_text(encoding="utf-8").splitlines()[-1])


def manifest(root: Path) -> dict[str, dict]:
    with open(root / "data" / "raw" / "refresh" / "metadata.csv", encoding="utf-8", newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


def stored(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data" / "raw" / "refresh").iterdir() if p.name != "metadata.csv")


def snapshot(root: Path, skip: tuple[str, ...] = ("logs",)) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*")
            if p.is_file() and not str(p.relative_to(root)).startswith(skip)}


def test_new_documents_land_once_named_by_their_content(project, site):
    assert refresh() == 0
    files = stored(project)
    assert len(files) == 3  # the inbox copy is the same content: stored once
    for path in files:
        assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()
    rows = manifest(project)
    assert set(rows) == {p.name for p in files}
    origins = {row["origin"] for row in rows.values()}
    assert origins == {"inbox/2024-05-01_notice.txt", site.url("/a.html"), site.url("/b.html")}
    notice = next(row for row in rows.values() if row["origin"].startswith("inbox"))
    assert notice["date"] == "2024-05-01"  # the hash name hides the file name's date: the sidecar keeps it
    run = last_run(project)
    assert run["status"] == "ok" and run["exit_code"] == 0 and len(run["new_documents"]) == 3
    assert run["sources_checked"] == {"files": 3, "urls": 2, "not_modified": 0}
    assert [s["source"] for s in run["skipped"]] == ["inbox/budget.xlsx"]
    state = json.loads((project / "data" / "refresh_state.json").read_text())
    assert state[site.url("/a.html")]["etag"] == '"a-1"'


def test_a_day_of_an_archive_layout_is_collected_and_ingested(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "inbox").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    day = {"videoList": [{"video_detail": {"title": "[视频]全面从严治党", "pubtime": "2026-07-01 19:00:00",
                                           "content": "<p>" + "</p><p>".join(paragraphs(3)) + "</p>"}}]}
    (root / "inbox" / "20260701.json").write_text(json.dumps(day, ensure_ascii=False), encoding="utf-8")
    (root / "inbox" / "notes.json").write_text("{}", encoding="utf-8")
    layout = {"glob": "refresh/*.json", "kind": "json_records", "records_path": "videoList",
              "fields": {"title": "video_detail.title", "date": "video_detail.pubtime", "text": "video_detail.content"}}
    params = {"ingest": {"sources": [layout]}, "refresh": {"watch_dirs": ["inbox"], "min_age_s": 0}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    monkeypatch.chdir(root)
    assert refresh() == 0
    assert len(stored(root)) == 2  # .json is read through the layout whose glob matches refresh/<sha256>.json
    assert last_run(root)["skipped"] == []
    assert main(["ingest"]) == 0
    docs = pd.read_parquet(root / "data" / "interim" / "documents.parquet")
    assert list(docs.title) == ["[视频]全面从严治党"] and list(docs.date) == ["2026-07-01"]
    assert docs.text[0].startswith("第3号文件。")
    rejected = pd.read_csv(root / "data" / "interim" / "rejected.csv")
    assert list(rejected.reason.str[:33]) == ["no list of records at records_pat"]  # notes.json, with the reason


def test_a_rerun_with_nothing_new_changes_no_file(project, site):
    assert refresh() == 0
    before = snapshot(project)
    site.requests.clear()
    assert refresh() == 0
    assert snapshot(project) == before
    assert sorted(site.requests) == [("/a.html", '"a-1"'), ("/b.html", '"b-1"')]  # conditional requests
    run = last_run(project)
    assert run["status"] == "nothing_new" and run["new_documents"] == []
    assert run["sources_checked"]["not_modified"] == 2


def test_a_changed_page_lands_as_a_new_file_beside_the_old(project, site, tmp_path):
    assert refresh() == 0
    site.pages["/a.html"] = (200, html_page(tmp_path, "党课讲稿（修订）", 3), '"a-2"')
    assert refresh() == 0
    run = last_run(project)
    assert [doc["origin"] for doc in run["new_documents"]] == [site.url("/a.html")]
    assert len(stored(project)) == 4
    state = json.loads((project / "data" / "refresh_state.json").read_text())
    assert state[site.url("/a.html")]["etag"] == '"a-2"'


def test_a_failing_url_is_logged_and_retried_and_data_raw_stays_consistent(project, site):
    broken = site.url("/broken.html")
    write_params(project, [site.url("/a.html"), broken, site.url("/b.html")])
    site.pages["/broken.html"] = (500, b"server error", None)
    assert refresh() == 3
    run = last_run(project)
    assert run["status"] == "partial" and len(run["new_documents"]) == 3  # the rest was stored
    assert [e["source"] for e in run["errors"]] == [broken] and "500" in run["errors"][0]["error"]
    state = json.loads((project / "data" / "refresh_state.json").read_text())
    assert broken not in state  # so the next run fetches it again
    assert set(manifest(project)) == {p.name for p in stored(project)}  # every file, and only files, listed
    assert not list(project.rglob("*.tmp"))

    site.pages["/broken.html"] = (200, html_page(project.parent, "通知", 4), '"c-1"')
    assert refresh() == 0
    assert [doc["origin"] for doc in last_run(project)["new_documents"]] == [broken]
    assert set(manifest(project)) == {p.name for p in stored(project)}


def test_a_second_run_exits_at_once_while_the_lock_is_held(project):
    (project / "logs").mkdir()
    with FileLock(project / "logs" / "refresh.lock"):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pipeline", "refresh", "--no-repro"], cwd=project,
                                capture_output=True, text=True, timeout=60)
        seconds = time.perf_counter() - started
    assert result.returncode == 75
    assert "another refresh is running" in result.stderr and "logs/refresh.lock" in result.stderr
    assert seconds < 20  # the interpreter's start-up; the run itself waits for nothing
    assert last_run(project)["status"] == "locked"
    assert not (project / "data" / "raw" / "refresh").exists()


def test_a_raw_subdir_outside_ingest_raw_dir_is_refused_before_anything_is_written(project, capsys):
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["refresh"]["raw_subdir"] = "incoming"
    (project / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    assert refresh() == 2
    assert "refresh.raw_subdir=incoming is not inside ingest.raw_dir=data/raw" in capsys.readouterr().err
    assert not (project / "incoming").exists() and last_run(project)["status"] == "error"


def _outputs(out: Path) -> list[Path]:
    return [out / name for name in ("documents.parquet", "rejected.csv", "duplicates.csv", "paragraphs.parquet")]


def _ingest_and_segment(raw: Path, out: Path, cache_dir: Path | None) -> tuple[ResultCache | None, ...]:
    ingest_cache = ResultCache(cache_dir / "ingest") if cache_dir else None
    segment_cache = ResultCache(cache_dir / "segment") if cache_dir else None
    stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out)), cache=ingest_cache)
    segment.run(SegmentSettings(), str(out / "documents.parquet"), str(out / "paragraphs.parquet"),
                cache=segment_cache)
    return ingest_cache, segment_cache


def test_ingest_and_segment_reuse_cached_results_and_write_the_same_bytes(tmp_path):
    raw, cache_dir = tmp_path / "raw", tmp_path / "cache"
    raw.mkdir()
    for i in range(4):
        write_txt(raw / f"2020-0{i + 1}-01_doc{i}.txt", f"文件{i}", paragraphs(i))
    _ingest_and_segment(raw, tmp_path / "plain", None)
    ingest_cache, segment_cache = _ingest_and_segment(raw, tmp_path / "cold", cache_dir)
    assert (ingest_cache.hits, ingest_cache.computed, segment_cache.hits, segment_cache.computed) == (0, 4, 0, 4)

    write_txt(raw / "2020-05-01_doc4.txt", "文件4", paragraphs(4))
    _ingest_and_segment(raw, tmp_path / "plain2", None)
    ingest_cache, segment_cache = _ingest_and_segment(raw, tmp_path / "warm", cache_dir)
    assert (ingest_cache.hits, ingest_cache.computed, segment_cache.hits, segment_cache.computed) == (4, 1, 4, 1)
    for plain, cached in [*zip(_outputs(tmp_path / "plain"), _outputs(tmp_path / "cold")),
                          *zip(_outputs(tmp_path / "plain2"), _outputs(tmp_path / "warm"))]:
        assert filecmp.cmp(plain, cached, shallow=False), cached.name


def test_changed_settings_or_sidecar_metadata_are_never_served_from_the_cache(tmp_path):
    raw, cache_dir = tmp_path / "raw", tmp_path / "cache"
    raw.mkdir()
    write_txt(raw / "a.txt", "文件", paragraphs(0))
    _ingest_and_segment(raw, tmp_path / "one", cache_dir)
    (raw / "metadata.csv").write_text("file,source\na.txt,中央纪委\n", encoding="utf-8")
    ingest_cache, segment_cache = _ingest_and_segment(raw, tmp_path / "two", cache_dir)
    assert (ingest_cache.hits, segment_cache.hits) == (0, 0)  # the document's source changed
    cache = ResultCache(cache_dir / "ingest")
    stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(tmp_path / "three"), min_chinese_chars=10), cache=cache)
    assert (cache.hits, cache.computed) == (0, 1)


DVC_YAML = """stages:
  ingest:
    cmd: python -m pipeline ingest
    deps: [data/raw]
    params: [ingest]
    outs: [data/interim/documents.parquet, data/interim/rejected.csv, data/interim/duplicates.csv]
    metrics:
      - data/interim/ingest_report.json:
          cache: false
"""


def _dvc(root: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_refresh_runs_dvc_repro_and_push_and_a_rerun_leaves_everything_clean(project, monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    write_params(project, [])  # the watched folder is source enough here
    write_txt(project / "data" / "raw" / "seed.txt", "种子文件", paragraphs(5))
    (project / "dvc.yaml").write_text(DVC_YAML, encoding="utf-8")
    _dvc(project, "init", "--no-scm", "-q")
    _dvc(project, "remote", "add", "-d", "store", str(project.parent / "remote"))

    assert main(["refresh"]) == 0
    run = last_run(project)
    assert run["stages_rerun"] == ["ingest"] and run["pushed"] is True and len(run["new_documents"]) == 1
    assert "up to date" in _dvc(project, "status")
    before = snapshot(project, skip=("logs", ".dvc/tmp"))

    assert main(["refresh"]) == 0
    run = last_run(project)
    assert run["status"] == "nothing_new" and run["stages_rerun"] == []
    assert "up to date" in _dvc(project, "status")
    assert snapshot(project, skip=("logs", ".dvc/tmp")) == before
    assert os.listdir(project.parent / "remote")  # pushed
