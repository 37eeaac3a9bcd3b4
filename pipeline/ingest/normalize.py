"""Unicode, whitespace and punctuation-width normalisation for Chinese text.

The convention: half-width digits and Latin letters; NFKC for compatibility characters (PDF extraction
often yields Kangxi radicals such as U+2F00 for 一); Chinese full-width punctuation (，：；！？（）)
wherever the mark stands next to Chinese text, ASCII elsewhere (10:30, 1,000, (a)).
"""
from __future__ import annotations

import re
import unicodedata

import numpy as np
from functools import lru_cache

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
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
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{_CJK_OR_PUNCT}])[ \t]+(?=[{_CJK_OR_PUNCT}])")
_SPACES = re.compile(r"[ \t]+")
_KEEP_CIRCLED = set("①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳")  # outline markers: NFKC would turn ① into 1


def _nfkc(match: re.Match) -> str:
    ch = match.group(0)
    return ch if ch in _KEEP_CIRCLED else unicodedata.normalize("NFKC", ch)


def count_cjk(text: str) -> int:
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


def normalize_line(line: str) -> str:
    return _normalize_spacing(line).strip()


def _normalize_spacing(text: str) -> str:
    """Whitespace and punctuation width; each pattern keeps within a line, so it runs on whole texts."""
    text = _SPACES.sub(" ", text)
    text = _NARROW_NEXT_TO_CJK.sub(lambda m: _WIDE[m.group(1) or m.group(2)], text)
    text = _PARENS.sub(_widen_parens, text)
    return _SPACE_BETWEEN_CJK.sub("", text)


def normalize_text(text: str) -> str:
    """Normalised text: one paragraph per line, no blank lines, no zero-width characters."""
    text = _WIDE_FORMS.sub(lambda m: _HALF_WIDTH[m.group(0)], _ZERO_WIDTH.sub("", text))
    if _COMPAT.search(text):
        text = _COMPAT.sub(_nfkc, text)
    text = unicodedata.normalize("NFC", text) if not unicodedata.is_normalized("NFC", text) else text
    text = _normalize_spacing(text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    return "\n".join(line for line in (raw.strip() for raw in text.split("\n")) if line)


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
        changed = sum(a != b for a, b in zip(sample, converted))
        if changed < max(2, 0.02 * count_cjk(sample)):
            return text, False
    return converter.convert(text), True
