"""Document metadata (title, date, source, doc_type), each with the rule that supplied it."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from pipeline.ingest.normalize import printable_path
from pipeline.ingest.readers import Rejected, decode_bytes
from pipeline.text import cn_number

_CN_NUM = "〇零○O一二三四五六七八九十"

_FILENAME_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})[-_.]?(0[1-9]|1[0-2])[-_.]?(0[1-9]|[12]\d|3[01])(?!\d)")
_TEXT_DATE = re.compile(r"((?:19|20)\d{2})年(1[0-2]|0?[1-9])月([12]\d|3[01]|0?[1-9])日")
_TEXT_DATE_CN = re.compile(f"([{_CN_NUM}]{{4}})年([{_CN_NUM}]{{1,2}})月([{_CN_NUM}]{{1,3}})日")
_ISO_DATE = re.compile(r"((?:19|20)\d{2})(?:[-/.年](\d{1,2})(?:[-/.月](\d{1,2}))?)?")

_DATE_LINE = re.compile(r"[（(]?\s*(\d{4}|[〇零○O一二三四五六七八九]{4})年.{1,6}日\s*[）)]?")

DOC_TYPES = [  # (keyword in the title, doc_type), first match wins
    ("纪委全会", "纪委全会工作报告"), ("全会上的工作报告", "纪委全会工作报告"), ("党课", "党课讲稿"),
    ("讲稿", "党课讲稿"), ("心得体会", "心得体会"), ("体会", "心得体会"), ("述职", "述职报告"),
    ("工作总结", "工作总结"), ("总结", "工作总结"), ("评论员", "评论员文章"), ("通知", "通知"),
    ("交流材料", "交流材料"), ("交流发言", "交流材料"), ("工作报告", "工作报告"), ("报告", "报告"),
    ("讲话", "讲话"), ("条例", "党内法规"), ("规定", "党内法规"), ("意见", "意见"),
]


def _iso(year: int, month: int | None = None, day: int | None = None) -> str | None:
    if not 1900 <= year <= 2100:
        return None
    if month is None:
        return f"{year:04d}"
    if not 1 <= month <= 12:
        return f"{year:04d}"
    if day is None or not 1 <= day <= 31:
        return f"{year:04d}-{month:02d}"
    return f"{year:04d}-{month:02d}-{day:02d}"


def parse_date_value(value) -> str | None:
    """A record field or sidecar value (2019-02-21, 2019/2/21, 2019年2月21日, 2019, 2019.0) → ISO string."""
    if value is None:
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d{4}\.0", text):
        text = text[:4]
    m = _TEXT_DATE.search(text) or _ISO_DATE.match(text)
    if not m:
        return None
    year, month, day = m.groups()
    return _iso(int(year), int(month) if month else None, int(day) if day else None)


def date_from_filename(name: str) -> str | None:
    m = _FILENAME_DATE.search(name)
    return _iso(*(int(g) for g in m.groups())) if m else None


def date_from_text(text: str, head_chars: int = 400) -> str | None:
    """A date near the top of the text: （2017年10月18日）, 2017年10月18日 or 二〇一七年十月十八日."""
    head = text[:head_chars]
    m = _TEXT_DATE.search(head)
    if m:
        return _iso(*(int(g) for g in m.groups()))
    m = _TEXT_DATE_CN.search(head)
    if m:
        try:
            return _iso(*(cn_number(g) for g in m.groups()))
        except (KeyError, ValueError):
            return None
    return None


def doc_type_from_title(title: str | None) -> str | None:
    for keyword, doc_type in DOC_TYPES:
        if title and keyword in title:
            return doc_type
    return None


def looks_like_title(line: str) -> bool:
    """A first line short enough and unpunctuated enough to be the document's title."""
    if _DATE_LINE.fullmatch(line):
        return False
    return 4 <= len(line) <= 100 and not line.endswith(("。", "；", "，", "：")) and line.count("。") == 0


class SidecarMetadata:
    """`metadata.csv` files (columns: file, title, date, source, doc_type) found beside raw files, in
    UTF-8 or, as Excel saves them on Chinese Windows, GB18030. A file not UTF-8-named may be listed by
    the name ingest shows for it."""

    FIELDS = ("title", "date", "source", "doc_type")

    def __init__(self, file_name: str = "metadata.csv"):
        self.file_name = file_name
        self._cache: dict[Path, tuple[dict[str, dict], str | None]] = {}

    def lookup(self, path: Path) -> dict:
        entries = self._folder(path.parent)[0]
        return entries.get(path.name) or entries.get(printable_path(path.name)[0], {})

    def problem(self, path: Path) -> str | None:
        """Why the sidecar beside `path` could not be used, or None."""
        return self._folder(path.parent)[1]

    def _folder(self, folder: Path) -> tuple[dict[str, dict], str | None]:
        if folder not in self._cache:
            self._cache[folder] = self._read(folder / self.file_name)
        return self._cache[folder]

    @staticmethod
    def _read(sidecar: Path) -> tuple[dict[str, dict], str | None]:
        if not sidecar.is_file():
            return {}, None
        try:
            text, _ = decode_bytes(sidecar.read_bytes())
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except (Rejected, OSError, csv.Error) as err:
            return {}, (f"{sidecar.name} beside it could not be read ({err}), so its title, date and source "
                        "were not applied")
        if rows and "file" not in rows[0]:
            return {}, (f"{sidecar.name} beside it has no 'file' column (its header: {', '.join(map(str, rows[0]))}), "
                        "so its title, date and source were not applied")
        return {row["file"]: {k: (row.get(k) or "").strip() or None for k in SidecarMetadata.FIELDS}
                for row in rows if row.get("file")}, None


_BYLINE_FIELD = re.compile(r"(来源|发布时间|发布日期|时间|日期|作者|编辑|责任编辑|发布机构)[：:]\s*")


def parse_byline(line: str) -> dict | None:
    """A web page's byline (来源：西岭日报　发布时间：2024-01-05　编辑：张某), as {source, date}; None if
    the line is not one. Only short lines that start with a byline field qualify."""
    if len(line) > 80 or not _BYLINE_FIELD.match(line):
        return None
    fields = {}
    parts = _BYLINE_FIELD.split(line)[1:]
    for name, value in zip(parts[::2], parts[1::2]):
        value = value.strip()
        if name == "来源" and value:
            fields["source"] = re.split(r"\s", value)[0]
        date = parse_date_value(value) if name != "来源" else None
        date = date or (parse_date_value(value.split()[-1]) if name == "来源" and len(value.split()) > 1 else None)
        if date and "date" not in fields:
            fields["date"] = date
    return fields
