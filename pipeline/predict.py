"""The predict stage: the chosen model scores every paragraph, with its context (document title and
headings), → data/processed/paragraph_themes.parquet."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline import io
from pipeline.classifiers import METHODS
from pipeline.cache import ResultCache, cached_map, code_version, file_digest, fingerprint
from pipeline.classifiers.base import ThemeClassifier, load_model
from pipeline.config import Settings, SettingsError, setting
from pipeline.engines import Engine
from pipeline.text import frame_contexts

log = logging.getLogger("pipeline.predict")
MODEL_CHOICES = ("best", *METHODS)  # best: models/default, the model select_model shipped


@dataclass
class PredictSettings(Settings):
    model: str = setting("best", nonempty=True)  # best (models/default, chosen on dev) | a method | a directory
    models_dir: str = "models"
    paragraphs: str = "data/interim/paragraphs.parquet"
    output: str = "data/processed/paragraph_themes.parquet"
    batch_size: int = setting(512, ge=1)  # paragraphs scored together, at most (batches end at documents)

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


def batch_bounds(doc_ids: pd.Series, most: int) -> list[tuple[int, int]]:
    """(start, stop) rows of the scoring batches: runs of whole documents, each ending after a document
    whose id ends in 0 (one in sixteen, chosen by content, not by position), or at `most` rows. A
    document added anywhere therefore changes only the batch it joins, and the other batches' scores
    are found in the cache: a refresh scores the new documents, not the corpus."""
    ids = doc_ids.to_numpy()
    last_of_document = np.append(ids[1:] != ids[:-1], True) if len(ids) else np.zeros(0, bool)
    bounds, start = [], 0
    for row in np.flatnonzero(last_of_document & np.char.endswith(ids.astype(str), "0")).tolist():
        while row + 1 - start > most:
            bounds.append((start, start + most))
            start += most
        bounds.append((start, row + 1))
        start = row + 1
    for stop in range(start + most, len(ids) + most, most):
        bounds.append((start, min(stop, len(ids))))
        start = stop
    return bounds


def score_paragraphs(paragraphs: list[tuple[str, str]], model: ThemeClassifier) -> list[list[float]]:
    """Calibrated theme scores of (text, context) pairs, as lists (a cacheable result)."""
    texts, contexts = zip(*paragraphs) if paragraphs else ((), ())
    return model.theme_scores(list(texts), list(contexts)).tolist()


def run(settings: PredictSettings, engine: Engine | None = None, cache: ResultCache | None = None) -> pd.DataFrame:
    """Score every body paragraph, in batches of whole documents (`batch_bounds`), on `engine`; batches
    scored by the same model before are read from `cache`."""
    started = time.perf_counter()
    directory = resolve_model_dir(settings.model, settings.models_dir)
    model = load_model(directory)
    version = fingerprint([file_digest(p) for p in sorted(directory.rglob("*")) if p.is_file()],
                          code_version(["pipeline.classifiers"]))
    paragraphs = pd.read_parquet(settings.paragraphs, columns=["para_id", "doc_id", "kind", "text", "title",
                                                                "heading_path"])
    paragraphs = paragraphs[paragraphs["kind"] == "body"].reset_index(drop=True)
    bounds = batch_bounds(paragraphs["doc_id"], settings.batch_size)
    pairs = list(zip(paragraphs["text"], frame_contexts(paragraphs)))  # what the model reads of each paragraph

    def batches():
        return (pairs[start:stop] for start, stop in bounds)

    parts = []
    with tqdm(total=len(paragraphs), desc=f"predict ({model.method})", unit="para", disable=None) as bar:
        for scores in cached_map(partial(score_paragraphs, model=model), batches, partial(fingerprint, version), cache,
                                 engine or Engine()):
            parts.append(np.asarray(scores, dtype=float).reshape(-1, len(model.themes)))
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
