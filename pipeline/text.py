"""Chinese text helpers shared by stages: numerals, sentence boundaries, word segmentation, a paragraph's context."""
from __future__ import annotations

import re
from functools import lru_cache

CN_DIGITS = {"〇": 0, "零": 0, "○": 0, "O": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}
SENTENCE_ENDS = "。！？；!?;…"
OPENERS = "“「『《（([【"
CLOSERS = "”」』》）)]】"
_PAIR = dict(zip(CLOSERS, OPENERS))
_WHITESPACE = re.compile(r"\s")

# Terms jieba would otherwise cut apart; they matter to headings and to word features.
DOMAIN_TERMS = [
    "全面从严治党", "党风廉政建设", "八项规定", "中央八项规定", "四风", "形式主义", "官僚主义", "享乐主义",
    "奢靡之风", "两个维护", "两个确立", "四个意识", "四个自信", "两学一做", "主题教育", "党史学习教育",
    "党纪学习教育", "基层党组织", "党支部", "三会一课", "主题党日", "巡视巡察", "纪检监察", "派驻机构",
    "党内法规", "民主集中制", "纪律处分条例", "选人用人", "干部队伍", "不敢腐", "不能腐", "不想腐",
    "党内政治生活", "政治生态", "理想信念", "初心使命", "基层减负", "战斗堡垒", "第一书记", "政治站位",
    "党中央权威", "集中统一领导", "问责", "监督执纪", "审查调查", "追逃追赃", "廉洁自律", "群众路线",
]


def cn_number(text: str) -> int:
    """二〇一七 → 2017 (digit by digit); 十八 → 18; 二十一 → 21; 三 → 3."""
    if "十" not in text:
        return int("".join(str(CN_DIGITS[ch]) for ch in text))
    tens, _, ones = text.partition("十")
    return (CN_DIGITS[tens] if tens else 1) * 10 + (CN_DIGITS[ones] if ones else 0)


_SENTENCE_MARKS = re.compile(f"[{re.escape(OPENERS + CLOSERS + SENTENCE_ENDS)}]")
_SENTENCE_TAIL = re.compile(f"[{re.escape(CLOSERS + SENTENCE_ENDS)}]*")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence. A sentence ends at 。！？；… outside quotes and brackets, taking
    along any closing quotes or brackets right after it, so “……。” stays whole. Only quotes, brackets
    and sentence ends are visited (a regex skips the text between them)."""
    spans, start, depth, position = [], 0, [], 0
    while found := _SENTENCE_MARKS.search(text, position):
        i = found.start()
        ch = text[i]
        position = i + 1
        if ch in OPENERS:
            depth.append(ch)
        elif ch in CLOSERS:
            if depth and depth[-1] == _PAIR[ch]:
                depth.pop()
        else:  # a sentence end, with the ends and closers right after it
            position = _SENTENCE_TAIL.match(text, position).end()
            for closer in text[i + 1:position]:
                if depth and closer in CLOSERS and depth[-1] == _PAIR[closer]:
                    depth.pop()
            if not depth:
                spans.append((start, position))
                start = position
    if start < len(text):
        spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


@lru_cache(maxsize=1)
def _word_cutter():
    """jieba-rs, jieba's Rust port (the same dictionary and cut, ~15× faster), with the domain terms."""
    import rjieba

    for term in DOMAIN_TERMS:
        rjieba.add_word(term, None, None)
    return rjieba


def _cut(text: str) -> list[str]:
    try:
        return _word_cutter().cut(text)
    except UnicodeEncodeError:  # a lone surrogate (a JSON "\\ud800" escape), which Rust strings cannot hold
        return _word_cutter().cut(text.encode("utf-8", "replace").decode("utf-8"))  # "?": same length


def words(text: str) -> list[str]:
    """jieba's words of `text`, whitespace dropped: the TF-IDF baseline's word features."""
    cut = _cut(text)
    return list(filter(str.strip, cut)) if _WHITESPACE.search(text) else cut  # most paragraphs have none


def word_starts(text: str) -> set[int]:
    """Offsets where jieba starts a word. Segmentation calls jieba-rs directly: it needs only word
    boundaries, and loading Python jieba's dictionary (or spaCy, and torch with it) costs a second
    per process."""
    starts, offset = set(), 0
    for token in _cut(text):
        starts.add(offset)
        offset += len(token)
    return starts


def cut_at_word_boundary(text: str, limit: int) -> int:
    """The largest word boundary ≤ `limit` (so a cut never splits a word); at least 1."""
    bounds = [b for b in word_starts(text[: limit + 8]) if b <= limit]
    return max(max(bounds, default=0), 1)


_TITLE_TAGS = re.compile(r"^\s*(?:\[[^\]]*版[：:][^\]]*\]|\[视频\])\s*")  # [04版：要闻], [视频]: not the title's words
CONTEXT_SEPARATOR = " ｜ "
HEADING_SEPARATOR = " > "  # a heading path written as one string (exports, annotation sheets, classify input)


def paragraph_context(title, heading_path) -> str:
    """What a coder sees besides the paragraph itself: its document's title and the headings above it,
    as one string ("" when neither is known). `heading_path` is a list of headings or one string with
    headings joined by " > "."""
    parts = [_TITLE_TAGS.sub("", title).strip()] if isinstance(title, str) else []
    if isinstance(heading_path, str):
        heading_path = heading_path.split(HEADING_SEPARATOR)
    elif heading_path is None or not hasattr(heading_path, "__iter__"):
        heading_path = []
    parts += [h.strip() for h in heading_path if isinstance(h, str)]
    return CONTEXT_SEPARATOR.join(part for part in parts if part)


def frame_contexts(frame) -> list[str]:
    """The context of every row of a table: its `context` column (the splits'), else `paragraph_context`
    of its `title` and/or `heading_path` columns."""
    if "context" in frame:
        return frame["context"].fillna("").tolist()
    titles = frame["title"] if "title" in frame else [None] * len(frame)
    paths = frame["heading_path"] if "heading_path" in frame else [None] * len(frame)
    return [paragraph_context(title, path) for title, path in zip(titles, paths)]
