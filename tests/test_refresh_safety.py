"""Refresh is safe to run unattended: links in watched folders are never followed; a server that trickles
bytes cannot hold a run (or the lock) past its deadlines; a lock held too long is reported with its
holder's pid and exit code 4; a file changing while it is read is left for the next run; temp files a
killed run left are removed. Network: a server on 127.0.0.1 only, every wait bounded."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from formats import write_txt
from pipeline.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
PAGE = ("<html><head><title>通知</title></head><body><p>" + "各级党组织要坚决维护党中央权威和集中统一领导，严明政治纪律和"
        "政治规矩，确保党中央决策部署落地见效。" * 3 + "</p></body></html>").encode("utf-8")
TRICKLE_SECONDS = 60  # how long the slow server keeps sending: far longer than any deadline below
PARAGRAPHS = ["各级党组织要坚决维护党中央权威和集中统一领导，严明政治纪律和政治规矩，确保党中央决策部署落地见效。",
              "深入整治形式主义、官僚主义，精简会议文件，规范督查检查考核，让基层干部把精力用在抓落实上。"]


class SlowSite(ThreadingHTTPServer):
    """/page.html answers at once; /slow-body sends its headers, then one byte every 0.2 s; /slow-headers
    sends even its headers that way. Both stop after TRICKLE_SECONDS or when the test ends."""

    daemon_threads = True

    def __init__(self):
        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: SlowSite

    def do_GET(self):
        if self.path == "/page.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)
        elif self.path == "/slow-body":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self._trickle(b"<" * 100000)
        elif self.path == "/slow-headers":
            self._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"x" * 100000)

    def _trickle(self, data: bytes) -> None:
        ends = time.monotonic() + TRICKLE_SECONDS
        for byte in data:
            if self.server.stop.wait(0.2) or time.monotonic() > ends:
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:  # the client gave up
                return

    def log_message(self, *args):
        pass


@pytest.fixture
def site(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = SlowSite()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    (root / "inbox").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


def write_params(root: Path, name: str = "params.yaml", **refresh) -> Path:
    settings = {"watch_dirs": ["inbox"], "urls": [], "min_age_s": 0, "timeout_s": 5, **refresh}
    path = root / name
    path.write_text(yaml.safe_dump({"ingest": {"raw_dir": "data/raw"}, "refresh": settings}), encoding="utf-8")
    return path


def refresh(params: str = "params.yaml") -> int:
    return main(["--params", params, "refresh", "--no-repro"])


def runs(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "logs" / "refresh.jsonl").read_text(encoding="utf-8").splitlines()]


def stored_bytes(root: Path) -> list[bytes]:
    folder = root / "data" / "raw" / "refresh"
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "metadata.csv"] if folder.is_dir() else []


def test_links_in_a_watched_folder_are_never_followed_and_are_logged(project, tmp_path):
    secret = tmp_path / "outside" / "passwd.txt"  # stands for /etc/passwd: readable, outside the folder
    secret.parent.mkdir()
    write_txt(secret, "机密", PARAGRAPHS)
    (tmp_path / "outside" / "more.txt").write_bytes(secret.read_bytes() + "另一份".encode())
    write_txt(project / "inbox" / "notice.txt", "通知", PARAGRAPHS[::-1])
    (project / "inbox" / "passwd.txt").symlink_to(secret)
    (project / "inbox" / "shared").symlink_to(secret.parent, target_is_directory=True)
    (project / "inbox" / "again.txt").symlink_to(project / "inbox" / "notice.txt")  # inside, still not followed
    write_params(project)

    assert refresh() == 0
    assert stored_bytes(project) == [(project / "inbox" / "notice.txt").read_bytes()]
    run = runs(project)[-1]
    assert run["sources_checked"]["files"] == 1
    skipped = {s["source"]: s["reason"] for s in run["skipped"]}
    assert set(skipped) == {"inbox/again.txt", "inbox/passwd.txt", "inbox/shared"}
    assert skipped["inbox/passwd.txt"] == f"a symbolic link (to {secret}): links are never followed"


def test_a_trickling_server_cannot_hold_the_run_past_the_request_deadline(project, site):
    """Each byte comes well within timeout_s, so only a deadline on the whole request ends it — for a
    slow body and for slow headers alike; the other URL is still stored and the lock is free after."""
    urls = [site.url("/slow-body"), site.url("/slow-headers"), site.url("/page.html")]
    write_params(project, urls=urls, request_deadline_s=1.5, watch_dirs=[])
    started = time.monotonic()
    assert refresh() == 3
    assert time.monotonic() - started < TRICKLE_SECONDS / 2  # ended by the deadlines, not by the server
    run = runs(project)[-1]
    assert [e["source"] for e in run["errors"]] == urls[:2]
    expected = "no complete answer within refresh.request_deadline_s=1.5s: abandoned (retried next run)"
    assert [e["error"] for e in run["errors"]] == [expected, expected]
    assert stored_bytes(project) == [PAGE]
    assert not (project / "logs" / "refresh.lock.holder.json").exists()
    write_params(project, urls=[site.url("/page.html")], watch_dirs=[])
    assert refresh() == 0 and runs(project)[-1]["status"] == "nothing_new"  # the lock was released


def test_the_run_deadline_leaves_later_sources_for_the_next_run(project, site):
    urls = [site.url("/slow-body"), site.url("/page.html")]
    write_params(project, urls=urls, request_deadline_s=10, run_deadline_s=1, stale_lock_s=60, watch_dirs=[])
    assert refresh() == 3
    errors = {e["source"]: e["error"] for e in runs(project)[-1]["errors"]}
    assert errors == {urls[0]: "no complete answer within refresh.run_deadline_s=1s: abandoned (retried next run)",
                      urls[1]: "not fetched: refresh.run_deadline_s=1 reached (retried next run)"}
    assert stored_bytes(project) == []


def test_a_lock_held_past_stale_lock_s_is_reported_with_its_holder(project, site):
    """A real refresh wedged on a slow server holds the lock; a later run exits 4 naming its pid (not 75,
    which schedulers ignore); once the wedged run is killed, the next run goes ahead."""
    write_params(project, "wedged.yaml", urls=[site.url("/slow-body")], request_deadline_s=600, watch_dirs=[])
    write_params(project, "impatient.yaml", run_deadline_s=1, stale_lock_s=1)
    write_params(project, "patient.yaml", stale_lock_s=3600)
    holder_file = project / "logs" / "refresh.lock.holder.json"
    wedged = subprocess.Popen([sys.executable, "-m", "pipeline", "--params", "wedged.yaml", "refresh", "--no-repro"],
                              cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # its interpreter starting: at most 60 s
            if holder_file.exists() or wedged.poll() is not None:
                break
            time.sleep(0.2)
        assert json.loads(holder_file.read_text())["pid"] == wedged.pid
        assert subprocess.run([sys.executable, "-m", "pipeline", "--params", "patient.yaml", "refresh", "--no-repro"],
                              cwd=project, capture_output=True, timeout=120).returncode == 75
        time.sleep(2.5)  # the holder's start time has whole seconds: now surely more than 1 s ago
        result = subprocess.run([sys.executable, "-m", "pipeline", "--params", "impatient.yaml", "refresh",
                                 "--no-repro"], cwd=project, capture_output=True, text=True, timeout=120)
        assert result.returncode == 4
        assert f"(pid {wedged.pid} on " in result.stderr and "refresh.stale_lock_s=1s" in result.stderr
        assert f"ps -p {wedged.pid}" in result.stderr
        run = runs(project)[-1]
        assert run["status"] == "stuck" and run["holder"]["pid"] == wedged.pid and run["holder"]["held_s"] >= 1
    finally:
        wedged.send_signal(signal.SIGKILL)
        wedged.wait(timeout=30)
    assert holder_file.exists()  # a killed run leaves it; the lock itself died with the process
    assert refresh("patient.yaml") == 0
    assert not holder_file.exists()


def test_a_file_that_changes_while_it_is_read_is_left_for_the_next_run(project):
    """A writer process appends to a watched file (older than min_age_s = 0) while runs read it: a run
    that sees its size move during the read stores nothing of it; once the writer is done, the whole
    file is stored."""
    growing = project / "inbox" / "growing.txt"
    growing.write_bytes(("。".join(PARAGRAPHS) * 5000).encode("utf-8"))  # 1.5 MB
    size = growing.stat().st_size
    done = project / "writer.done"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "path, done = sys.argv[1], sys.argv[2]\n"
        "ends = time.monotonic() + 30\n"
        "with open(path, 'ab', buffering=0) as fh:\n"
        "    while not os.path.exists(done) and time.monotonic() < ends:\n"
        "        fh.write('党的建设。'.encode() * 20)\n"
        "        time.sleep(0.0002)\n"), str(growing), str(done)])
    write_params(project)
    try:
        for _ in range(300):  # the writer's interpreter starting: at most 60 s
            if growing.stat().st_size > size or writer.poll() is not None:
                break
            time.sleep(0.2)
        torn_reads = 0
        for _ in range(40):
            before = len(stored_bytes(project))
            assert refresh() == 0
            reasons = [s["reason"] for s in runs(project)[-1]["skipped"] if s["source"] == "inbox/growing.txt"]
            if reasons == ["changed while it was read (still being written?): next run"]:
                torn_reads += 1
                assert len(stored_bytes(project)) == before
            if torn_reads >= 2:
                break
    finally:
        done.touch()
        writer.wait(timeout=60)
    assert torn_reads >= 2
    assert refresh() == 0
    assert growing.read_bytes() in stored_bytes(project)


def test_temp_files_left_by_a_killed_run_are_removed_by_the_next(project):
    """Real leftovers: processes killed (SIGKILL) inside pipeline.io's atomic writes, as a refresh would be."""
    raw = project / "data" / "raw" / "refresh"
    kill_mid_write = ("import os, signal, sys\nfrom pipeline import io\n"
                      "with io.atomic_path(sys.argv[1]) as tmp:\n"
                      "    tmp.write_bytes(b'half a page')\n"
                      "    os.kill(os.getpid(), signal.SIGKILL)\n")
    for target in (raw / "0123abcd.html", raw / "metadata.csv", project / "data" / "refresh_state.json"):
        subprocess.run([sys.executable, "-c", kill_mid_write, str(target)], cwd=ROOT, timeout=60)
    leftovers = sorted(p for p in project.rglob(".*.tmp"))
    assert len(leftovers) == 3
    (raw / ".gitkeep").touch()  # a dot file that is no temp file stays
    write_params(project)

    assert refresh() == 0
    assert not list(project.rglob(".*.tmp"))
    assert (raw / ".gitkeep").exists()
    assert sorted(runs(project)[-1]["cleaned"]) == sorted(os.path.relpath(p, project) for p in leftovers)
