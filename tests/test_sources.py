"""Archive layouts (ingest.sources): RSS/Atom feeds, JSON-API dumps, headline CSVs — built here, broken
here (truncated XML, bad records, empty and placeholder bodies, hostile entities), and the real
archives of ../shared/corpora where present."""
from __future__ import annotations

import dataclasses
import json
import lzma
import tarfile
import tracemalloc
from pathlib import Path, PurePosixPath

import pandas as pd
import pytest

from pipeline import segment
from pipeline.config import IngestSettings, SegmentSettings, SourceLayout, stage_settings
from pipeline.ingest import stage
from pipeline.ingest.archives import read_layout
from pipeline.ingest.layouts import html_to_text, path_matches
from pipeline.ingest.normalize import normalize_text
from pipeline.ingest.readers import read_source

ARTICLE = [
    "各级党组织要坚决维护党中央权威和集中统一领导，严明政治纪律和政治规矩，确保党中央决策部署落地见效。",
    "要认真落实“三会一课”、组织生活会、民主评议党员等制度，增强党内政治生活的政治性、时代性、原则性、战斗性。",
]
OTHER = [
    "组织部门要坚持新时代好干部标准，健全干部考核评价机制，大力选拔政治过硬、敢于担当、善于作为的优秀年轻干部。",
    "村党组织要发挥战斗堡垒作用，推行党员积分管理，带领群众发展特色产业、增加集体收入，让党旗在基层一线高高飘扬。",
]
THIRD = ["深入整治形式主义、官僚主义，精简会议文件，规范督查检查考核，让基层干部从文山会海中解脱出来，把精力用在抓落实上。"]

RMRB_FEED = SourceLayout(
    glob="history/rmrb_*.xml", kind="feed", source="人民日报",
    title_pattern=r"^\[(?P<page>\d+)版：(?P<section>[^\]]+)\]\s*(?P<title>.+)$",
    body_xpath='//div[@id="ozoom"]', placeholders=["无法提取正文内容"])
XWLB_JSON = SourceLayout(
    glob="assets/[0-9][0-9][0-9][0-9]/*.json", kind="json_records", records_path="videoList", source="新闻联播",
    fields={"title": "video_detail.title|video_title", "date": "video_detail.pubtime|pub_date",
            "text": "video_detail.content", "url": "video_detail.url|video_url", "tag": "news_hl_tag",
            "brief": "brief"},
    title_pattern=r"^(?:\[视频\])?(?P<title>.+)$")
HEADLINES_CSV = SourceLayout(
    glob="titles1/*.csv", kind="headlines_csv", columns=["title", "date", "month"],
    fields={"text": "title", "date": "date"}, source="人民日报", min_chinese_chars=2, dedup="same_date")
LAYOUTS = [RMRB_FEED, XWLB_JSON, HEADLINES_CSV]


def html_body(paragraphs: list[str], title: str = "") -> str:
    """An article page body like People's Daily's: title, byline, style, the text in div#ozoom."""
    ps = "".join(f"<p>　　{p}</p>" for p in paragraphs)
    return (f'<div class="article"><h1><p> {title} </p></h1><p class="sec">本报记者 张三 《人民日报》（2026年05月06日 '
            f'第 01 版）</p><style>.a {{ margin: 0 }}</style><div id="ozoom"><!--enpcontent-->{ps}'
            f"<!--/enpcontent--><!--enpproperty <date>2026-05-06</date>/enpproperty--></div></div>")


def rss_item(title: str, body: str | None, day: int = 6, link: str = "https://paper.example.cn/a.html") -> str:
    description = "" if body is None else f"<description><![CDATA[{body}]]></description>"
    return (f"<item><title>{title}</title><link>{link}</link>{description}"
            f"<pubDate>Wed, {day:02d} May 2026 07:16:56 +0800</pubDate></item>")


def rss(items: list[str], title: str = "人民日报 - 每日全文订阅") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>{title}</title>\n'
            + "\n".join(items) + "\n</channel></rss>\n")


def run_layouts(raw: Path, tmp_path: Path, layouts: list[SourceLayout] = LAYOUTS
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    out = tmp_path / "out"
    stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out), sources=layouts))
    return (pd.read_parquet(out / "documents.parquet"), pd.read_csv(out / "rejected.csv"),
            pd.read_csv(out / "duplicates.csv"))


def reasons(rejected: pd.DataFrame, raw: Path, status: str = "rejected") -> dict[str, str]:
    """rejected.csv's rows of one status (rejected | warning) as {path under raw[#record]: reason}."""
    rows = rejected[rejected.status == status]
    return {str(PurePosixPath(Path(p.split("#")[0]).relative_to(raw))) + ("#" + p.split("#")[1] if "#" in p else ""): r
            for p, r in zip(rows.path, rows.reason)}


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    (folder / "history").mkdir(parents=True)
    return folder


# --- feeds -----------------------------------------------------------------------------------------

def test_rss_items_become_documents_with_page_section_url_and_paragraphs(raw, tmp_path):
    feed = rss([
        rss_item("[01版：要闻] 坚持党的全面领导", html_body(ARTICLE, "坚持党的全面领导"),
                 link="https://paper.example.cn/1.html"),
        rss_item("[04版：评论] 无法提取的一篇", "无法提取正文内容"),
        rss_item("[05版：理论] 没有正文的一篇", None),
        rss_item("[06版：要闻] 空正文", "<div id='ozoom'>  </div>"),
        rss_item("[07版：党建] 选人用人", html_body(OTHER, "选人用人"), link="https://paper.example.cn/7.html"),
    ])
    (raw / "history" / "rmrb_2026-05-06.xml").write_text(feed, encoding="utf-8")

    docs, rejected, _ = run_layouts(raw, tmp_path)

    assert list(docs.title) == ["坚持党的全面领导", "选人用人"]
    first = docs.iloc[0]
    assert first.text.split("\n") == ARTICLE  # paragraphs kept; title, byline, style, comments gone
    assert (first.date, first.source, first.url, first.format) == (
        "2026-05-06", "人民日报", "https://paper.example.cn/1.html", "feed")
    assert json.loads(first.extra) == {"page": "01", "section": "要闻"}
    assert json.loads(docs.iloc[1].extra) == {"page": "07", "section": "党建"}
    why = reasons(rejected, raw)
    assert set(why) == {f"history/rmrb_2026-05-06.xml#{n}" for n in (2, 3, 4)}
    assert "placeholder body '无法提取正文内容'" in why["history/rmrb_2026-05-06.xml#2"]
    assert why["history/rmrb_2026-05-06.xml#3"].startswith("no body: the item's <encoded|content|description")
    assert "no text once the markup is removed" in why["history/rmrb_2026-05-06.xml#4"]


def test_atom_entries_are_read_with_links_dates_and_xhtml_content(raw, tmp_path):
    atom = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>西岭党建网</title>
  <entry><title>第一篇</title><link rel="enclosure" href="https://x.cn/1.mp3"/>
    <link rel="alternate" href="https://x.cn/1"/><updated>2024-03-05T08:00:00+08:00</updated>
    <content type="html">&lt;p&gt;{ARTICLE[0]}&lt;/p&gt;&lt;p&gt;{ARTICLE[1]}&lt;/p&gt;</content></entry>
  <entry><title>第二篇</title><link href="https://x.cn/2"/><published>2024-03-06</published>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>{OTHER[0]}</p><p>{OTHER[1]}</p></div></content>
  </entry>
  <entry><title>只有摘要</title><updated>2024-03-07T00:00:00Z</updated><summary>{THIRD[0]}</summary></entry>
</feed>"""
    (raw / "feed.atom").write_text(atom, encoding="utf-8")

    docs, rejected, _ = run_layouts(raw, tmp_path, [SourceLayout(glob="*.atom", kind="feed")])

    assert rejected.empty
    assert list(docs.title) == ["第一篇", "第二篇", "只有摘要"]
    assert list(docs.url.fillna("")) == ["https://x.cn/1", "https://x.cn/2", ""]
    assert list(docs.date) == ["2024-03-05", "2024-03-06", "2024-03-07"]
    assert list(docs.source) == ["西岭党建网"] * 3  # the feed's own title, no fixed source set
    assert docs.text.str.split("\n").tolist() == [ARTICLE, OTHER, THIRD]


def test_a_truncated_feed_keeps_its_whole_items_and_reports_the_file_partly_read(raw, tmp_path):
    feed = rss([rss_item(f"[0{n}版：要闻] 第{n}篇", html_body([p])) for n, p in enumerate(ARTICLE + OTHER, 1)])
    cut = feed.index("<item>", feed.index("第4篇") - 40) + 150  # inside the fourth item
    (raw / "history" / "rmrb_2026-05-07.xml").write_text(feed[:cut], encoding="utf-8")

    docs, rejected, _ = run_layouts(raw, tmp_path)

    assert list(docs.title) == ["第1篇", "第2篇", "第3篇"]
    assert reasons(rejected, raw) == {"history/rmrb_2026-05-07.xml#4": "item cut by the XML error at line 6: not read"}
    [partly] = reasons(rejected, raw, "warning").items()
    assert partly[0] == "history/rmrb_2026-05-07.xml" and partly[1].startswith("partly read: XML error at line 6")
    assert "3 item(s) read, 1 cut by the error" in partly[1]


def test_damage_inside_a_feed_loses_only_the_damaged_item(raw, tmp_path):
    items = [rss_item(f"[0{n}版：要闻] 第{n}篇", html_body([p])) for n, p in enumerate(ARTICLE + OTHER, 1)]
    items[1] = items[1].replace("第2篇", "第2篇 A & B")  # an unescaped ampersand: not well-formed XML
    (raw / "history" / "rmrb_2026-05-08.xml").write_text(rss(items), encoding="utf-8")

    docs, rejected, _ = run_layouts(raw, tmp_path)

    assert list(docs.title) == ["第1篇", "第3篇", "第4篇"]
    assert set(reasons(rejected, raw)) == {"history/rmrb_2026-05-08.xml#2"}
    assert "3 item(s) read" in reasons(rejected, raw, "warning")["history/rmrb_2026-05-08.xml"]


def test_feeds_expand_no_entities_external_or_nested(raw, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-42")
    feed = f"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file://{secret}"><!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>t</title>
<item><title>实体&secret;</title><description>{ARTICLE[0]}&secret;&lol3;{ARTICLE[1]}</description></item>
</channel></rss>"""
    (raw / "history" / "rmrb_2026-05-09.xml").write_text(feed, encoding="utf-8")

    docs, rejected, _ = run_layouts(raw, tmp_path)

    assert rejected.empty and len(docs) == 1
    assert "TOPSECRET" not in docs.text[0] + docs.title[0]
    assert "lollol" not in docs.text[0]
    assert ARTICLE[0] in docs.text[0] and ARTICLE[1] in docs.text[0]


def test_an_xml_file_that_is_no_feed_is_rejected_with_the_fix(raw, tmp_path):
    (raw / "history" / "rmrb_2026-05-10.xml").write_text("<?xml version='1.0'?><catalog><book/></catalog>")
    (raw / "history" / "rmrb_2026-05-11.xml").write_text(rss([rss_item("[01版：要闻] 好的", html_body(ARTICLE))]))

    docs, rejected, _ = run_layouts(raw, tmp_path)

    assert list(docs.title) == ["好的"]
    why = reasons(rejected, raw)["history/rmrb_2026-05-10.xml"]
    assert "no RSS <item> or Atom <entry>" in why and "ingest.sources" in why


# --- JSON dumps -------------------------------------------------------------------------------------

def story(title: str, content, day: str = "2020-01-05", tag: str = "") -> dict:
    return {"video_title": title, "brief": title + "。", "pub_date": f"{day} 19:07:03", "news_hl_tag": tag,
            "video_detail": {"title": title, "source": "央视网", "pubtime": f"{day} 19:07:03", "content": content,
                             "url": "https://tv.cctv.com/x.shtml"}}


def test_json_day_files_map_fields_and_report_each_bad_record(raw, tmp_path):
    day = raw / "assets" / "2020"
    day.mkdir(parents=True)
    records = [
        story("[视频]坚持党的全面领导", "".join(f"<p>{p}</p>\r\n" for p in ARTICLE), tag="时政"),
        story("[视频]没有正文", ""),
        "not a record",
        {"video_title": "正文是数字", "video_detail": {"content": 12}},
        {"video_title": "详情为空", "video_detail": None},
        story("[视频]选人用人", "".join(f"<p>{p}</p>" for p in OTHER)),
    ]
    (day / "20200105.json").write_text(json.dumps({"total": 6, "videoList": records}, ensure_ascii=False))
    (day / "20200106.json").write_text('{"videoList": [{"video_title": "半截')  # a cut download
    (day / "20200107.json").write_text(json.dumps({"data": {"list": []}}))  # another API's layout
    (day / "20200108.json").write_text("[" * 100_000 + "]" * 100_000)  # nesting to exhaust a recursive parser

    docs, rejected, _ = run_layouts(raw, tmp_path)

    assert list(docs.title) == ["坚持党的全面领导", "选人用人"]
    first = docs.iloc[0]
    assert first.text.split("\n") == ARTICLE
    assert (first.date, first.source, first.url, first.format) == (
        "2020-01-05", "新闻联播", "https://tv.cctv.com/x.shtml", "json_records")
    assert json.loads(first.extra) == {"brief": "[视频]坚持党的全面领导。", "tag": "时政"}
    why = reasons(rejected, raw)
    assert set(why) == {"assets/2020/20200105.json#2", "assets/2020/20200105.json#3", "assets/2020/20200105.json#4",
                        "assets/2020/20200105.json#5", "assets/2020/20200106.json", "assets/2020/20200107.json",
                        "assets/2020/20200108.json"}
    assert why["assets/2020/20200105.json#2"] == "no body: 'video_detail.content' is missing or empty"
    assert why["assets/2020/20200105.json#3"] == "record 3 is a str, not a JSON object"
    assert "holds a int, not text" in why["assets/2020/20200105.json#4"]
    assert why["assets/2020/20200106.json"].startswith("malformed JSON at line 1")
    assert "records_path 'videoList'" in why["assets/2020/20200107.json"]
    assert why["assets/2020/20200108.json"].startswith("JSON nested too deeply")


def test_json_lines_records_keep_their_extra_fields(raw, tmp_path):
    lines = [json.dumps({"congress": "十八大", "year": 2012, "title": "报告", "text": "\n\n".join(ARTICLE)},
                        ensure_ascii=False), "{broken", json.dumps({"congress": "十九大", "year": 2017,
                                                                    "body": "\n".join(OTHER)}, ensure_ascii=False)]
    (raw / "reports.jsonl").write_text("\n".join(lines), encoding="utf-8")
    layout = SourceLayout(glob="reports.jsonl", kind="json_records",
                          fields={"text": "text|body", "title": "title", "year": "year", "congress": "congress"})

    docs, rejected, _ = run_layouts(raw, tmp_path, [layout])

    assert [json.loads(e)["congress"] for e in docs.extra] == ["十八大", "十九大"]
    assert list(docs.year) == [2012, 2017]
    why = reasons(rejected, raw)
    assert set(why) == {"reports.jsonl#2"} and why["reports.jsonl#2"].startswith("malformed JSON line")


# --- headline CSVs ----------------------------------------------------------------------------------

def test_headline_rows_are_one_paragraph_documents_deduplicated_within_a_date(raw, tmp_path):
    folder = raw / "titles1"
    folder.mkdir()
    rows = [
        "全国征兵工作进展顺利,1990-03-01,1990-03",
        "公告,1990-03-01,1990-03",
        '"只有一列的坏行,1990-03-01,1990-03',  # a stray quote swallows the row's separators
        "旗,1990-03-02,1990-03",  # one Chinese character: under the layout's minimum of two
        "公告,1990-03-02,1990-03",  # the same headline on another day is another document
        "公告,1990-03-02,1990-03",  # the same headline twice on one day is a duplicate
        "",
        "只有共产党领导中国才能繁荣昌盛,1990-03-03,1990-03",
    ]
    data = "\n".join(rows).encode("utf-8")
    data = data.replace("只有共产党".encode(), b"\xff\xfe\xfa" + "共产党".encode())  # undecodable bytes
    (folder / "1990-03.csv").write_bytes(data + "\n最后一行标题,1990-03-04,1990-03\n".encode())

    docs, rejected, duplicates = run_layouts(raw, tmp_path)

    assert list(docs.text) == ["全国征兵工作进展顺利", "公告", "公告", "最后一行标题"]
    assert list(docs.title) == list(docs.text)  # a headline is its own title
    assert list(docs.date) == ["1990-03-01", "1990-03-01", "1990-03-02", "1990-03-04"]
    assert docs.doc_id.is_unique and set(docs.source) == {"人民日报"}
    assert list(duplicates.path.str.rsplit("#").str[-1]) == ["6"] and list(duplicates.kind) == ["exact"]
    why = reasons(rejected, raw)
    assert set(why) == {"titles1/1990-03.csv#3", "titles1/1990-03.csv#4", "titles1/1990-03.csv#8"}
    assert why["titles1/1990-03.csv#3"].startswith("1 column(s) where 2 are needed (title, date)")
    assert "its layout's min_chinese_chars=2" in why["titles1/1990-03.csv#4"]
    assert why["titles1/1990-03.csv#8"] == "undecodable bytes (not utf-8-sig)"


def test_headlines_per_date_make_one_document_per_day_with_a_headline_per_line(raw, tmp_path):
    folder = raw / "titles1"
    folder.mkdir()
    rows = [
        "全国征兵工作进展顺利,2015-03-01,2015-03",
        "旗,2015-03-01,2015-03",  # one Chinese character: under the layout's minimum of two
        "一、坚持党的领导,2015-03-01,2015-03",
        "公告,2015-03-02,2015-03",
        "全国征兵工作进展顺利,2015-03-01,2015-03",  # the month again (2015 is doubled in the archive)
        "公告,2015-03-02,2015-03",
        '"一行坏了,2015-03-02,2015-03',
    ]
    (folder / "2015-03.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    per_date = dataclasses.replace(HEADLINES_CSV, per="date", dedup="exact")

    docs, rejected, duplicates = run_layouts(raw, tmp_path, [per_date])

    assert list(docs.text) == ["全国征兵工作进展顺利\n一、坚持党的领导", "公告"]
    assert list(docs.date) == ["2015-03-01", "2015-03-02"] and list(docs.title) == ["人民日报 2015-03-01", "人民日报 2015-03-02"]
    assert duplicates.empty
    why = reasons(rejected, raw)
    assert "its layout's min_chinese_chars=2" in why["titles1/2015-03.csv#2"]
    assert why["titles1/2015-03.csv#5"] == "repeats row 1: the same headline on the same date"
    assert why["titles1/2015-03.csv#6"] == "repeats row 4: the same headline on the same date"
    assert why["titles1/2015-03.csv#7"].startswith("1 column(s) where 2 are needed")
    # each headline is a body paragraph of its day, also one that looks like an outline heading
    paragraphs = segment.paragraphs_frame(docs.to_dict("records"), SegmentSettings(outline=False))
    assert list(paragraphs.text) == ["全国征兵工作进展顺利", "一、坚持党的领导", "公告"]
    assert set(paragraphs.kind) == {"body"}


def test_headline_csv_with_a_header_in_gb18030(raw, tmp_path):
    text = "日期,标题,版次\n2001-07-01,庆祝中国共产党成立八十周年大会隆重举行,01\n2001-07-02,学习贯彻七一重要讲话,01\n"
    (raw / "headlines.csv").write_bytes(text.encode("gb18030"))
    layout = SourceLayout(glob="headlines.csv", kind="headlines_csv", header=True,
                          fields={"text": "标题", "date": "日期", "page": "版次"}, min_chinese_chars=2, dedup="exact")

    docs, rejected, _ = run_layouts(raw, tmp_path, [layout])

    assert rejected.empty
    assert list(docs.text) == ["庆祝中国共产党成立八十周年大会隆重举行", "学习贯彻七一重要讲话"]
    assert list(docs.date) == ["2001-07-01", "2001-07-02"] and set(docs.encoding) == {"gb18030"}
    assert [json.loads(e) for e in docs.extra] == [{"page": "01"}, {"page": "01"}]
    wrong = SourceLayout(glob="headlines.csv", kind="headlines_csv", header=True, fields={"text": "headline"})
    [only] = read_source(raw / "headlines.csv", "headlines.csv", IngestSettings(sources=[wrong]))
    assert only.reason.startswith("no column(s) ['headline'] in the header ['日期', '标题', '版次']")


def test_the_headline_reader_streams_and_skips_near_dedup(tmp_path):
    folder = tmp_path / "titles1"
    folder.mkdir()
    rows = 10_000
    with open(folder / "2015-07.csv", "w", encoding="utf-8") as fh:
        for n in range(rows):
            fh.write(f"第{n}条新闻标题加强党的建设,2015-07-{n % 28 + 1:02d},2015-07\n")
    settings = IngestSettings(sources=[HEADLINES_CSV])
    path = folder / "2015-07.csv"
    next(read_layout(path, "warm-up", settings))  # imports and compiled patterns are not the reader's memory

    tracemalloc.start()
    count = sum(1 for _ in read_layout(path, str(path), settings))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert count == rows
    assert peak < 2**20  # the rows' documents held in a list would take about 6 MB
    prepared = stage.DocumentBuilder(settings).prepare_file((path, str(path)))[:100]
    assert all(p.document and p.sketch is None for p in prepared)  # no MinHash sketch per headline


# --- configuration ----------------------------------------------------------------------------------

def test_the_archive_layouts_are_read_from_params_yaml(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("""ingest:
  sources:
    - glob: "history/rmrb_*.xml"
      kind: feed
      title_pattern: '^\\[(?P<page>\\d+)版：(?P<section>[^\\]]+)\\]\\s*(?P<title>.+)$'
      placeholders: [无法提取正文内容]
    - {glob: "titles1/*.csv", kind: headlines_csv, columns: [title, date, month], fields: {text: title, date: date}}
""", encoding="utf-8")
    settings = stage_settings("ingest", IngestSettings, params)
    assert [s.kind for s in settings.sources] == ["feed", "headlines_csv"]
    assert settings.sources[0].placeholders == ["无法提取正文内容"]


@pytest.mark.parametrize("entry, message", [
    ({"glob": "*.xml", "kind": "rss"}, "sources[0].kind: 'rss' is not a known choice, allowed: one of feed,"),
    ({"kind": "feed"}, "sources[0].glob: '' is empty"),
    ({"glob": "*.json", "kind": "json_records", "fields": {"title": "t"}}, "sources[0].fields: has no `text`"),
    ({"glob": "*.csv", "kind": "headlines_csv", "fields": {"text": "headline"}, "columns": ["title"]},
     "sources[0].fields: names column(s) ['headline'] that `columns` does not list"),
    ({"glob": "*.xml", "kind": "feed", "title_pattern": "([01版"}, "sources[0].title_pattern: is not a regular"),
    ({"glob": "*.xml", "kind": "feed", "body_xpath": "//div[@id="}, "sources[0].body_xpath: is not an XPath"),
    ({"glob": "*.csv", "kind": "headlines_csv", "fields": {"text": "t"}, "columns": ["t"], "dedup": "fuzzy"},
     "sources[0].dedup: 'fuzzy' is not a known choice, allowed: one of near, exact, same_date"),
    ({"glob": "*.xml", "kind": "feed", "palceholders": []}, "sources[0].palceholders: unknown key (did you mean"),
    ({"glob": "*.xml", "kind": "feed", "placeholders": "无法提取正文内容"}, "is a single string, not a list"),
])
def test_a_wrong_layout_is_refused_before_any_work_with_the_fix(tmp_path, entry, message):
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"ingest": {"sources": [entry]}}), encoding="utf-8")  # JSON is YAML
    with pytest.raises(ValueError) as err:
        stage_settings("ingest", IngestSettings, params)
    assert f"{params}:ingest." in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("path, pattern, expected", [
    ("/data/raw/history/rmrb_2026-05-06.xml", "history/rmrb_*.xml", True),
    ("/data/raw/history/rmrb_2026-05-06.xml", "rmrb_*.xml", True),
    ("/data/raw/history/x/rmrb_2026-05-06.xml", "history/rmrb_*.xml", False),
    ("/c/assets/2020/20200105.json", "assets/**/*.json", True),
    ("/c/assets/20200105.json", "assets/**/*.json", True),
    ("/c/assets/2020/20200105.json", "assets/[0-9][0-9][0-9][0-9]/*.json", True),
    ("/c/src/assets/titles1/1946-10.csv", "titles1/*.csv", True),
    ("/c/src/assets/titles2/1946-10.csv", "titles1/*.csv", False),
])
def test_globs_match_the_end_of_a_path_folder_by_folder(path, pattern, expected):
    assert path_matches(PurePosixPath(path), pattern) is expected


def test_html_bodies_keep_paragraphs_and_drop_scripts_styles_and_comments():
    markup = ("<div><h2>一、标题</h2><p>第一段\n  继续 <b>加粗</b>。</p><script>var x = '脚本';</script>"
              "<style>p {}</style><!-- 注释 --><p>第二段<br>换行</p>尾部文字<ul><li>甲</li><li>乙</li></ul></div>")
    assert html_to_text(markup).split("\n") == ["一、标题", "第一段 继续 加粗。", "第二段", "换行", "尾部文字", "甲", "乙"]
    assert html_to_text(markup, "//li").split("\n") == ["甲", "乙"]
    assert html_to_text(markup, "//div[@id='ozoom']").startswith("一、标题")  # no match: the whole body
    assert html_to_text('<?xml version="1.0" encoding="utf-8"?><div><p>甲</p><p>乙</p></div>') == "甲\n乙"


# --- the real archives ------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
UNPACKED = Path("/tmp/corpora")
ARCHIVES = {"history/": "peoples_daily_rss_2026.tar.xz", "assets/": "xwlb_2012-2026.tar.xz",
            "src/assets/titles1/": "peoples_daily_headlines_1946-2022.tar.xz"}


def real_files(shared: Path, names: list[str], into: Path) -> Path:
    """`names` (archive member paths) under `into`: copied from the unpacked archives in /tmp/corpora when
    present, else extracted one by one from ../shared/corpora/news/*.tar.xz (streamed, stopping early)."""
    for name in names:
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (UNPACKED / name).is_file():
            target.write_bytes((UNPACKED / name).read_bytes())
    missing = {n for n in names if not (into / n).is_file()}
    for prefix, archive in ARCHIVES.items():
        wanted = {n for n in missing if n.startswith(prefix)}
        if not wanted:
            continue
        with tarfile.open(shared / "news" / archive, "r|xz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    (into / member.name).write_bytes(tar.extractfile(member).read())
                    wanted.discard(member.name)
                    if not wanted:
                        break
    return into


@pytest.fixture
def news(shared_corpora, tmp_path) -> Path:
    if not (shared_corpora / "news").is_dir():
        pytest.skip("../shared/corpora/news is absent")
    names = ["history/rmrb_2026-04-26.xml", "history/rmrb_2026-07-04.xml", "assets/2019/20190325.json",
             "src/assets/titles1/2010-08.csv"]
    try:
        return real_files(shared_corpora, names, tmp_path / "news")
    except (OSError, tarfile.TarError, lzma.LZMAError) as err:
        pytest.skip(f"news archives unreadable here: {err}")


def test_the_real_archives_are_read_record_by_record_with_the_shipped_layouts(news, tmp_path):
    shipped = stage_settings("ingest", IngestSettings, ROOT / "params.yaml").sources
    docs, rejected, duplicates = run_layouts(news, tmp_path, shipped)

    def rows(frame, file):
        return frame[frame.path.str.contains(file, regex=False)]

    placeholder_day = rows(rejected, "rmrb_2026-04-26.xml")
    assert len(rows(docs, "rmrb_2026-04-26.xml")) == 0 and len(placeholder_day) >= 40
    assert placeholder_day.reason.str.startswith("placeholder body '无法提取正文内容'").all()

    day = rows(docs, "rmrb_2026-07-04.xml")
    items = (news / "history/rmrb_2026-07-04.xml").read_text(encoding="utf-8").count("<item>")
    accounted = len(day) + len(rows(rejected, "rmrb_2026-07-04.xml")) + len(rows(duplicates, "rmrb_2026-07-04.xml"))
    assert accounted == items and len(day) > 0.7 * items
    assert set(day.date) == {"2026-07-04"} and set(day.source) == {"人民日报"}
    assert day.url.str.startswith("https://paper.people.com.cn/").all()
    pages = day.extra.map(json.loads)
    assert pages.map(lambda e: e["page"].isdigit() and bool(e["section"])).all()
    assert not day.title.str.startswith("[").any()
    assert not day.text.str.contains("<p>|《人民日报》（|enpproperty|margin", regex=True).any()
    assert (day.text.str.count("\n") >= 1).mean() > 0.8  # articles keep their paragraphs

    evening = rows(docs, "20190325.json")
    stories = json.loads((news / "assets/2019/20190325.json").read_text(encoding="utf-8"))["videoList"]
    assert len(evening) + len(rows(rejected, "20190325.json")) + len(rows(duplicates, "20190325.json")) == len(stories)
    assert set(evening.date) == {"2019-03-25"} and set(evening.source) == {"新闻联播"}
    assert not evening.text.str.contains("<p>", regex=False).any()
    assert not evening.title.str.startswith("[视频]").any()

    headlines = rows(docs, "2010-08.csv")
    lines = sum(1 for line in open(news / "src/assets/titles1/2010-08.csv", encoding="utf-8") if line.strip())
    assert len(headlines) + len(rows(rejected, "2010-08.csv")) + len(rows(duplicates, "2010-08.csv")) == lines
    assert headlines.date.str.startswith("2010-08").all()
    assert (headlines.title.map(normalize_text) == headlines.text).all()  # a headline is its own title
