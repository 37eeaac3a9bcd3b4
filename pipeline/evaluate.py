"""Scores against gold, and the evaluate stage comparing every trained method on the test split.

The headline numbers are on the real coded paragraphs held out by date (origin `real`); the rest of the
test split (the project's team-written passages and demo gold) is reported beside them as `in_domain`,
labelled for what it is. Each method's error-corrected theme shares are checked against the true shares
of the real test paragraphs (`quantification`).

Per theme: precision, recall, F1 with bootstrap CIs (resampling test documents, so paragraphs of one
document move together); micro and macro F1; top-1 accuracy (the highest-scoring theme is one of the
gold themes, on rows with a theme); and the share of no-theme rows that get any theme.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.classifiers import METHODS
from pipeline.classifiers.base import load_model
from pipeline.codebook import load_codebook
from pipeline.config import Settings, setting
from pipeline.quantify import ErrorRates, adjust
from pipeline.text import frame_contexts

log = logging.getLogger("pipeline.evaluate")


def _f1(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-12), 0.0)


def counts(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-theme true positives, false positives, false negatives."""
    return ((truth & pred).sum(0).astype(float), (~truth & pred).sum(0).astype(float),
            (truth & ~pred).sum(0).astype(float))


def score(truth: np.ndarray, pred: np.ndarray, scores: np.ndarray, themes: list[str],
          groups: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
          macro_over: np.ndarray | None = None) -> dict:
    """All metrics of one method; CIs by bootstrap over `groups` (documents), else over rows. Macro-F1
    averages the themes `macro_over` marks (default: all)."""
    truth, pred = truth.astype(bool), pred.astype(bool)
    macro_over = np.ones(len(themes), bool) if macro_over is None else np.asarray(macro_over, bool)
    tp, fp, fn = counts(truth, pred)
    f1 = _f1(tp, fp, fn)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    has_theme = truth.any(axis=1)
    top1 = scores.argmax(axis=1)
    top1_hits = truth[np.arange(len(truth)), top1] & has_theme
    flagged = pred.any(axis=1) & ~has_theme

    groups = np.arange(len(truth)) if groups is None else np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    def by_group(mask: np.ndarray) -> np.ndarray:  # documents × themes counts
        return np.stack([np.bincount(inverse, mask[:, j], len(unique)) for j in range(len(themes))], 1)

    tp_g, fp_g, fn_g = by_group(truth & pred), by_group(~truth & pred), by_group(truth & ~pred)
    boot_f1, boot_macro, boot_micro = [], [], []
    for _ in range(n_boot):
        take = np.bincount(rng.integers(0, len(unique), len(unique)), minlength=len(unique))
        btp, bfp, bfn = take @ tp_g, take @ fp_g, take @ fn_g
        theme_f1 = _f1(btp, bfp, bfn)
        boot_f1.append(theme_f1)
        boot_macro.append(theme_f1[macro_over].mean())
        boot_micro.append(float(_f1(btp.sum(), bfp.sum(), bfn.sum())))
    lo, hi = (np.percentile(np.array(boot_f1), q, axis=0) for q in (2.5, 97.5)) if n_boot else (f1, f1)

    def ci(values):
        return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)] if n_boot else None

    return {
        "n_test": int(len(truth)), "n_documents": int(len(unique)),
        "micro_f1": round(float(_f1(tp.sum(), fp.sum(), fn.sum())), 4), "micro_f1_ci": ci(boot_micro),
        "macro_f1": round(float(f1[macro_over].mean()), 4), "macro_f1_ci": ci(boot_macro),
        "top1_accuracy": round(float(top1_hits.sum() / max(has_theme.sum(), 1)), 4),
        "no_theme_flagged": round(float(flagged.sum() / max((~has_theme).sum(), 1)), 4),
        "per_theme": {t: {"precision": round(float(precision[j]), 4), "recall": round(float(recall[j]), 4),
                          "f1": round(float(f1[j]), 4), "f1_ci": [round(float(lo[j]), 4), round(float(hi[j]), 4)],
                          "support": int(truth[:, j].sum())} for j, t in enumerate(themes)},
    }


def theme_matrix(frame: pd.DataFrame, themes: list[str]) -> np.ndarray:
    return frame[themes].to_numpy() >= 0.5


@dataclass
class EvaluateSettings(Settings):
    methods: list[str] = setting(list(METHODS), choices=tuple(METHODS), nonempty=True)
    models_dir: str = "models"
    test: str = "data/processed/test.parquet"
    metrics_dir: str = "metrics"
    bootstrap: int = setting(1000, ge=0)  # resamples for confidence intervals; 0: none
    seed: int = setting(0, ge=0)


def evaluate_model(model, frame: pd.DataFrame, n_boot: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    scores, _ = model.predict(frame["text"].tolist(), frame_contexts(frame))
    pred = scores >= model.thresholds[None, :]
    truth = theme_matrix(frame, model.themes)
    metrics = score(truth, pred, scores, model.themes, frame["doc_id"].to_numpy(), n_boot, seed)
    if "source" in frame and frame["source"].notna().any():
        metrics["by_source"] = by_source(frame, truth, pred, scores, model.themes, n_boot, seed)
    return metrics, scores, pred


def by_source(frame: pd.DataFrame, truth, pred, scores, themes: list[str], n_boot: int, seed: int) -> dict:
    """Micro- and macro-F1 per source (新闻联播, a report series, …): where a method is weak. Macro-F1 is over
    the themes the source's paragraphs hold (one none of them has would count as F1 0); micro-F1 counts every
    theme's errors. A source has few paragraphs per theme, so its intervals are wide: read them with `support`."""
    out = {}
    sources, documents = frame["source"].fillna("").astype(str).to_numpy(), frame["doc_id"].to_numpy()
    for source in sorted(set(sources) - {""}):  # rows without a source are in the whole-set numbers alone
        rows = sources == source
        held = truth[rows].any(axis=0)
        metrics = score(truth[rows], pred[rows], scores[rows], themes, documents[rows], n_boot, seed,
                        macro_over=held if held.any() else None)
        out[source] = {k: metrics[k] for k in ("n_test", "n_documents", "micro_f1", "micro_f1_ci")}
        if held.any():
            out[source].update(macro_f1=metrics["macro_f1"], macro_f1_ci=metrics["macro_f1_ci"])
        out[source]["support"] = {t: v["support"] for t, v in metrics["per_theme"].items() if v["support"]}
    return out


REAL_TEST = "real coded paragraphs, held out by document and date"
IN_DOMAIN_TEST = "test split of the project's coded data (team-written passages and demo gold)"


def quantification_check(model, truth: np.ndarray, scores: np.ndarray, pred: np.ndarray) -> dict | None:
    """Per theme on a test set: the true share, the classify-and-count share, and the two corrected
    estimates trends can chart — calibrated probability averaging (pcc) and adjusted count (acc)."""
    if "dev_confusion" not in model.info:
        return None
    rates = ErrorRates.from_counts(model.info["dev_confusion"], model.themes, "model dev")
    estimates = {"true": truth.mean(axis=0), "raw": pred.mean(axis=0), "pcc": scores.mean(axis=0)}
    estimates["acc"] = adjust(estimates["raw"], rates.tpr, rates.fpr)
    return {"per_theme": {t: {k: round(float(v[j]), 4) for k, v in estimates.items()}
                          for j, t in enumerate(model.themes)},
            **{f"mean_abs_error_{k}": round(float(np.abs(estimates[k] - estimates["true"]).mean()), 4)
               for k in ("raw", "pcc", "acc")}}


def _plot_rows(method: str, themes: list[str], truth, scores, pred) -> tuple[list, list]:
    """Rows for DVC plots: top-1 confusion (first gold theme vs best predicted), PR curve points."""
    confusion = []
    for t_row, s_row, p_row in zip(truth, scores, pred):
        actual = themes[int(np.argmax(t_row))] if t_row.any() else "none"
        predicted = themes[int(np.argmax(s_row))] if p_row.any() else "none"
        confusion.append({"method": method, "actual": actual, "predicted": predicted})
    pr = []
    for j, theme in enumerate(themes):
        order = np.argsort(-scores[:, j], kind="stable")
        hits = truth[order, j].astype(float)
        tp = np.cumsum(hits)
        for k in range(0, len(order), max(1, len(order) // 50)):
            pr.append({"method": method, "theme": theme, "recall": round(float(tp[k] / max(hits.sum(), 1)), 4),
                       "precision": round(float(tp[k] / (k + 1)), 4)})
    return confusion, pr


def run(settings: EvaluateSettings) -> dict:
    codebook = load_codebook()
    test = pd.read_parquet(settings.test)
    results, f1_rows, confusion_rows, pr_rows = {}, [], [], []
    is_real = (test["origin"] == "real").to_numpy() if "origin" in test else np.zeros(len(test), bool)
    headline, in_domain = (test[is_real], test[~is_real]) if is_real.any() else (test, test.iloc[:0])
    for method in settings.methods:
        directory = Path(settings.models_dir) / method
        if not (directory / "model.json").exists():
            log.info("evaluate: no %s model in %s; skipped", method, directory)
            continue
        model = load_model(directory, codebook)
        metrics, scores, pred = evaluate_model(model, headline, settings.bootstrap, settings.seed)
        metrics["test_set"] = REAL_TEST if is_real.any() else IN_DOMAIN_TEST
        if len(in_domain):
            metrics["in_domain"] = {**evaluate_model(model, in_domain, settings.bootstrap, settings.seed)[0],
                                    "test_set": IN_DOMAIN_TEST}
        metrics["quantification"] = quantification_check(model, theme_matrix(headline, model.themes), scores, pred)
        metrics["dev"] = model.info.get("metrics", {}).get("dev")
        metrics["model"] = {k: model.info[k] for k in ("base_model", "train_rows") if k in model.info}
        results[method] = metrics
        compact = {"codebook_hash": codebook.hash, "test_set": metrics["test_set"], "n_test": metrics["n_test"],
                   **{k: metrics[k] for k in ("micro_f1", "macro_f1", "macro_f1_ci", "top1_accuracy",
                                              "no_theme_flagged")},
                   "f1": {t: v["f1"] for t, v in metrics["per_theme"].items()}}
        if "in_domain" in metrics:
            compact["in_domain_macro_f1"] = metrics["in_domain"]["macro_f1"]
        if metrics.get("by_source"):  # so `dvc metrics diff` shows where an experiment moved a method
            compact["by_source"] = {name: {k: v[k] for k in ("micro_f1", "macro_f1") if k in v}
                                    for name, v in metrics["by_source"].items()}
        if metrics["quantification"]:
            compact["share_error"] = {k: metrics["quantification"][f"mean_abs_error_{k}"] for k in ("raw", "pcc", "acc")}
        io.write_json(Path(settings.metrics_dir) / f"{method}.json", compact)
        f1_rows.extend({"method": method, "theme": t, "f1": v["f1"]} for t, v in metrics["per_theme"].items())
        confusion, pr = _plot_rows(method, model.themes, theme_matrix(headline, model.themes), scores, pred)
        confusion_rows.extend(confusion)
        pr_rows.extend(pr)
        log.info("evaluate: %s micro-F1 %.3f macro-F1 %.3f top-1 %.3f on %d test paragraphs", method,
                 metrics["micro_f1"], metrics["macro_f1"], metrics["top1_accuracy"], metrics["n_test"])
    if not results:
        raise ValueError(f"no trained model under {settings.models_dir}/ for {settings.methods}: run dvc repro")
    summary = {"codebook_hash": codebook.hash, "test_rows": len(headline), "in_domain_rows": len(in_domain),
               "test_set": REAL_TEST if is_real.any() else IN_DOMAIN_TEST, "methods": results}
    io.write_json(Path(settings.metrics_dir) / "evaluate.json", summary)
    plots = Path(settings.metrics_dir) / "plots"
    io.write_csv(plots / "per_theme_f1.csv", pd.DataFrame(f1_rows))
    io.write_csv(plots / "confusion.csv", pd.DataFrame(confusion_rows))
    io.write_csv(plots / "pr_curves.csv", pd.DataFrame(pr_rows))
    return summary
