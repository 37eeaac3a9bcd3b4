"""Chinese text helpers shared by stages: numerals, sentence boundaries, word segmentation."""
from __future__ import annotations

from functools import lru_cache

CN_DIGITS = {"〇": 0, "零": 0, "○": 0, "O": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
             "六": 6, "七": 7, "八": 8, "九": 9}
SENTENCE_ENDS = "。！？；!?;…"
OPENERS = "“「『《（([【"
CLOSERS = "”」』》）)]】"
_PAIR = dict(zip(CLOSERS, OPENERS))

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


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence. A sentence ends at 。！？；… outside quotes and brackets, taking
    along any closing quotes or brackets right after it, so “……。” stays whole."""
    spans, start, depth, i, n = [], 0, [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in OPENERS:
            depth.append(ch)
        elif ch in CLOSERS:
            if depth and depth[-1] == _PAIR[ch]:
                depth.pop()
        elif ch in SENTENCE_ENDS:
            j = i + 1
            while j < n and (text[j] in SENTENCE_ENDS or text[j] in CLOSERS):
                if text[j] in CLOSERS and depth and depth[-1] == _PAIR[text[j]]:
                    depth.pop()
                j += 1
            if not depth:
                spans.append((start, j))
                start = j
            i = j
            continue
        i += 1
    if start < n:
        spans.append((start, n))
    return [(a, b) for a, b in spans if text[a:b].strip()]


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(60)
    for term in DOMAIN_TERMS:
        jieba.add_word(term)
    return jieba


@lru_cache(maxsize=1)
def word_segmenter():
    """spaCy's Chinese tokenizer with the jieba segmenter (offline; no model download), for features."""
    import spacy

    _jieba()  # the domain terms, before spaCy's tokenizer starts using jieba
    return spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})


def words(text: str) -> list[str]:
    return [tok.text for tok in word_segmenter().tokenizer(text) if not tok.is_space]


def word_starts(text: str) -> set[int]:
    """Offsets where jieba starts a word. Segmentation calls jieba directly: it needs only word
    boundaries, and importing spaCy (and torch with it) would cost seconds per process."""
    starts, offset = set(), 0
    for token in _jieba().cut(text):
        starts.add(offset)
        offset += len(token)
    return starts


def cut_at_word_boundary(text: str, limit: int) -> int:
    """The largest word boundary ≤ `limit` (so a cut never splits a word); at least 1."""
    bounds = [b for b in word_starts(text[: limit + 8]) if b <= limit]
    return max(max(bounds, default=0), 1)
