"""The training stages (`dictionary`, `baseline`, `train_bert`): one code path for every method.

Reads the splits and fits `classifier_class(method)` on train (real coded paragraphs, down-weighted
team-written passages, opt-in silver). Then, on the real dev paragraphs (all dev rows when there are none):
calibrates each theme's probabilities (Platt scaling), tunes per-theme thresholds on the calibrated
scores, and records dev metrics and each theme's dev confusion counts (the error rates that
`trends` corrects theme shares with) in the model directory, saved to models/<method>.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd

from pipeline.classifiers import classifier_class
from pipeline.classifiers.base import ThemeClassifier, platt, tune_thresholds
from pipeline.codebook import load_codebook
from pipeline.evaluate import counts, score, theme_matrix

log = logging.getLogger("pipeline.train")
SPLITS_DIR = "data/processed"


def run(method: str, params: dict | None = None, splits_dir: str = SPLITS_DIR, models_dir: str = "models"):
    started = time.perf_counter()
    codebook = load_codebook()
    train = pd.read_parquet(Path(splits_dir) / "train.parquet")
    dev = pd.read_parquet(Path(splits_dir) / "dev.parquet")
    model = classifier_class(method)(codebook, params)
    model.fit(train["text"].tolist(), train[codebook.ids].to_numpy(), dev["text"].tolist(),
              dev[codebook.ids].to_numpy(), weights=train["weight"].to_numpy())
    tune = dev[dev["origin"] == "real"] if (dev["origin"] == "real").any() else dev
    dev_metrics = calibrate_on_dev(model, tune)
    model.info["metrics"] = {"dev": {
        "rows": len(tune), "origin": "real" if (tune["origin"] == "real").all() else "all",
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


def calibrate_on_dev(model: ThemeClassifier, dev: pd.DataFrame) -> dict:
    """Calibrate, tune thresholds and record confusion counts on `dev`; returns its metrics."""
    truth = theme_matrix(dev, model.themes)
    raw = model.predict_scores(dev["text"].tolist())
    model.calibrate(raw, truth)
    calibrated = platt(raw, model.calibration)
    model.thresholds = tune_thresholds(calibrated, truth, floor=0.05,
                                       ceiling=float(model.params.get("threshold_ceiling", 0.9)))
    pred = calibrated >= model.thresholds[None, :]
    tp, fp, fn = counts(truth, pred)
    tn = len(dev) - tp - fp - fn
    model.info["dev_confusion"] = {t: {"tp": int(tp[j]), "fp": int(fp[j]), "fn": int(fn[j]), "tn": int(tn[j])}
                                   for j, t in enumerate(model.themes)}
    return score(truth, pred, calibrated, model.themes, dev["doc_id"].to_numpy(), n_boot=0)
