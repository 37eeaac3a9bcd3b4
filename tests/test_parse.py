"""`python -m pipeline parse`: plain text and record files are read in the parsing process itself (no reader
child), yet a bad file is still one rejection with its reason; reading and segmenting on several worker
processes (`ingest.workers`, 0 = one per core) writes the same bytes as one process."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from formats import write_html, write_txt
from party_sentences import SENTENCES
from pipeline.__main__ import main
from pipeline.config import IngestSettings, SourceLayout
from pipeline.engines import local_processes
from pipeline.ingest import guard
from pipeline.ingest.readers import RawDocument, RejectedRecord


def paragraphs(i: int) -> list[str]:
    """Paragraphs no other `i` (below 7) shares in full, so documents are no near-duplicates."""
    return [f"第{i}号文件。" + SENTENCES[(i + k) % len(SENTENCES)] for k in (0, 2, 5)]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder


def params_with(tmp_path: Path, workers: int) -> Path:
    path = tmp_path / f"params_{workers}.yaml"
    path.write_text(f"ingest:\n  workers: {workers}\n", encoding="utf-8")
    return path


def test_plain_text_is_read_without_a_reader_process_and_bad_text_is_still_rejected(raw):
    write_txt(raw / "good.txt", "正常文件", paragraphs(1))
    write_txt(raw / "gbk.md", "国标编码", paragraphs(2), encoding="gb18030")
    (raw / "undecodable.txt").write_bytes(b"\x81\xff\xfa" * 500)
    (raw / "binary.txt").write_bytes(bytes(range(256)) * 64)
    records = [json.dumps({"title": "记录", "text": "\n".join(paragraphs(3))}, ensure_ascii=False), "{not json"]
    (raw / "records.jsonl").write_text("\n".join(records), encoding="utf-8")
    settings = IngestSettings()
    guard._READER.close()  # a child another test started

    items = {path.name: guard.read_guarded(path, str(path), settings) for path in sorted(raw.iterdir())}

    assert guard._READER._child is None  # none of these started the reader process
    assert [type(item) for item in items["good.txt"]] == [RawDocument]
    assert items["gbk.md"][0].encoding == "gb18030" and "国标编码" in items["gbk.md"][0].text
    assert [type(item) for item in items["records.jsonl"]] == [RawDocument, RejectedRecord]
    assert "malformed JSON line" in items["records.jsonl"][1].reason
    (undecodable,), (binary,) = items["undecodable.txt"], items["binary.txt"]
    assert isinstance(undecodable, RejectedRecord) and undecodable.reason.startswith("undecodable bytes")
    assert isinstance(binary, RejectedRecord) and binary.reason.startswith("binary content")


def test_third_party_formats_and_layouts_are_still_read_in_the_reader_process(raw):
    write_html(raw / "page.html", "网页", paragraphs(1))
    write_txt(raw / "archive.txt", "档案", paragraphs(2))
    claimed = IngestSettings(sources=[SourceLayout(glob="archive.txt", kind="feed")])
    assert not guard.reads_in_process(raw / "page.html", IngestSettings())
    assert guard.reads_in_process(raw / "archive.txt", IngestSettings())
    assert not guard.reads_in_process(raw / "archive.txt", claimed)  # a layout's reader may use lxml


def test_parse_reports_an_undecodable_text_file_in_one_line_and_goes_on(raw, tmp_path, capsys):
    write_txt(raw / "good.txt", "正常文件", paragraphs(1))
    (raw / "undecodable.txt").write_bytes(b"\x81\xff\xfa" * 500)
    out = tmp_path / "paragraphs.jsonl"

    assert main(["--params", str(params_with(tmp_path, 1)), "parse", str(raw), "-o", str(out)]) == 0

    rejected = [line for line in capsys.readouterr().err.splitlines() if line.startswith("parse: rejected")]
    assert rejected == [f"parse: rejected {raw / 'undecodable.txt'}: undecodable bytes: not UTF-8, GB18030 or Big5"]
    assert {json.loads(line)["path"] for line in out.read_text(encoding="utf-8").splitlines()} == {
        str(raw / "good.txt")}


def test_worker_processes_write_the_same_bytes_as_one_process(raw, tmp_path, capsys):
    for i in range(6):
        write_txt(raw / f"{i}.txt", f"文件{i}", paragraphs(i))
    write_txt(raw / "6_copy.txt", "文件1", paragraphs(1))  # an exact duplicate, found across workers
    write_txt(raw / "7_near.txt", "文件2", paragraphs(2) + ["另加一句。"])  # a near duplicate
    write_html(raw / "8.html", "网页", paragraphs(6))  # read by a worker's own reader process
    (raw / "9_undecodable.txt").write_bytes(b"\x81\xff\xfa" * 500)
    outputs, summaries = {}, {}
    for workers in (1, 2, 0):
        out = tmp_path / f"paragraphs_{workers}.jsonl"
        assert main(["--params", str(params_with(tmp_path, workers)), "parse", str(raw), "-o", str(out)]) == 0
        outputs[workers] = out.read_bytes()
        summaries[workers] = capsys.readouterr().err.replace(str(out), "OUT")

    assert outputs[2] == outputs[1] and outputs[0] == outputs[1]
    assert summaries[2] == summaries[1] == summaries[0]
    assert "7 documents" in summaries[1] and "1 rejected" in summaries[1] and "2 duplicates" in summaries[1]


def test_zero_workers_means_one_process_per_usable_core():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert local_processes(0) == cores
    assert local_processes(3) == 3
