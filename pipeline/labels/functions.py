"""Labelling functions built from the codebook, and their aggregation into silver probabilities.

Each labelling function (LF) speaks for one theme and returns, per paragraph, a vote in the Snorkel
convention: 1 (the theme is present), 0 (it is not), or -1 (abstain). Kinds:
- keyword / pattern: the theme's cues occur (weight = the strongest cue's weight, several cues add up);
- heading: a heading in the paragraph's heading_path names the theme;
- guard: every cue hit is a passing mention — inside an exclude pattern, negated, or one item in a
  list of slogans — so the hit should not count (votes 0).
Aggregation per theme: noisy-or of the positive LFs' weights, damped when the guard fires.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pipeline.codebook import Codebook, Theme

ABSTAIN, NEGATIVE, POSITIVE = -1, 0, 1
HEADING_WEIGHT = 0.6
GUARD_DAMPING = 0.25  # a guarded theme keeps a quarter of its evidence
_NEGATION = re.compile("(不是|并非|没有|无关|不属于|不涉及)$")
# a slogan in a list: a short item holding a quoted or numbered formula (增强“四个意识”, 两个维护)
_SLOGAN_ITEM = re.compile("^[^，。；：！？]{0,6}(“[^”]{2,8}”|[一二三四五六七八九十两]个[^、，。]{2,4})[^，。；：！？]{0,4}$")


@dataclass
class CueHit:
    cue: str
    weight: float
    start: int
    end: int


def cue_hits(theme: Theme, text: str) -> list[CueHit]:
    """All keyword and pattern hits of a theme in a text (overlapping hits of the same span once)."""
    hits = []
    for keyword, weight in theme.keywords.items():
        start = text.find(keyword)
        while start != -1:
            hits.append(CueHit(keyword, weight, start, start + len(keyword)))
            start = text.find(keyword, start + 1)
    for pattern, weight in theme.compiled_patterns:
        hits.extend(CueHit(m.group(0), weight, m.start(), m.end()) for m in pattern.finditer(text))
    return hits


def is_passing_mention(text: str, hit: CueHit, theme: Theme) -> bool:
    """A hit that should not count: inside an exclude pattern, negated, or one item of a list of three
    or more slogans separated by 、 (增强“四个意识”、坚定“四个自信”、做到“两个维护”) — but not a list of
    plain terms such as 不敢腐、不能腐、不想腐, which is the paragraph's subject."""
    for pattern in theme.compiled_excludes:
        if any(m.start() <= hit.start and hit.end <= m.end() for m in pattern.finditer(text)):
            return True
    if _NEGATION.search(text[max(0, hit.start - 4):hit.start]):
        return True
    clause_start = max(text.rfind(p, 0, hit.start) for p in "，。；：！？") + 1
    clause_end = min([i for i in (text.find(p, hit.end) for p in "，。；：！？") if i != -1] or [len(text)])
    items = text[clause_start:clause_end].split("、")
    return len(items) >= 3 and all(_SLOGAN_ITEM.match(item) for item in items)


def noisy_or(weights) -> float:
    prob = 1.0
    for weight in weights:
        prob *= 1.0 - weight
    return 1.0 - prob


@dataclass
class LabelingFunction:
    name: str
    theme: str
    kind: str  # keyword | pattern | heading | guard


class WeakLabeler:
    """Applies all LFs of a codebook to paragraphs; `label` gives the LF matrix and silver probabilities."""

    def __init__(self, codebook: Codebook):
        self.codebook = codebook
        self.lfs = [LabelingFunction(f"{t.id}:{kind}", t.id, kind)
                    for t in codebook.themes for kind in ("keyword", "pattern", "heading", "guard")]

    def _votes(self, theme: Theme, text: str, headings: list[str]) -> tuple[list[int], float]:
        hits = cue_hits(theme, text)
        counted = [h for h in hits if not is_passing_mention(text, h, theme)]
        keyword_w = [h.weight for h in counted if h.cue in theme.keywords]
        pattern_w = [h.weight for h in counted if h.cue not in theme.keywords]
        heading = any(cue in h for h in headings for cue in theme.heading_cues)
        guard = bool(hits) and not counted
        votes = [POSITIVE if keyword_w else ABSTAIN, POSITIVE if pattern_w else ABSTAIN,
                 POSITIVE if heading else ABSTAIN, NEGATIVE if guard else ABSTAIN]
        by_cue = {h.cue: h.weight for h in counted}  # a cue repeated is still one piece of evidence
        evidence = list(by_cue.values()) + ([HEADING_WEIGHT] if heading else [])
        prob = noisy_or(evidence)
        if guard:
            prob = noisy_or([h.weight for h in hits]) * GUARD_DAMPING
        return votes, prob

    def label(self, texts: list[str], heading_paths: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(LF matrix n × n_lfs with -1/0/1, silver probabilities n × n_themes)."""
        matrix = np.full((len(texts), len(self.lfs)), ABSTAIN, dtype=np.int8)
        silver = np.zeros((len(texts), len(self.codebook.themes)))
        for i, (text, headings) in enumerate(zip(texts, heading_paths)):
            for j, theme in enumerate(self.codebook.themes):
                votes, silver[i, j] = self._votes(theme, text, list(headings))
                matrix[i, 4 * j:4 * j + 4] = votes
        return matrix, silver


def lf_analysis(lfs: list[LabelingFunction], matrix: np.ndarray, gold: np.ndarray | None = None,
                themes: list[str] | None = None) -> list[dict]:
    """Per LF, in the spirit of Snorkel's LFAnalysis: coverage (share of paragraphs it labels),
    overlaps (labels a paragraph another LF of the same theme also labels), conflicts (labels it where
    another LF of the same theme votes the other way), and — where gold exists — empirical accuracy."""
    rows = []
    labelled = matrix != ABSTAIN
    for k, lf in enumerate(lfs):
        same_theme = [i for i, other in enumerate(lfs) if other.theme == lf.theme and i != k]
        mine = labelled[:, k]
        others = labelled[:, same_theme]
        overlap = mine & others.any(axis=1)
        conflict = mine & ((matrix[:, same_theme] != ABSTAIN) & (matrix[:, same_theme] != matrix[:, [k]])).any(axis=1)
        row = {"lf": lf.name, "theme": lf.theme, "kind": lf.kind,
               "polarity": "negative" if lf.kind == "guard" else "positive",
               "coverage": round(float(mine.mean()), 4), "overlaps": round(float(overlap.mean()), 4),
               "conflicts": round(float(conflict.mean()), 4)}
        if gold is not None and themes is not None:
            has_gold = ~np.isnan(gold[:, themes.index(lf.theme)])
            sel = mine & has_gold
            truth = gold[sel, themes.index(lf.theme)]
            votes = matrix[sel, k]
            row["gold_labelled"] = int(sel.sum())
            row["empirical_accuracy"] = round(float((votes == truth).mean()), 4) if sel.any() else None
        rows.append(row)
    return rows
