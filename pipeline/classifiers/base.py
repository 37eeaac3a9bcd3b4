"""The one small interface every theme classifier answers, so classify / predict / evaluate never
branch on the method (scikit-learn's estimator contract is the model):

    model.fit(train_texts, train_targets, dev_texts, dev_targets, weights) -> model
    model.predict_scores(texts)                                    -> (n, n_themes) probabilities
    model.predict(texts)                                           -> (scores, [theme ids over threshold])
    model.save(directory);  load_model(directory)                  -> the same model

A saved model directory always holds `model.json`: method, themes, thresholds, codebook hash,
training params and metrics; the method's own files sit beside it.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from pipeline import io
from pipeline.codebook import Codebook

MODEL_CARD = "model.json"


class ModelError(ValueError):
    """A model directory that cannot be used; the message says why and what to do."""


class ThemeClassifier(ABC):
    method: str = "base"

    def __init__(self, codebook: Codebook, params: dict | None = None):
        self.codebook = codebook
        self.themes: list[str] = codebook.ids
        self.params: dict = dict(params or {})
        self.thresholds = np.full(len(self.themes), 0.5)
        self.info: dict = {}  # training facts recorded in model.json (data sizes, base model, metrics)

    @abstractmethod
    def fit(self, texts: list[str], targets: np.ndarray, dev_texts: list[str] | None = None,
            dev_targets: np.ndarray | None = None, weights: np.ndarray | None = None) -> "ThemeClassifier":
        """Train on `texts` with `targets` (n × n_themes in [0, 1]: gold 0/1 or silver probabilities),
        each row counting `weights[i]` (silver rows count less than gold); tune thresholds on dev."""

    @abstractmethod
    def predict_scores(self, texts: list[str]) -> np.ndarray:
        """(n, n_themes) probabilities, columns in codebook order."""

    @abstractmethod
    def save_weights(self, directory: Path) -> None: ...

    @abstractmethod
    def load_weights(self, directory: Path) -> None: ...

    def predict(self, texts: list[str]) -> tuple[np.ndarray, list[list[str]]]:
        scores = self.predict_scores(texts)
        return scores, self.themes_over_threshold(scores)

    def themes_over_threshold(self, scores: np.ndarray) -> list[list[str]]:
        hits = scores >= self.thresholds[None, :]
        return [[t for t, hit in zip(self.themes, row) if hit] for row in hits]

    def tune_thresholds(self, dev_texts: list[str], dev_targets: np.ndarray, floor: float = 0.2) -> None:
        """Per-theme thresholds that maximise dev F1, at most `params['threshold_ceiling']`.

        The ceiling is there because dev is written in the training corpus's own voice: on real reports
        the same model scores lower, and a threshold tuned to in-domain confidence loses recall there."""
        if not dev_texts:
            return
        scores = self.predict_scores(dev_texts)
        ceiling = float(self.params.get("threshold_ceiling", 0.9))
        self.thresholds = tune_thresholds(scores, dev_targets >= 0.5, floor, ceiling)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_weights(directory)
        io.write_json(directory / MODEL_CARD, {
            "method": self.method, "themes": self.themes,
            "thresholds": {t: round(float(v), 4) for t, v in zip(self.themes, self.thresholds)},
            "codebook_hash": self.codebook.hash, "params": self.params, **self.info,
        })
        return directory


def tune_thresholds(scores: np.ndarray, truth: np.ndarray, floor: float = 0.2, ceiling: float = 0.9) -> np.ndarray:
    """Per theme, the lowest threshold in [floor, ceiling] with the best F1 (min(0.5, ceiling) where
    the theme has no positive)."""
    grid = np.round(np.arange(floor, ceiling + 1e-9, 0.025), 3)
    best = np.full(scores.shape[1], min(0.5, ceiling))
    for j in range(scores.shape[1]):
        if truth[:, j].sum() == 0:
            continue
        f1s = []
        for t in grid:
            pred = scores[:, j] >= t
            tp = float((pred & truth[:, j]).sum())
            f1s.append(2 * tp / (pred.sum() + truth[:, j].sum()) if pred.sum() + truth[:, j].sum() else 0.0)
        best[j] = grid[int(np.argmax(f1s))]  # first maximum: the lowest threshold with the best F1
    return best


def read_card(directory: str | Path) -> dict:
    directory = Path(directory)
    card = directory / MODEL_CARD
    if not card.is_file():
        raise ModelError(f"'{directory}' is not a model directory (no {MODEL_CARD}); train one with "
                         "`dvc repro` or pass --model models/<method>")
    return json.loads(card.read_text(encoding="utf-8"))


def load_model(directory: str | Path, codebook: Codebook | None = None) -> ThemeClassifier:
    """Load any saved model; refuse one whose themes don't match the codebook, saying why."""
    from pipeline.classifiers import METHODS, classifier_class
    from pipeline.codebook import load_codebook

    directory = Path(directory)
    card = read_card(directory)
    codebook = codebook or load_codebook()
    if card["themes"] != codebook.ids:
        raise ModelError(f"model '{directory}' was trained for themes {card['themes']}, but the codebook "
                         f"has {codebook.ids}: retrain it with the current codebook")
    if card.get("method") not in METHODS:
        raise ModelError(f"model '{directory}' has unknown method '{card.get('method')}'")
    model = classifier_class(card["method"])(codebook, card.get("params"))
    model.thresholds = np.array([card["thresholds"][t] for t in model.themes], dtype=float)
    model.info = {k: v for k, v in card.items()
                  if k not in ("method", "themes", "thresholds", "codebook_hash", "params")}
    model.info["trained_codebook_hash"] = card.get("codebook_hash")
    model.load_weights(directory)
    return model
