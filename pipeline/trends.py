"""The trends stage: paragraph themes → theme shares per document, per period, by doc_type and by source.

A document's share of a theme is the fraction of its body paragraphs that carry the theme (`measure:
paragraphs`), or the fraction of its body characters that sit in such paragraphs (`measure: chars`).
A period's share is pooled over its documents — theme paragraphs / all body paragraphs of the period —
so a long report weighs more than a short notice, as it does in the period's discourse.

Confidence intervals are percentile bootstraps that resample whole DOCUMENTS within a period: the
paragraphs of one document are not independent draws. Each period draws from its own generator, seeded
by `seed` and the period's name, so an estimate never changes because another period was added. A
change between consecutive periods (consecutive among the periods present: gaps are skipped) takes
its interval from the difference of the two periods' independent draws. A period of one document has no
within-period variation to resample, so its interval (and that of any change from or to it) is left
empty (NaN) rather than drawn with a misleading zero width.

Shares are error-corrected by default (see pipeline/quantify.py), so a classifier that flags no-theme
paragraphs does not inflate them. `correction: auto` (default) uses the researcher's audit sample of their
own corpus with `acc` when there is one, else `pcc`. `correction: pcc` averages the calibrated probabilities
instead of counting paragraphs over a threshold; the calibration's own uncertainty (its intercept's
standard error, measured on real dev) is drawn once per bootstrap resample. `correction: acc` adjusts the
count with the measured true and false positive rates — from the model's real dev split, or from the
researcher's audit sample of their own corpus when there is one — drawn from their posteriors. Either
way the draws are shared by all periods, so a change between periods is not widened by an error common
to both, and intervals include the classifier's uncertainty, not only the documents'. `share_raw` keeps
the classify-and-count share; `correction: none` charts it instead.

A period needs a date: undated documents are left out of every period table, and a quarter or month
needs a month, so documents dated only by year are left out of quarterly and monthly tables. Both are
counted in `reports/trends_summary.json`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline import io
from pipeline.classifiers.base import ModelError
from pipeline.codebook import Codebook, load_codebook
from pipeline.config import Settings, SettingsError, setting
from pipeline.quantify import ErrorRates, adjust, load_calibration_se, load_error_rates, rate_draws

log = logging.getLogger("pipeline.trends")

PARAGRAPHS = "data/interim/paragraphs.parquet"
PARAGRAPH_THEMES = "data/processed/paragraph_themes.parquet"
OUT_DIR = "reports"
PERIODS = ("year", "quarter", "month")
MEASURES = ("paragraphs", "chars")
CORRECTIONS = ("auto", "pcc", "acc", "none")
GROUPINGS = ("doc_type", "source")
POOLING = ("auto", "off")
POOL_WIDTHS = (2, 3, 5, 10)  # years per period that pool: auto tries, in this order
POOL_TOLERANCE = 0.1  # pool: auto takes the first width where at most this share of periods lacks an interval
MIN_DOCS_FOR_INTERVAL = 2  # see the module docstring
UNKNOWN = "unknown"  # the group of documents whose doc_type / source is missing
DOC_COLUMNS = ["doc_id", "title", "date", "year", "doc_type", "source"]
RESERVED_COLUMNS = {"doc_id", "title", "date", "year", "period", "dating", "theme", "label", "text", "para_id",
                    "order", "kind", "heading_path", "n_chars", "n_paragraphs", "themes", "extra", "group"}
ALL = "all"  # the group of changes over all documents (no facet)
CHANGE_COLUMNS = ["group", "from_period", "to_period", "n_docs_from", "n_docs_to", "theme", "label", "share_from",
                  "share_to", "change", "lo", "hi", "ci_excludes_zero"]
_DATE = r"^(?P<year>\d{4})(?:-(?P<month>\d{2}))?"


@dataclass
class TrendsSettings(Settings):
    period: str = setting("year", choices=PERIODS)  # year | quarter | month
    years_per_period: int = setting(1, ge=1)  # with period year: bins of this many years (5 → 1980–1984, 1985–1989 …)
    measure: str = setting("paragraphs", choices=MEASURES)  # paragraphs | chars: what a period's share counts
    resamples: int = setting(1000, ge=100)  # bootstrap resamples of the documents within each period
    seed: int = setting(2024, ge=0)
    ci: float = setting(0.95, gt=0, lt=1)  # confidence level of every interval
    by: list[str] = setting(list(GROUPINGS))  # metadata columns: a period table per group of each
    facet: str = ""  # a metadata column: charts and changes per group of it (e.g. doc_type); "": all pooled
    pool: str = setting("auto", choices=POOLING)  # auto: pool years when most periods hold one document | off
    top_k_changes: int = setting(3, ge=1)  # themes listed as rising and as falling, per comparison
    correction: str = setting("auto", choices=CORRECTIONS)  # auto: acc with an audit sample, else pcc | none: raw
    audit_rates: str = "data/annotations/audit/error_rates.json"  # used instead of the model's dev rates when present

    def __post_init__(self):
        super().__post_init__()
        if self.years_per_period > 1 and self.period != "year":
            raise SettingsError("years_per_period", f"{self.years_per_period} with period {self.period}",
                                "1, or more with period: year")
        for key, column in [*((f"by[{i}]", c) for i, c in enumerate(self.by)), ("facet", self.facet)]:
            if column in RESERVED_COLUMNS or (column == "" and key != "facet"):
                raise SettingsError(key, f"{column!r} is not a metadata column",
                                    "doc_type, source, or a column (or `extra` key) of paragraphs.parquet")

    @property
    def groupings(self) -> list[str]:
        """Every metadata column grouped by: `by`, then the facet."""
        return list(dict.fromkeys([*self.by, *([self.facet] if self.facet else [])]))


# ---------------------------------------------------------------------------------------------- inputs

def load_inputs(paragraphs_path: str | Path = PARAGRAPHS, themes_path: str | Path = PARAGRAPH_THEMES,
                codebook: Codebook | None = None, groups: list[str] = ()) -> pd.DataFrame:
    """Body paragraphs with their document's metadata (and the metadata columns `groups`), theme scores
    and `themes` (one row each).

    Raises ValueError, naming the file and the fix, when predictions are missing for a body paragraph,
    name a theme the codebook does not know, or a column of `groups` exists nowhere.
    """
    codebook = codebook or load_codebook()
    paragraphs = pd.read_parquet(paragraphs_path, columns=[
        "para_id", "order", "kind", "heading_path", "text", "n_chars", *DOC_COLUMNS])
    extra_groups = [c for c in groups if c not in paragraphs.columns]
    if extra_groups:
        paragraphs = paragraphs.join(metadata_columns(paragraphs_path, extra_groups))
    themes = pd.read_parquet(themes_path)
    missing = [c for c in ["para_id", "themes", *codebook.ids] if c not in themes.columns]
    if missing:
        raise ValueError(f"{themes_path}: missing column(s) {missing}; rerun the predict stage")
    codebook.check_ids(set(themes["themes"].explode().dropna()), f"{themes_path}: column 'themes'")
    body = paragraphs[paragraphs["kind"] == "body"]
    extra = [c for c in ("model", "method") if c in themes.columns]
    joined = body.merge(themes[["para_id", "themes", *codebook.ids, *extra]], on="para_id", how="left",
                        validate="one_to_one")
    unscored = int(joined["themes"].isna().sum())
    if unscored:
        raise ValueError(f"{themes_path}: {unscored} of {len(joined)} body paragraphs of {paragraphs_path} "
                         "have no prediction (stale predictions?); rerun the predict stage")
    return joined.reset_index(drop=True)


def metadata_columns(paragraphs_path: str | Path, columns: list[str]) -> pd.DataFrame:
    """The metadata `columns` of every row of paragraphs.parquet, as text: a column of the file, else a
    key of its `extra` JSON object (where ingest keeps a record's other fields, e.g. a congress number).

    Raises ValueError naming the params.yaml keys and the columns there are when one exists nowhere.
    """
    available = pq.read_schema(paragraphs_path).names
    stored = [c for c in columns if c in available]
    frame = pd.read_parquet(paragraphs_path, columns=stored + (["extra"] if "extra" in available else []))
    result = frame[stored].astype("string")
    parsed = {}
    for raw in frame["extra"].dropna().unique() if "extra" in frame else []:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None  # an unreadable extra carries no metadata; the other columns still do
        parsed[raw] = value if isinstance(value, dict) else {}
    known = sorted({key for value in parsed.values() for key in value})
    for column in columns:
        if column in stored:
            continue
        if column not in known:
            raise ValueError(f"params.yaml: trends.by / trends.facet name {column!r}, which is neither a column of "
                             f"{paragraphs_path} ({', '.join(available)}) nor a key of its `extra` field "
                             f"({', '.join(known) or 'none'}); name one of those")
        values = [parsed.get(raw, {}).get(column) if isinstance(raw, str) else None for raw in frame["extra"]]
        result[column] = pd.array([None if v is None else str(v) for v in values], dtype="string")
    return result


def period_labels(date: pd.Series, year: pd.Series, period: str = "year",
                  years_per_period: int = 1) -> tuple[pd.Series, pd.Series]:
    """(period label or None, dating) per row; dating is 'dated', 'year_only' (no month where the
    period needs one) or 'undated'. Labels sort in time order: '2019', '2019Q3', '2019-07', and
    '1980–1984' for bins of years (aligned to multiples of `years_per_period`)."""
    parts = date.astype("string").str.extract(_DATE)
    years = pd.to_numeric(parts["year"], errors="coerce").fillna(pd.to_numeric(year, errors="coerce"))
    months = pd.to_numeric(parts["month"], errors="coerce")
    needs_month = period != "year"
    dated = years.notna() & (months.notna() | (not needs_month))
    dating = pd.Series(np.where(dated, "dated", np.where(years.notna(), "year_only", "undated")),
                       index=date.index)
    y = years.astype("Int64")
    m = months.astype("Int64")
    if period == "year" and years_per_period > 1:
        first = y // years_per_period * years_per_period
        label = first.astype("string") + "–" + (first + years_per_period - 1).astype("string")
    elif period == "year":
        label = y.astype("string")
    elif period == "quarter":
        label = y.astype("string") + "Q" + ((m - 1) // 3 + 1).astype("string")
    else:
        label = y.astype("string") + "-" + m.astype("string").str.zfill(2)
    return label.where(dated, None), dating


def period_span(label: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first, last instant) of a period label: '2019', '2019Q3', '2019-07' or '1980–1984'."""
    first, _, last = str(label).partition("–")
    return pd.Period(first).start_time, pd.Period(last or first).end_time


def period_range(first: str, last: str) -> list[str]:
    """Every period label from `first` to `last` (labels as `period_labels` makes them), those without
    documents included: charts break their lines there rather than draw across the gap."""
    if "–" in first:
        start, end = int(first[:4]), int(last[:4])
        width = int(first.partition("–")[2]) - start + 1
        return [f"{year}–{year + width - 1}" for year in range(start, end + 1, width)]
    frequency = "Q" if "Q" in first else "M" if "-" in first else "Y"
    return [str(p) for p in pd.period_range(first, last, freq=frequency)]


def pool_years(docs: pd.DataFrame, settings: TrendsSettings) -> tuple[int, dict | None]:
    """(years per period, a note for trends_summary.json or None).

    With `pool: auto`, yearly periods and `years_per_period: 1`, when more than half of the periods (of each
    facet group) hold fewer than MIN_DOCS_FOR_INTERVAL documents — too few for an interval — years are
    pooled: the first width of POOL_WIDTHS at which at most POOL_TOLERANCE of the periods still lack an
    interval, else the width that leaves the smallest such share (the narrower on a tie). Otherwise the
    setting stands.
    """
    if settings.pool == "off" or settings.period != "year" or settings.years_per_period != 1:
        return settings.years_per_period, None

    def short_of(width: int) -> tuple[int, int]:
        labels = period_labels(docs["date"], docs["year"], "year", width)[0]
        keys = [docs[settings.facet].fillna(UNKNOWN), labels] if settings.facet else [labels]
        sizes = docs.groupby(keys).size()  # undated documents (no label) fall out
        return int((sizes < MIN_DOCS_FOR_INTERVAL).sum()), len(sizes)

    short, total = short_of(1)
    if not total or 2 * short <= total:
        return 1, None
    tried = {width: short_of(width) for width in POOL_WIDTHS}
    acceptable = [w for w, (n_short, n) in tried.items() if n_short <= POOL_TOLERANCE * n]
    width = acceptable[0] if acceptable else min(tried, key=lambda w: (tried[w][0] / tried[w][1], w))
    per_group = f" of each {settings.facet}" if settings.facet else ""
    return width, {"years_per_period": width, "periods_without_interval": tried[width][0],
                   "periods": tried[width][1],
                   "reason": f"{short} of {total} one-year periods{per_group} held fewer than "
                             f"{MIN_DOCS_FOR_INTERVAL} documents, too few for an interval"}


# ---------------------------------------------------------------------------------- document shares

@dataclass
class DocumentCounts:
    """Per document: metadata (`docs`, one row each) and body counts per theme (rows match `docs`)."""

    docs: pd.DataFrame  # DOC_COLUMNS, period, dating, the grouping columns, n_paragraphs, n_chars
    theme_paragraphs: np.ndarray  # (n_docs, n_themes) body paragraphs that carry the theme
    theme_chars: np.ndarray  # (n_docs, n_themes) characters of those paragraphs
    themes: list[str]
    theme_probability: np.ndarray | None = None  # (n_docs, n_themes) sums of calibrated probabilities
    theme_probability_chars: np.ndarray | None = None  # the same, each paragraph weighted by its characters
    theme_variance: np.ndarray | None = None  # sums of p(1 − p): how a calibration shift moves the share
    theme_variance_chars: np.ndarray | None = None
    any_paragraphs: np.ndarray | None = None  # (n_docs,) body paragraphs that carry at least one theme
    any_chars: np.ndarray | None = None  # (n_docs,) characters of those paragraphs

    def counts(self, measure: str, probabilities: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(numerators (n_docs, n_themes), denominators (n_docs,)) of the shares `measure` counts:
        assigned themes, or with `probabilities` the expected number of theme paragraphs."""
        if measure == "paragraphs":
            numerators = self.theme_probability if probabilities else self.theme_paragraphs
            return numerators, self.docs["n_paragraphs"].to_numpy(float)
        numerators = self.theme_probability_chars if probabilities else self.theme_chars
        return numerators, self.docs["n_chars"].to_numpy(float)

    def variance(self, measure: str) -> np.ndarray:
        return self.theme_variance if measure == "paragraphs" else self.theme_variance_chars

    def any_theme(self, measure: str) -> np.ndarray:
        """(n_docs, 1) numerators of the share of text that carries any theme (classify-and-count)."""
        return (self.any_paragraphs if measure == "paragraphs" else self.any_chars)[:, None]


def document_counts(body: pd.DataFrame, themes: list[str], settings: TrendsSettings) -> DocumentCounts:
    """Aggregate body paragraphs (from `load_inputs`) to documents, in order of first appearance."""
    hits = np.zeros((len(body), len(themes)), dtype=float)
    assigned = body["themes"].explode().dropna()
    column = {t: j for j, t in enumerate(themes)}
    hits[body.index.get_indexer(assigned.index), assigned.map(column).to_numpy(int)] = 1.0
    codes, _ = pd.factorize(body["doc_id"])
    n_chars = body["n_chars"].to_numpy(float)
    groupings = [c for c in settings.groupings if c not in DOC_COLUMNS]
    absent = [c for c in groupings if c not in body.columns]
    if absent:
        raise ValueError(f"trends: metadata column(s) {absent} (trends.by / trends.facet) are not loaded; "
                         "read the paragraphs with trends.load_inputs(..., groups=settings.groupings)")
    docs = body.groupby(codes, sort=True).agg(
        **{c: (c, "first") for c in [*DOC_COLUMNS, *groupings]}, n_paragraphs=("para_id", "size"),
        n_chars=("n_chars", "sum")).reset_index(drop=True)
    period_label, dating = period_labels(docs["date"], docs["year"], settings.period,
                                         settings.years_per_period)
    docs.insert(len(DOC_COLUMNS), "period", period_label)
    docs.insert(len(DOC_COLUMNS) + 1, "dating", dating)

    def per_document(values: np.ndarray) -> np.ndarray:
        return pd.DataFrame(values).groupby(codes, sort=True).sum().to_numpy()

    probabilities = body[themes].to_numpy(float) if set(themes) <= set(body.columns) else None
    any_hit = hits.max(axis=1, initial=0.0)
    extra = {"any_paragraphs": per_document(any_hit[:, None])[:, 0],
             "any_chars": per_document((any_hit * n_chars)[:, None])[:, 0]}
    if probabilities is not None:
        variance = probabilities * (1 - probabilities)
        extra |= {"theme_probability": per_document(probabilities),
                 "theme_probability_chars": per_document(probabilities * n_chars[:, None]),
                 "theme_variance": per_document(variance),
                 "theme_variance_chars": per_document(variance * n_chars[:, None])}
    return DocumentCounts(docs, per_document(hits), per_document(hits * n_chars[:, None]), themes, **extra)


def document_shares(counts: DocumentCounts, codebook: Codebook) -> pd.DataFrame:
    """Long table: one row per (document, theme) with counts and both shares."""
    n_docs, n_themes = counts.theme_paragraphs.shape
    frame = counts.docs.loc[counts.docs.index.repeat(n_themes)].reset_index(drop=True)
    frame["theme"] = np.tile(counts.themes, n_docs)
    frame["label"] = np.tile([codebook[t].label for t in counts.themes], n_docs)
    frame["theme_paragraphs"] = counts.theme_paragraphs.ravel().astype(int)
    frame["theme_chars"] = counts.theme_chars.ravel().astype(int)
    frame["share_paragraphs"] = frame["theme_paragraphs"] / frame["n_paragraphs"]
    frame["share_chars"] = frame["theme_chars"] / frame["n_chars"]
    return frame


# -------------------------------------------------------------------------------- period estimates

@dataclass
class Estimate:
    """Pooled theme shares of one set of documents, with their bootstrap draws."""

    n_docs: int
    n_paragraphs: int
    n_chars: int
    share: np.ndarray  # (n_themes,) corrected when a Correction is given, else raw
    draws: np.ndarray  # (resamples, n_themes)
    share_raw: np.ndarray  # (n_themes,) classify-and-count
    any_share: float = np.nan  # share of the text that carries any theme (classify-and-count)
    any_draws: np.ndarray | None = None  # (resamples,) drawn with the same resampled documents as `draws`


@dataclass
class Correction:
    """How shares are corrected, with one shared set of draws of the classifier's error (one per resample):
    `pcc` draws the calibration intercept shift, `acc` the true and false positive rates."""

    method: str
    rates: ErrorRates | None = None
    tpr_draws: np.ndarray | None = None  # (resamples, n_themes)
    fpr_draws: np.ndarray | None = None
    intercept_draws: np.ndarray | None = None  # (resamples, n_themes)
    intercept_se: np.ndarray | None = None  # (n_themes,) as measured on real dev

    @classmethod
    def drawn(cls, settings: "TrendsSettings", rates: ErrorRates | None = None,
              intercept_se: np.ndarray | None = None) -> "Correction":
        rng = np.random.default_rng([settings.seed, zlib.crc32(b"classifier-error")])
        if rates is not None:
            return cls("acc", rates, *rate_draws(rates, settings.resamples, rng))
        return cls("pcc", intercept_draws=rng.normal(size=(settings.resamples, len(intercept_se))) * intercept_se,
                   intercept_se=intercept_se)


def bootstrap(numerators: np.ndarray, denominators: np.ndarray, resamples: int,
              rng: np.random.Generator) -> np.ndarray:
    """(resamples, n_themes) pooled shares of documents resampled with replacement."""
    n = len(denominators)
    batch = max(1, 20_000_000 // n)  # bounds the (batch, n) weight matrix to ~160 MB
    draws = []
    for start in range(0, resamples, batch):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(batch, resamples - start)).astype(float)
        draws.append((weights @ numerators) / (weights @ denominators)[:, None])
    return np.vstack(draws)


def estimate(counts: DocumentCounts, rows: np.ndarray, settings: TrendsSettings, key: str,
             correction: Correction | None = None) -> Estimate:
    """Shares of documents `rows` (positions in counts.docs); `key` names the group in the seed."""
    assigned, denominators = counts.counts(settings.measure)
    assigned, denominators = assigned[rows], denominators[rows]
    rng = np.random.default_rng([settings.seed, zlib.crc32(key.encode("utf-8"))])
    docs = counts.docs.iloc[rows]
    raw = assigned.sum(axis=0) / denominators.sum()
    any_theme = counts.any_theme(settings.measure)[rows]
    pcc = correction is not None and correction.method == "pcc"
    numerators = counts.counts(settings.measure, probabilities=True)[0][rows] if pcc else assigned
    # the any-theme share rides along as a last column, so it is drawn from the same resampled documents
    draws = bootstrap(np.hstack([numerators, any_theme]), denominators, settings.resamples, rng)
    draws, any_draws = draws[:, :-1], draws[:, -1]
    share = numerators.sum(axis=0) / denominators.sum()
    if pcc:
        # a shift δ of the calibration intercept moves a paragraph's probability by ≈ p(1 − p)·δ
        sensitivity = counts.variance(settings.measure)[rows].sum(axis=0) / denominators.sum()
        draws = np.clip(draws + sensitivity * correction.intercept_draws, 0.0, 1.0)
    elif correction is not None:
        share = adjust(raw, correction.rates.tpr, correction.rates.fpr)
        draws = adjust(draws, correction.tpr_draws, correction.fpr_draws)
    return Estimate(len(rows), int(docs["n_paragraphs"].sum()), int(docs["n_chars"].sum()), share, draws, raw,
                    float(any_theme.sum() / denominators.sum()), any_draws)


def period_estimates(counts: DocumentCounts, settings: TrendsSettings, by: str | None = None,
                     correction: Correction | None = None) -> dict[tuple[str, ...], Estimate]:
    """Estimates per period (keys `(period,)`) or per group and period (keys `(group, period)`),
    in sorted order, over dated documents only."""
    dated = counts.docs[counts.docs["period"].notna()]
    keys = [dated[by].fillna(UNKNOWN), dated["period"]] if by else [dated["period"]]
    estimates = {}
    for key, rows in dated.groupby(keys, sort=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        estimates[key] = estimate(counts, dated.index[rows].to_numpy(), settings, "|".join(key), correction)
    return estimates


def interval(draws: np.ndarray, ci: float, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    if n_docs < MIN_DOCS_FOR_INTERVAL:
        return np.full(draws.shape[1:], np.nan), np.full(draws.shape[1:], np.nan)
    lo, hi = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return lo, hi


def shares_frame(estimates: dict[tuple[str, ...], Estimate], key_names: list[str], codebook: Codebook,
                 ci: float) -> pd.DataFrame:
    """Long table: key columns, theme, label, share, lo, hi, share_raw, n_docs, n_paragraphs, n_chars, and
    the share of the key's text that carries any theme (any_share, any_lo, any_hi; the same on each row)."""
    rows = []
    for key, est in estimates.items():
        lo, hi = interval(est.draws, ci, est.n_docs)
        any_lo, any_hi = interval(est.any_draws, ci, est.n_docs)
        for j, theme in enumerate(codebook.ids):
            rows.append({**dict(zip(key_names, key)), "theme": theme, "label": codebook[theme].label,
                         "share": est.share[j], "lo": lo[j], "hi": hi[j], "share_raw": est.share_raw[j],
                         "n_docs": est.n_docs, "n_paragraphs": est.n_paragraphs, "n_chars": est.n_chars,
                         "any_share": est.any_share, "any_lo": float(any_lo), "any_hi": float(any_hi)})
    columns = [*key_names, "theme", "label", "share", "lo", "hi", "share_raw", "n_docs", "n_paragraphs",
               "n_chars", "any_share", "any_lo", "any_hi"]
    return pd.DataFrame(rows, columns=columns)


def change(before: Estimate, after: Estimate, ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(change, lo, hi) per theme from `before` to `after`, the interval from independent draws."""
    lo, hi = interval(after.draws - before.draws, ci, min(before.n_docs, after.n_docs))
    return after.share - before.share, lo, hi


def comparisons(keys: list[tuple[str, ...]]) -> tuple[list[tuple], list[tuple]]:
    """(consecutive, first-to-last) pairs of estimate keys — `(period,)` or `(group, period)`, in time
    order — within each group; consecutive among the periods present, so gaps are skipped."""
    by_group: dict[tuple, list[tuple]] = {}
    for key in keys:
        by_group.setdefault(key[:-1], []).append(key)
    consecutive = [pair for group in by_group.values() for pair in zip(group, group[1:])]
    first_last = [(group[0], group[-1]) for group in by_group.values() if len(group) > 1]
    return consecutive, first_last


def changes_frame(estimates: dict[tuple[str, ...], Estimate], pairs: list[tuple[tuple, tuple]],
                  codebook: Codebook, ci: float) -> pd.DataFrame:
    """Long table: group, from_period, to_period, n_docs_from, n_docs_to, theme, label, share_from,
    share_to, change, lo, hi, ci_excludes_zero — one row per theme for each (from, to) pair of keys of
    `estimates`; `group` is the keys' facet group, or ALL for keys `(period,)`."""
    rows = []
    for before, after in pairs:
        b, a = estimates[before], estimates[after]
        delta, lo, hi = change(b, a, ci)
        for j, theme in enumerate(codebook.ids):
            rows.append({"group": before[0] if len(before) > 1 else ALL,
                         "from_period": before[-1], "to_period": after[-1], "n_docs_from": b.n_docs,
                         "n_docs_to": a.n_docs, "theme": theme, "label": codebook[theme].label,
                         "share_from": b.share[j], "share_to": a.share[j], "change": delta[j],
                         "lo": lo[j], "hi": hi[j], "ci_excludes_zero": bool(lo[j] > 0 or hi[j] < 0)})
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def top_changes(first_to_last: pd.DataFrame, consecutive: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k largest rises and the k largest falls from the first to the last period, and between
    consecutive periods — among changes whose interval excludes zero only: a change the data cannot
    tell from none is no headline."""
    picked = []
    for comparison, frame in (("first_to_last", first_to_last), ("consecutive", consecutive)):
        frame = frame[frame["ci_excludes_zero"].astype(bool)].astype({"change": float})
        rose = frame[frame["change"] > 0].nlargest(k, "change").assign(direction="rose")
        fell = frame[frame["change"] < 0].nsmallest(k, "change").assign(direction="fell")
        for part in (rose, fell):
            picked.append(part.assign(comparison=comparison, rank=range(1, len(part) + 1)))
    return pd.concat(picked, ignore_index=True)[["comparison", "direction", "rank", *CHANGE_COLUMNS]]


# ------------------------------------------------------------------------------------- the stage

@dataclass
class Trends:
    """Everything the stage computes; `run` writes it, notebooks use it directly."""

    documents: pd.DataFrame  # document_shares
    periods: pd.DataFrame  # shares_frame per period
    changes: pd.DataFrame  # changes_frame over consecutive periods
    top: pd.DataFrame  # top_changes
    by: dict[str, pd.DataFrame]  # shares_frame per group and period, by column name
    summary: dict


def compute(body: pd.DataFrame, settings: TrendsSettings, codebook: Codebook | None = None,
            correction: Correction | None = None) -> Trends:
    """All trend tables from the body paragraphs of `load_inputs`; shares corrected if `correction` is given.

    Raises ValueError when no document has a date usable for `settings.period`.
    """
    codebook = codebook or load_codebook()
    counts = document_counts(body, codebook.ids, settings)
    width, pooling = pool_years(counts.docs, settings)
    if width != settings.years_per_period:
        settings = dataclasses.replace(settings, years_per_period=width)
        counts.docs["period"] = period_labels(counts.docs["date"], counts.docs["year"], "year", width)[0]
    dating = counts.docs["dating"].value_counts()
    estimates = period_estimates(counts, settings, correction=correction)
    if not estimates:
        raise ValueError(f"trends: no document has a date usable for period={settings.period!r} "
                         f"({int(dating.get('year_only', 0))} dated by year only, "
                         f"{int(dating.get('undated', 0))} undated); set trends.period: year in params.yaml "
                         "or add dates (ingest metadata)")
    by = {col: period_estimates(counts, settings, by=col, correction=correction) for col in settings.groupings}
    charted = by[settings.facet] if settings.facet else estimates  # what the charts draw and changes compare
    consecutive, first_last = comparisons(list(charted))
    consecutive = changes_frame(charted, consecutive, codebook, settings.ci)
    first_last = changes_frame(charted, first_last, codebook, settings.ci)
    periods = [key[0] for key in estimates]
    summary = {
        "period": settings.period, "years_per_period": settings.years_per_period, "pooling": pooling,
        "measure": settings.measure, "facet": settings.facet or None,
        "resamples": settings.resamples, "seed": settings.seed, "ci": settings.ci, "codebook_hash": codebook.hash,
        "documents": len(counts.docs), "body_paragraphs": len(body),
        "documents_in_periods": int(dating.get("dated", 0)),
        "excluded_undated": int(dating.get("undated", 0)),
        "excluded_year_only": int(dating.get("year_only", 0)),
        "periods": len(periods), "first_period": periods[0], "last_period": periods[-1],
        "missing_periods": sorted(set(period_range(periods[0], periods[-1])) - set(periods)),
        "periods_without_interval": sum(e.n_docs < MIN_DOCS_FOR_INTERVAL for e in charted.values()),
        "correction": _describe(correction, codebook),
    }
    return Trends(
        documents=document_shares(counts, codebook),
        periods=shares_frame(estimates, ["period"], codebook, settings.ci),
        changes=consecutive,
        top=top_changes(first_last, consecutive, settings.top_k_changes),
        by={col: shares_frame(group, [col, "period"], codebook, settings.ci) for col, group in by.items()},
        summary=summary)


def correction_for(settings: TrendsSettings, model_dir: str | Path, codebook: Codebook) -> Correction | None:
    """The correction `settings.correction` asks for, with the error measured for the model in `model_dir`."""
    if settings.correction == "none":
        return None
    if settings.correction == "acc" or (settings.correction == "auto" and Path(settings.audit_rates).is_file()):
        return Correction.drawn(settings, rates=load_error_rates(model_dir, codebook.ids, settings.audit_rates))
    try:
        return Correction.drawn(settings, intercept_se=load_calibration_se(model_dir, codebook.ids))
    except ModelError as err:
        if settings.correction == "pcc":
            raise
        log.warning("trends: shares are not error-corrected: %s", err)  # auto, with a model never calibrated
        return None


def _describe(correction: Correction | None, codebook: Codebook) -> dict | None:
    if correction is None:
        return None
    if correction.method == "pcc":
        return {"name": "pcc", "method": "calibrated probability averaging",
                "intercept_se": dict(zip(codebook.ids, correction.intercept_se.round(4).tolist()))}
    rates = correction.rates
    return {"name": "acc", "method": "adjusted classify-and-count", "error_rates": rates.origin,
            "tpr": dict(zip(codebook.ids, rates.tpr.round(4).tolist())),
            "fpr": dict(zip(codebook.ids, rates.fpr.round(4).tolist()))}


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Shares to 4 decimals: stable, readable CSVs (DVC diffs them)."""
    return frame.round({c: 4 for c in ("share", "lo", "hi", "share_raw", "share_from", "share_to", "change",
                                        "share_paragraphs", "share_chars", "any_share", "any_lo", "any_hi")})


def plot_rows(periods: pd.DataFrame) -> pd.DataFrame:
    """The DVC plot data: period, theme (the readable label, which the template colours by), share, lo, hi,
    n_docs — with empty rows for periods without documents, so the plotted lines break there."""
    labels = periods.drop_duplicates("theme")["label"]
    every = period_range(periods["period"].min(), periods["period"].max()) if len(periods) else []
    full = pd.MultiIndex.from_product([every, labels], names=["period", "label"])
    plot = periods.set_index(["period", "label"])[["share", "lo", "hi", "n_docs"]].reindex(full).reset_index()
    return plot.rename(columns={"label": "theme"}).astype({"n_docs": "Int64"})


def write(trends: Trends, out_dir: str | Path = OUT_DIR) -> None:
    """Write the tables under `out_dir`/tables, the DVC plot data and trends_summary.json."""
    tables = Path(out_dir) / "tables"
    io.write_parquet(tables / "doc_theme_shares.parquet", trends.documents)
    io.write_csv(tables / "doc_theme_shares.csv", _rounded(trends.documents))
    io.write_csv(tables / "period_theme_shares.csv", _rounded(trends.periods))
    io.write_csv(tables / "period_changes.csv", _rounded(trends.changes))
    io.write_csv(tables / "top_changes.csv", _rounded(trends.top))
    for col, frame in trends.by.items():
        io.write_csv(tables / f"by_{col}.csv", _rounded(frame))
    io.write_csv(Path(out_dir) / "plots" / "theme_shares.csv", _rounded(plot_rows(trends.periods)))
    io.write_json(Path(out_dir) / "trends_summary.json", trends.summary)


def run(settings: TrendsSettings, paragraphs_path: str | Path = PARAGRAPHS,
        themes_path: str | Path = PARAGRAPH_THEMES, out_dir: str | Path = OUT_DIR) -> Trends:
    """The DVC stage: paragraphs + paragraph themes → tables and plot data under `out_dir`."""
    codebook = load_codebook()
    body = load_inputs(paragraphs_path, themes_path, codebook, settings.groupings)
    model_dir = body["model"].iloc[0] if "model" in body and len(body) else "models/default"
    trends = compute(body, settings, codebook, correction_for(settings, model_dir, codebook))
    trends.summary["model"] = str(model_dir)
    write(trends, out_dir)
    s = trends.summary
    log.info("trends: %d documents, %d in %d %s periods (%s … %s); left out: %d undated, %d dated by year "
             "only → %s", s["documents"], s["documents_in_periods"], s["periods"], s["period"],
             s["first_period"], s["last_period"], s["excluded_undated"], s["excluded_year_only"], out_dir)
    return trends


def example_paragraphs(body: pd.DataFrame, theme: str, n: int = 5, period: str | None = None,
                       settings: TrendsSettings | None = None) -> pd.DataFrame:
    """The `n` body paragraphs (from `load_inputs`) scoring highest on `theme` among those assigned
    it, optionally only in `period` (a label of `settings.period`, e.g. '2019', or of pooled years, e.g.
    '2015–2019', which is how trends labels them when `pool: auto` pooled years)."""
    settings = settings or TrendsSettings()
    rows = body[body["themes"].map(lambda assigned: theme in assigned)]
    if period is not None:
        first, _, last = str(period).partition("–")
        width = int(last) - int(first) + 1 if last else 1
        labels = period_labels(rows["date"], rows["year"], settings.period, width)[0]
        rows = rows[labels == period]
    columns = ["doc_id", "title", "date", "heading_path", theme, "text"]
    return rows.nlargest(n, theme)[columns].rename(columns={theme: "score"}).reset_index(drop=True)
