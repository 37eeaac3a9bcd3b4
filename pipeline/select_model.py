"""The select_model stage: the method with the best dev macro-F1 becomes the shipped default model
(models/default), with a generated model card holding its dev and test scores per theme."""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import io
from pipeline.classifiers.base import read_card

log = logging.getLogger("pipeline.select")


@dataclass
class SelectSettings:
    methods: list[str] = field(default_factory=lambda: ["dictionary", "baseline", "bert"])
    models_dir: str = "models"
    metric: str = "macro_f1"
    evaluation: str = "metrics/evaluate.json"


def choose(settings: SelectSettings) -> tuple[str, dict]:
    dev = {}
    for method in settings.methods:
        directory = Path(settings.models_dir) / method
        if (directory / "model.json").exists():
            dev[method] = read_card(directory).get("metrics", {}).get("dev", {})
    if not dev:
        raise ValueError(f"no trained model in {settings.models_dir}/ for {settings.methods}")
    best = max(dev, key=lambda m: (dev[m].get(settings.metric, -1), -settings.methods.index(m)))
    return best, dev


def model_card(method: str, card: dict, dev: dict, evaluation: dict, metric: str) -> str:
    test = evaluation.get("methods", {}).get(method, {})
    compared = ", ".join(f"{m} {v.get(metric, float('nan')):.3f}" for m, v in dev.items())
    lines = [f"# Default theme model: `{method}`", "",
             f"Chosen by the `select_model` stage as the method with the highest dev {metric} ({compared}).", "",
             f"- codebook hash: `{card.get('codebook_hash')}`",
             f"- training rows by origin: {card.get('train_rows_by_origin')}",
             f"- params: `{json.dumps(card.get('params', {}), ensure_ascii=False)}`"]
    if "base_model" in card:
        lines.append(f"- base model: `{json.dumps(card['base_model'], ensure_ascii=False)}`")
    lines += ["", "| theme | threshold | dev F1 | test P | test R | test F1 (95% CI) | test support |",
              "|---|---|---|---|---|---|---|"]
    dev_f1 = dev.get(method, {}).get("per_theme_f1", {})
    for theme, threshold in card["thresholds"].items():
        t = test.get("per_theme", {}).get(theme, {})
        ci = t.get("f1_ci") or [float("nan")] * 2
        lines.append(f"| {theme} | {threshold:.3f} | {dev_f1.get(theme, float('nan')):.3f} | "
                     f"{t.get('precision', float('nan')):.3f} | "
                     f"{t.get('recall', float('nan')):.3f} | {t.get('f1', float('nan')):.3f} "
                     f"({ci[0]:.2f}–{ci[1]:.2f}) | {t.get('support', 0)} |")
    if test:
        lines += ["", f"Test: micro-F1 {test['micro_f1']:.3f}, macro-F1 {test['macro_f1']:.3f}, top-1 "
                      f"{test['top1_accuracy']:.3f}, no-theme rows flagged {test['no_theme_flagged']:.3f} "
                      f"(n = {test['n_test']}). By origin: {json.dumps(test.get('by_origin'), ensure_ascii=False)}"]
    lines += ["", "Known weaknesses and what reading its errors on real reports taught us: see models/README.md."]
    return "\n".join(lines) + "\n"


def run(settings: SelectSettings) -> str:
    best, dev = choose(settings)
    source, target = Path(settings.models_dir) / best, Path(settings.models_dir) / "default"
    staging = target.with_name(".default.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    evaluation = json.loads(Path(settings.evaluation).read_text()) if Path(settings.evaluation).exists() else {}
    card = read_card(staging)
    io.write_json(staging / "selection.json", {"chosen": best, "metric": settings.metric, "dev": dev})
    io.write_text(staging / "MODEL_CARD.md", model_card(best, card, dev, evaluation, settings.metric))
    previous = target.with_name(".default.old")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)  # the previous default stays until the new one is complete
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    log.info("select_model: %s (dev %s %s) → %s", best, settings.metric, dev[best].get(settings.metric), target)
    return best
