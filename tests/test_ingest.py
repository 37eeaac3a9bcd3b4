"""Ingest: every format, encodings, metadata rules, junk, dedup — and bad input never stops a run."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from formats import write_docx, write_html, write_pdf, write_txt
from pipeline.config import IngestSettings
from pipeline.ingest import stage

PARAS = [
    "一、加强党的政治建设",
    "党的政治建设是党的根本性建设。各级党组织要坚决维护党中央权威和集中统一领导，严明政治纪律和政治规矩，"
    "不断提高政治判断力、政治领悟力、政治执行力，确保党中央决策部署落地见效。",
    "（一）严肃党内政治生活",
    "要认真落实“三会一课”、组织生活会、民主评议党员等制度，开展积极健康的思想斗争，增强党内政治生活的政治性、"
    "时代性、原则性、战斗性。",
]
EXTRA = [  # distinct content, so documents sharing PARAS are not near-duplicates of each other
    "各级纪检监察机关要坚持有腐必反、有贪必肃，持续保持惩治腐败高压态势，坚决查处群众身边的不正之风和腐败问题。",
    "组织部门要坚持新时代好干部标准，健全干部考核评价机制，大力选拔政治过硬、敢于担当、善于作为的优秀年轻干部。",
    "村党组织要发挥战斗堡垒作用，推行党员积分管理，落实“三会一课”，带领群众发展特色产业、增加集体收入。",
    "要以党内法规制度建设为抓手，及时修订完善议事规则和决策程序，把权力关进制度的笼子，做到用制度管权管事管人。",
    "深入整治形式主义、官僚主义，精简会议文件，规范督查检查考核，让基层干部从文山会海中解脱出来，把精力用在抓落实上。",
    "今年全市地区生产总值增长百分之六点二，规模以上工业增加值增长百分之七，固定资产投资保持稳定增长，消费市场持续回暖。",
    "巡察组进驻后，通过个别谈话、调阅资料、走访调研等方式，发现问题线索二十余条，已按程序移交有关部门办理。",
]


def distinct(i: int) -> list[str]:
    return PARAS + [EXTRA[i % len(EXTRA)], EXTRA[(i + 3) % len(EXTRA)]]


TRAD_PARAS = ["各級黨組織要堅決維護黨中央權威和集中統一領導，嚴明政治紀律和政治規矩，認真落實全面從嚴治黨主體責任。"]


def run_ingest(raw: Path, tmp_path: Path, **overrides) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    settings = IngestSettings(raw_dir=str(raw), out_dir=str(tmp_path / "out"), **overrides)
    stage.run(settings)
    out = tmp_path / "out"
    return (pd.read_parquet(out / "documents.parquet"), pd.read_csv(out / "rejected.csv"),
            json.loads((out / "ingest_report.json").read_text()))


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    return folder


def test_reads_every_format_with_its_metadata(raw, tmp_path):
    write_txt(raw / "2019-02-21_utf8.txt", "关于加强党的建设的意见", distinct(0))
    write_txt(raw / "gbk.txt", "（2017年10月18日）", distinct(1), encoding="gb18030")
    write_txt(raw / "big5.txt", "繁體範例", TRAD_PARAS * 3, encoding="big5")
    write_html(raw / "page.html", "关于开展主题教育的通知", distinct(2), date="2023-04-10")
    write_docx(raw / "report.docx", "述职报告", distinct(3), table_rows=[["项目", "完成情况"], ["专题学习", "12次"]])
    write_pdf(raw / "speech.pdf", "在纪委全会上的工作报告", distinct(4))
    records = [{"title": "第一篇", "year": 1982, "text": "\n\n".join(distinct(5))},
               {"title": "第二篇", "date": "2012-11-08", "text": "\n\n".join(distinct(6))}]
    (raw / "corpus.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))

    docs, rejected, report = run_ingest(raw, tmp_path)

    assert rejected.empty
    by_path = {Path(p.split("#")[0]).name + ("#" + p.split("#")[1] if "#" in p else ""): row
               for p, row in docs.set_index("path").iterrows()}
    utf8 = by_path["2019-02-21_utf8.txt"]
    assert (utf8.title, utf8.title_rule, utf8.date, utf8.date_rule) == (
        "关于加强党的建设的意见", "first_line", "2019-02-21", "file_name")
    assert by_path["gbk.txt"].encoding == "gb18030" and by_path["gbk.txt"].date == "2017-10-18"
    big5 = by_path["big5.txt"]
    assert big5.simplified and "党中央权威" in big5.text and big5.encoding == "big5"
    html = by_path["page.html"]
    assert html.title == "关于开展主题教育的通知" and html.date == "2023-04-10"
    assert "首页" not in html.text and "ICP" not in html.text and "track()" not in html.text
    assert html.source == "党建网" and html.source_rule == "byline" and "来源" not in html.text
    docx = by_path["report.docx"]
    assert docx.title == "述职报告" and "专题学习 | 12次" in docx.text
    pdf = by_path["speech.pdf"]
    assert pdf.title == "在纪委全会上的工作报告"
    assert PARAS[1][:40] in pdf.text.replace("\n", "")
    assert "（一）严肃党内政治生活" in pdf.text.split("\n")  # a heading line is not joined to its neighbours
    assert by_path["corpus.jsonl#1"].year == 1982 and by_path["corpus.jsonl#1"].date_rule == "field"
    assert report["by_format"] == {"docx": 1, "html": 1, "pdf": 1, "records": 2, "txt": 3}


def test_sidecar_metadata_supplies_source_and_type(raw, tmp_path):
    write_txt(raw / "a.txt", "某某材料", PARAS)
    (raw / "metadata.csv").write_text("file,title,date,source,doc_type\na.txt,,2020-05-01,东川日报,评论员文章\n")
    docs, _, _ = run_ingest(raw, tmp_path)
    row = docs.iloc[0]
    assert (row.date, row.date_rule, row.source, row.source_rule, row.doc_type) == (
        "2020-05-01", "metadata.csv", "东川日报", "metadata.csv", "评论员文章")


def test_normalises_punctuation_width_and_whitespace(raw, tmp_path):
    (raw / "x.txt").write_text("一个标题行\n党的建设:要坚持(一)全面 从严治党,不断前进!\u200b 会议于10:30召开，增长1.5倍。\n\n\n第二段落内容足够长，关于理想信念教育的要求。")
    docs, _, _ = run_ingest(raw, tmp_path)
    text = docs.iloc[0].text
    assert text.split("\n")[0] == "党的建设：要坚持（一）全面从严治党，不断前进！会议于10:30召开，增长1.5倍。"
    assert "\n\n" not in text and "\u200b" not in text


def test_exact_and_near_duplicates_keep_one_and_record_the_cluster(raw, tmp_path):
    long_paras = PARAS * 3
    write_txt(raw / "a.txt", "原文", long_paras)
    write_txt(raw / "b.txt", "原文", long_paras)  # exact copy
    near = [p.replace("不断提高", "切实提高") if i == 1 else p for i, p in enumerate(long_paras)]
    write_txt(raw / "c.txt", "原文（转载）", near)
    docs, _, report = run_ingest(raw, tmp_path)
    dups = pd.read_csv(tmp_path / "out" / "duplicates.csv")
    assert len(docs) == 1 and report["duplicates_exact"] == 1 and report["duplicates_near"] == 1
    assert set(dups.kept_doc_id) == {docs.iloc[0].doc_id}
    assert dups.set_index("kind").loc["near"].similarity >= 0.8


def _zip_bomb(path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            chunk = b"\0" * 2**20
            for _ in range(64):
                member.write(chunk)
    path.write_bytes(buffer.getvalue())


BAD_INPUTS = {
    "empty.txt": (lambda p: p.write_bytes(b""), "empty file"),
    "garbage.txt": (lambda p: p.write_bytes(bytes(range(256)) * 64), "binary content"),
    "corrupt.docx": (lambda p: p.write_bytes(b"PK\x03\x04 this is not really a zip"), "corrupt docx"),
    "corrupt.pdf": (lambda p: p.write_bytes(b"%PDF-1.4\n1 0 obj garbage"), "corrupt pdf"),
    "bomb.docx": (_zip_bomb, "zip bomb"),
    "undecodable.txt": (lambda p: p.write_bytes(b"\x81\xff\xfa" * 500), "undecodable"),
    "oneline.txt": (lambda p: p.write_text("党的建设" * 700_000, encoding="utf-8"), "single line"),
    "scripts.html": (lambda p: p.write_text("<html><head><script>var x=1;</script></head><body>"
                                            "<script>document.write('x')</script></body></html>"), "no main text"),
    "english.txt": (lambda p: p.write_text("This file has no Chinese text at all.\n" * 20), "no usable Chinese"),
    "table.xlsx": (lambda p: p.write_bytes(b"PK"), "unsupported file type"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_quarantined_and_the_run_continues(name, raw, tmp_path, caplog):
    make, reason = BAD_INPUTS[name]
    make(raw / name)
    write_txt(raw / "good.txt", "正常文件", PARAS)
    docs, rejected, report = run_ingest(raw, tmp_path)
    assert list(docs.path.map(lambda p: Path(p).name)) == ["good.txt"]
    row = rejected.set_index(rejected.path.map(lambda p: Path(p).name)).loc[name]
    assert reason in row.reason
    assert any(name in rec.getMessage() and "rejected" in rec.getMessage() for rec in caplog.records)
    assert report["rejected"] == 1


def test_bad_records_in_a_corpus_file_are_quarantined_one_by_one(raw, tmp_path):
    lines = [json.dumps({"title": "好", "text": "\n".join(PARAS)}, ensure_ascii=False), "{not json",
             json.dumps({"title": "无正文"}, ensure_ascii=False)]
    (raw / "c.jsonl").write_text("\n".join(lines))
    docs, rejected, _ = run_ingest(raw, tmp_path)
    assert len(docs) == 1
    assert sorted(rejected.path.map(lambda p: p.split("#")[1])) == ["2", "3"]
    assert "no text field" in rejected.set_index("path").filter(like="#3", axis=0).reason.iloc[0]


def test_stage_fails_only_when_nothing_usable_remains(raw, tmp_path):
    (raw / "empty.txt").write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    (out / "documents.parquet").write_bytes(b"last good output")
    with pytest.raises(SystemExit, match="no usable document"):
        stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out)))
    assert (out / "documents.parquet").read_bytes() == b"last good output"  # untouched
    assert not list(out.glob(".*.tmp"))


def test_same_input_gives_identical_output(raw, tmp_path):
    write_txt(raw / "a.txt", "甲", PARAS)
    write_html(raw / "b.html", "乙", distinct(1))
    first, _, _ = run_ingest(raw, tmp_path / "one")
    second, _, _ = run_ingest(raw, tmp_path / "two")
    pd.testing.assert_frame_equal(first.drop(columns="path"), second.drop(columns="path"))


def test_workers_give_the_same_documents_as_one_process(raw, tmp_path):
    for i in range(4):
        write_txt(raw / f"{i}.txt", f"文件{i}", distinct(i))
    one, _, _ = run_ingest(raw, tmp_path / "one", workers=1)
    two, _, _ = run_ingest(raw, tmp_path / "two", workers=2)
    per_core, _, _ = run_ingest(raw, tmp_path / "per_core", workers=0)
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(one, per_core)


def test_real_corpora_are_ingested_with_years(shared_corpora, tmp_path):
    docs, rejected, _ = run_ingest(shared_corpora, tmp_path)
    assert rejected[~rejected.path.str.endswith(".tar.xz")].empty  # the packed news archives are not read as such
    gov = docs[docs.doc_type == "government_work_report"]
    congress = docs[docs.doc_type == "cpc_congress_report"]
    assert len(gov) == 57 and len(congress) == 15  # with the 6 of cpc_congress_reports_early.jsonl
    assert gov.year.min() == 1954 and gov.year.max() == 2025
    assert sorted(congress.year) == [1921, 1921, 1923, 1969, 1973, 1977,
                                     1982, 1987, 1992, 1997, 2002, 2007, 2012, 2017, 2022]


def test_a_renamed_sidecar_is_read_as_metadata_not_as_a_document(raw, tmp_path):
    write_txt(raw / "a.txt", "某某材料", distinct(0))
    (raw / "meta.csv").write_text("file,title,date,source,doc_type\na.txt,,2020-05-01,东川日报,评论员文章\n")
    docs, rejected, _ = run_ingest(raw, tmp_path, metadata_csv="meta.csv")
    assert rejected.empty and len(docs) == 1 and docs.iloc[0].source == "东川日报"
