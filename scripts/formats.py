"""Write a document's paragraphs as .txt (any encoding), .html, .docx or .pdf.

Used by scripts/build_demo_corpus.py to rebuild the demo corpus's binary formats from text, and by the
tests to make real files of each format.
"""
from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path


def write_txt(path: Path, title: str, paragraphs: list[str], encoding: str = "utf-8",
              blank_lines: bool = False) -> None:
    sep = "\n\n" if blank_lines else "\n"
    path.write_bytes((title + sep + sep.join(paragraphs) + "\n").encode(encoding))


def write_html(path: Path, title: str, paragraphs: list[str], date: str | None = None,
               site: str = "党建网") -> None:
    """A page with the chrome of a real site: scripts, navigation, sidebar, footer."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    meta = f'<meta name="pubdate" content="{date}">' if date else ""
    page = f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)} - {site}</title>{meta}
<script>window.dataLayer = window.dataLayer || []; function track(){{ return 1; }}</script>
<style>body {{ font-family: sans-serif; }}</style></head>
<body>
<div class="nav"><a href="/">首页</a> | <a href="/news">要闻</a> | <a href="/dj">党建</a> | <a href="/about">关于我们</a></div>
<div class="main"><article>
<h1>{html.escape(title)}</h1>
<div class="info">来源：{site}　{date or ""}</div>
{body}
</article></div>
<div class="sidebar"><h3>热门推荐</h3><ul><li><a href="/a">相关文章一</a></li><li><a href="/b">相关文章二</a></li></ul></div>
<div class="footer">版权所有 © {site}　备案号：京ICP备00000000号　联系我们</div>
<script>track();</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def write_docx(path: Path, title: str, paragraphs: list[str], table_rows: list[list[str]] | None = None) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    # fixed timestamps, so rebuilding the demo corpus gives the same bytes
    document.core_properties.created = document.core_properties.modified = datetime(2026, 1, 1)
    document.core_properties.last_printed = datetime(2026, 1, 1)
    document.add_heading(title, level=0)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table_rows:
        table = document.add_table(rows=len(table_rows), cols=len(table_rows[0]))
        for r, row in enumerate(table_rows):
            for c, cell in enumerate(row):
                table.cell(r, c).text = cell
    document.save(str(path))
    _fix_zip_timestamps(path)


def _fix_zip_timestamps(path: Path) -> None:
    """Rewrite a zip package with fixed member timestamps (python-docx stamps them with the clock)."""
    import zipfile

    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, data)


def write_pdf(path: Path, title: str, paragraphs: list[str], chars_per_line: int = 38) -> None:
    """A text PDF (CID font STSong-Light, no embedding needed) with lines wrapped like a printed page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    width, height = A4
    y, page = height - 72, 1

    def line(text: str, size: int = 12) -> None:
        nonlocal y, page
        if y < 72:
            pdf.setFont("STSong-Light", 9)
            pdf.drawString(width / 2, 40, str(page))  # a page number, as printed documents have
            pdf.showPage()
            page += 1
            y = height - 72
        pdf.setFont("STSong-Light", size)
        pdf.drawString(60, y, text)
        y -= size * 1.6

    line(title, 16)
    for paragraph in paragraphs:
        for start in range(0, len(paragraph), chars_per_line):
            line(paragraph[start:start + chars_per_line])
    pdf.setFont("STSong-Light", 9)
    pdf.drawString(width / 2, 40, str(page))
    pdf.save()
