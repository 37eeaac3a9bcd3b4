"""The audit loop: how well the shipped classifier does on the researcher's own corpus.

`annotate export --audit` draws a random sample of the corpus's body paragraphs, stratified by the theme
the model predicted ('none' included; a paragraph with several predicted themes counts under its
highest-scoring one), an equal share per stratum so that rare themes get enough paragraphs to judge.
Coders get the tasks without the model's suggestions, in random order, so nothing anchors them;
sample.json records each paragraph's stratum and every stratum's population size.

`evaluate --audit` scores the predictions against the coded sample. A coded paragraph of stratum h
stands for N_h / m_h paragraphs of the corpus (N_h in the stratum, m_h of them coded), so precision and
recall estimate the whole corpus, not the sample; intervals resample paragraphs within strata. It writes
metrics/audit.json and data/annotations/audit/error_rates.json, whose confusion counts the trends stage
uses to correct theme shares (pipeline/quantify.py).
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.codebook import Codebook, load_codebook
from pipeline.labels.annotate import (AnnotateSettings, AnnotationError, body_paragraphs, codings_by_paragraph,
                                      fair_sample, interval, parse_jsonl, resample_counts, sample_size, validate,
                                      write_tasks)
from pipeline.labels.gold import targets
from pipeline.text import frame_contexts

log = logging.getLogger("pipeline.audit")
SAMPLE_FILE = "sample.json"
ERROR_RATES_FILE = "error_rates.json"


def load_sample(audit_dir: str | Path) -> dict:
    path = Path(audit_dir) / SAMPLE_FILE
    if not path.is_file():
        raise AnnotationError(f"{path}: no audit sample; draw one with `python -m pipeline annotate export --audit`")
    sample = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(sample, dict) or not {"strata", "paragraphs"} <= set(sample):
        raise AnnotationError(f"{path}: not an audit sample (no strata/paragraphs); draw it again with "
                              "`python -m pipeline annotate export --audit`")
    return sample


def load_predictions(settings: AnnotateSettings, codebook: Codebook, model_dir: str | None = None,
                     paragraphs: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Predicted themes (a bool column per theme) and the stratum (top predicted theme, else 'none') by
    para_id: `model_dir` scoring `paragraphs` now, else the predict stage's output. Also where they come from."""
    ids = codebook.ids
    if model_dir:
        from pipeline.classifiers.base import load_model

        model = load_model(model_dir, codebook)
        scores = model.theme_scores(paragraphs["text"].tolist(), frame_contexts(paragraphs))
        predicted, para_ids = scores >= model.thresholds[None, :], paragraphs["para_id"]
        origin = {"predictions": f"{model_dir} (scored by this command)", "model": str(model_dir),
                  "method": model.method}
    else:
        path = Path(settings.predictions)
        if not path.is_file():
            raise AnnotationError(f"{path}: no predictions; run `dvc repro predict` first, or pass --model DIR")
        frame = pd.read_parquet(path)
        missing = [c for c in ["para_id", "themes", *ids] if c not in frame]
        if missing:
            raise AnnotationError(f"{path}: no column(s) {missing}; rerun `dvc repro predict`")
        scores, para_ids = frame[ids].to_numpy(float), frame["para_id"]
        predicted = targets(frame["themes"], ids) >= 0.5
        first = frame.iloc[0] if len(frame) else {}
        origin = {"predictions": str(path), "model": str(first.get("model", "")),
                  "method": str(first.get("method", ""))}
    top = np.array(ids)[np.where(predicted, scores, -np.inf).argmax(axis=1)] if len(ids) else []
    out = pd.DataFrame(predicted, columns=ids, index=pd.Index(para_ids, name="para_id"))
    out["stratum"] = np.where(predicted.any(axis=1), top, "none")
    return out, origin


def export_audit(settings: AnnotateSettings, n: int | None = None, model_dir: str | None = None) -> dict[str, Path]:
    """A random sample of the corpus stratified by predicted theme → audit_dir/tasks.json, tasks.csv (no
    suggestions) and sample.json (each paragraph's stratum, each stratum's population)."""
    audit_dir = Path(settings.audit_dir)
    if any((audit_dir / "codings").glob("*.jsonl")):
        raise AnnotationError(f"{audit_dir / 'codings'}: holds codings of the current audit sample; a new sample "
                              f"would orphan them — move {audit_dir} aside first")
    codebook = load_codebook()
    paragraphs = body_paragraphs(settings.paragraphs)
    predictions, origin = load_predictions(settings, codebook, model_dir, paragraphs)
    has_prediction = paragraphs["para_id"].isin(predictions.index)
    if not has_prediction.all():
        log.warning("annotate export --audit: %d body paragraphs have no prediction in %s (older than the "
                    "paragraphs? rerun `dvc repro predict`); the sample is drawn from the other %d",
                    int((~has_prediction).sum()), origin["predictions"], int(has_prediction.sum()))
    paragraphs = paragraphs[has_prediction].reset_index(drop=True)
    if paragraphs.empty:
        raise AnnotationError(f"{settings.paragraphs}: no body paragraph with a prediction to sample")
    strata = predictions.loc[paragraphs["para_id"], "stratum"].to_numpy()
    picked = fair_sample(strata, None, sample_size(n, settings), settings.seed)
    # coders see the sample in random order: grouped by stratum, the order would hint at the prediction
    picked = [picked[i] for i in np.random.default_rng([settings.seed, 1]).permutation(len(picked))]
    population = pd.Series(strata).value_counts()
    sampled = pd.Series(strata[picked]).value_counts()
    sample = {
        "drawn_by": "python -m pipeline annotate export --audit", "seed": settings.seed, **origin,
        "population": len(paragraphs),
        "strata": {h: {"population": int(population[h]), "sampled": int(sampled.get(h, 0))}
                   for h in sorted(population.index)},
        "paragraphs": [{"para_id": paragraphs["para_id"].iloc[i], "stratum": strata[i],
                        "stratum_population": int(population[strata[i]])} for i in picked]}
    paths = write_tasks(paragraphs.iloc[picked], audit_dir)
    io.write_json(audit_dir / SAMPLE_FILE, sample)
    log.info("annotate export --audit: %d of %d paragraphs, strata %s → %s", len(picked), len(paragraphs),
             {h: s["sampled"] for h, s in sample["strata"].items()}, audit_dir)
    return {**paths, "sample": audit_dir / SAMPLE_FILE}


def audit_truth(audit_dir: Path, codebook: Codebook, sample_ids: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """para_id → coded themes: the adjudicated audit gold (audit_dir/gold/) where it has the paragraph,
    else the coders' codings (audit_dir/codings/) where they agree. Also the paragraphs left out because
    their coders disagree and nobody adjudicated them."""
    def coded_rows(folder: Path):
        for path in sorted(folder.glob("*.jsonl")):
            rows = parse_jsonl(path, None)
            validate(rows, codebook, sample_ids, f"the audit sample {audit_dir / SAMPLE_FILE}")
            yield from codings_by_paragraph(rows).values()

    codings = defaultdict(set)
    for row in coded_rows(audit_dir / "codings"):
        codings[row["para_id"]].add(frozenset(row["themes"]))
    truth = {p: sorted(next(iter(sets))) for p, sets in codings.items() if len(sets) == 1}
    truth.update({row["para_id"]: sorted(row["themes"]) for row in coded_rows(audit_dir / "gold")})
    conflicting = sorted(set(codings) - set(truth))
    return truth, conflicting


def _rates(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1; NaN where undefined (nothing predicted / nothing to find / neither)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
                "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
                "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)}


def effective_confusion(weights: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """One theme's confusion counts for the error-rate correction: design-weighted, so the rates are the
    corpus's, and scaled to the effective sample size (Kish) of the coded positives and of the negatives,
    so a rate estimated from few heavily weighted paragraphs stays as uncertain as it is."""
    out = {}
    for positive, hit, miss in ((True, "tp", "fn"), (False, "tn", "fp")):
        w, hits = weights[truth == positive], predicted[truth == positive] == positive
        scale = float(w.sum() / (w ** 2).sum()) if len(w) else 0.0  # effective size (Σw)²/Σw² per unit of Σw
        out[hit], out[miss] = round(float(w @ hits) * scale, 4), round(float(w @ ~hits) * scale, 4)
    return out


def _value(x) -> float | None:
    return None if np.isnan(x) else round(float(x), 4)


def _in_domain(metrics_dir: Path, method: str) -> dict | None:
    """The method's score on the project's own test split (metrics/evaluate.json), for comparison."""
    path = metrics_dir / "evaluate.json"
    if not path.is_file():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get("methods", {}).get(method)
    if not entry:
        return None
    return {"label": f"the project's own test split: {entry.get('test_set', 'its coded data')}, "
                     f"n={entry.get('n_test')} (metrics/evaluate.json)",
            "macro_f1": entry.get("macro_f1"), "f1": {t: v.get("f1") for t, v in entry.get("per_theme", {}).items()}}


def evaluate_audit(settings: AnnotateSettings, metrics_dir: str = "metrics", model_dir: str | None = None) -> dict:
    """Per-theme precision/recall/F1 on the user's corpus from the coded audit sample → metrics/audit.json
    and audit_dir/error_rates.json (the confusion counts trends uses to correct shares)."""
    codebook = load_codebook()
    ids = codebook.ids
    audit_dir = Path(settings.audit_dir)
    sample = load_sample(audit_dir)
    drawn = pd.DataFrame(sample["paragraphs"], columns=["para_id", "stratum"])
    truth, conflicting = audit_truth(audit_dir, codebook, set(drawn["para_id"]))
    if conflicting:
        log.warning("evaluate --audit: %d paragraphs coded differently by their coders are left out; adjudicate "
                    "them: python -m pipeline annotate adjudicate --audit %s/codings/*.jsonl",
                    len(conflicting), audit_dir)
    coded = drawn[drawn["para_id"].isin(truth)]
    paragraphs = None
    if model_dir:
        paragraphs = body_paragraphs(settings.paragraphs)
        paragraphs = paragraphs[paragraphs["para_id"].isin(coded["para_id"])]
    predictions, origin = load_predictions(settings, codebook, model_dir, paragraphs)
    without_prediction = int((~coded["para_id"].isin(predictions.index)).sum())
    if without_prediction:
        log.warning("evaluate --audit: %d coded paragraphs have no prediction in %s (re-segmented corpus?); left out",
                    without_prediction, origin["predictions"])
    coded = coded[coded["para_id"].isin(predictions.index)].reset_index(drop=True)
    if coded.empty:
        raise AnnotationError(f"{audit_dir}: no coded paragraph of the audit sample to score; code "
                              f"{audit_dir / 'tasks.csv'} and import it with `python -m pipeline annotate import "
                              "--audit FILE`")
    if origin["model"] != sample.get("model"):
        log.warning("evaluate --audit: the sample was drawn from predictions of %s, these come from %s; the "
                    "estimates stay unbiased (strata are only the design)", sample.get("model"), origin["model"])
    population = {h: s["population"] for h, s in sample["strata"].items()}
    per_stratum = coded["stratum"].value_counts()
    weights = coded["stratum"].map(lambda h: population[h] / per_stratum[h]).to_numpy(float)
    uncovered = {h: n for h, n in population.items() if h not in per_stratum}
    if uncovered:
        log.warning("evaluate --audit: no coded paragraph in stratum(s) %s; the estimates leave out their %d "
                    "paragraphs", sorted(uncovered), sum(uncovered.values()))

    gold = targets(pd.Series([truth[p] for p in coded["para_id"]]), ids) >= 0.5
    predicted = predictions.loc[coded["para_id"], ids].to_numpy(bool)
    cells = {"tp": gold & predicted, "fp": ~gold & predicted, "fn": gold & ~predicted, "tn": ~gold & ~predicted}
    point = _rates(*(weights @ cells[k] for k in ("tp", "fp", "fn")))
    rng = np.random.default_rng(settings.seed)
    boot_weights = resample_counts(coded["stratum"].to_numpy(), settings.bootstrap, rng)
    boot = _rates(*(boot_weights * weights[None, :] @ cells[k] for k in ("tp", "fp", "fn")))
    scored = ~np.isnan(point["f1"])
    with np.errstate(invalid="ignore"):
        boot_macro = np.nanmean(boot["f1"][:, scored], axis=1) if scored.any() and len(boot_weights) else np.array([])
    n_coded, total = len(coded), int(sum(population.values()))
    scope = (f"your corpus, n={n_coded} coded paragraphs, audit sample (random, stratified by predicted theme, "
             f"weighted to the {total} body paragraphs it was drawn from)")
    result = {
        "scope": scope, **origin, "n_sampled": len(drawn), "n_coded": n_coded,
        "n_coders_disagree": len(conflicting), "n_without_prediction": without_prediction, "population": total,
        "strata": {h: {"population": population[h], "sampled": sample["strata"][h]["sampled"],
                       "coded": int(per_stratum.get(h, 0)),
                       "weight": round(population[h] / per_stratum[h], 4) if h in per_stratum else None}
                   for h in sorted(population)},
        "bootstrap": {"resamples": settings.bootstrap, "seed": settings.seed,
                      "unit": "paragraph, within its stratum", "interval": "95% percentile"},
        "macro_f1": _value(np.mean(point["f1"][scored])) if scored.any() else None,
        "macro_f1_ci": interval(boot_macro) if settings.bootstrap else None,
        "macro_f1_themes": [t for t, s in zip(ids, scored) if s],
        "per_theme": {t: {**{m: _value(point[m][j]) for m in ("precision", "recall", "f1")},
                          **{f"{m}_ci": interval(boot[m][:, j]) if settings.bootstrap else None
                             for m in ("precision", "recall", "f1")},
                          "sample": {k: int(v[:, j].sum()) for k, v in cells.items()}}
                      for j, t in enumerate(ids)},
        "in_domain": _in_domain(Path(metrics_dir), origin["method"]),
    }
    error_rates = {
        "source": scope, **origin,
        "weighting": "design-weighted confusion counts scaled to the Kish effective sample size of the coded "
                     "positives and negatives of each theme (sample: the unweighted counts)",
        "confusion": {t: effective_confusion(weights, gold[:, j], predicted[:, j]) for j, t in enumerate(ids)},
        "sample_confusion": {t: result["per_theme"][t]["sample"] for t in ids}}
    io.write_json(Path(metrics_dir) / "audit.json", result)
    io.write_json(audit_dir / ERROR_RATES_FILE, error_rates)
    log.info("evaluate --audit: %s → %s, %s", scope, Path(metrics_dir) / "audit.json", audit_dir / ERROR_RATES_FILE)
    return result


def audit_table(result: dict) -> str:
    """The console summary: corpus estimates beside the in-domain F1, each labelled for what it is."""
    def cell(value, ci) -> str:
        return "NA" if value is None else f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    in_domain = result.get("in_domain") or {}
    lines = [result["scope"], f"in-domain F1: {in_domain.get('label', 'not available (no metrics/evaluate.json)')}",
             f"{'theme':<16} {'precision':<19} {'recall':<19} {'F1':<19} {'in-domain F1':>12}"]
    for theme, row in result["per_theme"].items():
        reference = (in_domain.get("f1") or {}).get(theme)
        lines.append(f"{theme:<16} {cell(row['precision'], row['precision_ci']):<19} "
                     f"{cell(row['recall'], row['recall_ci']):<19} {cell(row['f1'], row['f1_ci']):<19} "
                     f"{'NA' if reference is None else f'{reference:.2f}':>12}")
    return "\n".join(lines)
