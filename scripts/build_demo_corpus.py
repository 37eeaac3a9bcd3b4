"""Rebuild the demo corpus in data/raw/ from its sources in data/demo_sources/*.json.

The sources hold each illustrative document as text paragraphs (with the authors' theme codes). This
script renders them in the mix of formats and damage a real scrape has: UTF-8 (with and without BOM)
and GB18030 text, HTML pages with site chrome, .docx (one with a table), text PDFs, and document-
sharing-site copies with paywall/footer junk, some flattened onto a single line. Deterministic: the
same sources always give byte-identical text files (binary formats are rebuilt the same way).

    python scripts/build_demo_corpus.py            # writes data/raw/
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from formats import write_docx, write_html, write_pdf, write_txt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "data" / "demo_sources"
RAW = ROOT / "data" / "raw"

# Junk a document-sharing site wraps around a copied paper: (lines before the body, lines after).
SITE_JUNK = [
    (["整理文档很辛苦,赏杯茶钱您下走!", "免费阅读已结束,点击下载阅读编辑剩下 ...", "阅读已结束,您可以下载文档离线阅读编辑", "资源描述"],
     ["1 / 8", "下载文档,编辑使用", "©2015-2020 m.777doc.com 三七文档.", "备案号:鲁ICP备2024069028号-1 客服联系 QQ:2149211541", "×", "保存成功"]),
    (["豆丁网", "剩余5页未读,继续阅读", "分享到:"],
     ["第 2 页 共 6 页", "本文档由用户上传,如有侵权请联系删除", "docin.com 豆丁网 版权所有", "举报"]),
    (["道客巴巴", "下载券 2", "VIP免费下载"],
     ["3 / 7", "点击下载", "Copyright © doc88.com 道客巴巴 All Rights Reserved", "客服QQ:800000000"]),
    (["百度文库", "该文档贡献者很忙,什么也没留下。", "立即下载"],
     ["- 4 -", "wenku.baidu.com 百度文库", "版权声明:本文档由用户提供并上传", "相关文档"]),
    (["原创力文档", "开通会员 免费下载"],
     ["5 / 9", "原创力文档 max.book118.com", "备案号:皖ICP备00000000号", "返回顶部"]),
]
PLAIN_FOLDER, SCRAPE_FOLDER = "official", "doc-sharing"


def plan(index_in_genre: dict[str, int], genre: str) -> str:
    """The format a document is rendered in, by its genre and its position among that genre's docs."""
    i = index_in_genre[genre]
    if genre == "评论员文章":
        return "html"
    if genre == "述职报告" or (genre == "工作总结" and i < 2):
        return "docx"
    if genre == "纪委全会工作报告":
        return "pdf" if i < 3 else "txt-gb18030"
    if genre == "交流材料":
        return "scrape-flat" if i % 2 == 0 else "scrape"
    if genre == "心得体会":
        return "scrape-flat" if i == 0 else ("scrape-gb18030" if i % 2 else "scrape")
    if genre == "通知":
        return "txt-bom" if i % 3 == 0 else "txt"
    return "txt"


def render(doc: dict, stem: str, fmt: str, junk_index: int) -> tuple[str, str]:
    """Write one document; return (folder, file name)."""
    title, texts = doc["title"], [p["text"] for p in doc["paragraphs"]]
    if fmt.startswith("scrape"):
        folder = RAW / SCRAPE_FOLDER
        before, after = SITE_JUNK[junk_index % len(SITE_JUNK)]
        body = ["".join(texts)] if fmt == "scrape-flat" else texts
        encoding = "gb18030" if fmt == "scrape-gb18030" else "utf-8"
        name = f"{stem}.txt"
        write_txt(folder / name, title, before + body + after, encoding=encoding)
        return SCRAPE_FOLDER, name
    folder = RAW / PLAIN_FOLDER
    if fmt == "html":
        name = f"{stem}.html"
        write_html(folder / name, title, texts, date=doc["date"], site=doc["source"])
    elif fmt == "docx":
        name = f"{stem}.docx"
        table = [["项目", "完成情况"], ["专题学习", "12次"], ["谈心谈话", "36人次"]] if "zongjie" in stem else None
        write_docx(folder / name, title, texts, table)
    elif fmt == "pdf":
        name = f"{stem}.pdf"
        write_pdf(folder / name, title, texts)
    else:
        name = f"{stem}.txt"
        encoding = {"txt-gb18030": "gb18030", "txt-bom": "utf-8-sig"}.get(fmt, "utf-8")
        write_txt(folder / name, title, texts, encoding=encoding, blank_lines=fmt == "txt-gb18030")
    return PLAIN_FOLDER, name


def main() -> int:
    sources = sorted(SOURCES.glob("*.json"))
    if not sources:
        print(f"no sources in {SOURCES}", file=sys.stderr)
        return 1
    for folder in (PLAIN_FOLDER, SCRAPE_FOLDER):
        shutil.rmtree(RAW / folder, ignore_errors=True)
        (RAW / folder).mkdir(parents=True)
    index_in_genre: dict[str, int] = {}
    sidecars: dict[str, list[dict]] = {PLAIN_FOLDER: [], SCRAPE_FOLDER: []}
    formats: dict[str, int] = {}
    junk_index = 0
    for path in sources:
        doc = json.loads(path.read_text(encoding="utf-8"))
        genre = doc["genre"]
        index_in_genre.setdefault(genre, 0)
        fmt = plan(index_in_genre, genre)
        index_in_genre[genre] += 1
        folder, name = render(doc, path.stem, fmt, junk_index)
        junk_index += fmt.startswith("scrape")
        formats[fmt] = formats.get(fmt, 0) + 1
        # A scraper records where a page came from; document-sharing copies carry no reliable source.
        sidecars[folder].append({"file": name, "title": "", "date": "",
                                 "source": doc["source"] if folder == PLAIN_FOLDER else "",
                                 "doc_type": genre})
    for folder, rows in sidecars.items():
        with open(RAW / folder / "metadata.csv", "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["file", "title", "date", "source", "doc_type"])
            writer.writeheader()
            writer.writerows(rows)
    print(f"demo corpus: {len(sources)} documents → {RAW} ({dict(sorted(formats.items()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
