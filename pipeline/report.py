"""The report stage: one static, offline HTML page (reports/index.html) with the charts embedded as data
URIs, the key trend tables, the evaluation summary, corpus statistics and the provenance of the results
(which model and codebook produced them).

Its summaries (`corpus_stats`, `document_outline`, `evaluation_tables`, `provenance`) and the error
analysis helpers (`available_models`, `score_test_set`, `disagreements`) are also what the notebooks
call. Every path is relative to a `root` laid out like the repository.
"""
from __future__ import annotations

import base64
import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.charts import FIGURES
from pipeline.codebook import Codebook, load_codebook
from pipeline.trends import period_labels

log = logging.getLogger("pipeline.report")

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
MAX_REJECTED_ROWS = 50  # the page lists at most this many rejected files; rejected.csv has them all


@dataclass
class ReportSettings:
    title: str = "党建文本主题分析报告"


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

    texts = test["text"].tolist()
    return {method: load_model(directory, codebook).predict(texts)[1]
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


# -------------------------------------------------------------------------------------------- the page

CSS = """
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Source Han Sans SC", sans-serif;
       color: #222; background: #fafafa; margin: 0; line-height: 1.6; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 4rem; background: #fff; }
h1 { font-size: 1.7rem; border-bottom: 3px solid #b22222; padding-bottom: .4rem; }
h2 { font-size: 1.3rem; margin-top: 2.5rem; border-left: 5px solid #b22222; padding-left: .6rem; }
h3 { font-size: 1.05rem; margin-top: 1.5rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .88rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; }
.note { color: #555; font-size: .9rem; }
.warn { background: #fff4e5; border-left: 4px solid #e67e22; padding: .5rem .8rem; }
code { background: #f3f3f3; padding: 0 .25rem; }
"""


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


def _change(change: float, lo: float, hi: float) -> str:
    """'+5.0 [+1.2, +8.9]'; no interval where a period has a single document."""
    return _points(change) + ("" if pd.isna(lo) else f" [{_points(lo)}, {_points(hi)}]")


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _key_values(pairs: list[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _provenance_section(prov: dict) -> str:
    pairs = [("码本 codebook", f"{prov['codebook']}（hash {prov['codebook_hash']}）")]
    for m in prov["models"]:
        pairs.append((f"预测模型 model（{m['method']}）",
                      f"{m['model']}（训练时码本 hash {m['codebook_hash'] or '未知'}）"))
    pairs += [("评估所用码本 evaluation codebook hash", prov["evaluation_codebook_hash"] or "—"),
              ("趋势所用码本 trends codebook hash", prov["trends_codebook_hash"] or "—")]
    warning = "" if prov["consistent"] else (
        '<p class="warn">码本已变更：部分结果由不同版本的码本生成（hash 不一致）。请运行 <code>dvc repro</code> '
        "重新训练、预测和评估。</p>")
    return f"<h2>来源 Provenance</h2>{warning}{_key_values(pairs)}"


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
    parts = [f"<h2>语料 Corpus</h2>{_key_values(pairs)}"]
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


def _trends_section(root: Path, codebook: Codebook) -> str:
    summary = _read_json(root / TRENDS_SUMMARY)
    parts = ["<h2>主题趋势 Theme trends</h2>"]
    if summary:
        measure = "段落" if summary["measure"] == "paragraphs" else "字数"
        span = f"（每期 {summary['years_per_period']} 年）" if summary.get("years_per_period", 1) > 1 else ""
        parts.append(
            f'<p class="note">时期 period = {summary["period"]}{span}，份额按{measure}计算；'
            f"{summary['documents_in_periods']} / {summary['documents']} 篇文档计入时期表（未计入：无日期 "
            f"{summary['excluded_undated']} 篇，仅有年份而时期需要月份 {summary['excluded_year_only']} 篇）。"
            f"置信区间 {summary['ci']:.0%}：在每个时期内按文档自助重抽样 {summary['resamples']} 次。</p>")
    for name in ("theme_composition", "theme_small_multiples", "document_heatmap"):
        path = root / FIGURES_DIR / f"{name}.png"
        if path.is_file():
            parts.append(_figure(path, FIGURES[name]))
    top_path = root / TABLES / "top_changes.csv"
    if top_path.is_file():
        top = pd.read_csv(top_path, dtype={"from_period": str, "to_period": str})
        if len(top):
            shown = pd.DataFrame({
                "比较": top["comparison"].map({"first_to_last": "首期→末期", "consecutive": "相邻时期"}),
                "方向": top["direction"].map({"rose": "上升", "fell": "下降"}), "主题": top["label"],
                "时期": top["from_period"] + " → " + top["to_period"],
                "份额": top["share_from"].map(_pct) + " → " + top["share_to"].map(_pct),
                "变化（百分点）[95% CI]": [_change(c, lo, hi) for c, lo, hi in zip(top["change"], top["lo"], top["hi"])],
                "文档数": top["n_docs_from"].astype(str) + " → " + top["n_docs_to"].astype(str)})
            parts.append(f"<h3>变化最大的主题 Largest changes</h3>{_table(shown)}")
    periods_path = root / TABLES / "period_theme_shares.csv"
    if periods_path.is_file():
        periods = pd.read_csv(periods_path, dtype={"period": str})
        wide = periods.pivot(index="period", columns="theme", values="share")[codebook.ids]
        wide = wide.map(_pct).rename(columns={t: codebook[t].label for t in codebook.ids})
        wide.insert(0, "文档数", periods.drop_duplicates("period").set_index("period")["n_docs"])
        parts.append(f"<h3>各时期主题份额 Theme shares by period</h3>{_table(wide.reset_index())}")
    return "".join(parts)


def _evaluation_section(root: Path, codebook: Codebook) -> str:
    evaluation = _read_json(root / EVALUATE)
    if not evaluation:
        return f'<h2>模型评估 Evaluation</h2><p class="note">{EVALUATE} 不存在：尚未评估。</p>'
    summary, per_theme = evaluation_tables(evaluation, codebook)
    parts = ["<h2>模型评估 Evaluation</h2>",
             f'<p class="note">测试集上的结果；码本 hash {html.escape(str(evaluation.get("codebook_hash")))}。'
             "F1 后方括号为 95% 置信区间。</p>", _table(summary),
             f"<h3>分主题 F1 per theme</h3>{_table(per_theme)}"]
    path = root / FIGURES_DIR / "method_comparison.png"
    if path.is_file():
        parts.append(_figure(path, FIGURES["method_comparison"]))
    return "".join(parts)


def render(root: str | Path, settings: ReportSettings, codebook: Codebook | None = None) -> str:
    """The whole page as a string: no external scripts, styles, fonts or images."""
    root = Path(root)
    codebook = codebook or load_codebook()
    body = [f"<h1>{html.escape(settings.title)}</h1>",
            _provenance_section(provenance(root, codebook)),
            _corpus_section(corpus_stats(root)),
            _trends_section(root, codebook),
            _evaluation_section(root, codebook)]
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(settings.title)}</title>\n<style>{CSS}</style>\n</head>\n"
            "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def run(settings: ReportSettings, root: str | Path = ".") -> Path:
    """The DVC stage: write `root`/reports/index.html."""
    out = Path(root) / OUT
    io.write_text(out, render(root, settings))
    log.info("report: → %s (%.0f kB)", out, out.stat().st_size / 1024)
    return out
