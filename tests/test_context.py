"""A paragraph's context (its document's title and the headings above it) reaches the classifier: the
splits carry it, the TF-IDF baseline learns it as its own feature block, saves and reloads it, scores a
paragraph without one as text alone, and `classify` reads it from `title` / `heading_path`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_themes import CODEBOOK, CORPUS, labelled_project, split_settings, targets_of  # noqa: F401 (fixture)

from pipeline.__main__ import main
from pipeline.classifiers.base import load_model
from pipeline.classifiers.tfidf import TfidfClassifier
from pipeline.labels.split import build_splits
from pipeline.text import paragraph_context

INSTITUTIONS = CODEBOOK.ids.index("institutions")
# The same sentence under a party-building heading (institutions) and under an economy heading (no theme):
# only the context tells them apart, as 制度 in a government report's economy section vs its 党的建设 section.
AMBIGUOUS = ["健全制度体系，完善体制机制，提高制度执行力。", "推进制度建设，把制度优势转化为治理效能。",
             "深化体制改革，完善相关制度，抓好制度落实。"]
PARTY, ECONOMY = "加强党的建设 ｜ 党内法规制度建设", "经济体制改革 ｜ 优化营商环境"


def context_corpus() -> tuple[list[str], np.ndarray, list[str]]:
    texts = [t for t, _ in CORPUS] + AMBIGUOUS * 4
    targets = np.vstack([targets_of(CORPUS), np.zeros((len(AMBIGUOUS) * 4, len(CODEBOOK.ids)))])
    contexts = [""] * len(CORPUS)
    for k in range(4):
        heading = PARTY if k % 2 == 0 else ECONOMY
        contexts += [heading] * len(AMBIGUOUS)
        if heading == PARTY:
            targets[len(CORPUS) + k * len(AMBIGUOUS):len(CORPUS) + (k + 1) * len(AMBIGUOUS), INSTITUTIONS] = 1
    return texts, targets, contexts


@pytest.fixture(scope="module")
def with_context(tmp_path_factory):
    texts, targets, contexts = context_corpus()
    model = TfidfClassifier(CODEBOOK, {"min_df": 1, "C": 10.0, "context_weight": 1.0}).fit(
        texts, targets, contexts=contexts)
    directory = tmp_path_factory.mktemp("models") / "baseline"
    model.save(directory)
    return model, directory


def test_the_context_decides_what_the_text_alone_cannot(with_context):
    model, _ = with_context
    sentence = ["完善制度体系，健全体制机制。"]
    party = model.predict_scores(sentence, [PARTY])[0, INSTITUTIONS]
    economy = model.predict_scores(sentence, [ECONOMY])[0, INSTITUTIONS]
    assert party > 0.5 > economy


def test_a_paragraph_without_context_is_scored_on_its_text_alone(with_context):
    model, _ = with_context
    texts = [t for t, _ in CORPUS]
    np.testing.assert_array_equal(model.predict_scores(texts), model.predict_scores(texts, [""] * len(texts)))
    text_only = TfidfClassifier(CODEBOOK, {"min_df": 1, "C": 10.0, "context_weight": 0}).fit(
        *context_corpus()[:2], contexts=context_corpus()[2])
    assert len(text_only.blocks) == 2  # context_weight 0: no context block is learnt


def test_the_context_block_is_saved_and_reloaded_exactly(with_context):
    model, directory = with_context
    texts, _, contexts = context_corpus()
    reloaded = load_model(directory)
    np.testing.assert_allclose(reloaded.predict_scores(texts, contexts), model.predict_scores(texts, contexts),
                               rtol=0, atol=1e-9)
    vocabulary = json.loads((directory / "tfidf.json").read_text(encoding="utf-8"))
    assert vocabulary["context_weight"] == 1.0 and ["党内法规"] in vocabulary["context_ngrams"]


def test_contexts_must_match_the_texts_one_to_one(with_context):
    with pytest.raises(ValueError, match="2 contexts for 1 texts"):
        with_context[0].predict_scores(["一段话"], ["甲", "乙"])


@pytest.mark.parametrize("title, path, expected", [
    ("[04版：要闻] 抓住重点 务求实效", [], "抓住重点 务求实效"),
    ("[视频]习近平主持召开会议", None, "习近平主持召开会议"),
    ("政府工作报告", ["一、过去一年的工作", "（三）加强政府自身建设"],
     "政府工作报告 ｜ 一、过去一年的工作 ｜ （三）加强政府自身建设"),
    (None, "一、总体要求 > （一）指导思想", "一、总体要求 ｜ （一）指导思想"),
    (None, None, ""),
    (float("nan"), np.array(["五、党的建设"]), "五、党的建设"),
])
def test_paragraph_context_joins_title_and_headings(title, path, expected):
    assert paragraph_context(title, path) == expected


def test_splits_carry_each_paragraphs_context(labelled_project):  # noqa: F811 (fixture)
    real = labelled_project / "real" / "news.jsonl"
    rows = [json.loads(line) for line in real.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        row.update(title="[02版：要闻] 推进全面从严治党", heading_path=["一、总体要求"])
    real.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    splits = build_splits(split_settings(labelled_project, use_silver=False))
    everything = {row.origin: row.context for frame in splits.values() for row in frame.itertuples()}
    assert everything["real"] == "推进全面从严治党 ｜ 一、总体要求"


def test_classify_reads_title_and_heading_path_as_context(with_context, tmp_path):
    _, directory = with_context
    records = [{"id": 1, "text": "完善制度体系，健全体制机制。", "heading_path": PARTY.split(" ｜ ")},
               {"id": 2, "text": "完善制度体系，健全体制机制。", "title": "经济体制改革", "heading_path": "优化营商环境"},
               {"id": 3, "text": "完善制度体系，健全体制机制。"}]
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    assert main(["classify", "--model", str(directory), "--input", str(source), "--output", str(out)]) == 0
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    party, economy, bare = (r["scores"]["institutions"] for r in scored)
    assert party > bare > economy
    assert "institutions" in scored[0]["themes"] and "institutions" not in scored[1]["themes"]
    assert scored[1]["heading_path"] == "优化营商环境"  # the input's fields pass through unchanged
