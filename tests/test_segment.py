"""Segmentation: outline structure at line starts and inside run-on scrapes; splitting and merging."""
from __future__ import annotations

import json

import pytest

from pipeline.__main__ import main
from pipeline.config import SegmentSettings
from pipeline.segment import Segmenter, chunk_sentences, match_marker


def units(text: str, **overrides):
    return Segmenter(SegmentSettings(**overrides)).paragraphs(text)


def body_under(result, text_start: str):
    return next(u for u in result if u.kind == "body" and u.text.startswith(text_start))


def test_line_start_headings_nest_by_their_order_of_appearance():
    text = "\n".join([
        "第一章 总则", "一、总体要求", "（一）指导思想",
        "坚持以新时代中国特色社会主义思想为指导，全面贯彻党的二十大精神。", "1.加强学习", "各党支部每月集中学习一次。",
        "（1）个人自学", "党员每周自学不少于两小时，做好学习笔记。", "①读原著", "认真研读原著原文，深刻领会精神实质。",
        "2.开展研讨", "每季度组织一次专题研讨。", "二、工作措施", "落实“三会一课”制度，规范组织生活。",
        "第二章 附则", "第十条 本办法由党委组织部负责解释。", "第十一条 本办法自印发之日起施行。",
    ])
    result = units(text, min_chars=1)
    headings = [(u.level, u.text) for u in result if u.kind == "heading"]
    assert headings == [(1, "第一章 总则"), (2, "一、总体要求"), (3, "（一）指导思想"), (4, "1.加强学习"),
                        (5, "（1）个人自学"), (6, "①读原著"), (4, "2.开展研讨"), (2, "二、工作措施"),
                        (1, "第二章 附则")]
    # 第十条 opens a paragraph of a regulation, not a section
    assert body_under(result, "第十一条").heading_path == ["第二章 附则"]
    assert body_under(result, "每季度").heading_path == ["第一章 总则", "一、总体要求", "（一）指导思想", "2.开展研讨"]
    assert body_under(result, "落实").heading_path == ["第一章 总则", "二、工作措施"]


def test_run_on_scrape_recovers_nested_headings(scrape_file):
    from pipeline.config import IngestSettings
    from pipeline.ingest.stage import DocumentBuilder

    document = DocumentBuilder(IngestSettings()).prepare_file((scrape_file, str(scrape_file)))[0].document
    result = units(document["text"])
    item = next(u for u in result if u.text.startswith("2.完善监督体系"))
    assert item.kind == "heading"
    assert item.heading_path[0].startswith("二、全面从严治党向纵深发展的路径选择")
    assert item.heading_path[1].startswith("（三）加强制度体系建设")
    body = body_under(result, "要以党内监督为主导")
    assert body.heading_path[-1] == "2.完善监督体系"
    # headings run straight into their body text are cut before the body's first words
    assert "（一）全面从严治党的意志还需进一步坚定" in [u.text for u in result]
    assert "（二）管党治党责任落实还不够到位" in [u.text for u in result]
    # numbers, years and quoted text never open a section
    assert not any(u.kind == "heading" and u.text.startswith(("5倍", "2015", "“")) for u in result)
    assert any("2015年以来" in u.text for u in result if u.kind == "body")
    assert any("增长1.5倍" in u.text for u in result if u.kind == "body")


@pytest.mark.parametrize("text", ["2015年全市共立案", "增长1.5倍以上", "见第1页", "“一、二、三”的说法", "《关于（一）的说明》"])
def test_numbers_and_quotes_are_not_markers_inline(text):
    line = "这是一段足够长的文字。" * 30 + text + "。后面还有很多文字。" * 5
    result = units(line)
    assert all(u.kind == "body" for u in result)


def test_markers_need_the_expected_sequence_inline():
    line = "前言部分说明情况。" * 40 + "三、这不是第三部分因为前面没有第一第二。" + "正文。" * 10
    assert all(u.kind == "body" for u in units(line))
    assert match_marker("1.5倍") is None and match_marker("1.加强") is not None


def test_long_paragraphs_split_at_sentence_ends_and_short_fragments_merge():
    sentence = "各级党组织要认真落实全面从严治党主体责任，“决不能把‘一岗双责’当作口号。”"
    result = units("同志们：\n" + sentence * 20, max_chars=120, min_chars=10)
    assert all(len(u.text) <= 120 for u in result)
    assert result[0].text.startswith("同志们：")  # the greeting merged into the next paragraph
    assert all(u.text.endswith("”") for u in result)  # never split inside the quotation
    assert chunk_sentences("短句。" * 3, 100) == ["短句。短句。短句。"]


def test_para_ids_are_stable_across_runs(scrape_file, tmp_path):
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["parse", str(scrape_file), "-o", str(out1)]) == 0
    assert main(["parse", str(scrape_file), "-o", str(out2)]) == 0
    assert out1.read_text() == out2.read_text()


def test_parse_command_returns_clean_paragraphs(scrape_file, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["parse", str(scrape_file), str(tmp_path / "missing-dir-is-error")]) == 2
    (tmp_path / "empty.txt").write_bytes(b"")
    assert main(["parse", str(scrape_file), str(tmp_path / "empty.txt"), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "rejected" in err and "empty.txt" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"doc_id", "title", "date", "heading_path", "text"} <= set(rows[0])
    assert rows[0]["title"] == "党建工作交流材料：深入推进全面从严治党面临的挑战与对策"
    text = "\n".join(r["text"] for r in rows)
    for junk in ("赏杯茶钱", "免费阅读", "下载文档", "777doc", "ICP", "QQ", "保存成功", "1 / 8", "资源描述", "×"):
        assert junk not in text


def test_parse_exits_nonzero_when_nothing_parses(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    assert main(["parse", str(tmp_path / "empty.txt"), "-o", str(tmp_path / "o.jsonl")]) == 1


def test_real_congress_report_sections_are_recovered(shared_corpora, tmp_path):
    out = tmp_path / "real.jsonl"
    assert main(["parse", str(shared_corpora / "cpc_congress_reports.jsonl"), "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    report_2022 = [r for r in rows if r["date"] == "2022"]
    section = next(r for r in report_2022 if r["text"].startswith("十五、坚定不移全面从严治党"))
    assert section["kind"] == "heading" and section["heading_path"] == []
    subsections = [r["text"][:3] for r in report_2022
                   if r["kind"] == "heading" and r["heading_path"] == [section["text"]]]
    assert subsections == ["（一）", "（二）", "（三）", "（四）", "（五）", "（六）", "（七）"]
    bodies = [r for r in report_2022 if r["kind"] == "body" and r["heading_path"][:1] == [section["text"]]]
    assert len(bodies[0]["heading_path"]) == 1  # the section's introduction stands under 十五、 alone
    under_subsections = {tuple(r["heading_path"]) for r in bodies if len(r["heading_path"]) == 2}
    assert len(under_subsections) == 7


def test_segment_workers_write_the_same_paragraphs(tmp_path):
    import pandas as pd

    from pipeline import segment

    line = "党的政治建设是党的根本性建设。" * 30
    docs = pd.DataFrame([{"doc_id": f"d{i}", "text": f"一、第{i}部分\n{line}\n二、下一部分\n{line}", "title": "t",
                          "date": "2020", "year": 2020, "doc_type": "通知", "source": "s"} for i in range(6)])
    docs.to_parquet(tmp_path / "documents.parquet")
    for workers in (1, 2):
        segment.run(SegmentSettings(workers=workers), str(tmp_path / "documents.parquet"),
                    str(tmp_path / f"paragraphs{workers}.parquet"))
    assert (tmp_path / "paragraphs1.parquet").read_bytes() == (tmp_path / "paragraphs2.parquet").read_bytes()
