"""The select_model stage: the method with the best dev macro-F1, within `min_gain`, becomes the shipped
default model (models/default), with a generated model card holding its dev and test scores per theme.

`methods` are listed from the cheapest to the costliest, and a costlier method replaces a cheaper one
only when it is better on dev by at least `min_gain`: a smaller lead is within the noise of a dev split
of a few hundred paragraphs (the paired bootstrap SD of bert − baseline on real dev is 0.014,
docs/benchmarks.md), and the cheaper model is then the better bet."""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline import io
from pipeline.classifiers import METHODS
from pipeline.classifiers.base import read_card
from pipeline.config import Settings, setting

log = logging.getLogger("pipeline.select")
SELECTION_METRICS = ("macro_f1", "micro_f1", "top1_accuracy")  # dev metrics train.py records; higher is better


@dataclass
class SelectSettings(Settings):
    methods: list[str] = setting(list(METHODS), choices=tuple(METHODS), nonempty=True)
    models_dir: str = "models"
    metric: str = setting("macro_f1", choices=SELECTION_METRICS)
    min_gain: float = setting(0.015, ge=0, le=1)  # dev lead a costlier method (later in `methods`) needs
    evaluation: str = "metrics/evaluate.json"


def choose(settings: SelectSettings) -> tuple[str, dict]:
    dev = {}
    for method in settings.methods:
        directory = Path(settings.models_dir) / method
        if (directory / "model.json").exists():
            dev[method] = read_card(directory).get("metrics", {}).get("dev", {})
    if not dev:
        raise ValueError(f"no trained model in {settings.models_dir}/ for {settings.methods}")
    value = {method: rows.get(settings.metric, -1) for method, rows in dev.items()}
    best, *costlier = dev  # in `methods` order: cheapest first
    for method in costlier:
        lead = value[method] - value[best]
        if lead > 0 and lead >= settings.min_gain:
            best = method
    return best, dev


def _ci(values) -> str:
    return f"{values[0]:.2f}–{values[1]:.2f}" if values else "–"


def model_card(method: str, card: dict, dev: dict, evaluation: dict, metric: str, min_gain: float) -> str:
    test = evaluation.get("methods", {}).get(method, {})
    in_domain = test.get("in_domain", {})
    compared = ", ".join(f"{m} {v.get(metric, float('nan')):.3f}" for m, v in dev.items())
    dev_rows = dev.get(method, {})
    lines = [f"# Default theme model: `{method}`", "",
             f"Chosen by the `select_model` stage on the dev {metric} of "
             f"{dev_rows.get('rows', '?')} {'real coded' if dev_rows.get('origin') == 'real' else 'coded'} dev "
             f"paragraphs ({compared}): the cheapest method that no costlier one beats by {min_gain} or more.", "",
             f"- codebook hash: `{card.get('codebook_hash')}`",
             f"- training rows by origin: {card.get('train_rows_by_origin')}",
             f"- params: `{json.dumps(card.get('params', {}), ensure_ascii=False)}`"]
    if "base_model" in card:
        lines.append(f"- base model: `{json.dumps(card['base_model'], ensure_ascii=False)}`")
    if test:
        lines += ["", f"## Test: {test.get('test_set', 'test split')}", "",
                  f"n = {test['n_test']} paragraphs in {test.get('n_documents', '?')} documents: micro-F1 "
                  f"{test['micro_f1']:.3f} ({_ci(test.get('micro_f1_ci'))}), macro-F1 {test['macro_f1']:.3f} "
                  f"({_ci(test.get('macro_f1_ci'))}), top-1 {test['top1_accuracy']:.3f}, no-theme paragraphs "
                  f"flagged {test['no_theme_flagged']:.3f}. Intervals: 95% bootstrap over documents."]
    if test.get("by_source"):
        lines += ["", "By source (macro-F1 over the themes a source's test paragraphs hold; few paragraphs per "
                      "theme make the intervals wide, and a source of few documents has little to resample):", "",
                  "| source | paragraphs | documents | micro-F1 (95% CI) | macro-F1 (95% CI) | themes held |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {v['n_test']} | {v['n_documents']} | {v['micro_f1']:.3f} ({_ci(v.get('micro_f1_ci'))}) | "
                  f"{v.get('macro_f1', float('nan')):.3f} ({_ci(v.get('macro_f1_ci'))}) | {len(v['support'])} |"
                  for name, v in test["by_source"].items()]
    lines += ["", "| theme | threshold | dev F1 | test P | test R | test F1 (95% CI) | support | "
                  "in-domain F1 (95% CI) |", "|---|---|---|---|---|---|---|---|"]
    dev_f1 = dev_rows.get("per_theme_f1", {})
    for theme, threshold in card["thresholds"].items():
        t = test.get("per_theme", {}).get(theme, {})
        d = in_domain.get("per_theme", {}).get(theme, {})
        lines.append(f"| {theme} | {threshold:.3f} | {dev_f1.get(theme, float('nan')):.3f} | "
                     f"{t.get('precision', float('nan')):.3f} | {t.get('recall', float('nan')):.3f} | "
                     f"{t.get('f1', float('nan')):.3f} ({_ci(t.get('f1_ci'))}) | {t.get('support', 0)} | "
                     f"{d.get('f1', float('nan')):.3f} ({_ci(d.get('f1_ci'))}) |")
    if in_domain:
        lines += ["", f"In-domain ({in_domain['test_set']}; an upper bound, same writers as training): "
                      f"macro-F1 {in_domain['macro_f1']:.3f} ({_ci(in_domain.get('macro_f1_ci'))}), "
                      f"n = {in_domain['n_test']}."]
    quantification = test.get("quantification")
    if quantification:
        lines += ["", "## Theme shares: counted vs error-corrected", "",
                  "On the test paragraphs, each theme's share as coded (true), as counted over the thresholds "
                  "(raw), and as `trends` can report it: calibrated probability averaging (pcc, the default) "
                  "and adjusted classify-and-count with the error rates measured where it was calibrated "
                  "(acc: real dev, and real train out of fold where the method does that). Mean absolute error: "
                  f"raw {quantification['mean_abs_error_raw']:.4f}, pcc {quantification['mean_abs_error_pcc']:.4f}, "
                  f"acc {quantification['mean_abs_error_acc']:.4f}.", "",
                  "| theme | true | raw | pcc | acc |", "|---|---|---|---|---|"]
        lines += [f"| {t} | {v['true']:.3f} | {v['raw']:.3f} | {v['pcc']:.3f} | {v['acc']:.3f} |"
                  for t, v in quantification["per_theme"].items()]
    lines += ["", "Known weaknesses and what reading its errors on real text taught us: see models/README.md."]
    return "\n".join(lines) + "\n"


def run(settings: SelectSettings) -> str:
    best, dev = choose(settings)
    source, target = Path(settings.models_dir) / best, Path(settings.models_dir) / "default"
    evaluation = json.loads(Path(settings.evaluation).read_text()) if Path(settings.evaluation).exists() else {}
    with io.replaced_dir(target) as staging:  # the previous default stays until the new one is complete
        shutil.copytree(source, staging, dirs_exist_ok=True)
        card = read_card(staging)
        io.write_json(staging / "selection.json", {"chosen": best, "metric": settings.metric,
                                                   "min_gain": settings.min_gain, "dev": dev})
        io.write_text(staging / "MODEL_CARD.md",
                      model_card(best, card, dev, evaluation, settings.metric, settings.min_gain))
    log.info("select_model: %s (dev %s %s) → %s", best, settings.metric, dev[best].get(settings.metric), target)
    return best
