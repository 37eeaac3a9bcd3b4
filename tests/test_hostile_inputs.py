"""Hostile input files: one bad file never stops ingest, parse, refresh or classify; the row that reports
it names the file (or file#line) and the reason; nothing is lost without a rejection or warning row.
Every hostile file is built here, in tmp_path."""
from __future__ import annotations

import base64
import json
import os
import random
import re
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from formats import write_docx, write_txt
from pipeline import io
from pipeline.__main__ import main
from pipeline.classify import read_records
from pipeline.config import IngestSettings
from pipeline.ingest import stage
from party_sentences import SENTENCES

GBK_NAME = "党建工作.txt".encode("gbk")  # b'\xb5\xb3\xbd\xa8...': a file name from a Windows zip
UNDECODABLE_NAME = b"report-\xff\xfe.txt"  # neither UTF-8 nor GB18030


def paragraphs(i: int) -> list[str]:
    """Paragraphs that no other `i` (below 7) shares in full, so documents are no near-duplicates."""
    return [f"第{i}号文件。" + SENTENCES[(i + k) % len(SENTENCES)] for k in (0, 2, 5)]


def random_text(seed: int, chars: int = 80) -> str:
    """Chinese text no other seed comes near (so that records are no near-duplicates of each other)."""
    rng = random.Random(seed)
    return "".join(chr(0x4E00 + rng.randrange(0x5000)) for _ in range(chars)) + "。"


def run_ingest(raw: Path, tmp_path: Path, **overrides) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    out = tmp_path / "out"
    stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out), **overrides))
    rejected = pd.read_csv(out / "rejected.csv", keep_default_na=False)
    return (pd.read_parquet(out / "documents.parquet"), rejected,
            json.loads((out / "ingest_report.json").read_text(encoding="utf-8")))


def rows(table: pd.DataFrame, status: str) -> dict[str, str]:
    """path → reason of the rejected.csv rows with `status` (rejected | warning)."""
    chosen = table[table.status == status]
    return dict(zip(chosen.path, chosen.reason))


def by_name(table: dict[str, str], name: str) -> str:
    matches = [reason for path, reason in table.items() if Path(path.split("#")[0]).name == name]
    assert len(matches) == 1, (name, table)
    return matches[0]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder


@pytest.fixture
def params(tmp_path: Path) -> Path:
    """A params file of defaults, so the CLI tests do not depend on the project's params.yaml."""
    path = tmp_path / "params.yaml"
    path.write_text("{}\n", encoding="utf-8")
    return path


def write_bytes_named(folder: Path, name: bytes, data: bytes) -> None:
    fd = os.open(os.path.join(os.fsencode(folder), name), os.O_WRONLY | os.O_CREAT, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def text_file(title: str, body: list[str]) -> bytes:
    return (title + "\n" + "\n".join(body) + "\n").encode("utf-8")


# --- file names that are not UTF-8 -----------------------------------------------------------------

def test_non_utf8_file_names_are_read_recorded_printably_and_flagged(raw, tmp_path):
    write_bytes_named(raw, GBK_NAME, text_file("关于党建工作的意见", paragraphs(0)))
    write_bytes_named(raw, UNDECODABLE_NAME, text_file("另一份材料", paragraphs(1)))
    write_bytes_named(raw, "副本.txt".encode("gbk"), text_file("关于党建工作的意见", paragraphs(0)))  # a duplicate
    os.mkdir(os.path.join(os.fsencode(raw), "党委".encode("gbk")))
    write_bytes_named(raw / os.fsdecode("党委".encode("gbk")), b"a.txt", text_file("通知", paragraphs(2)))

    docs, table, report = run_ingest(raw, tmp_path)

    names = sorted(Path(p).name for p in docs.path)
    assert names == ["a.txt", "report-\\xff\\xfe.txt", "党建工作.txt"]
    assert any("/党委/a.txt" in p for p in docs.path)  # the folder's name too
    gbk = docs[docs.path.str.endswith("党建工作.txt")].iloc[0]
    assert gbk.title == "关于党建工作的意见" and paragraphs(0)[0] in gbk.text
    warnings = rows(table, "warning")
    assert "decoded as GB18030" in by_name(warnings, "党建工作.txt")
    assert "escaped" in by_name(warnings, "report-\\xff\\xfe.txt")
    duplicates = pd.read_csv(tmp_path / "out" / "duplicates.csv")
    assert [Path(p).name for p in duplicates.path] == ["副本.txt"]
    assert report["warnings"] == 4 and report["rejected"] == 0


def test_parse_writes_non_utf8_names_and_says_so(raw, tmp_path, params, capsys):
    write_bytes_named(raw, GBK_NAME, text_file("关于党建工作的意见", paragraphs(0)))
    out = tmp_path / "paragraphs.jsonl"
    assert main(["--params", str(params), "parse", str(raw), "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines and {Path(line["path"]).name for line in lines} == {"党建工作.txt"}
    assert "warning" in capsys.readouterr().err


def test_refresh_collects_a_file_whose_name_is_not_utf8(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "inbox").mkdir(parents=True)
    (root / "data" / "raw").mkdir(parents=True)
    write_bytes_named(root / "inbox", GBK_NAME, text_file("关于党建工作的意见", paragraphs(0)))
    settings = {"ingest": {"raw_dir": "data/raw", "out_dir": "data/interim"},
                "refresh": {"watch_dirs": ["inbox"], "urls": [], "min_age_s": 0}}
    (root / "params.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.chdir(root)

    assert main(["refresh", "--no-repro"]) == 0

    manifest = pd.read_csv(root / "data" / "raw" / "refresh" / "metadata.csv")
    assert list(manifest.origin) == ["inbox/党建工作.txt"]


# --- docx ------------------------------------------------------------------------------------------

def _docx_with(path: Path, edit) -> None:
    """A real docx (python-docx: a paragraph, a 2×2 table, a paragraph) whose document.xml is then edited."""
    write_docx(path, "表格测试", [paragraphs(0)[0]], table_rows=[["项目甲", "完成十二次"], ["项目乙", "完成八次"]])
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    xml = members["word/document.xml"].decode("utf-8")
    members["word/document.xml"] = edit(xml).encode("utf-8")
    assert members["word/document.xml"] != xml.encode("utf-8")  # the hostile part is really there
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _first_cell(xml: str, extra: str) -> str:
    """Add `extra` to the properties of the table's first cell."""
    assert "<w:tc><w:tcPr>" in xml
    return xml.replace("<w:tc><w:tcPr>", "<w:tc><w:tcPr>" + extra, 1)


def _after_table(xml: str, inner: str) -> str:
    return xml.replace("</w:tbl>", "</w:tbl>" + inner, 1)


DOCX_CASES = {  # what python-docx cannot read → text that must be in the document
    "vmerge_first_row": (lambda x: _first_cell(x, "<w:vMerge/>"), "项目甲 | 完成十二次"),
    "non_numeric_gridspan": (lambda x: _first_cell(x, '<w:gridSpan w:val="two"/>'), "项目乙 | 完成八次"),
    "content_control": (lambda x: _after_table(x, "<w:sdt><w:sdtContent><w:p><w:r><w:t>内容控件中的段落文字"
                                                  "</w:t></w:r></w:p></w:sdtContent></w:sdt>"), "内容控件中的段落文字"),
    "tracked_insertion": (lambda x: _after_table(x, "<w:p><w:ins w:id=\"1\" w:author=\"a\"><w:r><w:t>修订插入的文字"
                                                    "</w:t></w:r></w:ins></w:p>"), "修订插入的文字"),
}


@pytest.mark.parametrize("case", sorted(DOCX_CASES))
def test_docx_that_python_docx_cannot_read_is_read_from_its_xml(case, raw, tmp_path):
    edit, expected = DOCX_CASES[case]
    _docx_with(raw / f"{case}.docx", edit)
    docs, table, _ = run_ingest(raw, tmp_path)
    assert table.empty
    text = docs.iloc[0].text
    assert expected in text and paragraphs(0)[0] in text and "项目甲" in text


def test_a_reader_that_raises_on_a_hostile_file_costs_only_that_file(raw, tmp_path):
    # a package whose main part is some other XML: python-docx opens it, then has no body to give
    _docx_with(raw / "foreign.docx", lambda xml: "<?xml version='1.0'?><html><body><p>别的XML</p></body></html>")
    write_txt(raw / "good.txt", "正常文件", paragraphs(1))
    docs, table, _ = run_ingest(raw, tmp_path)
    assert [Path(p).name for p in docs.path] == ["good.txt"]
    assert "the docx reader failed on this file (AttributeError" in by_name(rows(table, "rejected"), "foreign.docx")


def test_docx_that_unpacks_beyond_the_ratio_is_rejected_before_parsing(raw, tmp_path):
    body = "<w:p><w:r><w:t>党的建设</w:t></w:r></w:p>" * 200_000  # ~7 MB of XML, compresses >100:1
    _docx_with(raw / "bomb.docx", lambda xml: xml.replace("<w:body>", "<w:body>" + body, 1))
    write_txt(raw / "good.txt", "正常文件", paragraphs(1))
    docs, table, _ = run_ingest(raw, tmp_path)
    assert [Path(p).name for p in docs.path] == ["good.txt"]
    reason = by_name(rows(table, "rejected"), "bomb.docx")
    assert "zip bomb" in reason and "ingest.max_docx_ratio=100" in reason


# --- reader budgets --------------------------------------------------------------------------------

def test_a_reader_that_runs_past_its_time_budget_is_stopped_and_the_run_goes_on(raw, tmp_path):
    # ~6 MB of nested paragraphs: trafilatura needs many seconds for it, far beyond the 1 s budget
    page = "".join(f"<div><p>{SENTENCES[i % 7]}{i}</p></div>" for i in range(60_000))
    (raw / "a_slow.html").write_text(f"<html><body><article>{page}</article></body></html>", encoding="utf-8")
    write_txt(raw / "b_good.txt", "正常文件", paragraphs(1))  # read after the slow one, by a new reader
    docs, table, _ = run_ingest(raw, tmp_path, max_seconds_per_file=1)
    assert [Path(p).name for p in docs.path] == ["b_good.txt"]
    assert "ingest.max_seconds_per_file=1s" in by_name(rows(table, "rejected"), "a_slow.html")


# --- parse output ----------------------------------------------------------------------------------

def test_a_failed_parse_leaves_an_existing_output_untouched(raw, tmp_path, params):
    out = tmp_path / "paragraphs.jsonl"
    out.write_text("last good output\n", encoding="utf-8")
    (raw / "empty.txt").write_bytes(b"")
    assert main(["--params", str(params), "parse", str(raw / "empty.txt"), "-o", str(out)]) == 1  # nothing usable
    assert main(["--params", str(params), "parse", str(raw / "missing.txt"), "-o", str(out)]) == 2  # an error
    assert out.read_text(encoding="utf-8") == "last good output\n"
    assert io.leftover_temp_files(tmp_path) == []


# --- CSV corpora -----------------------------------------------------------------------------------

def _csv(lines: list[str]) -> str:
    return "\n".join(["id,title,text", *lines]) + "\n"


def test_a_stray_quote_in_a_csv_corpus_costs_no_row(raw, tmp_path):
    lines = [f"{i},标题{i},{random_text(i)}" for i in range(50)]
    lines[3] = f'3,"标题3,{random_text(3)}'  # opens a quoted field that never closes
    lines[40] = f'40,标题40,"{random_text(40)}"'  # a later quote that the stray one would pair with
    (raw / "corpus.csv").write_text(_csv(lines), encoding="utf-8")

    docs, table, _ = run_ingest(raw, tmp_path)

    assert len(docs) == 50 and rows(table, "rejected") == {}
    assert random_text(4) in docs.set_index("record").loc[6].text  # the row after the stray quote: line 6
    warning = by_name(rows(table, "warning"), "corpus.csv")
    assert "unbalanced quote" in warning and list(rows(table, "warning")) == [f"{raw / 'corpus.csv'}#5"]


def test_a_csv_line_whose_fields_cannot_be_told_apart_is_rejected_alone(raw, tmp_path):
    lines = [f"{i},标题{i},{random_text(i)}" for i in range(10)]
    lines[2] = f'2,"标题2,多出,的,逗号,{random_text(2)}'  # neither reading gives three fields
    multiline = random_text(90).replace("。", "，第一段。\n第二段") + "。"
    lines.append(f'10,标题10,"{multiline}"')  # a legitimate multi-line quoted field stays one record
    (raw / "corpus.csv").write_text(_csv(lines), encoding="utf-8")

    docs, table, _ = run_ingest(raw, tmp_path)

    assert len(docs) == 10
    assert list(rows(table, "rejected")) == [f"{raw / 'corpus.csv'}#4"]
    assert "unbalanced quote" in by_name(rows(table, "rejected"), "corpus.csv")
    assert "第一段。\n第二段" in docs.set_index("record").loc[12].text


def test_a_records_file_without_records_is_reported(raw, tmp_path):
    (raw / "header_only.csv").write_text("id,title,text\n", encoding="utf-8")
    write_txt(raw / "good.txt", "正常文件", paragraphs(1))
    _, table, _ = run_ingest(raw, tmp_path)
    assert "no document and no record" in by_name(rows(table, "rejected"), "header_only.csv")


def test_jsonl_corpus_values_python_writes_but_json_forbids_are_read_as_missing(raw, tmp_path):
    records = ['{"title": NaN, "date": "2020-05-01", "text": "%s"}' % random_text(1),
               '{"title": "\\ud800坏标题", "text": "%s\\udcb5"}' % random_text(2),
               '{"title": "无正文", "text": NaN}']
    (raw / "c.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    docs, table, _ = run_ingest(raw, tmp_path)
    assert len(docs) == 2 and docs.iloc[0].title != "nan"
    assert docs.iloc[1].title == "\ufffd坏标题" and docs.iloc[1].text.endswith("\ufffd")
    assert "no text field" in by_name(rows(table, "rejected"), "c.jsonl")


# --- HTML ------------------------------------------------------------------------------------------

def _page(*parts: str) -> str:
    return "<html><head><meta charset='utf-8'><title>页面</title></head><body><article>" + "".join(
        parts) + "</article></body></html>"


def test_html_text_after_a_10_mb_inline_image_survives(raw, tmp_path):
    image = "data:image/png;base64," + base64.b64encode(random.Random(0).randbytes(7_500_000)).decode()
    (raw / "page.html").write_text(_page(f"<p>{paragraphs(0)[0]}</p>", f'<img src="{image}">',
                                         *(f"<p>{p}</p>" for p in paragraphs(3))), encoding="utf-8")
    docs, table, _ = run_ingest(raw, tmp_path)
    assert table.empty
    assert all(p in docs.iloc[0].text for p in paragraphs(3))


def test_html_text_after_deep_nesting_survives(raw, tmp_path):
    (raw / "page.html").write_text(_page(f"<p>{paragraphs(0)[0]}</p>", "<font>" * 300,
                                         *(f"<p>{p}</p>" for p in paragraphs(3))), encoding="utf-8")
    docs, table, _ = run_ingest(raw, tmp_path)
    assert table.empty and all(p in docs.iloc[0].text for p in paragraphs(3))


def test_html_pages_saved_one_after_another_are_read_to_the_end(raw, tmp_path):
    page = _page(*(f"<p>{p}</p>" for p in paragraphs(0))) + "<html><head><title>第2页</title></head><body>" + "".join(
        f"<p>{p}</p>" for p in paragraphs(4)) + "</body></html>"  # page 2 of the article after page 1's </html>
    (raw / "page.html").write_text(page, encoding="utf-8")
    docs, table, _ = run_ingest(raw, tmp_path)
    assert table.empty and all(p in docs.iloc[0].text for p in paragraphs(0) + paragraphs(4))


def test_html_the_parser_cannot_read_to_its_end_is_kept_with_a_warning(raw, tmp_path):
    page = _page(*(f"<p>{p}</p>" for p in paragraphs(0)), "<!-- an unclosed comment hides what follows",
                 *(f"<p>{p}</p>" for p in paragraphs(4)))
    (raw / "page.html").write_text(page, encoding="utf-8")
    docs, table, report = run_ingest(raw, tmp_path)
    assert paragraphs(0)[0] in docs.iloc[0].text
    assert "may be incomplete" in by_name(rows(table, "warning"), "page.html") and report["warnings"] == 1


# --- links, folders, special files -----------------------------------------------------------------

def test_links_and_special_files_get_a_rejection_row_and_links_out_of_raw_are_not_followed(raw, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_txt(outside / "secret.txt", "不应读取", paragraphs(5))
    write_txt(raw / "good.txt", "正常文件", paragraphs(1))
    write_txt(raw / "target.txt", "链接目标", paragraphs(2))
    (raw / "dangling.txt").symlink_to(raw / "gone.txt")
    (raw / "out.txt").symlink_to(outside / "secret.txt")
    (raw / "out_folder").symlink_to(outside, target_is_directory=True)
    (raw / "inside.txt").symlink_to(raw / "target.txt")  # a link within raw is read (a duplicate here)
    os.mkfifo(raw / "pipe.txt")  # reading it would wait for ever

    docs, table, _ = run_ingest(raw, tmp_path)

    assert sorted(Path(p).name for p in docs.path) == ["good.txt", "inside.txt"]
    rejected = rows(table, "rejected")
    assert "dangling symbolic link" in by_name(rejected, "dangling.txt")
    assert "not followed" in by_name(rejected, "out.txt") and "not followed" in by_name(rejected, "out_folder")
    assert "not a regular file" in by_name(rejected, "pipe.txt")
    assert not any("secret" in p for p in docs.path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder, so none is unreadable")
def test_an_unreadable_folder_gets_a_rejection_row(raw, tmp_path):
    write_txt(raw / "good.txt", "正常文件", paragraphs(1))
    locked = raw / "locked"
    locked.mkdir()
    write_txt(locked / "hidden.txt", "读不到", paragraphs(2))
    locked.chmod(0)
    try:
        _, table, _ = run_ingest(raw, tmp_path)
    finally:
        locked.chmod(0o755)
    assert "unreadable folder" in by_name(rows(table, "rejected"), "locked")


def test_a_sidecar_saved_by_excel_as_gbk_is_applied_and_a_broken_one_is_reported(raw, tmp_path):
    write_txt(raw / "a.txt", "某某材料", paragraphs(0))
    (raw / "metadata.csv").write_bytes("file,title,date,source,doc_type\na.txt,,2020-05-01,东川日报,评论员文章\n"
                                       .encode("gb18030"))
    broken = raw / "b"
    broken.mkdir()
    write_txt(broken / "b.txt", "另一份材料", paragraphs(1))
    (broken / "metadata.csv").write_bytes(bytes(range(256)) * 4)
    docs, table, _ = run_ingest(raw, tmp_path)
    assert docs.set_index(docs.path.map(lambda p: Path(p).name)).loc["a.txt"].source == "东川日报"
    assert "could not be read" in by_name(rows(table, "warning"), "b.txt")


# --- classify input --------------------------------------------------------------------------------

@pytest.mark.parametrize("line, problem", [
    ('{"text": "没有编号的记录"}', "no 'id'"),
    ('{"id": null, "text": "编号为空"}', "no 'id'"),
    ('{"id": 3, "text": NaN}', "NaN is not valid JSON"),
    ('{"id": 4, "text": "分数", "score": Infinity}', "Infinity is not valid JSON"),
    ('{"id": 5, "text": null}', "no 'text'"),
    ('{"id": 6, "text": "孤立代理项\\ud800"}', "lone surrogate"),
    ('{"id": 7, "text": "正文", "heading_path": {"一": 1}}', "'heading_path' must be a list of strings"),
    ('{"id": 8, "text": "正文", "title": 5}', "'title' must be a string"),
])
def test_classify_input_errors_name_the_file_and_line(line, problem, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "text": "正常记录"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"in\.jsonl:2: .*{re.escape(problem)}"):
        read_records(path)


def test_classify_input_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes('{"id": 1, "text": "正常"}\n'.encode() + '{"id": 2, "text": "编码"}\n'.encode("gbk"))
    with pytest.raises(ValueError, match=r"in\.jsonl:2: not valid UTF-8"):
        read_records(path)


# --- output file modes -----------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_get_the_mode_the_umask_gives(umask, tmp_path):
    previous = os.umask(umask)
    try:
        io.write_json(tmp_path / "a.json", {"a": 1})
        io.write_csv(tmp_path / "b.csv", pd.DataFrame({"a": [1]}))
        with io.atomic_path(tmp_path / "c.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(previous)
    for name in ("a.json", "b.csv", "c.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_an_output_replaced_in_place_is_never_half_written(tmp_path):
    target = tmp_path / "out.csv"
    io.write_csv(target, pd.DataFrame({"a": [1]}))
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "a\n1\n" and io.leftover_temp_files(tmp_path) == []

