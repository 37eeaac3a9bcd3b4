"""The report stage: one static, offline HTML page (reports/index.html) for the people who read the
results — findings first, then the evidence behind every number, then how good the model is, then the
corpus and the provenance of the results.

Evidence is one click away: a theme × period cell (of the shares tables, in the page's own heat-map
colours) opens the paragraphs behind it, sorted by score, with their heading path, document and date;
a document's theme cell opens its paragraphs of that theme; a document's title opens its page (its
metadata and paragraphs with their themes and scores, at `#doc=<doc_id>`); a KWIC box searches the
paragraphs for words (variants separated by |) or a regular expression. The paragraph data are
embedded as JSON in the page and read by a small script (pipeline/resources/report.js); a corpus of at
most `embed_all_max_chars` characters is embedded whole, a larger one only by the `cell_paragraphs`
highest-scoring paragraphs of each cell (the page says so). Charts are embedded PNGs, and the Chinese
text is set in a subset of Noto Sans CJK SC (only the characters the page uses), embedded as a web
font, so the page reads the same on a machine without Chinese fonts.

Its summaries (`corpus_stats`, `document_outline`, `evaluation_tables`, `provenance`) and the error
analysis helpers (`available_models`, `score_test_set`, `disagreements`) are also what the notebooks
call. Every path is relative to a `root` laid out like the repository.
"""
from __future__ import annotations

import base64
import html
import io as stdio
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.charts import MODEL_FIGURES, RELIABILITY, TREND_FIGURES, cjk_font_path
from pipeline.codebook import Codebook, load_codebook
from pipeline.config import Settings, setting
from pipeline.text import frame_contexts
from pipeline.trends import ALL, UNKNOWN, period_labels, period_range

log = logging.getLogger("pipeline.report")
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)  # it logs every table it subsets at INFO

DOCUMENTS = "data/interim/documents.parquet"
PARAGRAPHS = "data/interim/paragraphs.parquet"
INGEST_REPORT = "data/interim/ingest_report.json"
REJECTED = "data/interim/rejected.csv"
PARAGRAPH_THEMES = "data/processed/paragraph_themes.parquet"
TEST_SET = "data/processed/test.parquet"
EVALUATE = "metrics/evaluate.json"
MODELS_DIR = "models"
TABLES = "reports/tables"
FIGURES_DIR = "reports/figures"
TRENDS_SUMMARY = "reports/trends_summary.json"
OUT = "reports/index.html"
RESOURCES = Path(__file__).parent / "resources"
MAX_REJECTED_ROWS = 50  # the page lists at most this many rejected files; rejected.csv has them all
FONT_FAMILY = "Report Sans CJK"  # the embedded subset's family name (report.css asks for it)
CELL_KEY = "\u001f"  # joins group, theme and period in the embedded cell keys, as report.js does


@dataclass
class ReportSettings(Settings):
    title: str = setting("党建文本主题分析报告", nonempty=True)
    cell_paragraphs: int = setting(20, ge=1)  # paragraphs embedded per theme × period cell, highest scores first
    embed_all_max_chars: int = setting(2_000_000, ge=0)  # a corpus up to this size is embedded whole
    examples_per_theme: int = setting(3, ge=1)  # example paragraphs shown under each theme


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


# ------------------------------------------------------------------------------------------ summaries

def corpus_stats(root: str | Path = ".") -> dict:
    """Documents, paragraphs, headings, years, doc types, sources, heading depths and — when
    ingest_report.json / rejected.csv exist — junk lines removed, duplicates and rejected files."""
    root = Path(root)
    documents = pd.read_parquet(root / DOCUMENTS, columns=["doc_id", "date", "year", "doc_type", "source",
                                                           "n_chars"])
    paragraphs = pd.read_parquet(root / PARAGRAPHS, columns=["kind", "level"])
    years = pd.to_numeric(documents["year"], errors="coerce").dropna().astype(int)
    headings = paragraphs[paragraphs["kind"] == "heading"]
    dating = period_labels(documents["date"], documents["year"], "month")[1].value_counts()
    ingest = _read_json(root / INGEST_REPORT)
    rejected = pd.read_csv(root / REJECTED) if (root / REJECTED).is_file() else None
    return {
        "documents": len(documents),
        "characters": int(documents["n_chars"].sum()),
        "body_paragraphs": int((paragraphs["kind"] == "body").sum()),
        "headings": len(headings),
        "first_year": int(years.min()) if len(years) else None,
        "last_year": int(years.max()) if len(years) else None,
        "with_month": int(dating.get("dated", 0)),
        "with_year_only": int(dating.get("year_only", 0)),
        "undated": int(dating.get("undated", 0)),
        "doc_types": documents["doc_type"].fillna("unknown").value_counts().to_dict(),
        "sources": documents["source"].fillna("unknown").value_counts().to_dict(),
        "heading_depths": {int(k): int(v) for k, v in headings["level"].value_counts().sort_index().items()},
        "ingest": ingest,
        "rejected_files": rejected.to_dict("records") if rejected is not None else [],
    }


def document_outline(paragraphs: pd.DataFrame, doc_id: str) -> str:
    """The recovered outline of one document: its headings, indented by level, one per line."""
    headings = paragraphs[(paragraphs["doc_id"] == doc_id) & (paragraphs["kind"] == "heading")]
    headings = headings.sort_values("order")
    return "\n".join("  " * max(int(level) - 1, 0) + text
                     for level, text in zip(headings["level"], headings["text"]))


def evaluation_tables(evaluation: dict, codebook: Codebook) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per method: micro/macro F1 with their CIs where given, top-1 accuracy, test size;
    one row per theme: support and each method's 'F1 [lo, hi]')."""
    methods = evaluation.get("methods", {})
    summary = pd.DataFrame([{"method": m, "micro_f1": _with_ci(r.get("micro_f1"), r.get("micro_f1_ci")),
                             "macro_f1": _with_ci(r.get("macro_f1"), r.get("macro_f1_ci")),
                             "top1_accuracy": r.get("top1_accuracy"), "n_test": r.get("n_test")}
                            for m, r in methods.items()],
                           columns=["method", "micro_f1", "macro_f1", "top1_accuracy", "n_test"])
    rows = []
    for theme in codebook.ids:
        row = {"theme": codebook[theme].label, "support": 0}
        for method, result in methods.items():
            scores = result.get("per_theme", {}).get(theme) or {}
            row["support"] = max(row["support"], scores.get("support", 0))
            row[method] = _with_ci(scores.get("f1"), scores.get("f1_ci"))
        rows.append(row)
    return summary, pd.DataFrame(rows, columns=["theme", "support", *methods])


def _with_ci(value: float | None, ci: list | None) -> str:
    """'0.71 [0.65, 0.77]', or '0.71' without an interval, or '—' without a value."""
    if value is None:
        return "—"
    return f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def provenance(root: str | Path = ".", codebook: Codebook | None = None) -> dict:
    """Which model(s) produced the paragraph themes, and the codebook hash each result was made with
    next to the current one; `consistent` is False when they differ."""
    from pipeline.classifiers.base import ModelError, read_card

    root = Path(root)
    codebook = codebook or load_codebook()
    themes = pd.read_parquet(root / PARAGRAPH_THEMES, columns=["model", "method"])
    models = []
    for model_dir, method in themes.drop_duplicates().itertuples(index=False):
        try:
            trained_with = read_card(root / model_dir).get("codebook_hash")
        except ModelError:
            trained_with = None  # the model directory is not here (e.g. predictions copied from elsewhere)
        models.append({"model": model_dir, "method": method, "codebook_hash": trained_with})
    evaluation_hash = (_read_json(root / EVALUATE) or {}).get("codebook_hash")
    trends_hash = (_read_json(root / TRENDS_SUMMARY) or {}).get("codebook_hash")
    known = [h for h in [*(m["codebook_hash"] for m in models), evaluation_hash, trends_hash] if h]
    return {"codebook": codebook.path, "codebook_hash": codebook.hash, "models": models,
            "evaluation_codebook_hash": evaluation_hash, "trends_codebook_hash": trends_hash,
            "consistent": all(h == codebook.hash for h in known)}


# -------------------------------------------------------------------- error analysis (notebooks/02)

def available_models(root: str | Path = ".") -> dict[str, Path]:
    """method → saved model directory, for each of models/<method> that holds a model.json."""
    from pipeline.classifiers import METHODS
    from pipeline.classifiers.base import MODEL_CARD

    root = Path(root)
    return {m: root / MODELS_DIR / m for m in METHODS if (root / MODELS_DIR / m / MODEL_CARD).is_file()}


def score_test_set(test: pd.DataFrame, model_dirs: dict[str, Path],
                   codebook: Codebook | None = None) -> dict[str, list[list[str]]]:
    """method → predicted themes of each test paragraph, from each saved model in `model_dirs`."""
    from pipeline.classifiers.base import load_model

    texts, contexts = test["text"].tolist(), frame_contexts(test)
    return {method: load_model(directory, codebook).predict(texts, contexts)[1]
            for method, directory in model_dirs.items()}


def disagreements(test: pd.DataFrame | None, predictions: dict[str, list[list[str]]],
                  codebook: Codebook) -> pd.DataFrame:
    """One row per (test paragraph, theme, method) where the method disagrees with gold: `error` is
    'missed' (gold has the theme, the model not) or 'spurious' (the reverse). Empty without predictions."""
    columns = ["method", "id", "doc_id", "theme", "label", "error", "text"]
    if not predictions:
        return pd.DataFrame(columns=columns)
    gold = test[codebook.ids].to_numpy() >= 0.5
    ids = np.array(codebook.ids)
    frames = []
    for method, themes in predictions.items():
        predicted = np.array([[t in assigned for t in codebook.ids] for assigned in themes], dtype=bool)
        rows, cols = np.nonzero(gold != predicted)
        frames.append(pd.DataFrame({
            "method": method, "id": test["id"].to_numpy()[rows], "doc_id": test["doc_id"].to_numpy()[rows],
            "theme": ids[cols], "label": [codebook[t].label for t in ids[cols]],
            "error": np.where(gold[rows, cols], "missed", "spurious"), "text": test["text"].to_numpy()[rows]}))
    return pd.concat(frames, ignore_index=True)[columns]


# ----------------------------------------------------------------------------------- embedded evidence

@dataclass
class Evidence:
    """What the page embeds for its script: documents, paragraphs, and the cells that point into them."""

    docs: pd.DataFrame  # one row per document in date order: DOC_FIELDS[:-1] and a share column per theme
    paras: pd.DataFrame  # embedded paragraphs in document order: doc (row of docs), order, level, heading_path,
    #                      text, themes (theme ids), scores (calibrated probability per theme) — headings too
    cells: dict[str, dict]  # CELL_KEY-joined group, theme, period → n (paragraphs with the theme), paras (rows)
    examples: dict[str, list[int]]  # theme → rows of paras, the highest-scoring paragraphs of the theme
    complete: bool  # every paragraph of every document is embedded
    facet: str | None


DOC_FIELDS = ["id", "title", "date", "doc_type", "source", "period", "group", "n_paragraphs", "shares"]
PARA_FIELDS = ["doc", "order", "level", "heading_path", "text", "themes", "scores"]


def load_evidence(root: str | Path, settings: ReportSettings, codebook: Codebook, summary: dict) -> Evidence:
    """The documents and paragraphs behind the trend tables (reports/tables/doc_theme_shares.parquet gives
    each document's period and facet group as trends computed them), bounded as ReportSettings say."""
    root = Path(root)
    facet = summary.get("facet")
    share_column = "share_chars" if summary.get("measure") == "chars" else "share_paragraphs"
    shares = pd.read_parquet(root / TABLES / "doc_theme_shares.parquet")
    docs = shares.drop_duplicates("doc_id").set_index("doc_id")
    docs = docs.assign(group=docs[facet].fillna(UNKNOWN).astype(str) if facet else ALL)
    docs = docs[["title", "date", "year", "doc_type", "source", "period", "group", "n_paragraphs"]].join(
        shares.pivot(index="doc_id", columns="theme", values=share_column)[codebook.ids])
    when = docs["date"].fillna(docs["year"].astype("string")).fillna("9999")  # undated documents last
    docs = docs.assign(_when=when).sort_values(["_when", "title"]).drop(columns="_when")

    paragraphs = pd.read_parquet(root / PARAGRAPHS, columns=["para_id", "doc_id", "order", "kind", "level",
                                                             "heading_path", "text", "n_chars"])
    themes = pd.read_parquet(root / PARAGRAPH_THEMES, columns=["para_id", "themes", *codebook.ids])
    paras = paragraphs[paragraphs["doc_id"].isin(docs.index)].merge(themes, on="para_id", how="left")
    paras["rank"] = paras["doc_id"].map(pd.Series(range(len(docs)), index=docs.index))
    paras = paras.sort_values(["rank", "order"]).reset_index(drop=True)

    # one row per (body paragraph, theme it carries), highest score first
    body = paras[paras["kind"] == "body"]
    assigned = body[["para_id", "doc_id", "themes"]].explode("themes").dropna(subset=["themes"])
    scores = body[codebook.ids].to_numpy(float)
    column = {t: j for j, t in enumerate(codebook.ids)}
    assigned["score"] = scores[body.index.get_indexer(assigned.index), assigned["themes"].map(column).to_numpy(int)]
    assigned = assigned.sort_values(["score", "para_id"], ascending=[False, True])
    examples = {t: rows["para_id"].head(settings.examples_per_theme).tolist()
                for t, rows in assigned.groupby("themes", sort=False)}
    dated = assigned.assign(period=assigned["doc_id"].map(docs["period"]), group=ALL)
    dated = dated[dated["period"].notna()]
    if facet:
        dated = pd.concat([dated, dated.assign(group=dated["doc_id"].map(docs["group"]))])
    cells = {CELL_KEY.join(key): {"n": len(rows), "paras": rows["para_id"].head(settings.cell_paragraphs).tolist()}
             for key, rows in dated.groupby(["group", "themes", "period"], sort=True)}

    complete = int(paras["n_chars"].sum()) <= settings.embed_all_max_chars
    if not complete:
        kept = {p for cell in cells.values() for p in cell["paras"]} | {p for e in examples.values() for p in e}
        kept_docs = set(paras.loc[paras["para_id"].isin(kept), "doc_id"])
        # the kept paragraphs, and the headings of their documents (their outline)
        paras = paras[paras["para_id"].isin(kept) | ((paras["kind"] == "heading") & paras["doc_id"].isin(kept_docs))]
        docs = docs[docs.index.isin(kept_docs)]
        paras = paras.reset_index(drop=True)
    row_of = pd.Series(range(len(paras)), index=paras["para_id"])
    paras = paras.assign(doc=paras["doc_id"].map(pd.Series(range(len(docs)), index=docs.index)),
                         level=np.where(paras["kind"] == "heading", paras["level"].clip(lower=1), 0))
    return Evidence(
        docs=docs.reset_index().rename(columns={"doc_id": "id"}),
        paras=paras,
        cells={key: {"n": cell["n"], "paras": row_of[cell["paras"]].tolist()} for key, cell in cells.items()},
        examples={t: row_of[ids].tolist() for t, ids in examples.items()},
        complete=complete, facet=facet)


def _value(value):
    """A JSON value: None for missing (NaN is not JSON), plain Python numbers."""
    if pd.isna(value):  # None, NaN, pd.NA, NaT
        return None
    return value.item() if isinstance(value, np.generic) else value


def _permille(values) -> list[int]:
    return [int(round(1000 * float(v))) if pd.notna(v) else 0 for v in values]


CELL_NOTES = {  # how the share of a cell relates to the paragraphs it lists, per trends correction
    "pcc": "份额是这一期全部正文段落的校准概率之平均；下面是模型判定带有该主题（得分超过阈值）的段落。",
    "acc": "份额是按模型的真假阳性率调整后的计数；下面是模型判定带有该主题（得分超过阈值）的段落。"}


def evidence_json(evidence: Evidence, codebook: Codebook, settings: ReportSettings,
                  correction: str | None = None) -> str:
    """The page's embedded data (report.js reads it): rows as arrays, fields named once; shares and
    scores in thousandths; `correction` (trends' pcc | acc | None) picks the note on what a cell lists.
    Safe inside <script>: every '<' is escaped."""
    ids = codebook.ids
    docs = [[_value(row[f]) for f in DOC_FIELDS[:-1]] + [_permille(row[t] for t in ids)]
            for _, row in evidence.docs.iterrows()]
    position = {t: j for j, t in enumerate(ids)}
    paras = []
    for row in evidence.paras.itertuples(index=False):
        heading = isinstance(row.themes, float) or row.kind == "heading"  # headings carry no prediction
        assigned = [] if heading else [position[t] for t in row.themes]
        paras.append([int(row.doc), int(row.order), int(row.level), " › ".join(row.heading_path), row.text,
                      assigned, [] if heading else _permille(getattr(row, t) for t in ids)])
    share_max = float(np.nanmax(evidence.docs[ids].to_numpy(float), initial=0.0))
    payload = {"themes": [{"id": t, "label": codebook[t].label, "name": codebook[t].name_zh} for t in ids],
               "doc_fields": DOC_FIELDS, "docs": docs, "para_fields": PARA_FIELDS, "paras": paras,
               "cells": evidence.cells, "cell_limit": settings.cell_paragraphs, "complete": evidence.complete,
               "facet": evidence.facet, "all_group": ALL, "doc_share_max": max(share_max, 0.05),
               "cell_note": CELL_NOTES.get(correction)}
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


# -------------------------------------------------------------------------------------------- the page

def font_face(text: str) -> str:
    """An @font-face rule embedding the subset of Noto Sans CJK SC that draws the characters of `text`:
    WOFF2 (brotli), or WOFF where brotli is not installed, base64 in a data URI."""
    from fontTools import subset

    try:
        import brotli  # noqa: F401  (fontTools compresses WOFF2 with it)
        flavor = "woff2"
    except ImportError:
        flavor = "woff"
    options = subset.Options()
    options.flavor = flavor
    options.layout_features = []  # horizontal Chinese needs no OpenType substitution; halves the subset
    options.name_IDs = ["*"]  # keep the copyright and SIL Open Font License records
    options.hinting = False
    font = subset.load_font(str(cjk_font_path()), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    buffer = stdio.BytesIO()
    subset.save_font(font, buffer, options)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'@font-face {{ font-family: "{FONT_FAMILY}"; font-display: block; '
            f'src: url(data:font/{flavor};base64,{data}) format("{flavor}"); }}')


def _table(frame: pd.DataFrame) -> str:
    """An escaped HTML table; numeric columns right-aligned, missing values as '—'."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]

    def cell(tag: str, value, is_numeric: bool) -> str:
        if value is None or (np.isscalar(value) and pd.isna(value)):
            value = "—"
        text = html.escape(f"{value:.3f}" if isinstance(value, float) else str(value))
        return f'<{tag} class="num">{text}</{tag}>' if is_numeric else f"<{tag}>{text}</{tag}>"

    header = "".join(cell("th", c, n) for c, n in zip(frame.columns, numeric))
    rows = "".join("<tr>" + "".join(cell("td", v, n) for v, n in zip(row, numeric)) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f'<div class="scroll"><table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div>'


def _pct(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.1f}%"


def _points(value: float) -> str:
    """A change of shares in percentage points, signed."""
    return "—" if pd.isna(value) else f"{100 * value:+.1f}"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _figures(root: Path, captions: dict[str, str]) -> str:
    return "".join(_figure(root / FIGURES_DIR / f"{name}.png", caption) for name, caption in captions.items()
                   if (root / FIGURES_DIR / f"{name}.png").is_file())


def _key_values(pairs: list[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _cell_link(text: str, group: str, theme: str, period: str) -> str:
    """A number that opens the paragraphs behind it (report.js handles [data-cell])."""
    return (f'<span class="cell" tabindex="0" data-cell data-group="{html.escape(group)}" '
            f'data-theme="{html.escape(theme)}" data-period="{html.escape(period)}">{html.escape(text)}</span>')


CORRECTION_NAMES = {"pcc": "经误差校正（校准概率平均）", "acc": "经误差校正（按真假阳性率调整的计数）",
                    None: "未经误差校正（分类计数）"}


def _findings_section(summary: dict, codebook: Codebook, top: pd.DataFrame | None, quality: dict | None,
                      used: str | None) -> str:
    correction = (summary.get("correction") or {}).get("name")
    measure = "字数" if summary.get("measure") == "chars" else "段落"
    span = (f"{summary['first_period']}–{summary['last_period']}" if summary.get("first_period") else "—")
    parts = ['<h2 id="findings">主要发现 Findings</h2>',
             f'<p class="lead">本报告分析 {summary.get("documents", "—")} 篇文档（{html.escape(span)}）的 '
             f'{summary.get("body_paragraphs", "—")} 段正文；模型 <code>{html.escape(str(used))}</code> 为每段标注九个'
             f"主题，主题份额按{measure}计算、{CORRECTION_NAMES.get(correction, CORRECTION_NAMES[None])}。"
             "点击任何份额即可查看其背后的段落。</p>"]
    items = []
    if top is not None and len(top):
        for row in top.itertuples(index=False):
            group = "" if row.group == ALL else f"（{html.escape(str(row.group))}）"
            direction = "上升" if row.change > 0 else "下降"
            items.append(
                f"<li><b>{html.escape(codebook[row.theme].label)}</b>{group}："
                f"{html.escape(row.from_period)} → {html.escape(row.to_period)} {direction} "
                f"{abs(100 * row.change):.1f} 个百分点（"
                f"{_cell_link(_pct(row.share_from), row.group, row.theme, row.from_period)} → "
                f"{_cell_link(_pct(row.share_to), row.group, row.theme, row.to_period)}；"
                f"95% 区间 [{_points(row.lo)}, {_points(row.hi)}]；文档 {row.n_docs_from} → {row.n_docs_to}）</li>")
        parts.append('<p>变化最大、且 95% 置信区间不含零的主题（首期→末期，以及相邻时期之间；每个方向的项数由 '
                     f'<code>trends.top_k_changes</code> 决定）：</p><ul class="findings">{"".join(items)}</ul>')
    else:
        parts.append('<p class="warn">没有任何时期间变化的 95% 置信区间排除零：就这些文档而言，'
                     "数据不足以断言某个主题的份额发生了变化。下面的图表仍显示各期的估计值及其区间。</p>")
    notes = []
    if summary.get("pooling"):
        pooling = summary["pooling"]
        notes.append(f"多数时期只有一篇文档，无法计算区间，因此自动把每 {pooling['years_per_period']} 年合并为一期"
                     f"（{html.escape(pooling['reason'])}；<code>trends.pool: off</code> 可关闭）。")
    if summary.get("missing_periods"):
        missing = "、".join(map(html.escape, summary["missing_periods"]))
        notes.append(f"以下时期没有文档，折线在此断开：{missing}。")
    if summary.get("periods_without_interval"):
        notes.append(f"{summary['periods_without_interval']} 个时期只有一篇文档，只有估计值，没有区间。")
    if summary.get("facet"):
        notes.append(f"趋势按 <code>{html.escape(summary['facet'])}</code> 分组计算，各组分别比较。")
    if quality:
        notes.append(quality["sentence"] + '；<a href="#model">模型质量</a>一节有分主题结果与校准。')
    if notes:
        parts.append('<ul class="note">' + "".join(f"<li>{n}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def _shares_table(frame: pd.DataFrame, codebook: Codebook, group: str, cells: dict) -> str:
    """Periods (rows; a period without documents is a hatched row) × themes: each share a heat-coloured
    cell that opens its paragraphs, with its interval and the classify-and-count share in the tooltip."""
    first, last = frame["period"].min(), frame["period"].max()
    top = max(float(frame["share"].max()), 0.05)
    header = "".join(f'<th class="num">{html.escape(codebook[t].label)}</th>' for t in codebook.ids)
    rows = []
    indexed = frame.set_index(["period", "theme"])
    for period in period_range(first, last):
        if (period, codebook.ids[0]) not in indexed.index:
            rows.append(f'<tr class="gap"><td>{html.escape(period)}</td><td class="num">0</td><td>—</td>'
                        f'<td colspan="{len(codebook.ids)}">无文档</td></tr>')
            continue
        first_row = indexed.loc[(period, codebook.ids[0])]
        tds = []
        for theme in codebook.ids:
            row = indexed.loc[(period, theme)]
            interval = "无区间（仅一篇文档）" if pd.isna(row["lo"]) else f"95% 区间 {_pct(row['lo'])}–{_pct(row['hi'])}"
            tip = (f"{codebook[theme].label} · {period}：{_pct(row['share'])}，{interval}；"
                   f"分类计数 {_pct(row['share_raw'])}")
            key = CELL_KEY.join([group, theme, period])
            attributes = (f' tabindex="0" data-cell data-group="{html.escape(group)}" data-theme="{theme}" '
                          f'data-period="{html.escape(period)}"' if key in cells else "")
            tds.append(f'<td class="num heat{" cell" if key in cells else ""}" style="--heat:{row["share"] / top:.3f}" '
                       f'title="{html.escape(tip)}"{attributes}>{_pct(row["share"])}</td>')
        any_theme = _pct(first_row["any_share"]) if "any_share" in first_row else "—"
        rows.append(f'<tr><td>{html.escape(period)}</td><td class="num">{int(first_row["n_docs"])}</td>'
                    f'<td class="num">{any_theme}</td>{"".join(tds)}</tr>')
    return (f'<div class="scroll"><table class="shares"><thead><tr><th>时期</th><th class="num">文档数</th>'
            f'<th class="num">带任一主题</th>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _trends_section(root: Path, codebook: Codebook, summary: dict, evidence: Evidence) -> str:
    parts = ['<h2 id="trends">主题趋势 Theme trends</h2>']
    if summary:
        measure = "段落" if summary["measure"] == "paragraphs" else "字数"
        span = f"（每期 {summary['years_per_period']} 年）" if summary.get("years_per_period", 1) > 1 else ""
        parts.append(
            f'<p class="note">时期 period = {summary["period"]}{span}，份额按{measure}计算；'
            f"{summary['documents_in_periods']} / {summary['documents']} 篇文档计入时期表（未计入：无日期 "
            f"{summary['excluded_undated']} 篇，仅有年份而时期需要月份 {summary['excluded_year_only']} 篇）。"
            f"置信区间 {summary['ci']:.0%}：在每个时期内按文档自助重抽样 {summary['resamples']} 次。</p>")
    parts.append(_figures(root, {k: v for k, v in TREND_FIGURES.items() if k != "document_heatmap"}))
    parts.append('<h3>各时期主题份额 Theme shares by period</h3><p class="note">颜色越深份额越高；'
                 "点击一格，查看这一期带该主题的段落（按得分排序）。鼠标悬停显示 95% 区间和未校正的分类计数份额。</p>")
    periods_path = root / TABLES / "period_theme_shares.csv"
    if periods_path.is_file():
        periods = pd.read_csv(periods_path, dtype={"period": str})
        parts.append("<h3>全部文档</h3>" + _shares_table(periods, codebook, ALL, evidence.cells))
    facet = summary.get("facet")
    if facet and (root / TABLES / f"by_{facet}.csv").is_file():
        groups = pd.read_csv(root / TABLES / f"by_{facet}.csv", dtype={"period": str, facet: str})
        for group, frame in groups.groupby(facet, sort=True):
            parts.append(f"<h3>{html.escape(facet)} = {html.escape(group)}</h3>"
                         + _shares_table(frame, codebook, group, evidence.cells))
    return "".join(parts)


def _paragraph_html(evidence: Evidence, row: int, theme: str) -> str:
    paragraph = evidence.paras.iloc[row]
    doc = evidence.docs.iloc[int(paragraph["doc"])]
    where = " · ".join(filter(None, [html.escape(doc["date"] if pd.notna(doc["date"]) else "无日期"),
                                     html.escape(" › ".join(paragraph["heading_path"]))]))
    title = doc["title"] if pd.notna(doc["title"]) and doc["title"] else "（无标题）"
    return (f'<div class="example"><span class="score">得分 {paragraph[theme]:.3f}</span>'
            f'{html.escape(paragraph["text"])}<div class="meta"><a href="#doc={html.escape(doc["id"])}">'
            f'{html.escape(title)}</a> · {where}</div></div>')


def _examples_section(evidence: Evidence, codebook: Codebook) -> str:
    parts = ['<h2 id="examples">各主题示例段落 Examples</h2><p class="note">每个主题得分最高的段落'
             "（模型的校准概率）：读一读，判断模型所说的主题是否就是您要研究的主题。</p>"]
    for theme in codebook.ids:
        examples = evidence.examples.get(theme, [])
        body = "".join(_paragraph_html(evidence, row, theme) for row in examples) or \
            '<p class="note">没有段落被标注为该主题。</p>'
        parts.append(f"<h3>{html.escape(codebook[theme].label)}</h3>"
                     f'<p class="note">{html.escape(codebook[theme].definition)}</p>{body}')
    return "".join(parts)


def _documents_section(root: Path, codebook: Codebook, evidence: Evidence) -> str:
    header = "".join(f'<th class="num">{html.escape(codebook[t].name_zh)}</th>' for t in codebook.ids)
    scope = "全部文档" if evidence.complete else "嵌入了段落的文档（语料较大，报告只嵌入每格得分最高的段落）"
    heatmap = _figures(root, {"document_heatmap": TREND_FIGURES["document_heatmap"]})
    return ('<h2 id="documents">文档 Documents</h2>'
            f'<p class="note">{scope}，每篇文档带各主题的正文占比（分类计数）。'
            "点击标题打开文档页（全文、每段主题与得分），点击一格查看该文档带该主题的段落。</p>"
            '<p><label>筛选 <input id="doc-filter" type="search" placeholder="标题、日期、类型或来源"></label> '
            '<span id="doc-count" class="note"></span></p>'
            '<noscript><p class="warn">文档表、下钻和检索需要启用 JavaScript。</p></noscript>'
            f'<div class="scroll"><table id="doc-table"><thead><tr><th>标题</th><th>日期</th><th>类型</th>'
            f'<th class="num">正文段落</th>{header}</tr></thead><tbody></tbody></table></div>'
            + (f"<details><summary>静态热图</summary>{heatmap}</details>" if heatmap else ""))


def _kwic_section(evidence: Evidence) -> str:
    scope = "报告中的全部段落" if evidence.complete else "报告中嵌入的段落（语料较大时只是一部分）"
    return ('<h2 id="kwic">关键词检索 KWIC</h2>'
            f'<p class="note">检索{scope}。“词语”模式下可用 | 分隔多个变体（如 <code>从严治党|从严管党</code>）；'
            "“正则”模式接受 JavaScript 正则表达式（如 <code>巡[视察]</code>）。</p>"
            '<form id="kwic-form" class="kwic"><input id="kwic-query" type="search" placeholder="检索词">'
            '<select id="kwic-mode"><option value="variants">词语</option><option value="regex">正则</option>'
            '</select> <button type="submit">检索</button> <span id="kwic-status" class="note"></span></form>'
            '<div class="scroll"><table id="kwic-results"><thead><tr><th class="num">上文</th><th>检索词</th>'
            "<th>下文</th><th>文档</th><th>日期</th><th>标题路径</th></tr></thead><tbody></tbody></table></div>")


def model_quality(evaluation: dict | None, used: str | None) -> dict | None:
    """The numbers of the method whose predictions the report shows, on the real test split: its
    evaluate.json entry and a one-sentence summary (None without an evaluation of that method)."""
    result = (evaluation or {}).get("methods", {}).get(used)
    if not result:
        return None
    described = [html.escape(str(result["test_set"])) if result.get("test_set") else None,
                 f"{result['n_test']} 段" if result.get("n_test") else None,
                 f"{result['n_documents']} 篇文档" if result.get("n_documents") else None]
    sentence = (f"模型 <code>{html.escape(used)}</code> 在测试集（{'；'.join(filter(None, described))}）上 macro-F1 "
                f"{_with_ci(result.get('macro_f1'), result.get('macro_f1_ci'))}，micro-F1 "
                f"{_with_ci(result.get('micro_f1'), result.get('micro_f1_ci'))}")
    return {"result": result, "sentence": sentence}


def _model_section(root: Path, codebook: Codebook, evaluation: dict | None, used: str | None,
                   summary: dict) -> str:
    parts = ['<h2 id="model">模型质量 Model quality</h2>']
    if not evaluation:
        return parts[0] + f'<p class="note">{EVALUATE} 不存在：尚未评估。</p>'
    quality = model_quality(evaluation, used)
    if quality:
        result = quality["result"]
        parts.append(f"<p>{quality['sentence']}。</p>")
        in_domain = result.get("in_domain") or {}
        rows = [{"主题": codebook[t].label, "support": scores.get("support"),
                 "precision": scores.get("precision"), "recall": scores.get("recall"),
                 "F1 [95% CI]": _with_ci(scores.get("f1"), scores.get("f1_ci")),
                 "同分布测试集 F1": (in_domain.get("per_theme", {}).get(t) or {}).get("f1")}
                for t in codebook.ids for scores in [result.get("per_theme", {}).get(t) or {}]]
        parts.append(f"<h3>{html.escape(used)}：分主题结果</h3>{_table(pd.DataFrame(rows))}")
        if result.get("by_source"):
            frame = pd.DataFrame([{"来源 source": name, "段落": v["n_test"], "文档": v["n_documents"],
                                   "micro-F1 [95% CI]": _with_ci(v.get("micro_f1"), v.get("micro_f1_ci")),
                                   "macro-F1 [95% CI]": _with_ci(v.get("macro_f1"), v.get("macro_f1_ci")),
                                   "含有的主题 themes held": len(v.get("support", {}))}
                                  for name, v in result["by_source"].items()])
            parts.append(f"<h3>{html.escape(used)}：分来源结果 By source</h3>"
                         '<p class="note">macro-F1 只平均该来源测试段落中出现的主题；每个来源每个主题的段落不多，'
                         "文档少的来源可重抽样的也少，区间应结合段落数和文档数来读。</p>" + _table(frame))
        if in_domain:
            described = html.escape(str(in_domain.get("test_set", "")))
            parts.append(f'<p class="note">同分布测试集（{described}）上 macro-F1 '
                         f"{_with_ci(in_domain.get('macro_f1'), in_domain.get('macro_f1_ci'))}：仅作对照，"
                         "真实文本比项目自编的文本难。</p>")
        quantification = result.get("quantification")
        if quantification:
            used_correction = (summary.get("correction") or {}).get("name") or "raw"
            frame = pd.DataFrame([{"主题": codebook[t].label, **{k: _pct(v) for k, v in values.items()}}
                                  for t, values in quantification["per_theme"].items()])
            frame.loc[len(frame)] = {"主题": "平均绝对误差", "true": "—",
                                     **{k: f"{100 * quantification[f'mean_abs_error_{k}']:.2f} 个百分点"
                                        for k in ("raw", "pcc", "acc")}}
            parts.append("<h3>份额估计的准确度 Quantification</h3>"
                         '<p class="note">真实测试集上各主题的真实份额（true），与分类计数（raw）、'
                         "校准概率平均（pcc）、按误差率调整的计数（acc）三种估计相比。"
                         f"趋势图使用 <b>{html.escape(used_correction)}</b>。</p>"
                         + _table(frame))
    reliability = root / FIGURES_DIR / RELIABILITY
    if reliability.is_file():
        bins = pd.read_csv(reliability)
        parts.append(f'<h3>校准 Calibration</h3><p class="note">期望校准误差 ECE = {bins["ece_part"].sum():.3f}'
                     "（预测概率与实际比例之差，按预测数加权）。点落在对角线上说明“得分 0.7”确实约七成为真。</p>")
    summary_table, per_theme = evaluation_tables(evaluation, codebook)
    parts += ["<h3>各方法对比 Methods</h3>", _table(summary_table), _table(per_theme),
              _figures(root, MODEL_FIGURES),
              '<p class="note">这些图也是 <code>dvc plots show</code> 的内容；该命令生成的页面要从网络加载 Vega，'
              "离线时是空白的，离线请看本页或 <code>reports/figures/</code>。</p>"]
    return "".join(parts)


def _corpus_section(stats: dict) -> str:
    years = f"{stats['first_year']}–{stats['last_year']}" if stats["first_year"] else "—"
    pairs = [("文档 documents", stats["documents"]), ("正文段落 body paragraphs", stats["body_paragraphs"]),
             ("标题 headings recovered", stats["headings"]), ("字数 characters", f"{stats['characters']:,}"),
             ("年份 years", years),
             ("日期 dates", f"{stats['with_month']} 有年月 · {stats['with_year_only']} 仅年份 · "
                            f"{stats['undated']} 无日期")]
    ingest = stats["ingest"]
    if ingest:
        pairs += [("读取文件 files read", ingest.get("files", "—")),
                  ("清除杂质行 junk lines removed", ingest.get("junk_lines_removed", "—")),
                  ("重复文档 duplicates (exact / near)",
                   f"{ingest.get('duplicates_exact', '—')} / {ingest.get('duplicates_near', '—')}"),
                  ("拒收文件 rejected", ingest.get("rejected", "—"))]
    parts = [f'<h2 id="corpus">语料 Corpus</h2>{_key_values(pairs)}']
    counts = [("文档类型 doc types", "doc_type", "documents", stats["doc_types"]),
              ("来源 sources", "source", "documents", stats["sources"]),
              ("标题层级 heading depth", "level", "headings", stats["heading_depths"])]
    for title, key, counted, mapping in counts:
        if mapping:
            frame = pd.DataFrame({key: [str(k) for k in mapping], counted: list(mapping.values())})
            parts.append(f"<h3>{html.escape(title)}</h3>{_table(frame)}")
    if ingest and ingest.get("junk_lines_by_rule"):
        frame = pd.DataFrame(list(ingest["junk_lines_by_rule"].items()), columns=["rule", "lines"])
        parts.append(f"<h3>按规则清除的杂质行 junk lines by rule</h3>{_table(frame)}")
    if stats["rejected_files"]:
        shown = pd.DataFrame(stats["rejected_files"][:MAX_REJECTED_ROWS])
        more = len(stats["rejected_files"]) - len(shown)
        note = f'<p class="note">另有 {more} 个，见 data/interim/rejected.csv。</p>' if more > 0 else ""
        parts.append(f"<h3>拒收文件 rejected files</h3>{_table(shown)}{note}")
    return "".join(parts)


def _provenance_section(prov: dict, evidence: Evidence, settings: ReportSettings) -> str:
    pairs = [("码本 codebook", f"{prov['codebook']}（hash {prov['codebook_hash']}）")]
    for m in prov["models"]:
        pairs.append((f"预测模型 model（{m['method']}）",
                      f"{m['model']}（训练时码本 hash {m['codebook_hash'] or '未知'}）"))
    pairs += [("评估所用码本 evaluation codebook hash", prov["evaluation_codebook_hash"] or "—"),
              ("趋势所用码本 trends codebook hash", prov["trends_codebook_hash"] or "—"),
              ("嵌入的段落 embedded paragraphs",
               f"{len(evidence.paras)} 段" + ("（全部）" if evidence.complete else
                                             "（语料超过 report.embed_all_max_chars = "
                                             f"{settings.embed_all_max_chars:,} 字；每格得分最高的 "
                                             f"{settings.cell_paragraphs} 段及其文档的标题）"))]
    warning = "" if prov["consistent"] else (
        '<p class="warn">码本已变更：部分结果由不同版本的码本生成（hash 不一致）。请运行 <code>dvc repro</code> '
        "重新训练、预测和评估。</p>")
    return f'<h2 id="provenance">来源 Provenance</h2>{warning}{_key_values(pairs)}'


TOC = [("findings", "主要发现"), ("trends", "趋势"), ("examples", "示例段落"), ("documents", "文档"),
       ("kwic", "检索"), ("model", "模型质量"), ("corpus", "语料"), ("provenance", "来源")]


def _page(title: str, font_css: str, sections: list[str], data: str) -> str:
    toc = "".join(f'<a href="#{anchor}">{name}</a>' for anchor, name in TOC)
    css = (RESOURCES / "report.css").read_text(encoding="utf-8")
    script = (RESOURCES / "report.js").read_text(encoding="utf-8")
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{font_css}\n{css}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{html.escape(title)}</h1>\n<nav class=\"toc\">{toc}</nav>\n" + "\n".join(sections) +
            "\n</main>\n<aside id=\"panel\" hidden tabindex=\"-1\" aria-labelledby=\"panel-title\">"
            "<button id=\"panel-close\" type=\"button\" aria-label=\"关闭\">×</button><div id=\"panel-body\"></div>"
            f"</aside>\n<script type=\"application/json\" id=\"report-data\">{data}</script>\n"
            f"<script>{script}</script>\n</body>\n</html>\n")


def render(root: str | Path, settings: ReportSettings, codebook: Codebook | None = None) -> str:
    """The whole page as a string: no external scripts, styles, fonts or images."""
    root = Path(root)
    codebook = codebook or load_codebook()
    summary = _read_json(root / TRENDS_SUMMARY) or {}
    evaluation = _read_json(root / EVALUATE)
    prov = provenance(root, codebook)
    used = prov["models"][0]["method"] if prov["models"] else None
    evidence = load_evidence(root, settings, codebook, summary)
    top_path = root / TABLES / "top_changes.csv"
    top = pd.read_csv(top_path, dtype={"from_period": str, "to_period": str, "group": str}) \
        if top_path.is_file() else None
    sections = [_findings_section(summary, codebook, top, model_quality(evaluation, used), used),
                _trends_section(root, codebook, summary, evidence),
                _examples_section(evidence, codebook),
                _documents_section(root, codebook, evidence),
                _kwic_section(evidence),
                _model_section(root, codebook, evaluation, used, summary),
                _corpus_section(corpus_stats(root)),
                _provenance_section(prov, evidence, settings)]
    data = evidence_json(evidence, codebook, settings, (summary.get("correction") or {}).get("name"))
    # the font holds exactly the characters of the page (its text, the embedded data and the script)
    return _page(settings.title, font_face(_page(settings.title, "", sections, data)), sections, data)


def run(settings: ReportSettings, root: str | Path = ".") -> Path:
    """The DVC stage: write `root`/reports/index.html."""
    out = Path(root) / OUT
    io.write_text(out, render(root, settings))
    log.info("report: → %s (%.0f kB)", out, out.stat().st_size / 1024)
    return out
