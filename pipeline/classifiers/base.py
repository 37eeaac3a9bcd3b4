"""The one small interface every theme classifier answers, so classify / predict / evaluate never
branch on the method (scikit-learn's estimator contract is the model):

    model.fit(train_texts, train_targets, dev_texts, dev_targets, weights, contexts=…) -> model
    model.predict_scores(texts, contexts)                          -> (n, n_themes) raw probabilities
    model.theme_scores(texts, contexts)                            -> the same, calibrated on real dev
    model.predict(texts, contexts)                                 -> (calibrated scores, [theme ids over threshold])
    model.save(directory);  load_model(directory)                  -> the same model

`contexts` (optional, one string per text: `pipeline.text.paragraph_context`, the document title and
the headings above the paragraph) is what a coder sees besides the paragraph; a method that does not
read it ignores it, and every method scores a paragraph without one.

A saved model directory always holds `model.json`: method, themes, thresholds, codebook hash,
training params and metrics; the method's own files sit beside it.
"""
from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from pipeline import io
from pipeline.codebook import Codebook

MODEL_CARD = "model.json"
PICKLE_SUFFIXES = {".joblib", ".pkl", ".pickle"}  # never opened: unpickling a file can run any code in it
TRAINING_STAGES = {"bert": "train_bert"}  # the dvc stage that trains a method, where not named after it


class ModelError(ValueError):
    """A model directory that cannot be used; the message says why and what to do."""


class ThemeClassifier(ABC):
    method: str = "base"
    weight_files: tuple[str, ...] = ()  # the method's own files beside model.json, checked before loading

    def __init__(self, codebook: Codebook, params: dict | None = None):
        self.codebook = codebook
        self.themes: list[str] = codebook.ids
        self.params: dict = dict(params or {})
        self.thresholds = np.full(len(self.themes), 0.5)
        self.calibration = np.tile([1.0, 0.0], (len(self.themes), 1))  # per theme (a, b): identity
        self.info: dict = {}  # training facts recorded in model.json (data sizes, base model, metrics)

    @abstractmethod
    def fit(self, texts: list[str], targets: np.ndarray, dev_texts: list[str] | None = None,
            dev_targets: np.ndarray | None = None, weights: np.ndarray | None = None,
            contexts: list[str] | None = None, dev_contexts: list[str] | None = None) -> "ThemeClassifier":
        """Train on `texts` with `targets` (n × n_themes in [0, 1]: gold 0/1 or silver probabilities),
        each row counting `weights[i]` (silver rows count less than gold); tune thresholds on dev."""

    @abstractmethod
    def predict_scores(self, texts: list[str], contexts: list[str] | None = None) -> np.ndarray:
        """(n, n_themes) probabilities, columns in codebook order."""

    @abstractmethod
    def save_weights(self, directory: Path) -> None: ...

    @abstractmethod
    def load_weights(self, directory: Path) -> None: ...

    def predict(self, texts: list[str], contexts: list[str] | None = None) -> tuple[np.ndarray, list[list[str]]]:
        scores = self.theme_scores(texts, contexts)
        return scores, self.themes_over_threshold(scores)

    def theme_scores(self, texts: list[str], contexts: list[str] | None = None) -> np.ndarray:
        """Calibrated probabilities: Platt scaling per theme, fitted on real dev paragraphs."""
        return platt(self.predict_scores(texts, contexts), self.calibration)

    def calibrate(self, raw_scores: np.ndarray, truth: np.ndarray, min_positives: int = 5) -> None:
        """Fit per-theme Platt scaling on dev scores; themes with too few positives keep the identity.

        Also records each theme's intercept standard error (`info['calibration_se']`, from the fit's
        Fisher information): how uncertain the calibrated level is, which trends carries into intervals."""
        from sklearn.linear_model import LogisticRegression

        logits = _logit(raw_scores)
        standard_errors = {}
        for j, theme in enumerate(self.themes):
            y = truth[:, j].astype(int)
            if y.sum() < min_positives or (1 - y).sum() < min_positives:
                self.calibration[j] = (1.0, 0.0)
                standard_errors[theme] = None
                continue
            fit = LogisticRegression(C=100.0).fit(logits[:, [j]], y)
            self.calibration[j] = (float(fit.coef_[0, 0]), float(fit.intercept_[0]))
            p = fit.predict_proba(logits[:, [j]])[:, 1]
            design = np.column_stack([logits[:, j], np.ones(len(y))])
            covariance = np.linalg.pinv(design.T @ (design * (p * (1 - p))[:, None]))
            standard_errors[theme] = round(float(np.sqrt(max(covariance[1, 1], 0.0))), 6)
        self.info["calibration_se"] = standard_errors

    def themes_over_threshold(self, scores: np.ndarray) -> list[list[str]]:
        hits = scores >= self.thresholds[None, :]
        return [[t for t, hit in zip(self.themes, row) if hit] for row in hits]

    def tune_thresholds(self, dev_texts: list[str], dev_targets: np.ndarray, floor: float = 0.2,
                        dev_contexts: list[str] | None = None) -> None:
        """Per-theme thresholds that maximise dev F1, at most `params['threshold_ceiling']`.

        The ceiling is there because dev is written in the training corpus's own voice: on real reports
        the same model scores lower, and a threshold tuned to in-domain confidence loses recall there."""
        if not dev_texts:
            return
        scores = self.predict_scores(dev_texts, dev_contexts)
        ceiling = float(self.params.get("threshold_ceiling", 0.9))
        self.thresholds = tune_thresholds(scores, dev_targets >= 0.5, floor, ceiling)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_weights(directory)
        io.write_json(directory / MODEL_CARD, {
            "method": self.method, "themes": self.themes,
            "thresholds": {t: round(float(v), 4) for t, v in zip(self.themes, self.thresholds)},
            "calibration": {t: [round(float(a), 6), round(float(b), 6)]
                            for t, (a, b) in zip(self.themes, self.calibration)},
            "codebook_hash": self.codebook.hash, "params": self.params, **self.info,
        })
        return directory


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def platt(raw_scores: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """sigmoid(a · logit(p) + b) per theme column."""
    return 1.0 / (1.0 + np.exp(-(_logit(raw_scores) * calibration[None, :, 0] + calibration[None, :, 1])))


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


def retrain_hint(method: str) -> str:
    return f"retrain it with `dvc repro -s {TRAINING_STAGES.get(method, method)}`"


def refuse_pickles(directory: Path, method: str | None) -> None:
    """A ModelError if `directory` holds a pickle-format model: it is never opened, since unpickling runs code."""
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES) if directory.is_dir() else []
    if pickles:
        command = f"dvc repro -s {TRAINING_STAGES.get(method, method) if method else 'baseline'}"
        raise ModelError(f"'{directory / pickles[0]}' is an old pickle-format model; it is not loaded because "
                         f"pickle can run code; retrain with `{command}` (models are now safetensors + JSON)")


def read_card(directory: str | Path) -> dict:
    """The model card (model.json) of `directory`, as a mapping; a ModelError if it is missing or not JSON."""
    directory = Path(directory)
    card = directory / MODEL_CARD
    if not card.is_file():
        refuse_pickles(directory, None)
        raise ModelError(f"'{directory}' is not a model directory (no {MODEL_CARD}); train one with "
                         "`dvc repro` or pass --model models/<method>")
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{card} is unreadable ({err}); retrain the model with `dvc repro`") from None
    if not isinstance(data, dict):
        raise ModelError(f"{card} is not a JSON object; retrain the model with `dvc repro`")
    return data


def card_problem(card: dict) -> str | None:
    """What is wrong with the keys every model card needs, or None."""
    if not isinstance(card.get("themes"), list) or not all(isinstance(t, str) for t in card["themes"]):
        return "'themes' is missing or not a list of theme ids"
    per_theme = {"thresholds": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")}
    if "calibration" in card:  # older cards have none: the identity
        per_theme["calibration"] = (lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)),
                                    "[slope, intercept]")
    for key, (valid, expected) in per_theme.items():
        values = card.get(key)
        if not isinstance(values, dict):
            return f"'{key}' is missing or not a mapping of theme id to {expected}"
        for theme in card["themes"]:
            if not valid(values.get(theme)):
                return f"'{key}.{theme}' is missing or not {expected}"
    if not isinstance(card.get("params", {}), dict):
        return "'params' is not a mapping"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_model(directory: str | Path, codebook: Codebook | None = None) -> ThemeClassifier:
    """Load any saved model. Whatever is wrong with the directory (a missing, edited, truncated or
    pickle-format file; themes that differ from the codebook) is one ModelError naming the file and the
    fix, for every method."""
    from pipeline.classifiers import METHODS, classifier_class
    from pipeline.codebook import load_codebook

    directory = Path(directory)
    card = read_card(directory)
    card_path = directory / MODEL_CARD
    method = card.get("method")
    if method not in METHODS:
        raise ModelError(f"{card_path}: unknown method {method!r}, expected one of {sorted(METHODS)}")
    hint = retrain_hint(method)
    codebook = codebook or load_codebook()
    if isinstance(card.get("themes"), list) and card["themes"] != codebook.ids:
        raise ModelError(f"model '{directory}' was trained for themes {card['themes']}, but the codebook "
                         f"has {codebook.ids}: retrain it with the current codebook")
    problem = card_problem(card)
    if problem:
        raise ModelError(f"{card_path}: {problem}; {hint}")
    try:
        model = classifier_class(method)(codebook, card.get("params"))
    except ValueError as err:  # params the method no longer accepts
        raise ModelError(f"{card_path}: params: {err}; {hint}") from None
    model.thresholds = np.array([card["thresholds"][t] for t in model.themes], dtype=float)
    if "calibration" in card:
        model.calibration = np.array([card["calibration"][t] for t in model.themes], dtype=float)
    model.info = {k: v for k, v in card.items()
                  if k not in ("method", "themes", "thresholds", "calibration", "codebook_hash", "params")}
    model.info["trained_codebook_hash"] = card.get("codebook_hash")
    missing = [name for name in model.weight_files if not (directory / name).is_file()]
    if missing:
        refuse_pickles(directory, method)
        raise ModelError(f"{directory / missing[0]} is missing; {hint}")
    try:
        model.load_weights(directory)
    except ModelError:
        raise
    except Exception as err:  # any method's files, whatever their library raises: one line, not a traceback
        first_line = next(iter(str(err).strip().splitlines()), "")
        raise ModelError(f"model '{directory}' cannot be loaded ({type(err).__name__}: {first_line}); {hint}") from None
    return model
