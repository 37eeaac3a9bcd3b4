"""Error-corrected theme shares (quantification): calibrated probability averaging and adjusted
classify-and-count.

Calibrated probability averaging (PCC, the default): a theme's share is the mean of its calibrated
probabilities (Platt scaling fitted on real dev), which is unbiased where the calibration holds;
`load_calibration_se` gives the calibration intercepts' standard errors that trends carries into intervals.

A classifier that flags some no-theme paragraphs (false positive rate `fpr`) and misses some theme
paragraphs (true positive rate `tpr`) reports an observed share `q = tpr·p + fpr·(1 − p)` of a true share
`p`. Solving for `p` gives the adjusted estimate `(q − fpr) / (tpr − fpr)`, clipped to [0, 1]
(Forman's adjusted classify-and-count). The rates come from coded paragraphs the model never trained
on: its calibration rows recorded in the model directory (`dev_confusion` in model.json: the real dev
split, and for the baseline the real training paragraphs scored out of fold), or the
researcher's own audit sample of their corpus when there is one (`evaluate --audit`), which measures the
error where it matters.

The rates are estimates too: `rate_draws` samples them from their Beta posteriors (Jeffreys prior), so
intervals that combine document resampling with these draws carry the classifier's uncertainty.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.classifiers.base import MODEL_CARD, ModelError, read_card

MIN_SEPARATION = 0.05  # tpr − fpr below this: the classifier cannot tell the theme apart; no correction


@dataclass
class ErrorRates:
    """Per-theme confusion counts on coded paragraphs (arrays in theme order) and where they come from."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    origin: str

    @classmethod
    def from_counts(cls, confusion: dict, themes: list[str], origin: str) -> "ErrorRates":
        missing = [t for t in themes if t not in confusion]
        if missing:
            raise ModelError(f"{origin}: no confusion counts for theme(s) {missing}; retrain the model "
                             "(`dvc repro`) or redo the audit (`python -m pipeline evaluate --audit`)")
        get = lambda key: np.array([float(confusion[t][key]) for t in themes])  # noqa: E731
        return cls(get("tp"), get("fp"), get("fn"), get("tn"), origin)

    @property
    def tpr(self) -> np.ndarray:
        return (self.tp + 0.5) / (self.tp + self.fn + 1.0)

    @property
    def fpr(self) -> np.ndarray:
        return (self.fp + 0.5) / (self.fp + self.tn + 1.0)


def load_error_rates(model_dir: str | Path, themes: list[str], audit_file: str | Path | None = None) -> ErrorRates:
    """The audit sample's rates when `audit_file` exists, else the model's real-dev rates."""
    if audit_file and Path(audit_file).is_file():
        audit = json.loads(Path(audit_file).read_text(encoding="utf-8"))
        return ErrorRates.from_counts(audit.get("confusion", {}), themes, f"audit sample {audit_file}")
    card = read_card(model_dir)
    if "dev_confusion" not in card:
        raise ModelError(f"{Path(model_dir) / MODEL_CARD}: has no dev_confusion (trained before error-corrected shares); "
                         "retrain with `dvc repro`, or set trends.correction: none")
    return ErrorRates.from_counts(card["dev_confusion"], themes,
                                  f"real dev split (and real train scored out of fold) of {model_dir}")


def load_calibration_se(model_dir: str | Path, themes: list[str]) -> np.ndarray:
    """Per-theme standard error of the calibration intercept (0 where the model was not calibrated)."""
    card = read_card(model_dir)
    if "calibration_se" not in card:
        raise ModelError(f"{Path(model_dir) / MODEL_CARD}: has no calibration_se (a model trained before calibrated shares); "
                         "retrain with `dvc repro`, or set trends.correction: none")
    return np.array([card["calibration_se"].get(t) or 0.0 for t in themes], dtype=float)


def adjust(observed: np.ndarray, tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """Adjusted classify-and-count; where tpr − fpr is too small to divide by, the observed share."""
    separation = tpr - fpr
    usable = separation >= MIN_SEPARATION
    corrected = (observed - fpr) / np.where(usable, separation, 1.0)
    return np.where(usable, np.clip(corrected, 0.0, 1.0), observed)


def rate_draws(rates: ErrorRates, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(tpr, fpr), each (n, n_themes), drawn from Beta(count + ½, …) posteriors."""
    tpr = rng.beta(rates.tp + 0.5, rates.fn + 0.5, size=(n, len(rates.tp)))
    fpr = rng.beta(rates.fp + 0.5, rates.tn + 0.5, size=(n, len(rates.fp)))
    return tpr, fpr
