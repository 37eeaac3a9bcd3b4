"""The weak_label stage: codebook labelling functions → silver theme probabilities for every paragraph,
and an LF report (coverage, overlaps, conflicts, empirical accuracy on gold)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline import io
from pipeline.codebook import load_codebook
from pipeline.config import Settings, setting
from pipeline.labels.functions import WeakLabeler, lf_analysis
from pipeline.labels.gold import load_gold, match_gold, targets

log = logging.getLogger("pipeline.labels")


@dataclass
class WeakLabelSettings(Settings):
    paragraphs: str = "data/interim/paragraphs.parquet"
    gold_dir: str = "data/annotations/gold"
    output: str = "data/processed/weak_labels.parquet"
    metrics: str = "metrics/weak_label.json"
    report: str = "reports/lf_analysis.md"
    batch_size: int = setting(500, ge=1)


def run(settings: WeakLabelSettings) -> pd.DataFrame:
    started = time.perf_counter()
    codebook = load_codebook()
    paragraphs = pd.read_parquet(settings.paragraphs)
    paragraphs = paragraphs[paragraphs["kind"] == "body"].reset_index(drop=True)
    labeler = WeakLabeler(codebook)
    matrices, silvers = [], []
    for start in tqdm(range(0, len(paragraphs), settings.batch_size), desc="weak_label", unit="batch",
                      disable=None):
        chunk = paragraphs.iloc[start:start + settings.batch_size]
        matrix, silver = labeler.label(chunk["text"].tolist(), chunk["heading_path"].map(list).tolist())
        matrices.append(matrix)
        silvers.append(silver)
    matrix = np.vstack(matrices) if matrices else np.zeros((0, len(labeler.lfs)), dtype=np.int8)
    silver = np.vstack(silvers) if silvers else np.zeros((0, len(codebook.ids)))

    gold, _ = match_gold(load_gold(settings.gold_dir, codebook), paragraphs)
    gold_matrix = np.full(silver.shape, np.nan)
    if not gold.empty:
        rows = paragraphs.reset_index().set_index("para_id").loc[gold["para_id"], "index"].to_numpy()
        gold_matrix[rows] = targets(gold["themes"], codebook.ids)
    analysis = lf_analysis(labeler.lfs, matrix, gold_matrix, codebook.ids)

    out = paragraphs[["para_id", "doc_id", "year"]].copy()
    for j, theme in enumerate(codebook.ids):
        out[theme] = silver[:, j].round(4)
    out["lf_votes"] = [row.tolist() for row in matrix]
    io.write_parquet(settings.output, out)
    io.write_json(settings.metrics, summary(silver, matrix, gold_matrix, codebook, analysis))
    io.write_text(settings.report, report_markdown(analysis, silver, codebook))
    log.info("weak_label: %d paragraphs, %d LFs, %.0f%% with any silver theme ≥ 0.5, %.1fs → %s",
             len(out), len(labeler.lfs), 100 * float((silver >= 0.5).any(axis=1).mean()) if len(out) else 0,
             time.perf_counter() - started, settings.output)
    return out


def summary(silver, matrix, gold_matrix, codebook, analysis) -> dict:
    per_theme = {}
    for j, theme in enumerate(codebook.ids):
        lfs = matrix[:, 4 * j:4 * j + 4]
        has_gold = ~np.isnan(gold_matrix[:, j])
        entry = {"coverage": round(float((lfs != -1).any(axis=1).mean()), 4) if len(silver) else 0.0,
                 "silver_positive_share": round(float((silver[:, j] >= 0.5).mean()), 4) if len(silver) else 0.0}
        if has_gold.any():
            pred, truth = silver[has_gold, j] >= 0.5, gold_matrix[has_gold, j] == 1
            tp = float((pred & truth).sum())
            entry["silver_f1_vs_gold"] = round(2 * tp / max(pred.sum() + truth.sum(), 1), 4)
        per_theme[theme] = entry
    return {"codebook_hash": codebook.hash, "paragraphs": int(len(silver)), "lfs": len(analysis),
            "coverage_any": round(float((matrix != -1).any(axis=1).mean()), 4) if len(silver) else 0.0,
            "per_theme": per_theme}


def report_markdown(analysis: list[dict], silver: np.ndarray, codebook) -> str:
    lines = ["# Labelling-function analysis", "",
             f"{len(silver)} paragraphs; codebook `{codebook.hash}`. Coverage: share of paragraphs an LF "
             "labels; overlaps: labelled by another LF of the same theme too; conflicts: another LF of the "
             "same theme votes the other way; accuracy: agreement with gold where gold exists.", "",
             "| LF | polarity | coverage | overlaps | conflicts | gold n | accuracy |",
             "|---|---|---|---|---|---|---|"]
    for row in analysis:
        accuracy = row.get("empirical_accuracy")
        lines.append(f"| {row['lf']} | {row['polarity']} | {row['coverage']:.3f} | {row['overlaps']:.3f} | "
                     f"{row['conflicts']:.3f} | {row.get('gold_labelled', 0)} | "
                     f"{'' if accuracy is None else f'{accuracy:.3f}'} |")
    return "\n".join(lines) + "\n"
