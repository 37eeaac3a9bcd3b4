"""The training stages (`dictionary`, `baseline`, `train_bert`): one code path for every method.

Reads the splits, fits `classifier_class(method)` on train (gold, plus down-weighted silver), tunes
per-theme thresholds on dev, records dev metrics in the model directory, and saves it to models/<method>.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pandas as pd

from pipeline.classifiers import classifier_class
from pipeline.codebook import load_codebook
from pipeline.evaluate import score, theme_matrix

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
    dev_scores, _ = model.predict(dev["text"].tolist())
    dev_metrics = score(theme_matrix(dev, codebook.ids), dev_scores >= model.thresholds[None, :], dev_scores,
                        codebook.ids, dev["doc_id"].to_numpy(), n_boot=0)
    model.info["metrics"] = {"dev": {
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
