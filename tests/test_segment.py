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


def test_a_run_in_heading_with_commas_is_split_off_and_heads_the_paragraphs_after_it():
    text = "\n".join([
        "一、全面从严治党",
        "（三）坚持和健全民主集中制，增强党的活力和团结统一。民主集中制是民主基础上的集中和集中指导下的民主相结合的制度。",
        "要以保障党员民主权利为根本，以加强党的代表大会制度和党的委员会制度为重点，推进党内民主建设。",
        "（四）加强党的基层组织建设，夯实党的执政基础。",
        "党的基层组织是党的全部工作和战斗力的基础，要扩大覆盖面，增强凝聚力。",
    ])
    result = units(text)
    headings = [u.text for u in result if u.kind == "heading"]
    assert headings == ["一、全面从严治党", "（三）坚持和健全民主集中制，增强党的活力和团结统一", "（四）加强党的基层组织建设，夯实党的执政基础"]
    subsection = ["一、全面从严治党", "（三）坚持和健全民主集中制，增强党的活力和团结统一"]
    assert body_under(result, "民主集中制是民主基础上").heading_path == subsection
    assert body_under(result, "要以保障党员民主权利").heading_path == subsection  # the next line keeps it
    assert body_under(result, "党的基层组织是").heading_path[-1] == "（四）加强党的基层组织建设，夯实党的执政基础"


def test_numbered_paragraphs_and_lists_of_numbered_sentences_stay_body():
    # the first sentence is too long for a heading: a numbered paragraph whose gist is body text
    long_item = ("2. 各基层党支部要结合“三会一课”开展集中学习，支部书记讲专题党课，每名党员原则上至少参加1次集中学习。"
                 "学习要注重实效，不搞层层加码。")
    listed = ["（一）要使粮食生产的发展同人口的增长比较适应。", "（二）要使轻纺工业的增长速度赶上重工业的增长速度。"]
    result = units("\n".join(["一、工作安排", "1. 学习安排", long_item, *listed]), min_chars=1)
    assert [u.text for u in result if u.kind == "heading"] == ["一、工作安排", "1. 学习安排"]
    assert body_under(result, "2. 各基层党支部").text == long_item
    assert [u.text for u in result if u.text.startswith("（")] == listed  # siblings: a list, no headings


def test_a_speech_opens_with_front_matter_and_ends_with_a_closing():
    text = "\n".join([
        "高举旗帜", "为全面建设社会主义现代化国家而团结奋斗", "——在中国共产党第二十次全国代表大会上的报告",
        "（2022年10月16日）", "习近平",
        "同志们：", "现在，我代表第十九届中央委员会向大会作报告。",
        "一、过去五年的工作", "五年来，我们坚持加强党的全面领导和党中央集中统一领导，全力推进全面建成小康社会进程。",
        "二、坚定不移全面从严治党", "（一）坚持和加强党中央集中统一领导。党中央是党的神经中枢，必须坚决维护党中央权威。",
        "全党必须牢记，全面从严治党永远在路上，党的自我革命永远在路上，决不能有松劲歇脚、疲劳厌战的情绪。",
        "同志们！时代呼唤着我们，人民期待着我们，唯有矢志不渝、笃行不怠，方能不负时代、不负人民。",
        "团结就是力量，团结才能胜利。全党要坚持全心全意为人民服务的根本宗旨。",
        "同志们！党用伟大奋斗创造了百年伟业，也一定能用新的伟大奋斗创造新的伟业。",
    ])
    result = units(text)
    front = [u for u in result if u.kind == "front_matter"]
    assert [u.text for u in front] == text.split("\n")[:5]
    assert all(u.heading_path == [] and u.level == 0 for u in front)
    assert result[len(front)].kind == "body" and result[len(front)].text.startswith("同志们：现在")
    closing = [u for u in result if u.kind == "closing"]
    assert [u.text[:6] for u in closing] == ["同志们！时代", "团结就是力量", "同志们！党用"]
    assert all(u.heading_path == [] for u in closing)
    assert body_under(result, "全党必须牢记").heading_path[-1].startswith("（一）坚持和加强党中央集中统一领导")


def test_only_the_last_address_to_the_deputies_opens_the_closing():
    text = "\n".join([
        "政府工作报告", "——2022年3月5日在第十三届全国人民代表大会第五次会议上", "国务院总理李克强各位代表：",
        "现在，我代表国务院，向大会报告政府工作，请予审议。",
        "一、2021年工作回顾", "过去一年，我国经济发展和疫情防控保持全球领先地位，主要指标实现预期目标。",
        "二、2022年政府工作任务", "今年要坚持稳字当头、稳中求进，继续做好“六稳”“六保”工作，持续改善民生。",
        "各位代表！我们要坚持和完善民族区域自治制度，推动民族地区加快现代化建设步伐。",
        "我们要坚持独立自主的和平外交政策，坚定不移走和平发展道路，推动构建人类命运共同体。",
        "结束语", "各位代表！", "中国的发展从来都是在应对挑战中前进的，中国人民有战胜任何艰难险阻的勇气、智慧和力量。",
    ])
    result = units(text)
    assert [u.text for u in result if u.kind == "front_matter"] == text.split("\n")[:2] + ["国务院总理李克强"]
    assert result[3].text.startswith("各位代表：现在")
    # 各位代表！ opens each unnumbered topic of the last part: only its last one opens the closing
    assert body_under(result, "各位代表！我们要坚持和完善").heading_path == ["二、2022年政府工作任务"]
    assert [u.text for u in result if u.kind == "closing"] == [
        "结束语各位代表！中国的发展从来都是在应对挑战中前进的，中国人民有战胜任何艰难险阻的勇气、智慧和力量。"]


@pytest.mark.parametrize("text", [
    "同志们：\n今天召开全市党建工作会议，主要任务是总结去年工作，部署今年任务。",  # opens with its salutation
    "坚持党的领导\n加强党的建设\n各级党组织要把党的政治建设摆在首位，以政治建设统领各项建设。",  # short lines, no subtitle
])
def test_documents_without_front_matter_keep_every_line(text):
    result = units(text, min_chars=1)
    assert not any(u.kind in ("front_matter", "closing") for u in result)
    assert "".join(u.text for u in result) == text.replace("\n", "")


def test_record_fields_beyond_the_document_columns_reach_the_paragraphs(tmp_path):
    corpus = tmp_path / "reports.jsonl"
    record = {"congress": 19, "year": 2017, "title": "报告", "url": "https://example.org/19", "session": "第一次会议",
              "text": "一、党的建设\n全面从严治党永远在路上，各级党组织要坚定不移把党的政治建设摆在首位。"}
    corpus.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["parse", str(corpus), "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["url"] == "https://example.org/19" for r in rows)
    assert all(json.loads(r["extra"]) == {"congress": 19, "session": "第一次会议"} for r in rows)


def test_real_reports_front_matter_run_in_headings_closing_and_fields(shared_corpora, tmp_path):
    import re

    out = tmp_path / "real.jsonl"
    paths = [str(shared_corpora / name) for name in ("cpc_congress_reports.jsonl", "gov_work_reports_1954-2025.jsonl")]
    assert main(["parse", *paths, "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    congress = [r for r in rows if r["doc_type"] == "cpc_congress_report"]
    assert {json.loads(r["extra"])["congress"] for r in congress} == set(range(12, 21))
    assert all(r["url"].startswith("https://zh.wikisource.org/") for r in congress)
    # no body paragraph opens with a short numbered sentence left unsplit (245 did before)
    run_in = re.compile(f"^(（[{'一二三四五六七八九十'}]+）|[{'一二三四五六七八九十'}]+、|\\d+[.．、])[^。！？；：]{{1,30}}[。！？；：].")
    assert [r["text"][:30] for r in rows if r["kind"] == "body" and run_in.match(r["text"])] == []
    subsection = next(r for r in congress if r["text"] == "（三）坚持和健全民主集中制，增强党的活力和团结统一")
    assert subsection["kind"] == "heading" and subsection["date"] == "2002"
    under = [r for r in congress if r["kind"] == "body" and r["heading_path"][-1:] == [subsection["text"]]]
    assert len(under) > 1 and under[0]["text"].startswith("民主集中制是")
    for report in ([r for r in congress if r["date"] == year] for year in ("2017", "2022")):
        front = [r["text"] for r in report if r["kind"] == "front_matter"]
        assert front[2].startswith("——在中国共产党第") and front[3].startswith("（20") and front[4] == "习近平"
        closing = [r for r in report if r["kind"] == "closing"]
        assert closing[0]["text"].startswith("同志们！") and closing[-1]["order"] == report[-1]["order"]
