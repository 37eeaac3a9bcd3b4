"""Unicode, whitespace and punctuation-width normalisation for Chinese text.

The convention: NFKC (half-width digits and Latin letters, unified CJK code points — PDF extraction often
yields Kangxi radicals such as U+2F00 for 一), then Chinese full-width punctuation (，：；！？（）) wherever
the mark stands next to Chinese text, ASCII elsewhere (10:30, 1,000, (a)). Ellipses survive NFKC.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_ELLIPSIS = "\u2026"
_PLACEHOLDER = "\ue000"  # private-use: never in real text, untouched by NFKC
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{CJK}]")
_CJK_OR_PUNCT = f"{CJK}\u3000-\u303f\uff00-\uffef“”‘’《》"
_WIDE = {",": "，", ":": "：", ";": "；", "!": "！", "?": "？"}
_NARROW_NEXT_TO_CJK = re.compile(
    f"(?<=[{_CJK_OR_PUNCT}])\\s*([,:;!?])|([,:;!?])\\s*(?=[{_CJK_OR_PUNCT}])")
_PARENS = re.compile(r"\(([^()\n]{0,60})\)")
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{_CJK_OR_PUNCT}])[ \t\u3000]+(?=[{_CJK_OR_PUNCT}])")
_SPACES = re.compile(r"[ \t\u3000\xa0]+")


def count_cjk(text: str) -> int:
    return len(_CJK_RE.findall(text))


def _widen_parens(match: re.Match) -> str:
    inner = match.group(1)
    string, start, end = match.string, match.start(), match.end()
    before = string[start - 1] if start else ""
    after = string[end] if end < len(string) else ""
    if _CJK_RE.search(inner) or _CJK_RE.match(before or " ") or _CJK_RE.match(after or " "):
        return f"（{inner}）"
    return match.group(0)


def normalize_line(line: str) -> str:
    line = _SPACES.sub(" ", line).strip()
    line = _NARROW_NEXT_TO_CJK.sub(lambda m: _WIDE[m.group(1) or m.group(2)], line)
    line = _PARENS.sub(_widen_parens, line)
    return _SPACE_BETWEEN_CJK.sub("", line)


def normalize_text(text: str) -> str:
    """Normalised text: one paragraph per line, no blank lines, no zero-width characters."""
    text = _ZERO_WIDTH.sub("", text).replace(_ELLIPSIS, _PLACEHOLDER)
    text = unicodedata.normalize("NFKC", text).replace(_PLACEHOLDER, _ELLIPSIS)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = (normalize_line(line) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


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
    if mode == "auto":
        sample = text[:4000]
        converted = converter.convert(sample)
        changed = sum(a != b for a, b in zip(sample, converted))
        if changed < max(2, 0.02 * count_cjk(sample)):
            return text, False
    return converter.convert(text), True
