"""Model directories are data, never code. The TF-IDF baseline is saved as safetensors + JSON, scores
after loading exactly as trained (and as the scikit-learn pipeline it replaces), saves byte for byte
the same from the same data; a pickle-format model is refused unopened, and every damaged model file is
one ModelError naming the file — through the CLI one line and a non-zero exit, never a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from test_themes import CODEBOOK, CORPUS, targets_of

from pipeline.__main__ import main
from pipeline.classifiers import classifier_class
from pipeline.classifiers.base import ModelError, load_model
from pipeline.classifiers.tfidf import TfidfClassifier
from pipeline.text import words

TEXTS, TARGETS = [t for t, _ in CORPUS], targets_of(CORPUS)
PARAMS = {"min_df": 1, "C": 10.0}


def train(directory: Path) -> TfidfClassifier:
    model = TfidfClassifier(CODEBOOK, PARAMS).fit(TEXTS, TARGETS, TEXTS, TARGETS)
    model.save(directory)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TfidfClassifier, Path]:
    directory = tmp_path_factory.mktemp("models") / "baseline"
    return train(directory), directory


@pytest.fixture
def model_copy(trained, tmp_path) -> Path:
    copy = tmp_path / "baseline"
    shutil.copytree(trained[1], copy)
    return copy


# --- the saved model scores as trained --------------------------------------------------------------

def test_a_reloaded_baseline_scores_exactly_as_trained(trained):
    model, directory = trained
    reloaded = load_model(directory)
    np.testing.assert_allclose(reloaded.predict_scores(TEXTS), model.predict_scores(TEXTS), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(reloaded.thresholds, model.thresholds)
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "tfidf.json", "tfidf.safetensors"]


def test_the_vectorisers_compute_what_scikit_learn_computes(trained):
    from sklearn.feature_extraction.text import TfidfVectorizer

    chars, word_ngrams = trained[0].blocks
    references = [
        (chars, TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=1, sublinear_tf=True), "".join),
        (word_ngrams, TfidfVectorizer(tokenizer=words, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                                      min_df=1, sublinear_tf=True), " ".join),
    ]
    unseen = ["坚持  全面从严治党，ABC 反腐败。", "与主题无关的一句话"]
    for block, reference, name_of in references:
        reference.fit(TEXTS)
        names = [name_of(feature) for feature in block.features]
        assert sorted(names) == sorted(reference.vocabulary_)
        order = [reference.vocabulary_[name] for name in names]
        np.testing.assert_allclose(block.idf, reference.idf_[order])
        np.testing.assert_allclose(block.transform(TEXTS + unseen).toarray(),
                                   reference.transform(TEXTS + unseen).toarray()[:, order], atol=1e-12)


def test_scores_match_the_scikit_learn_pipeline_they_replace(trained):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion

    features = FeatureUnion([
        ("chars", TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)),
        ("words", TfidfVectorizer(tokenizer=words, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                                  sublinear_tf=True)),
    ])
    x = features.fit_transform(TEXTS)
    expected = np.column_stack([
        LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=0)
        .fit(x, TARGETS[:, j]).predict_proba(x)[:, 1] for j in range(TARGETS.shape[1])])
    np.testing.assert_allclose(trained[0].predict_scores(TEXTS), expected, rtol=0, atol=1e-6)


def test_two_trainings_on_the_same_data_write_byte_identical_files(trained, tmp_path):
    train(tmp_path / "again")
    for name in ("model.json", "tfidf.json", "tfidf.safetensors"):
        assert (tmp_path / "again" / name).read_bytes() == (trained[1] / name).read_bytes(), name


# --- nothing is unpickled ------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["old baseline directory", "a lone pickle"])
def test_a_pickle_format_model_is_refused_without_being_opened(model_copy, planted_pickle, layout):
    payload, marker = planted_pickle
    if layout == "a lone pickle":
        for path in model_copy.iterdir():
            path.unlink()
        pickled = model_copy / "model.pkl"
    else:  # the joblib file this project used to write, beside its model.json
        (model_copy / "tfidf.json").unlink()
        (model_copy / "tfidf.safetensors").unlink()
        pickled = model_copy / "tfidf_lr.joblib"
    pickled.write_bytes(payload)
    with pytest.raises(ModelError, match=r"tfidf_lr.joblib|model.pkl") as caught:
        load_model(model_copy)
    assert "is an old pickle-format model; it is not loaded because pickle can run code; retrain with " \
           "`dvc repro -s baseline`" in str(caught.value)
    assert not marker.exists()


# --- damaged files: one error naming the file ---------------------------------------------------------

def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _edit_tensors(path: Path, edit) -> None:
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


DAMAGE = {  # what is done to a good baseline directory → (the file the error must name, words it must say)
    "truncated weights": (lambda d: (d / "tfidf.safetensors").write_bytes((d / "tfidf.safetensors").read_bytes()[:500]),
                          "tfidf.safetensors", "truncated"),
    "card without themes": (lambda d: _edit_json(d / "model.json", lambda c: c.pop("themes")),
                            "model.json", "'themes' is missing"),
    "card without thresholds": (lambda d: _edit_json(d / "model.json", lambda c: c.pop("thresholds")),
                                "model.json", "'thresholds' is missing"),
    "threshold out of range": (lambda d: _edit_json(d / "model.json", lambda c: c["thresholds"].update(political=7)),
                               "model.json", "'thresholds.political'"),
    "card not JSON": (lambda d: (d / "model.json").write_text("{\"method\": \"baseline\",", encoding="utf-8"),
                      "model.json", "unreadable"),
    "vocabulary shorter than its idf": (lambda d: _edit_json(d / "tfidf.json", lambda v: v["char_ngrams"].pop()),
                                        "tfidf.json", "idf weights"),
    "coefficients narrower than the vocabulary": (
        lambda d: _edit_tensors(d / "tfidf.safetensors", lambda t: t.update(coef=t["coef"][:, :-1].copy())),
        "tfidf.safetensors", "do not fit"),
    "a weight tensor missing": (lambda d: _edit_tensors(d / "tfidf.safetensors", lambda t: t.pop("intercept")),
                                "tfidf.safetensors", "'intercept'"),
    "vocabulary listing an n-gram twice": (
        lambda d: _edit_json(d / "tfidf.json", lambda v: v["char_ngrams"].__setitem__(1, v["char_ngrams"][0])),
        "tfidf.json", "listed twice"),
    "vocabulary file missing": (lambda d: (d / "tfidf.json").unlink(), "tfidf.json", "is missing"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_model_file_is_one_error_naming_it(model_copy, damage):
    breaks, file_name, says = DAMAGE[damage]
    breaks(model_copy)
    with pytest.raises(ModelError) as caught:
        load_model(model_copy)
    message = str(caught.value)
    assert file_name in message and says in message and "dvc repro" in message
    assert "\n" not in message


@pytest.mark.parametrize("damage", ["truncated weights", "card without thresholds",
                                    "coefficients narrower than the vocabulary"])
def test_classify_reports_a_damaged_model_in_one_line_and_fails(model_copy, tmp_path, capsys, damage):
    breaks, file_name, _ = DAMAGE[damage]
    breaks(model_copy)
    params, src, out = tmp_path / "params.yaml", tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    params.write_text("{}\n")
    src.write_text('{"id": 1, "text": "坚持全面从严治党。"}\n', encoding="utf-8")
    code = main(["--params", str(params), "classify", "--model", str(model_copy), "--input", str(src),
                 "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and not out.exists()
    assert err.count("\n") == 0 and file_name in err and "Traceback" not in err


def test_the_predict_stage_reports_a_damaged_model_in_one_line_and_fails(model_copy, tmp_path, capsys):
    DAMAGE["truncated weights"][0](model_copy)
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"predict": {"model": str(model_copy), "output": str(tmp_path / "out.parquet")}}))
    assert main(["--params", str(params), "predict"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tfidf.safetensors" in err and "Traceback" not in err


def test_every_method_checks_its_card(tmp_path):
    directory = classifier_class("dictionary")(CODEBOOK).fit(TEXTS, TARGETS).save(tmp_path / "dictionary")
    _edit_json(directory / "model.json", lambda c: c["thresholds"].pop("grassroots"))
    with pytest.raises(ModelError, match=r"model.json: 'thresholds.grassroots' is missing .* `dvc repro -s dictionary"):
        load_model(directory)
