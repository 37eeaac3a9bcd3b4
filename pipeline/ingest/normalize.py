"""Unicode, whitespace and punctuation-width normalisation for Chinese text.

The convention: half-width digits and Latin letters; NFKC for compatibility characters (PDF extraction
often yields Kangxi radicals such as U+2F00 for 一); Chinese full-width punctuation (，：；！？（）)
wherever the mark stands next to Chinese text, ASCII elsewhere (10:30, 1,000, (a)).
"""
from __future__ import annotations

import operator
import os
import re
import unicodedata
from functools import lru_cache

import numpy as np

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
# A lone surrogate is no character: a PDF's broken font map or a JSON "\\ud800" yields one, and no
# UTF-8 writer (parquet, CSV, JSON lines) accepts it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Full-width digits, letters and symbols → ASCII; the Chinese punctuation ，：；！？（） stays full-width.
_HALF_WIDTH = {chr(cp): chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F) if chr(cp) not in "，：；！？（）"}
_HALF_WIDTH.update({"\u3000": " ", "\u00a0": " "})
# a regex over just these characters: they are rare, so this beats str.translate on every character
_WIDE_FORMS = re.compile("[" + "".join(re.escape(ch) for ch in _HALF_WIDTH) + "]")
# Compatibility characters that only NFKC maps: Kangxi radicals (PDF extraction), CJK compatibility
# ideographs, enclosed and squared forms, ligatures; normalising just these keeps NFKC's cost off the
# rest of the text.
_COMPAT = re.compile("[\u2f00-\u2fdf\u2e80-\u2eff\uf900-\ufaff\u3200-\u33ff\ufb00-\ufb4f\u2460-\u24ff\u2150-\u218f]")
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_OR_PUNCT = f"{CJK}\u3000-\u303f\uff00-\uffef“”‘’《》"
_WIDE = {",": "，", ":": "：", ";": "；", "!": "！", "?": "？"}
_NARROW_NEXT_TO_CJK = re.compile(
    f"(?<=[{_CJK_OR_PUNCT}])[ \\t]*([,:;!?])|([,:;!?])[ \\t]*(?=[{_CJK_OR_PUNCT}])")
_PARENS = re.compile(r"\(([^()\n]{0,60})\)")
_SPACE_BEFORE_CJK = re.compile(f"[ \t]+(?=[{_CJK_OR_PUNCT}])")  # a run of spaces begins the pattern: fast to scan
_CJK_OR_PUNCT_CHAR = re.compile(f"[{_CJK_OR_PUNCT}]")
_ASCII_PUNCT = re.compile("[,:;!?]")
_SPACES = re.compile(r"[ \t]+")
_KEEP_CIRCLED = set("①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳")  # outline markers: NFKC would turn ① into 1


def _nfkc(match: re.Match) -> str:
    ch = match.group(0)
    return ch if ch in _KEEP_CIRCLED else unicodedata.normalize("NFKC", ch)


_CJK_CHAR = re.compile("[\u4e00-\u9fff\u3400-\u4dbf]")


def count_cjk(text: str) -> int:
    if len(text) < 200:  # a headline: numpy's per-call cost exceeds the count
        return len(_CJK_CHAR.findall(text))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return int((((codes >= 0x4E00) & (codes <= 0x9FFF)) | ((codes >= 0x3400) & (codes <= 0x4DBF))).sum())


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def _widen_parens(match: re.Match) -> str:
    inner = match.group(1)
    string, start, end = match.string, match.start(), match.end()
    before = string[start - 1] if start else ""
    after = string[end] if end < len(string) else ""
    if any(map(_is_cjk, inner)) or _is_cjk(before or " ") or _is_cjk(after or " "):
        return f"（{inner}）"
    return match.group(0)


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def without_surrogates(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so that it can be written as UTF-8."""
    return _SURROGATE.sub("\ufffd", text) if has_surrogates(text) else text


def printable_path(path: str | os.PathLike) -> tuple[str, str | None]:
    """`path` as text that can be written anywhere, and a note when that is not its name on disk.

    A POSIX file name is bytes; Python keeps the bytes of a name that is not UTF-8 as lone surrogates,
    which no UTF-8 writer accepts. Such a name part is shown decoded as GB18030 (Chinese names from
    Windows zip files are GBK) when it decodes cleanly, else with its undecodable bytes escaped (\\xb5).
    The file itself is still opened by its real name.
    """
    text = os.fspath(path)
    if not _SURROGATE.search(text):
        return text, None
    parts, decoded = [], True
    for part in text.split(os.sep):
        if _SURROGATE.search(part):
            raw = os.fsencode(part)
            try:
                part = raw.decode("gb18030")
            except UnicodeDecodeError:
                part, decoded = raw.decode("utf-8", "backslashreplace"), False
        parts.append(part)
    shown = "decoded as GB18030" if decoded else "with its undecodable bytes escaped as \\xNN"
    return os.sep.join(parts), (f"file name is not UTF-8: shown {shown}; rename it to UTF-8 "
                                "(e.g. convmv -f gbk -t utf-8) to keep the name exact")


def normalize_line(line: str) -> str:
    return _normalize_spacing(line).strip()


def _normalize_spacing(text: str) -> str:
    """Whitespace and punctuation width; each pattern keeps within a line, so it runs on whole texts.
    Speed: a pattern that opens with a lookbehind is tried at every character, so the one for ASCII
    punctuation runs only on lines that hold some, and spaces between Chinese characters are found
    by their run of spaces first."""
    if "  " in text or "\t" in text:
        text = _SPACES.sub(" ", text)
    if _ASCII_PUNCT.search(text):
        text = "\n".join(_NARROW_NEXT_TO_CJK.sub(lambda m: _WIDE[m.group(1) or m.group(2)], line)
                         if _ASCII_PUNCT.search(line) else line for line in text.split("\n"))
    if "(" in text:
        text = _PARENS.sub(_widen_parens, text)
    if " " in text:
        text = _SPACE_BEFORE_CJK.sub(lambda m: "" if m.start() and _CJK_OR_PUNCT_CHAR.match(m.string, m.start() - 1)
                                     else m.group(0), text)
    return text


def normalize_text(text: str) -> str:
    """Normalised text: one paragraph per line, no blank lines, no zero-width characters."""
    text = _WIDE_FORMS.sub(lambda m: _HALF_WIDTH[m.group(0)], _ZERO_WIDTH.sub("", without_surrogates(text)))
    if _COMPAT.search(text):
        text = _COMPAT.sub(_nfkc, text)
    text = unicodedata.normalize("NFC", text) if not unicodedata.is_normalized("NFC", text) else text
    text = _normalize_spacing(text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    return "\n".join(filter(None, map(str.strip, text.split("\n"))))  # lines stripped, blank ones dropped


# Frequent characters that exist only in traditional script: a text without any of them in its first
# 4,000 characters is not worth running OpenCC on.
_TRADITIONAL_HINT = re.compile("[們個這說為會來時國對學發經還義與們從當還讓點無種過於麼實現開關體處應]")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str, mode: str = "auto") -> tuple[str, bool]:
    """Convert traditional to simplified Chinese (OpenCC t2s); returns (text, converted?).

    `auto` converts only when a sample of the text changes noticeably under t2s (≥ 2% of its Chinese
    characters), so simplified text is never rewritten by OpenCC's rare ambiguous mappings.
    """
    if mode == "never":
        return text, False
    if mode not in ("auto", "always"):
        raise ValueError(f"to_simplified must be auto, always or never, not {mode!r}")
    converter = _t2s()
    if mode == "auto" and not _TRADITIONAL_HINT.search(text, 0, 4000):
        return text, False
    if mode == "auto":
        sample = text[:4000]
        converted = converter.convert(sample)
        changed = sum(map(operator.ne, sample, converted))
        if changed < max(2, 0.02 * count_cjk(sample)):
            return text, False
    return converter.convert(text), True
