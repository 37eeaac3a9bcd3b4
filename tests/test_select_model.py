"""select_model: the cheapest method wins unless a costlier one leads on dev by at least min_gain."""
from __future__ import annotations

import json

import pytest

from pipeline.select_model import SelectSettings, choose, model_card


def write_models(tmp, dev_f1: dict[str, float]):
    for method, f1 in dev_f1.items():
        (tmp / method).mkdir()
        (tmp / method / "model.json").write_text(json.dumps({"metrics": {"dev": {"macro_f1": f1, "rows": 733}}}))


@pytest.mark.parametrize("dev_f1, min_gain, chosen", [
    ({"dictionary": 0.676, "baseline": 0.780, "bert": 0.783}, 0.015, "baseline"),  # a lead within the noise
    ({"dictionary": 0.676, "baseline": 0.780, "bert": 0.800}, 0.015, "bert"),
    ({"dictionary": 0.676, "baseline": 0.780, "bert": 0.783}, 0.0, "bert"),  # min_gain 0: the best on dev
    ({"dictionary": 0.676, "baseline": 0.780, "bert": 0.780}, 0.0, "baseline"),  # a tie: the cheaper one
    ({"dictionary": 0.676, "bert": 0.700}, 0.015, "bert"),  # no baseline trained
])
def test_a_costlier_method_needs_a_dev_lead_of_min_gain(tmp_path, dev_f1, min_gain, chosen):
    write_models(tmp_path, dev_f1)
    best, dev = choose(SelectSettings(models_dir=str(tmp_path), min_gain=min_gain))
    assert best == chosen and list(dev) == [m for m in ("dictionary", "baseline", "bert") if m in dev_f1]


def test_the_lead_is_measured_from_the_current_choice_not_from_the_cheapest(tmp_path):
    write_models(tmp_path, {"dictionary": 0.70, "baseline": 0.72, "bert": 0.73})
    assert choose(SelectSettings(models_dir=str(tmp_path), min_gain=0.015))[0] == "baseline"


def test_the_model_card_shows_test_scores_by_source():
    test = {"n_test": 3, "n_documents": 2, "micro_f1": 0.8, "micro_f1_ci": [0.7, 0.9], "macro_f1": 0.75,
            "macro_f1_ci": [0.6, 0.85], "top1_accuracy": 0.9, "no_theme_flagged": 0.0, "per_theme": {},
            "by_source": {"新闻联播": {"n_test": 2, "n_documents": 1, "micro_f1": 0.9, "micro_f1_ci": [0.8, 1.0],
                                       "macro_f1": 0.85, "macro_f1_ci": [0.7, 1.0], "support": {"a": 1, "b": 1}}}}
    card = model_card("baseline", {"thresholds": {"a": 0.5, "b": 0.5}}, {"baseline": {"macro_f1": 0.7}},
                      {"methods": {"baseline": test}}, "macro_f1", 0.015)
    assert "| 新闻联播 | 2 | 1 | 0.900 (0.80–1.00) | 0.850 (0.70–1.00) | 2 |" in card
