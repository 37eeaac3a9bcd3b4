"""The training stages (`dictionary`, `baseline`, `train_bert`): one code path for every method.

Reads the splits and fits `classifier_class(method)` on train (real coded paragraphs, down-weighted
team-written passages, opt-in silver). Then, on the real dev paragraphs (all dev rows when there are none)
and, with `calibration_folds`, the real training paragraphs scored out of fold: calibrates each theme's
probabilities (Platt scaling), tunes per-theme thresholds on the calibrated scores and records each
theme's confusion counts (the error rates that `trends` corrects theme shares with); dev metrics are
measured on real dev alone. The model is saved to models/<method>.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.classifiers import classifier_class
from pipeline.classifiers.base import ThemeClassifier, platt, tune_thresholds
from pipeline.codebook import Codebook, load_codebook
from pipeline.evaluate import counts, score, theme_matrix
from pipeline.labels.split import seeded_rank
from pipeline.text import frame_contexts

log = logging.getLogger("pipeline.train")
SPLITS_DIR = "data/processed"


def run(method: str, params: dict | None = None, splits_dir: str = SPLITS_DIR, models_dir: str = "models"):
    started = time.perf_counter()
    codebook = load_codebook()
    train = pd.read_parquet(Path(splits_dir) / "train.parquet")
    dev = pd.read_parquet(Path(splits_dir) / "dev.parquet")
    model = classifier_class(method)(codebook, params)
    model.fit(train["text"].tolist(), train[codebook.ids].to_numpy(), dev["text"].tolist(),
              dev[codebook.ids].to_numpy(), weights=train["weight"].to_numpy(), contexts=frame_contexts(train),
              dev_contexts=frame_contexts(dev))
    real_dev = real_rows(dev)
    dev_raw = model.predict_scores(real_dev["text"].tolist(), frame_contexts(real_dev))
    tune, raw = real_dev, dev_raw
    folds = int(model.params.get("calibration_folds", 0))
    if folds and (train["origin"] == "real").any():
        held_out, held_out_raw = out_of_fold_scores(method, params, codebook, train, folds)
        tune, raw = pd.concat([held_out, tune], ignore_index=True), np.vstack([held_out_raw, raw])
    calibrate(model, tune, raw)
    model.info["calibration_rows"] = {"real dev": len(real_dev), "real train, out of fold": len(tune) - len(real_dev)}
    dev_scores = platt(dev_raw, model.calibration)
    dev_metrics = score(theme_matrix(real_dev, model.themes), dev_scores >= model.thresholds[None, :], dev_scores,
                        model.themes, real_dev["doc_id"].to_numpy(), n_boot=0)
    model.info["metrics"] = {"dev": {
        "rows": len(real_dev), "origin": "real" if (real_dev["origin"] == "real").all() else "all",
        **{k: dev_metrics[k] for k in ("micro_f1", "macro_f1", "top1_accuracy", "no_theme_flagged")},
        "per_theme_f1": {t: v["f1"] for t, v in dev_metrics["per_theme"].items()}}}
    model.info["train_rows_by_origin"] = train["origin"].value_counts().sort_index().to_dict()
    directory = Path(models_dir) / method
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate launch only rank 0 writes
        return model
    model.save(directory)
    log.info("train: %s on %d paragraphs in %.1fs, dev macro-F1 %.3f → %s", method, len(train),
             time.perf_counter() - started, dev_metrics["macro_f1"], directory)
    return model


def real_rows(split: pd.DataFrame) -> pd.DataFrame:
    """The real coded paragraphs of a split, where it has any (else all of it): what dev metrics are measured on."""
    return split[split["origin"] == "real"] if (split["origin"] == "real").any() else split


def out_of_fold_scores(method: str, params: dict | None, codebook: Codebook, train: pd.DataFrame, folds: int):
    """The real training paragraphs, each scored by a model fitted without its fold (folds of whole
    documents), and those raw scores: calibration and thresholds learnt from ten times the rows of real
    dev alone, on scores no model saw its own labels for (cross-fitting)."""
    seed = int((params or {}).get("seed", 0))
    real = (train["origin"] == "real").to_numpy()
    fold = np.array([int(seeded_rank(doc, seed)[:8], 16) % folds for doc in train["doc_id"]])
    parts, scores = [], []
    for k in tqdm(range(folds), desc=f"{method}: out-of-fold calibration", unit="fold", disable=None):
        held = real & (fold == k)
        if not held.any():
            continue
        kept = train[~held]
        fold_model = classifier_class(method)(codebook, params).fit(
            kept["text"].tolist(), kept[codebook.ids].to_numpy(), weights=kept["weight"].to_numpy(),
            contexts=frame_contexts(kept))
        part = train[held]
        parts.append(part)
        scores.append(fold_model.predict_scores(part["text"].tolist(), frame_contexts(part)))
    return pd.concat(parts, ignore_index=True), np.vstack(scores)


def calibrate(model: ThemeClassifier, rows: pd.DataFrame, raw: np.ndarray) -> None:
    """Calibrate (Platt per theme), tune thresholds and record the confusion counts (the error rates
    `trends` corrects shares with) on `rows`, whose raw scores by models that did not train on them are `raw`."""
    truth = theme_matrix(rows, model.themes)
    model.calibrate(raw, truth)
    calibrated = platt(raw, model.calibration)
    model.thresholds = tune_thresholds(calibrated, truth, floor=0.05,
                                       ceiling=float(model.params.get("threshold_ceiling", 0.9)))
    tp, fp, fn = counts(truth, calibrated >= model.thresholds[None, :])
    tn = len(rows) - tp - fp - fn
    model.info["dev_confusion"] = {t: {"tp": int(tp[j]), "fp": int(fp[j]), "fn": int(fn[j]), "tn": int(tn[j])}
                                   for j, t in enumerate(model.themes)}
