"""scripts/worked_example.py: real series in, figures out; a clean skip or a clear refusal otherwise."""
from __future__ import annotations

import pytest
import worked_example  # scripts/ is on sys.path (conftest.py)

from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook


def test_without_the_shared_corpora_it_skips_cleanly(tmp_path, capsys):
    assert worked_example.main(["--corpora", str(tmp_path / "absent")]) == 0
    assert "worked example skipped" in capsys.readouterr().out


def test_without_a_model_it_says_how_to_get_one(shared_corpora, tmp_path, capsys):
    assert worked_example.main(["--model", str(tmp_path / "no-model"), "--work", str(tmp_path / "work")]) == 1
    assert "dvc repro" in capsys.readouterr().err


@pytest.mark.slow
def test_real_series_give_the_trend_figures(shared_corpora, tmp_path):
    model = DictionaryClassifier(load_codebook()).save(tmp_path / "model")
    figures, params = tmp_path / "figures", tmp_path / "params.yaml"
    params.write_text("charts:\n  dpi: 150\n  formats: [png, svg]\n", encoding="utf-8")  # other stages: defaults
    assert worked_example.main(["--model", str(model), "--work", str(tmp_path / "work"), "--figures", str(figures),
                                "--params", str(params)]) == 0
    assert {p.name for p in figures.iterdir()} >= {"theme_composition.png", "theme_small_multiples.svg",
                                                   "document_heatmap.png"}
    assert not (figures / "method_comparison.png").exists()  # the test split is not this corpus
