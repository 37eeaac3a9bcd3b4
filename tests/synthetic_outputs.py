"""A tiny corpus laid out like the repository's stage outputs, for the trends / charts / report tests.

Six documents (hand-countable shares): d1 and d2 in 2019, d3 in 2020, d4 dated by year only (2020),
d5 undated, d6 in 2021. Paragraph texts are fillers of the given length, so character shares are exact.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import io
from pipeline.codebook import THEME_IDS

FILLER = "坚持和加强党的全面领导，推进全面从严治党向纵深发展。"

# doc_id: (date, year, doc_type, source, title, [(n_chars, themes) per body paragraph])
DOCUMENTS = {
    "d1": ("2019-02-10", 2019, "讲话", "A", "在全面从严治党工作会议上的讲话",
           [(10, ["political"]), (20, ["political", "ideology"]), (30, []), (40, ["discipline"])]),
    "d2": ("2019-08", 2019, "通知", "B", "关于加强基层党组织建设的通知",
           [(50, ["political"]), (50, ["grassroots"])]),
    "d3": ("2020-03-01", 2020, "讲话", "A", "纪委全会工作报告",
           [(20, ["anti_corruption"]), (20, ["anti_corruption", "supervision"]), (20, ["political"])]),
    "d4": ("2020", 2020, "评论", None, "理想信念是共产党人精神上的钙",
           [(30, ["ideology"]), (30, [])]),
    "d5": (None, None, "讲话", "A", "一篇没有日期的党课讲稿",
           [(25, ["political"])]),
    "d6": ("2021-05-04", 2021, "讲话", "A", "关于深入开展调查研究的讲话",
           [(40, ["work_style"]), (40, ["political"])]),
}


def filler(n: int) -> str:
    return (FILLER * (n // len(FILLER) + 1))[:n]


def paragraphs_frame() -> pd.DataFrame:
    rows = []
    for doc_id, (date, year, doc_type, source, title, paragraphs) in DOCUMENTS.items():
        meta = {"doc_id": doc_id, "title": title, "date": date, "year": year, "doc_type": doc_type,
                "source": source}
        rows.append({"para_id": f"{doc_id}-h", "order": 0, "kind": "heading", "level": 1,
                     "heading_path": [], "text": "一、总体要求", "n_chars": 6, **meta})
        for i, (n_chars, _) in enumerate(paragraphs, 1):
            rows.append({"para_id": f"{doc_id}-p{i}", "order": i, "kind": "body", "level": 0,
                         "heading_path": ["一、总体要求"], "text": filler(n_chars), "n_chars": n_chars, **meta})
    frame = pd.DataFrame(rows)
    frame["year"] = frame["year"].astype("Int64")
    return frame


def paragraph_themes_frame(model: str = "models/baseline", method: str = "baseline") -> pd.DataFrame:
    rows = []
    for doc_id, (*_, paragraphs) in DOCUMENTS.items():
        for i, (_, themes) in enumerate(paragraphs, 1):
            scores = {t: (0.6 + 0.05 * i if t in themes else 0.1) for t in THEME_IDS}
            rows.append({"para_id": f"{doc_id}-p{i}", "doc_id": doc_id, **scores, "themes": themes,
                         "model": model, "method": method})
    return pd.DataFrame(rows)


def documents_frame(paragraphs: pd.DataFrame) -> pd.DataFrame:
    docs = paragraphs.groupby("doc_id", sort=False).agg(
        title=("title", "first"), date=("date", "first"), year=("year", "first"),
        doc_type=("doc_type", "first"), source=("source", "first"),
        text=("text", "\n\n".join), n_chars=("n_chars", "sum")).reset_index()
    docs["path"] = docs["doc_id"] + ".txt"
    return docs


def gold_test_frame() -> pd.DataFrame:
    gold = [("t1", "d1", "各级党组织要把维护党中央权威和集中统一领导作为最高政治原则。", ["political"]),
            ("t2", "d3", "严肃查处领导干部受贿案件，坚决惩治腐败。", ["anti_corruption"]),
            ("t3", "d2", "推进村党组织书记队伍建设，建强战斗堡垒。", ["grassroots", "organization"]),
            ("t4", "d6", "深入开展调查研究，力戒形式主义、官僚主义。", ["work_style"])]
    return pd.DataFrame([{"id": i, "doc_id": d, "text": text, **{t: int(t in themes) for t in THEME_IDS}}
                         for i, d, text, themes in gold])


def evaluation(methods=("dictionary", "baseline")) -> dict:
    def per_theme(offset: float) -> dict:
        return {t: {"precision": 0.7, "recall": 0.6, "f1": round(0.5 + offset + 0.03 * k, 3),
                    "f1_ci": [round(0.35 + offset + 0.03 * k, 3), round(0.65 + offset + 0.03 * k, 3)],
                    "support": 10 + k} for k, t in enumerate(THEME_IDS)}

    return {"codebook_hash": "synthetic", "methods": {
        m: {"micro_f1": 0.6 + 0.1 * i, "macro_f1": 0.55 + 0.1 * i, "top1_accuracy": 0.7 + 0.05 * i,
            "n_test": 4, "per_theme": per_theme(0.1 * i)} for i, m in enumerate(methods)}}


def write_synthetic_outputs(root: Path, with_evaluation: bool = True) -> Path:
    """Write the stage outputs that trends, charts, report and the notebooks read, under `root`."""
    paragraphs = paragraphs_frame()
    io.write_parquet(root / "data/interim/paragraphs.parquet", paragraphs)
    io.write_parquet(root / "data/interim/documents.parquet", documents_frame(paragraphs))
    io.write_json(root / "data/interim/ingest_report.json", {
        "files": 8, "documents_read": 7, "documents_kept": 6, "rejected": 1, "duplicates_exact": 1,
        "duplicates_near": 0, "junk_lines_removed": 12, "junk_lines_by_rule": {"share_buttons": 8, "footer": 4}})
    io.write_parquet(root / "data/processed/paragraph_themes.parquet", paragraph_themes_frame())
    io.write_parquet(root / "data/processed/test.parquet", gold_test_frame())
    if with_evaluation:
        io.write_json(root / "metrics/evaluate.json", evaluation())
    return root


def write_model_outputs(root: Path) -> Path:
    """What the model figures read besides evaluate.json: evaluate's plot CSVs (two methods) and a saved
    model (the keyword dictionary) to score the test split with; returns the model directory."""
    from pipeline.classifiers.dictionary import DictionaryClassifier
    from pipeline.codebook import load_codebook

    plots = root / "metrics" / "plots"
    confusion = [("political", "political"), ("work_style", "political"), ("grassroots", "none"), ("none", "none")]
    io.write_csv(plots / "confusion.csv", pd.DataFrame(
        [{"method": m, "actual": a, "predicted": p} for m in ("dictionary", "baseline") for a, p in confusion]))
    io.write_csv(plots / "pr_curves.csv", pd.DataFrame(
        [{"method": m, "theme": t, "recall": r, "precision": 1 - r / (2 + k)}
         for k, m in enumerate(("dictionary", "baseline")) for t in THEME_IDS for r in (0.25, 0.5, 0.75, 1.0)]))
    return DictionaryClassifier(load_codebook()).save(root / "models" / "dictionary")
