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

A period needs a date: undated documents are left out of every period table, and a quarter or month
needs a month, so documents dated only by year are left out of quarterly and monthly tables. Both are
counted in `reports/trends_summary.json`.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.codebook import Codebook, load_codebook

log = logging.getLogger("pipeline.trends")

PARAGRAPHS = "data/interim/paragraphs.parquet"
PARAGRAPH_THEMES = "data/processed/paragraph_themes.parquet"
OUT_DIR = "reports"
PERIODS = ("year", "quarter", "month")
MEASURES = ("paragraphs", "chars")
GROUPINGS = ("doc_type", "source")
MIN_DOCS_FOR_INTERVAL = 2  # see the module docstring
UNKNOWN = "unknown"  # the group of documents whose doc_type / source is missing
DOC_COLUMNS = ["doc_id", "title", "date", "year", "doc_type", "source"]
CHANGE_COLUMNS = ["from_period", "to_period", "n_docs_from", "n_docs_to", "theme", "label", "share_from",
                  "share_to", "change", "lo", "hi", "ci_excludes_zero"]
_DATE = r"^(?P<year>\d{4})(?:-(?P<month>\d{2}))?"


@dataclass
class TrendsSettings:
    period: str = "year"  # year | quarter | month
    years_per_period: int = 1  # with period year: bins of this many years (5 → 1980–1984, 1985–1989 …)
    measure: str = "paragraphs"  # paragraphs | chars: what a period's share counts
    resamples: int = 1000  # bootstrap resamples of the documents within each period
    seed: int = 2024
    ci: float = 0.95  # confidence level of every interval
    by: list[str] = field(default_factory=lambda: list(GROUPINGS))  # period tables per doc_type / source
    top_k_changes: int = 3  # themes listed as rising and as falling, per comparison

    def __post_init__(self):
        checks = [
            (self.period in PERIODS, "period", f"one of {list(PERIODS)}"),
            (self.years_per_period == 1 or (self.period == "year" and self.years_per_period > 1),
             "years_per_period", "1, or more with period: year"),
            (self.measure in MEASURES, "measure", f"one of {list(MEASURES)}"),
            (isinstance(self.resamples, int) and self.resamples >= 100, "resamples", "an integer ≥ 100"),
            (0 < self.ci < 1, "ci", "a level in (0, 1), e.g. 0.95"),
            (set(self.by) <= set(GROUPINGS), "by", f"a subset of {list(GROUPINGS)}"),
            (self.top_k_changes >= 1, "top_k_changes", "≥ 1"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ValueError(f"params.yaml: trends.{key} = {getattr(self, key)!r}; expected {expected}")


# ---------------------------------------------------------------------------------------------- inputs

def load_inputs(paragraphs_path: str | Path = PARAGRAPHS, themes_path: str | Path = PARAGRAPH_THEMES,
                codebook: Codebook | None = None) -> pd.DataFrame:
    """Body paragraphs with their document's metadata, theme scores and `themes` (one row each).

    Raises ValueError, naming the file and the fix, when predictions are missing for a body paragraph
    or name a theme the codebook does not know.
    """
    codebook = codebook or load_codebook()
    paragraphs = pd.read_parquet(paragraphs_path, columns=[
        "para_id", "order", "kind", "heading_path", "text", "n_chars", *DOC_COLUMNS])
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


# ---------------------------------------------------------------------------------- document shares

@dataclass
class DocumentCounts:
    """Per document: metadata (`docs`, one row each) and body counts per theme (rows match `docs`)."""

    docs: pd.DataFrame  # DOC_COLUMNS, period, dating, n_paragraphs, n_chars
    theme_paragraphs: np.ndarray  # (n_docs, n_themes) body paragraphs that carry the theme
    theme_chars: np.ndarray  # (n_docs, n_themes) characters of those paragraphs
    themes: list[str]

    def counts(self, measure: str) -> tuple[np.ndarray, np.ndarray]:
        """(numerators (n_docs, n_themes), denominators (n_docs,)) of the shares `measure` counts."""
        if measure == "paragraphs":
            return self.theme_paragraphs, self.docs["n_paragraphs"].to_numpy(float)
        return self.theme_chars, self.docs["n_chars"].to_numpy(float)


def document_counts(body: pd.DataFrame, themes: list[str], settings: TrendsSettings) -> DocumentCounts:
    """Aggregate body paragraphs (from `load_inputs`) to documents, in order of first appearance."""
    hits = np.zeros((len(body), len(themes)), dtype=float)
    assigned = body["themes"].explode().dropna()
    column = {t: j for j, t in enumerate(themes)}
    hits[body.index.get_indexer(assigned.index), assigned.map(column).to_numpy(int)] = 1.0
    codes, _ = pd.factorize(body["doc_id"])
    n_chars = body["n_chars"].to_numpy(float)
    docs = body.groupby(codes, sort=True).agg(
        **{c: (c, "first") for c in DOC_COLUMNS}, n_paragraphs=("para_id", "size"),
        n_chars=("n_chars", "sum")).reset_index(drop=True)
    period_label, dating = period_labels(docs["date"], docs["year"], settings.period,
                                         settings.years_per_period)
    docs.insert(len(DOC_COLUMNS), "period", period_label)
    docs.insert(len(DOC_COLUMNS) + 1, "dating", dating)
    theme_paragraphs = pd.DataFrame(hits).groupby(codes, sort=True).sum().to_numpy()
    theme_chars = pd.DataFrame(hits * n_chars[:, None]).groupby(codes, sort=True).sum().to_numpy()
    return DocumentCounts(docs, theme_paragraphs, theme_chars, themes)


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
    share: np.ndarray  # (n_themes,)
    draws: np.ndarray  # (resamples, n_themes)


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


def estimate(counts: DocumentCounts, rows: np.ndarray, settings: TrendsSettings, key: str) -> Estimate:
    """Shares of documents `rows` (positions in counts.docs); `key` names the group in the seed."""
    numerators, denominators = counts.counts(settings.measure)
    numerators, denominators = numerators[rows], denominators[rows]
    rng = np.random.default_rng([settings.seed, zlib.crc32(key.encode("utf-8"))])
    docs = counts.docs.iloc[rows]
    return Estimate(len(rows), int(docs["n_paragraphs"].sum()), int(docs["n_chars"].sum()),
                    numerators.sum(axis=0) / denominators.sum(),
                    bootstrap(numerators, denominators, settings.resamples, rng))


def period_estimates(counts: DocumentCounts, settings: TrendsSettings,
                     by: str | None = None) -> dict[tuple[str, ...], Estimate]:
    """Estimates per period (keys `(period,)`) or per group and period (keys `(group, period)`),
    in sorted order, over dated documents only."""
    dated = counts.docs[counts.docs["period"].notna()]
    keys = [dated[by].fillna(UNKNOWN), dated["period"]] if by else [dated["period"]]
    estimates = {}
    for key, rows in dated.groupby(keys, sort=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        estimates[key] = estimate(counts, dated.index[rows].to_numpy(), settings, "|".join(key))
    return estimates


def _interval(draws: np.ndarray, ci: float, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    if n_docs < MIN_DOCS_FOR_INTERVAL:
        return np.full(draws.shape[1], np.nan), np.full(draws.shape[1], np.nan)
    lo, hi = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return lo, hi


def shares_frame(estimates: dict[tuple[str, ...], Estimate], key_names: list[str], codebook: Codebook,
                 ci: float) -> pd.DataFrame:
    """Long table: key columns, theme, label, share, lo, hi, n_docs, n_paragraphs, n_chars."""
    rows = []
    for key, est in estimates.items():
        lo, hi = _interval(est.draws, ci, est.n_docs)
        for j, theme in enumerate(codebook.ids):
            rows.append({**dict(zip(key_names, key)), "theme": theme, "label": codebook[theme].label,
                         "share": est.share[j], "lo": lo[j], "hi": hi[j], "n_docs": est.n_docs,
                         "n_paragraphs": est.n_paragraphs, "n_chars": est.n_chars})
    columns = [*key_names, "theme", "label", "share", "lo", "hi", "n_docs", "n_paragraphs", "n_chars"]
    return pd.DataFrame(rows, columns=columns)


def change(before: Estimate, after: Estimate, ci: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(change, lo, hi) per theme from `before` to `after`, the interval from independent draws."""
    lo, hi = _interval(after.draws - before.draws, ci, min(before.n_docs, after.n_docs))
    return after.share - before.share, lo, hi


def changes_frame(estimates: dict[tuple[str, ...], Estimate], pairs: list[tuple[str, str]],
                  codebook: Codebook, ci: float) -> pd.DataFrame:
    """Long table: from_period, to_period, n_docs_from, n_docs_to, theme, label, share_from, share_to,
    change, lo, hi, ci_excludes_zero — one row per theme for each (from, to) pair of periods."""
    rows = []
    for before, after in pairs:
        b, a = estimates[(before,)], estimates[(after,)]
        delta, lo, hi = change(b, a, ci)
        for j, theme in enumerate(codebook.ids):
            rows.append({"from_period": before, "to_period": after, "n_docs_from": b.n_docs,
                         "n_docs_to": a.n_docs, "theme": theme, "label": codebook[theme].label,
                         "share_from": b.share[j], "share_to": a.share[j], "change": delta[j],
                         "lo": lo[j], "hi": hi[j], "ci_excludes_zero": bool(lo[j] > 0 or hi[j] < 0)})
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def top_changes(first_to_last: pd.DataFrame, consecutive: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k themes that rose most and the k that fell most from the first to the last period, and
    the k largest rises and falls between consecutive periods."""
    picked = []
    for comparison, frame in (("first_to_last", first_to_last), ("consecutive", consecutive)):
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


def compute(body: pd.DataFrame, settings: TrendsSettings, codebook: Codebook | None = None) -> Trends:
    """All trend tables from the body paragraphs of `load_inputs`.

    Raises ValueError when no document has a date usable for `settings.period`.
    """
    codebook = codebook or load_codebook()
    counts = document_counts(body, codebook.ids, settings)
    dating = counts.docs["dating"].value_counts()
    estimates = period_estimates(counts, settings)
    if not estimates:
        raise ValueError(f"trends: no document has a date usable for period={settings.period!r} "
                         f"({int(dating.get('year_only', 0))} dated by year only, "
                         f"{int(dating.get('undated', 0))} undated); set trends.period: year in params.yaml "
                         "or add dates (ingest metadata)")
    periods = [key[0] for key in estimates]
    consecutive = changes_frame(estimates, list(zip(periods, periods[1:])), codebook, settings.ci)
    first_last = changes_frame(estimates, [(periods[0], periods[-1])] if len(periods) > 1 else [],
                               codebook, settings.ci)
    summary = {
        "period": settings.period, "years_per_period": settings.years_per_period, "measure": settings.measure,
        "resamples": settings.resamples, "seed": settings.seed, "ci": settings.ci, "codebook_hash": codebook.hash,
        "documents": len(counts.docs), "body_paragraphs": len(body),
        "documents_in_periods": int(dating.get("dated", 0)),
        "excluded_undated": int(dating.get("undated", 0)),
        "excluded_year_only": int(dating.get("year_only", 0)),
        "periods": len(periods), "first_period": periods[0], "last_period": periods[-1],
    }
    return Trends(
        documents=document_shares(counts, codebook),
        periods=shares_frame(estimates, ["period"], codebook, settings.ci),
        changes=consecutive,
        top=top_changes(first_last, consecutive, settings.top_k_changes),
        by={col: shares_frame(period_estimates(counts, settings, by=col), [col, "period"], codebook,
                              settings.ci) for col in settings.by},
        summary=summary)


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Shares to 4 decimals: stable, readable CSVs (DVC diffs them)."""
    return frame.round({c: 4 for c in ("share", "lo", "hi", "share_from", "share_to", "change",
                                        "share_paragraphs", "share_chars")})


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
    # DVC plots colour lines by file/revision, not by a column: `theme` holds the readable label.
    plot = trends.periods[["period", "label", "share", "lo", "hi"]].rename(columns={"label": "theme"})
    io.write_csv(Path(out_dir) / "plots" / "theme_shares.csv", _rounded(plot))
    io.write_json(Path(out_dir) / "trends_summary.json", trends.summary)


def run(settings: TrendsSettings, paragraphs_path: str | Path = PARAGRAPHS,
        themes_path: str | Path = PARAGRAPH_THEMES, out_dir: str | Path = OUT_DIR) -> Trends:
    """The DVC stage: paragraphs + paragraph themes → tables and plot data under `out_dir`."""
    codebook = load_codebook()
    trends = compute(load_inputs(paragraphs_path, themes_path, codebook), settings, codebook)
    write(trends, out_dir)
    s = trends.summary
    log.info("trends: %d documents, %d in %d %s periods (%s … %s); left out: %d undated, %d dated by year "
             "only → %s", s["documents"], s["documents_in_periods"], s["periods"], s["period"],
             s["first_period"], s["last_period"], s["excluded_undated"], s["excluded_year_only"], out_dir)
    return trends


def example_paragraphs(body: pd.DataFrame, theme: str, n: int = 5, period: str | None = None,
                       settings: TrendsSettings | None = None) -> pd.DataFrame:
    """The `n` body paragraphs (from `load_inputs`) scoring highest on `theme` among those assigned
    it, optionally only in `period` (a label as `settings` make them, e.g. '2019')."""
    settings = settings or TrendsSettings()
    rows = body[body["themes"].map(lambda assigned: theme in assigned)]
    if period is not None:
        labels = period_labels(rows["date"], rows["year"], settings.period, settings.years_per_period)[0]
        rows = rows[labels == period]
    columns = ["doc_id", "title", "date", "heading_path", theme, "text"]
    return rows.nlargest(n, theme)[columns].rename(columns={theme: "score"}).reset_index(drop=True)
