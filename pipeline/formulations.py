"""Formulations (提法) over time, and the terms that rise: the `formulations` stage.

Formulations are set in params.yaml (`formulations.terms`: each a name and the literal strings that count
as it; add your own). Over a document's title and every paragraph, headings included:
- per document: occurrences, per 10,000 characters, and the first sentence using it;
- per period (the trends stage's period labels): occurrences per 10,000 characters pooled over the
  period's documents, and the share of its documents using it, each with a bootstrap interval that
  resamples documents within the period (none for a period of one document);
- first use: the earliest document using it, with the sentence.

Emerging terms find what nobody listed: jieba words (pipeline/text.py, domain terms kept whole) and word
n-grams, counted per period and compared with the earlier text (all earlier periods, or the previous one)
by keyness: the log-likelihood G² of a 2×2 table (term vs other words, period vs reference) with a
minimum count and document count, and the effect size log ratio = log2 of the ratio of relative
frequencies (0.5 added to both counts, so a term new in the period has a finite ratio). Only rising
terms with G² above the threshold are kept, the strongest first. An n-gram must begin and end with a
word of two or more characters (so 的, 和 never frame one); tokens that are not all Chinese break n-grams.

Outputs under reports/formulations/: documents.csv, periods.csv, first_uses.csv, emerging_terms.csv (UTF-8
with BOM: Excel shows Chinese) and formulations.png.
"""
from __future__ import annotations

import logging
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import Settings, SettingsError, setting
from pipeline.exports import write_table
from pipeline.kwic import kwic_lines, variants_pattern
from pipeline.text import sentence_spans, words
from pipeline.trends import PERIODS, bootstrap, interval, period_labels

log = logging.getLogger("pipeline.formulations")

PARAGRAPHS = "data/interim/paragraphs.parquet"
OUT_DIR = "reports/formulations"
REFERENCES = ("earlier", "previous")
PER = 10_000  # rates are per this many characters (formulations) or words (emerging terms)
DEFAULT_TERMS = [
    {"name": "全面从严治党"}, {"name": "党要管党"}, {"name": "八项规定"}, {"name": "四风"},
    {"name": "四个意识", "variants": ["四个意识", "政治意识、大局意识、核心意识、看齐意识"]},
    {"name": "两个维护"}, {"name": "两个确立"}, {"name": "自我革命"},
    {"name": "不敢腐不能腐不想腐", "variants": ["不敢腐、不能腐、不想腐", "不敢腐不能腐不想腐", "三不腐"]},
]
_CHINESE_WORD = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


@dataclass
class Formulation(Settings):
    name: str = setting("", nonempty=True)
    variants: list[str] = setting([])  # the strings that count as it, matched literally ([]: the name itself)

    def __post_init__(self):
        super().__post_init__()
        self.variants = self.variants or [self.name]
        if not all(v.strip() for v in self.variants):
            raise SettingsError("variants", f"{self.variants!r} holds an empty string",
                                f"the strings that count as {self.name}, e.g. [{self.name}]")


@dataclass
class FormulationsSettings(Settings):
    terms: list[Formulation] = setting(DEFAULT_TERMS, nonempty=True)  # each {name, variants}
    period: str = setting("year", choices=PERIODS)  # year | quarter | month
    years_per_period: int = setting(1, ge=1)  # with period year: pool this many years per period
    resamples: int = setting(1000, ge=100)  # bootstrap resamples of documents within each period
    seed: int = setting(2024, ge=0)
    ci: float = setting(0.95, gt=0, lt=1)
    emerging_reference: str = setting("earlier", choices=REFERENCES)  # vs all earlier text | the previous period
    emerging_max_words: int = setting(2, ge=1, le=4)  # n-grams of up to this many words
    emerging_min_count: int = setting(5, ge=1)  # a term must occur this often in the period …
    emerging_min_docs: int = setting(2, ge=1)  # … in at least this many of its documents
    emerging_min_g2: float = setting(10.83, ge=0)  # 10.83: p < 0.001 with one degree of freedom
    emerging_top_k: int = setting(20, ge=1)  # terms listed per period

    def __post_init__(self):
        super().__post_init__()
        names = [f.name for f in self.terms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SettingsError("terms", f"names {repeated[0]} more than once",
                                "one entry per formulation: put every way of writing it under its variants")

    @property
    def variants(self) -> dict[str, list[str]]:
        """Formulation name → its variants, in params order."""
        return {f.name: f.variants for f in self.terms}


@dataclass
class Formulations:
    documents: pd.DataFrame  # one row per (formulation, document using it)
    periods: pd.DataFrame  # one row per (period, formulation)
    first_uses: pd.DataFrame  # one row per formulation
    emerging: pd.DataFrame  # one row per (period, emerging term)
    summary: dict


# ------------------------------------------------------------------------------------ formulations

def with_titles(paragraphs: pd.DataFrame) -> pd.DataFrame:
    """`paragraphs` with each document's title before its first paragraph (order -1, para_id
    `<doc_id>#title`): a formulation is often used first in a title."""
    firsts = paragraphs.drop_duplicates("doc_id")
    titles = firsts[firsts["title"].fillna("").str.strip() != ""].assign(
        para_id=lambda t: t["doc_id"] + "#title", order=-1, text=lambda t: t["title"],
        heading_path=lambda t: [[] for _ in range(len(t))])
    return pd.concat([titles, paragraphs], ignore_index=True)


def document_table(paragraphs: pd.DataFrame, settings: FormulationsSettings) -> pd.DataFrame:
    """One row per document in order of first appearance: title, date, year, characters, period."""
    frame = paragraphs.assign(n_text=paragraphs["text"].fillna("").str.len())
    year = frame["year"] if "year" in frame else pd.Series(np.nan, index=frame.index)
    docs = frame.assign(year=year).groupby("doc_id", sort=False).agg(
        title=("title", "first"), date=("date", "first"), year=("year", "first"), n_chars=("n_text", "sum"))
    docs["period"] = period_labels(docs["date"], docs["year"], settings.period, settings.years_per_period)[0]
    return docs.reset_index()


def sentence_at(text: str, offset: int) -> str:
    """The sentence of `text` holding the character at `offset`."""
    return next((text[a:b].strip() for a, b in sentence_spans(text) if a <= offset < b), text.strip())


def usage(paragraphs: pd.DataFrame, docs: pd.DataFrame, settings: FormulationsSettings
          ) -> tuple[np.ndarray, pd.DataFrame]:
    """(documents × formulations occurrence counts, one row per formulation and document using it
    with the first sentence using it there), documents in date order within each formulation."""
    counts = np.zeros((len(docs), len(settings.terms)), dtype=np.int64)
    position = pd.Series(np.arange(len(docs)), index=docs["doc_id"])
    texts = paragraphs.drop_duplicates("para_id").set_index("para_id")["text"]  # an id is a hash of its text
    rows = []
    for k, (name, variants) in enumerate(settings.variants.items()):
        lines = kwic_lines(paragraphs, variants_pattern(variants), width=0)
        per_doc = lines.groupby("doc_id", sort=False).size()
        counts[position[per_doc.index].to_numpy(), k] = per_doc.to_numpy()
        first = lines.drop_duplicates("doc_id")  # kwic_lines come in date, document, paragraph order
        for line in first.itertuples(index=False):
            doc = docs.iloc[position[line.doc_id]]
            rows.append({"formulation": name, "date": line.date, "period": doc["period"], "doc_id": line.doc_id,
                         "title": line.title, "count": int(per_doc[line.doc_id]), "n_chars": int(doc["n_chars"]),
                         "per_10k": round(per_doc[line.doc_id] / max(doc["n_chars"], 1) * PER, 3),
                         "matched": line.match, "heading_path": line.heading_path,
                         "sentence": sentence_at(texts[line.para_id], line.offset), "para_id": line.para_id})
    columns = ["formulation", "date", "period", "doc_id", "title", "count", "n_chars", "per_10k", "matched",
               "heading_path", "sentence", "para_id"]
    return counts, pd.DataFrame(rows, columns=columns)


def period_table(docs: pd.DataFrame, counts: np.ndarray, settings: FormulationsSettings) -> pd.DataFrame:
    """Per period and formulation: occurrences per 10k characters and the share of documents using it,
    pooled over the period's documents, with bootstrap intervals over those documents."""
    names = list(settings.variants)
    frames = []
    dated = docs[docs["period"].notna()]
    for period, rows in dated.groupby("period", sort=True).indices.items():
        rows = dated.index[rows].to_numpy()
        used, chars = counts[rows].astype(float), docs["n_chars"].to_numpy(float)[rows]
        rng = np.random.default_rng([settings.seed, zlib.crc32(str(period).encode("utf-8"))])
        rate_lo, rate_hi = interval(bootstrap(used, chars, settings.resamples, rng) * PER, settings.ci, len(rows))
        share_draws = bootstrap((used > 0).astype(float), np.ones(len(rows)), settings.resamples, rng)
        share_lo, share_hi = interval(share_draws, settings.ci, len(rows))
        frames.append(pd.DataFrame({
            "period": str(period), "formulation": names, "n_docs": len(rows), "n_chars": int(chars.sum()),
            "count": used.sum(axis=0).astype(int), "per_10k": used.sum(axis=0) / max(chars.sum(), 1) * PER,
            "per_10k_lo": rate_lo, "per_10k_hi": rate_hi, "docs_using": (used > 0).sum(axis=0),
            "doc_share": (used > 0).mean(axis=0), "doc_share_lo": share_lo, "doc_share_hi": share_hi}))
    columns = ["period", "formulation", "n_docs", "n_chars", "count", "per_10k", "per_10k_lo", "per_10k_hi",
               "docs_using", "doc_share", "doc_share_lo", "doc_share_hi"]
    return pd.concat(frames, ignore_index=True).round(4) if frames else pd.DataFrame(columns=columns)


def first_use_table(documents: pd.DataFrame, settings: FormulationsSettings) -> pd.DataFrame:
    """Per formulation: its earliest document and sentence, and how many documents and times it is used
    (a formulation nobody uses has a row without a date)."""
    rows = []
    for name in settings.variants:
        using = documents[documents["formulation"] == name]
        first = using.iloc[0] if len(using) else pd.Series(dtype=object)
        rows.append({"formulation": name, "date": first.get("date"), "period": first.get("period"),
                     "title": first.get("title"), "heading_path": first.get("heading_path", []),
                     "sentence": first.get("sentence"), "matched": first.get("matched"),
                     "doc_id": first.get("doc_id"), "docs_using": len(using), "total_count": int(using["count"].sum())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------- emerging terms

def document_terms(text: str, max_words: int) -> tuple[Counter, int]:
    """(term counts, number of Chinese words) of `text`: words of two or more characters and n-grams of
    up to `max_words` consecutive Chinese words that begin and end with such a word."""
    terms, n_words, run = Counter(), 0, []
    for token in [*words(text), ""]:  # "" ends the last run
        if _CHINESE_WORD.fullmatch(token):
            run.append(token)
            n_words += 1
            continue
        for i, first in enumerate(run):
            if len(first) < 2:
                continue
            for n in range(1, min(max_words, len(run) - i) + 1):
                if len(run[i + n - 1]) >= 2:
                    terms["".join(run[i:i + n]) if n == 1 else " ".join(run[i:i + n])] += 1
        run = []
    return terms, n_words


def log_likelihood(a: np.ndarray, b: np.ndarray, c: float, d: float) -> np.ndarray:
    """G² of the 2×2 table of a term counted `a` times in `c` words and `b` times in `d` reference words
    (the term vs all other words, in the period vs in the reference)."""
    total, term = c + d, a + b
    g2 = np.zeros(np.shape(a))
    for observed, expected in [(a, c * term / total), (b, d * term / total),
                               (c - a, c * (total - term) / total), (d - b, d * (total - term) / total)]:
        with np.errstate(divide="ignore", invalid="ignore"):
            g2 += np.where(observed > 0, observed * np.log(observed / expected), 0.0)
    return 2 * g2


def emerging_terms(paragraphs: pd.DataFrame, docs: pd.DataFrame, settings: FormulationsSettings) -> pd.DataFrame:
    """Per period (after the first), the terms whose use rose most against the reference text."""
    periods: dict[str, Counter] = {}
    doc_freq: dict[str, Counter] = {}
    sizes: dict[str, int] = {}
    period_of = docs.set_index("doc_id")["period"]
    dated = paragraphs[paragraphs["doc_id"].map(period_of).notna()]
    for doc_id, texts in dated.groupby("doc_id", sort=False)["text"]:
        terms, n_words = document_terms("\n".join(texts.fillna("")), settings.emerging_max_words)
        period = period_of[doc_id]
        periods.setdefault(period, Counter()).update(terms)
        doc_freq.setdefault(period, Counter()).update(terms.keys())
        sizes[period] = sizes.get(period, 0) + n_words
    ordered = sorted(periods)
    frames = []
    for i, period in enumerate(ordered[1:], 1):
        before = ordered[:i] if settings.emerging_reference == "earlier" else [ordered[i - 1]]
        reference = sum((periods[p] for p in before), Counter())
        c, d = sizes[period], sum(sizes[p] for p in before)
        if not c or not d:
            continue
        candidates = sorted(t for t, n in periods[period].items() if n >= settings.emerging_min_count
                            and doc_freq[period][t] >= settings.emerging_min_docs)
        a = np.array([periods[period][t] for t in candidates], dtype=float)
        b = np.array([reference.get(t, 0) for t in candidates], dtype=float)
        g2 = log_likelihood(a, b, c, d)
        keep = (a / c > b / d) & (g2 >= settings.emerging_min_g2)
        terms, a, b, g2 = np.array(candidates, dtype=object)[keep], a[keep], b[keep], g2[keep]
        frame = pd.DataFrame({
            "period": period, "reference": before[0] if len(before) == 1 else f"{before[0]}…{before[-1]}",
            "term": terms, "count": a.astype(int), "docs": [doc_freq[period][t] for t in terms],
            "per_10k": a / c * PER, "count_reference": b.astype(int), "per_10k_reference": b / d * PER,
            "g2": g2, "log_ratio": np.log2(((a + 0.5) / c) / ((b + 0.5) / d)), "new": b == 0})
        frames.append(frame.sort_values(["g2", "term"], ascending=[False, True]).head(settings.emerging_top_k))
    columns = ["period", "reference", "term", "count", "docs", "per_10k", "count_reference", "per_10k_reference",
               "g2", "log_ratio", "new"]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True).round(3)[columns] if frames else pd.DataFrame(columns=columns)


# ---------------------------------------------------------------------------------------- the stage

def compute(paragraphs: pd.DataFrame, settings: FormulationsSettings) -> Formulations:
    """Every table of the stage from paragraphs (paragraphs.parquet's columns: doc_id, para_id, order,
    heading_path, text, title, date, year); titles count as text."""
    paragraphs = with_titles(paragraphs)
    docs = document_table(paragraphs, settings)
    counts, documents = usage(paragraphs, docs, settings)
    periods = period_table(docs, counts, settings)
    dated = docs["period"].notna()
    summary = {"documents": len(docs), "documents_in_periods": int(dated.sum()),
               "excluded_undated": int((~dated).sum()), "periods": int(docs.loc[dated, "period"].nunique()),
               "formulations": len(settings.terms)}
    return Formulations(documents, periods, first_use_table(documents, settings),
                        emerging_terms(paragraphs, docs, settings), summary)


def chart(periods: pd.DataFrame, names: list[str], ci: float = 0.95):
    """Small multiples: each formulation's occurrences per 10k characters per period, with its interval."""
    from pipeline import charts

    charts.use_cjk_font()
    columns = min(3, max(len(names), 1))
    rows = -(-max(len(names), 1) // columns)
    fig = charts.new_figure(4.2 * columns, 2.6 * rows)
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    labels = pd.Index(sorted(periods["period"].unique())) if len(periods) else pd.Index([])
    middles = charts.period_midpoints(labels)[0] if len(labels) else []
    for ax, name in zip(axes, names):
        ax.set_title(name, fontsize=11)
        if not len(labels):
            continue
        rows_of = periods[periods["formulation"] == name].set_index("period").reindex(labels)
        ax.fill_between(middles, rows_of["per_10k_lo"], rows_of["per_10k_hi"], color="C0", alpha=0.2, linewidth=0)
        ax.plot(middles, rows_of["per_10k"], marker="o", markersize=3, color="C0")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", color="0.9")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax in axes[::columns]:
        ax.set_ylabel("每万字出现次数")
    fig.suptitle(f"提法的使用（每万字；{ci:.0%} 区间：按文档重抽样）" if len(periods)
                 else "提法的使用：没有带日期的文档")
    return fig


def write(result: Formulations, settings: FormulationsSettings, out_dir: str | Path = OUT_DIR) -> list[Path]:
    from pipeline import charts

    out = Path(out_dir)
    written = [write_table(result.documents, out / "documents.csv"), write_table(result.periods, out / "periods.csv"),
               write_table(result.first_uses, out / "first_uses.csv"),
               write_table(result.emerging, out / "emerging_terms.csv")]
    figure = chart(result.periods, list(settings.variants), settings.ci)
    written += charts.save(figure, out, "formulations", charts.ChartsSettings(formats=["png"]))
    return written


def run(settings: FormulationsSettings, paragraphs_path: str | Path = PARAGRAPHS,
        out_dir: str | Path = OUT_DIR) -> Formulations:
    """The DVC stage: paragraphs.parquet → tables and chart under `out_dir`."""
    paragraphs = pd.read_parquet(paragraphs_path, columns=["doc_id", "para_id", "order", "heading_path", "text",
                                                           "title", "date", "year"])
    result = compute(paragraphs, settings)
    write(result, settings, out_dir)
    s = result.summary
    firsts = result.first_uses.dropna(subset=["doc_id"])
    log.info("formulations: %d formulations over %d documents (%d undated, left out of periods) in %d periods; "
             "first uses %s; %d emerging terms → %s", s["formulations"], s["documents"], s["excluded_undated"],
             s["periods"], ", ".join(f"{r.formulation} {r.date}" for r in firsts.itertuples()) or "none",
             len(result.emerging), out_dir)
    return result
