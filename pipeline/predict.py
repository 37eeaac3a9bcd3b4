"""The predict stage: the chosen model scores every paragraph → data/processed/paragraph_themes.parquet."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline import io
from pipeline.classifiers import METHODS
from pipeline.classifiers.base import load_model
from pipeline.config import Settings, SettingsError, setting
from pipeline.engines import Engine, map_ordered

log = logging.getLogger("pipeline.predict")
MODEL_CHOICES = ("best", *METHODS)  # best: models/default, the model select_model shipped


@dataclass
class PredictSettings(Settings):
    model: str = setting("best", nonempty=True)  # best (models/default, chosen on dev) | a method | a directory
    models_dir: str = "models"
    paragraphs: str = "data/interim/paragraphs.parquet"
    output: str = "data/processed/paragraph_themes.parquet"
    batch_size: int = setting(512, ge=1)

    def __post_init__(self):
        super().__post_init__()
        if self.model not in MODEL_CHOICES and not {"/", os.sep} & set(self.model):  # a bare word is a typo
            raise SettingsError("model", f"{self.model!r} is neither a method nor a path",
                                f"one of {', '.join(MODEL_CHOICES)}, or a model directory such as ./my_model")


def resolve_model_dir(choice: str, models_dir: str) -> Path:
    if choice == "best":
        return Path(models_dir) / "default"
    if choice in METHODS:
        return Path(models_dir) / choice
    return Path(choice)


def run(settings: PredictSettings, engine: Engine | None = None) -> pd.DataFrame:
    """Score every body paragraph, one batch of `settings.batch_size` at a time, on `engine`."""
    started = time.perf_counter()
    directory = resolve_model_dir(settings.model, settings.models_dir)
    model = load_model(directory)
    paragraphs = pd.read_parquet(settings.paragraphs, columns=["para_id", "doc_id", "kind", "text"])
    paragraphs = paragraphs[paragraphs["kind"] == "body"].reset_index(drop=True)
    batches = (paragraphs["text"].iloc[start:start + settings.batch_size].tolist()
               for start in range(0, len(paragraphs), settings.batch_size))
    parts = []
    with tqdm(total=len(paragraphs), desc=f"predict ({model.method})", unit="para", disable=None) as bar:
        for scores in map_ordered(model.theme_scores, batches, engine or Engine(), batch=1):
            parts.append(scores)
            bar.update(len(scores))
    scores = np.vstack(parts) if parts else np.zeros((0, len(model.themes)))
    out = paragraphs[["para_id", "doc_id"]].copy()
    for j, theme in enumerate(model.themes):
        out[theme] = scores[:, j].round(5)
    out["themes"] = model.themes_over_threshold(scores)
    out["model"] = str(directory)
    out["method"] = model.method
    io.write_parquet(settings.output, out)
    seconds = time.perf_counter() - started
    log.info("predict: %d paragraphs with %s (%s) in %.1fs (%.0f paragraphs/s) → %s", len(out), directory,
             model.method, seconds, len(out) / max(seconds, 1e-9), settings.output)
    return out
