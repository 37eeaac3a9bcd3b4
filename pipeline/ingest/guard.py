"""Reading untrusted files in a child process, with a time budget per file.

Readers run third-party parsers (lxml, trafilatura, python-docx, pypdfium2) on files anyone may have
written. In a child process, a file that makes its reader hang (a pathological page, a decompression
bomb the size checks let through), crash (a parser bug) or exhaust memory costs that one file, which is
rejected with the reason, never the run. One child serves all the files its parent reads and is replaced
after a file that killed or outlasted it. Requests and results travel as JSON lines, so nothing read
from a file is ever unpickled.

Plain text (.txt, .md) and record files (.jsonl, .csv) that no `ingest.sources` layout claims are read in
the calling process instead: their readers are this package's own code over the standard library (and
charset-normalizer on at most 200 kB), bounded by the file's size (ingest.max_file_mb), so they can
neither hang nor crash it, and the child's start and the JSON transport of their text (a quarter of
parse's time on plain text: docs/benchmarks.md) would buy nothing. `ingest.max_seconds_per_file`
applies to what the child reads: HTML, docx, PDF and archive layouts.
"""
from __future__ import annotations

import atexit
import dataclasses
import functools
import importlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pipeline
from pipeline.config import IngestSettings, build_settings
from pipeline.ingest.layouts import match_layout
from pipeline.ingest.readers import FORMATS, RawDocument, ReadWarning, RejectedRecord, read_source

STARTUP_SECONDS = 120.0  # a child's imports on a loaded machine; not charged to any file
IN_PROCESS_FORMATS = ("txt", "records")  # read by the caller (module docstring), unless a layout claims them
ITEM_KINDS = {"document": RawDocument, "rejected": RejectedRecord, "warning": ReadWarning}


class ReaderProcess:
    """A child process that reads files on request (`read`); started on first use."""

    def __init__(self):
        self._child: subprocess.Popen | None = None
        self._owner = os.getpid()  # a forked copy of this object must not share the parent's child
        self._lines: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._settings: IngestSettings | None = None
        self._settings_data: dict = {}

    def read(self, path: Path, shown: str, settings: IngestSettings) -> list:
        """`read_source(path, shown, settings)`'s items, or one rejection when the reader ran past
        `settings.max_seconds_per_file` or died."""
        if settings is not self._settings:  # the same settings for every file: converted once
            self._settings, self._settings_data = settings, dataclasses.asdict(settings)
        request = json.dumps({"path": str(path), "shown": shown, "settings": self._settings_data})
        with self._lock:
            if self._owner != os.getpid():
                self._child, self._owner = None, os.getpid()
            if self._child is None or self._child.poll() is not None:
                self.close()
                self._start()
            try:  # ASCII JSON: a name's undecodable bytes travel as \udcxx escapes
                self._child.stdin.write(request + "\n")
                self._child.stdin.flush()
            except OSError:  # it died reading the request; `_answer` reports how
                pass
            return self._answer(shown, settings.max_seconds_per_file)

    def _answer(self, shown: str, seconds: float) -> list:
        try:
            line = self._lines.get(timeout=seconds)
        except queue.Empty:
            self.close()
            return [RejectedRecord(shown, f"reading took longer than ingest.max_seconds_per_file={seconds:g}s "
                                          "and was stopped (a pathological file?); raise the limit in "
                                          "params.yaml to try again")]
        if not line:  # end of output: the child died on this file
            code = self.close()
            how = f"exit code {code}" if code >= 0 else f"killed by signal {-code}" + (
                ": out of memory?" if code == -9 else "")  # SIGKILL is what the kernel's OOM killer sends
            return [RejectedRecord(shown, f"the reader process died on this file ({how}); the run went on "
                                          "without it")]
        return [ITEM_KINDS[kind](**fields) for kind, fields in json.loads(line)]

    def _start(self) -> None:
        env = dict(os.environ)  # the package may be used from a checkout without being installed
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(pipeline.__file__).parents[1]),
                                                          env.get("PYTHONPATH")]))
        self._child = subprocess.Popen([sys.executable, "-m", "pipeline.ingest.guard"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, env=env, text=True, encoding="utf-8",
                                       errors="surrogatepass")
        self._lines = queue.Queue()
        threading.Thread(target=_forward_lines, args=(self._child.stdout, self._lines), daemon=True).start()
        try:
            ready = self._lines.get(timeout=STARTUP_SECONDS)
        except queue.Empty:
            ready = ""
        if ready.strip() != "ready":
            self.close()
            raise RuntimeError("ingest: the reader process did not start (see the error above); "
                               f"try `{sys.executable} -m pipeline.ingest.guard < /dev/null`")

    def close(self) -> int | None:
        """Stop the child (it is started again on the next `read`); its exit code."""
        child, self._child = self._child, None
        if child is None:
            return None
        child.kill()
        code = child.wait()
        for stream in (child.stdin, child.stdout):
            try:
                stream.close()
            except OSError:
                pass
        return code


def _forward_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")  # end of output


_READER = ReaderProcess()  # one per process (each local worker or Ray worker has its own)
atexit.register(_READER.close)


def read_guarded(path: Path, shown: str, settings: IngestSettings) -> list:
    """The items of one file as `read_source` gives them: read in this process's reader child, or here for
    the formats whose readers cannot hang (IN_PROCESS_FORMATS)."""
    if reads_in_process(path, settings):
        return list(read_source(path, shown, settings))
    return _READER.read(path, shown, settings)


def reads_in_process(path: Path, settings: IngestSettings) -> bool:
    return (FORMATS.get(path.suffix.lower()) in IN_PROCESS_FORMATS
            and match_layout(path.absolute(), settings.sources) is None)


@functools.lru_cache(maxsize=8)
def _settings(text: str) -> IngestSettings:
    return build_settings(IngestSettings, json.loads(text))


def _serve() -> None:
    """The child: answer each request line with one line, the JSON list of [kind, fields] items."""
    # UTF-8 as it is (half the bytes of \u escapes); a lone surrogate (a PDF's broken font map) passes too
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", errors="surrogatepass")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a library's print() must not corrupt the answers
    for library in ("docx", "lxml.html", "pypdfium2", "trafilatura"):  # imported now, not on a file's time
        importlib.import_module(library)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    kinds = {cls: kind for kind, cls in ITEM_KINDS.items()}
    answers.write("ready\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        settings = _settings(json.dumps(request["settings"], sort_keys=True))
        items = read_source(Path(request["path"]), request["shown"], settings)
        answers.write(json.dumps([[kinds[type(item)], dataclasses.asdict(item)] for item in items],
                                 ensure_ascii=False, default=str) + "\n")
        answers.flush()


def _exit_with_parent(parent: int) -> None:
    """End this child when its parent is gone (killed mid-file, it never closes our stdin's other end in
    time to stop a reader that loops)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


if __name__ == "__main__":
    _serve()
