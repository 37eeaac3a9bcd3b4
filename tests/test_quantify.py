"""Error-corrected shares: a classifier with known error rates must have its prevalence corrected."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import quantify, trends
from pipeline.classifiers.base import ModelError
from pipeline.codebook import load_codebook
from pipeline.quantify import ErrorRates, adjust
from pipeline.trends import TrendsSettings

TPR, FPR = 0.7, 0.15  # the synthetic classifier's error rates, the same for every theme
TOLERANCE = 0.03  # absolute error allowed on a corrected share (sampling noise at these sizes)


def synthetic_classifier(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flags a true theme with probability TPR and an absent one with probability FPR."""
    draws = rng.random(truth.shape)
    return np.where(truth, draws < TPR, draws < FPR)


def rates_from(truth: np.ndarray, flagged: np.ndarray, themes: list[str]) -> ErrorRates:
    confusion = {t: {"tp": int((truth[:, j] & flagged[:, j]).sum()), "fp": int((~truth[:, j] & flagged[:, j]).sum()),
                     "fn": int((truth[:, j] & ~flagged[:, j]).sum()), "tn": int((~truth[:, j] & ~flagged[:, j]).sum())}
                 for j, t in enumerate(themes)}
    return ErrorRates.from_counts(confusion, themes, "synthetic dev")


def test_adjusted_count_recovers_true_prevalence_of_a_classifier_with_known_error():
    rng = np.random.default_rng(0)
    themes = load_codebook().ids
    prevalence = np.linspace(0.02, 0.4, len(themes))
    dev_truth = rng.random((12000, len(themes))) < 0.3
    rates = rates_from(dev_truth, synthetic_classifier(dev_truth, rng), themes)
    corpus_truth = rng.random((20000, len(themes))) < prevalence
    observed = synthetic_classifier(corpus_truth, rng).mean(axis=0)
    corrected = adjust(observed, rates.tpr, rates.fpr)
    assert np.abs(observed - prevalence).max() > 0.1  # the raw share is badly off …
    assert np.abs(corrected - prevalence).max() < TOLERANCE  # … the corrected one is not


def test_adjust_clips_to_the_unit_interval_and_leaves_inseparable_themes_alone():
    tpr, fpr = np.array([0.8, 0.5]), np.array([0.1, 0.48])
    assert adjust(np.array([0.05, 0.3]), tpr, fpr).tolist() == [0.0, 0.3]
    assert adjust(np.array([0.95, 0.3]), tpr, fpr)[0] == 1.0


def _body(n_docs: int, prevalence: float, rng, themes) -> pd.DataFrame:
    rows = []
    for d in range(n_docs):
        for p in range(20):
            truth = rng.random(len(themes)) < prevalence
            flagged = synthetic_classifier(truth[None, :], rng)[0]
            rows.append({"para_id": f"d{d}-{p}", "doc_id": f"d{d}", "title": "", "date": "2020-01-01",
                         "year": 2020, "doc_type": "x", "source": "s", "order": p, "kind": "body",
                         "heading_path": [], "text": "文", "n_chars": 10,
                         "themes": [t for t, f in zip(themes, flagged) if f]})
    return pd.DataFrame(rows)


def test_trends_report_corrected_shares_with_intervals_that_cover_the_truth():
    rng = np.random.default_rng(1)
    themes = load_codebook().ids
    dev_truth = rng.random((3000, len(themes))) < 0.3
    rates = rates_from(dev_truth, synthetic_classifier(dev_truth, rng), themes)
    body = _body(60, 0.1, rng, themes)
    periods = trends.compute(body, TrendsSettings(resamples=300, by=[], correction="acc"), correction=trends.Correction.drawn(TrendsSettings(resamples=300, correction="acc"), rates=rates)).periods
    assert (periods["share_raw"] - 0.1).abs().min() > 0.06
    assert (periods["share"] - 0.1).abs().max() < 0.04
    covered = ((periods["lo"] <= 0.1) & (periods["hi"] >= 0.1)).mean()
    assert covered >= 0.75
    raw = trends.compute(body, TrendsSettings(resamples=300, by=[])).periods
    assert ((periods["hi"] - periods["lo"]) > (raw["hi"] - raw["lo"])).all()  # rate uncertainty widens them


def test_error_rates_come_from_the_audit_sample_when_there_is_one(tmp_path):
    themes = load_codebook().ids
    counts = {t: {"tp": 8, "fp": 2, "fn": 2, "tn": 88} for t in themes}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text(json.dumps({"dev_confusion": counts}))
    audit = tmp_path / "audit.json"
    assert quantify.load_error_rates(tmp_path / "model", themes, audit).origin.startswith("real dev")
    audit.write_text(json.dumps({"confusion": {t: {"tp": 1, "fp": 1, "fn": 1, "tn": 1} for t in themes}}))
    rates = quantify.load_error_rates(tmp_path / "model", themes, audit)
    assert rates.origin.startswith("audit sample") and rates.tpr[0] == pytest.approx(0.5)


def test_a_model_without_dev_rates_says_how_to_fix_it(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"method": "baseline"}))
    with pytest.raises(ModelError, match="trends.correction: none"):
        quantify.load_error_rates(tmp_path, load_codebook().ids)


def test_probability_averaging_recovers_prevalence_that_counting_over_a_threshold_misses():
    rng = np.random.default_rng(2)
    themes = load_codebook().ids
    body = _body(40, 0.0, rng, themes)
    # calibrated scores: each paragraph's theme is present with exactly its score's probability
    scores = rng.beta(0.6, 4.0, size=(len(body), len(themes)))
    truth = rng.random(scores.shape) < scores
    body[themes] = scores
    body["themes"] = [[t for t, s in zip(themes, row) if s >= 0.5] for row in scores]
    settings = TrendsSettings(resamples=300, by=[])
    correction = trends.Correction.drawn(settings, intercept_se=np.full(len(themes), 0.1))
    periods = trends.compute(body, settings, correction=correction).periods
    true_share = truth.mean(axis=0)
    assert np.abs(periods["share_raw"].to_numpy() - true_share).max() > 0.05
    assert np.abs(periods["share"].to_numpy() - true_share).max() < 0.02
    uncorrected_width = trends.compute(body, settings, correction=trends.Correction.drawn(
        settings, intercept_se=np.zeros(len(themes)))).periods.eval("hi - lo")
    assert (periods.eval("hi - lo") > uncorrected_width).all()  # the calibration's uncertainty is carried
