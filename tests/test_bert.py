"""BERT classifier: train a tiny model on made-up sentences, save, reload, resolve base models — offline."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.classifiers.base import ModelError, load_model, read_card, tune_thresholds  # noqa: E402
from pipeline.classifiers.bert import (BertClassifier, bert_settings, build_scratch_tokenizer,  # noqa: E402
                                       encode_chunks, length_sorted_batches, macro_f1, pad_batch, pool_max,
                                       resolve_base_model, sigmoid)
from pipeline.classifiers.settings import ScratchSettings  # noqa: E402
from pipeline.codebook import load_codebook  # noqa: E402

CODEBOOK = load_codebook()
PHRASES = {  # theme → phrases that mark it
    "political": ["坚定政治立场", "增强四个意识", "坚决做到两个维护"],
    "ideology": ["加强理论学习", "坚定理想信念", "用新思想武装头脑"],
    "organization": ["加强干部队伍建设", "规范发展党员工作", "严格选人用人"],
    "work_style": ["落实中央八项规定精神", "整治形式主义官僚主义", "大兴调查研究"],
    "discipline": ["严明廉洁纪律", "开展警示教育", "执行纪律处分条例"],
    "institutions": ["完善党内法规制度", "健全制度体系", "抓好建章立制"],
    "supervision": ["深化巡视巡察", "强化党内监督", "抓好整改落实"],
    "anti_corruption": ["严肃查处贪污受贿", "一体推进不敢腐不能腐不想腐", "保持惩治腐败高压态势"],
    "grassroots": ["建强基层党组织", "发挥支部战斗堡垒作用", "抓好村党支部建设"],
}
FILLERS = ["我们要", "全体党员干部必须", "今年以来，我单位", "下一步，要继续"]


def make_split(n: int, offset: int) -> tuple[list[str], np.ndarray]:
    texts, targets = [], np.zeros((n, len(CODEBOOK.ids)), dtype=np.float32)
    for i in range(n):
        k = i + offset
        themes = [k % 9] + ([(k * 4 + 1) % 9] if k % 3 == 0 else [])
        parts = [PHRASES[CODEBOOK.ids[j]][(k // 9 + m) % 3] for m, j in enumerate(themes)]
        texts.append(FILLERS[k % 4] + "，".join(parts) + "。")
        targets[i, themes] = 1.0
    return texts, targets


TRAIN = make_split(120, 0)
DEV = make_split(36, 120)
TINY = {"base_model": "scratch", "cpu_inference": "fp32", "max_length": 24, "stride": 6, "epochs": 6, "batch_size": 8, "learning_rate": 3e-3,
        "eval_batch_size": 16, "precision": "fp32", "warmup_ratio": 0.0,
        "scratch": {"hidden_size": 64, "num_layers": 1, "num_heads": 2, "intermediate_size": 128,
                    "max_position_embeddings": 64}}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_params(tmp, **overrides) -> dict:
    return {**TINY, "live_dir": str(tmp / "live"), "checkpoint_dir": str(tmp / "ckpt"), **overrides}


def train(tmp, **overrides) -> BertClassifier:
    return BertClassifier(CODEBOOK, tiny_params(tmp, **overrides)).fit(*TRAIN, *DEV)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bert")
    model = train(tmp)
    return model, model.save(tmp / "model"), tmp


def test_save_reload_gives_the_same_scores(trained):
    model, directory, tmp = trained
    assert (directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()
    assert not (tmp / "ckpt").exists()  # epoch checkpoints are removed after training
    assert (tmp / "live" / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    assert (tmp / "live" / "plots" / "metrics" / "eval" / "macro_f1.tsv").is_file()
    card = read_card(directory)
    assert card["base_model"]["kind"] == "scratch" and card["base_model"]["parameters"] > 0
    assert card["training"]["train_texts"] == len(TRAIN[0])
    reloaded = load_model(directory, CODEBOOK)
    texts = DEV[0] + ["一段与任何主题都无关的文字。"]
    assert np.allclose(model.predict_scores(texts), reloaded.predict_scores(texts), atol=1e-6)


def test_it_learns_and_keeps_the_epoch_with_the_best_dev_macro_f1(trained):
    model, _, _ = trained
    dev_f1 = macro_f1(model.predict_scores(DEV[0]), DEV[1], model.thresholds)
    assert dev_f1 > 0.8
    # early stopping watched the same per-paragraph score that the saved model gives
    assert dev_f1 == pytest.approx(model.info["training"]["best_dev_macro_f1"])


def test_thresholds_are_tuned_on_dev_stored_and_used(trained):
    model, directory, _ = trained
    expected = tune_thresholds(model.predict_scores(DEV[0]), DEV[1] >= 0.5)
    assert np.allclose(model.thresholds, expected)
    reloaded = load_model(directory, CODEBOOK)
    assert np.allclose(reloaded.thresholds, expected)
    scores, labels = reloaded.predict(DEV[0])
    assert labels == [[t for t, s, th in zip(CODEBOOK.ids, row, expected) if s >= th] for row in scores]


def test_cpu_training_is_deterministic(trained, tmp_path):
    model, _, _ = trained
    again = train(tmp_path)
    assert np.array_equal(model.predict_scores(DEV[0]), again.predict_scores(DEV[0]))


def test_row_weights_scale_each_paragraphs_loss(trained, tmp_path):
    model, _, _ = trained
    doubled = BertClassifier(CODEBOOK, tiny_params(tmp_path)).fit(*TRAIN, *DEV, weights=np.full(len(TRAIN[0]), 2.0))
    assert np.array_equal(doubled.predict_scores(DEV[0]), model.predict_scores(DEV[0]))  # only ratios count
    g = CODEBOOK.ids.index("grassroots")
    unseen = BertClassifier(CODEBOOK, tiny_params(tmp_path)).fit(
        *TRAIN, *DEV, weights=np.where(TRAIN[1][:, g] > 0, 0.0, 1.0))  # its positives weigh nothing
    rows = DEV[1][:, g] > 0
    assert unseen.predict_scores(DEV[0])[rows, g].mean() < 0.2 * model.predict_scores(DEV[0])[rows, g].mean()


def test_long_paragraph_is_chunked_and_max_pooled(trained):
    model, _, _ = trained
    long_text, short = "".join(DEV[0][:4]), "强化党内监督。"
    chunks, mapping = encode_chunks(model.tokenizer, [long_text, short], model.settings.max_length,
                                    model.settings.stride)
    assert mapping.tolist() == [0] * (len(mapping) - 1) + [1] and len(mapping) > 2
    scores = model.predict_scores([short, long_text, DEV[0][1]])  # batched longest first, order restored
    assert scores.shape == (3, len(CODEBOOK.ids))
    assert np.allclose(scores[0], model.predict_scores([short])[0], atol=1e-6)
    with torch.inference_mode():
        chunk_logits = np.stack([model.model(**{k: torch.tensor([v]) for k, v in c.items()}).logits[0].numpy()
                                 for c, t in zip(chunks, mapping) if t == 0])
    assert np.allclose(scores[1], sigmoid(chunk_logits.max(axis=0)), atol=1e-5)


def test_cpu_inference_modes_stay_close_to_fp32(trained, monkeypatch):
    from pipeline.classifiers.bert import cpu_has_bf16, cpu_inference_mode

    model, directory, _ = trained
    assert cpu_inference_mode("auto") == ("bf16" if cpu_has_bf16() else "fp32")
    reference = model.predict_scores(DEV[0])
    monkeypatch.setattr(model.settings, "cpu_inference", "bf16")
    assert np.abs(model.predict_scores(DEV[0]) - reference).max() < 0.02
    card = json.loads((directory / "model.json").read_text())
    card["params"]["cpu_inference"] = "int8"
    int8_dir = shutil.copytree(directory, directory.parent / "int8")
    (int8_dir / "model.json").write_text(json.dumps(card))
    quantised = load_model(int8_dir, CODEBOOK)
    assert not any(isinstance(m, torch.nn.Linear) for m in quantised.model.modules())  # dynamic int8 layers
    assert np.abs(quantised.predict_scores(DEV[0]) - reference).max() < 0.05


def test_pool_max_takes_each_texts_largest_chunk_logit():
    logits = np.array([[0.0, 5.0], [1.0, -1.0], [2.0, 2.0]])
    assert pool_max(logits, np.array([0, 0, 1]), 2).tolist() == [[1.0, 5.0], [2.0, 2.0]]


def test_missing_local_directory_is_an_error():
    with pytest.raises(ModelError, match="does not exist"):
        resolve_base_model("./models/no-such-checkpoint")


def test_unknown_hub_name_fails_fast_offline(tmp_path):
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"model 'hfl/no-such-rbt3' not found locally and the hub is "
                                         r"unreachable.*set bert.base_model to a local directory"):
        BertClassifier(CODEBOOK, tiny_params(tmp_path, base_model="hfl/no-such-rbt3")).fit(*TRAIN)
    assert time.perf_counter() - started < 5


def test_unreachable_hub_fails_fast_without_offline_mode(monkeypatch):
    import pipeline.classifiers.bert as bert

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(bert, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelError, match="not found locally and the hub is unreachable"):
        resolve_base_model("hfl/no-such-rbt3")


def test_directory_without_config_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="not a Hugging Face checkpoint"):
        resolve_base_model(str(tmp_path))


def test_a_local_checkpoint_directory_is_fine_tuned(trained, tmp_path):
    _, directory, _ = trained  # a saved classifier is a Hugging Face checkpoint too
    from_dir = train(tmp_path, base_model=str(directory), epochs=1, live_dir="")
    assert from_dir.info["base_model"] | {"parameters": 0} == {
        "name": str(directory), "kind": "local", "path": str(directory), "parameters": 0,
        "revision": None, "commit": None, "vocab_size": len(from_dir.tokenizer)}
    assert from_dir.tokenizer.get_vocab() == load_model(directory, CODEBOOK).tokenizer.get_vocab()


def test_step_budget_ends_training_with_a_dev_evaluation(tmp_path):
    model = train(tmp_path, max_steps=5, epochs=50, live_dir="")
    training = model.info["training"]
    assert training["steps"] == 5 and training["stopped_by"] == "max_steps"
    assert training["best_dev_macro_f1"] is not None  # evaluated at the budget, mid-epoch


def test_scoring_batches_are_bounded_and_sorted_by_length():
    lengths = np.array([5, 300, 7, 300, 9, 1])
    batches = list(length_sorted_batches(lengths, 4))
    assert [b.tolist() for b in batches] == [[1, 3, 4, 2], [0, 5]]
    ids, mask = pad_batch([[1, 2, 3], [4]], 3, pad_id=0, positions=512)
    assert ids.tolist() == [[1, 2, 3] + [0] * 5, [4] + [0] * 7] and mask.sum().item() == 4
    assert pad_batch([[1] * 30], 30, pad_id=0, positions=30)[0].shape == (1, 30)  # never past the positions


def test_a_very_long_paragraph_is_scored_in_bounded_batches(trained, monkeypatch):
    model, _, _ = trained
    texts = ["".join(DEV[0]) * 20, DEV[0][0], DEV[0][5]]  # the first has hundreds of chunks
    whole = model.predict_scores(texts)
    monkeypatch.setattr(model.settings, "eval_batch_size", 3)  # its chunks now span many batches
    assert np.allclose(model.predict_scores(texts), whole, atol=1e-5)


def test_weights_for_other_labels_are_refused(trained, tmp_path):
    _, directory, _ = trained
    copy = shutil.copytree(directory, tmp_path / "model")
    config = json.loads((copy / "config.json").read_text())
    config["id2label"]["0"], config["id2label"]["1"] = config["id2label"]["1"], config["id2label"]["0"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="id2label"):
        load_model(copy, CODEBOOK)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown key"):
        bert_settings({"epoch": 3})
    with pytest.raises(ValueError, match="precision"):
        bert_settings({"precision": "fp8"})
    with pytest.raises(ValueError, match="stride"):
        bert_settings({"max_length": 32, "stride": 30})
    assert bert_settings({"scratch": {"hidden_size": 64}}).scratch.hidden_size == 64
    assert bert_settings({"threshold_ceiling": 0.4}).threshold_ceiling == 0.4  # read by tune_thresholds
    with pytest.raises(ValueError, match="max_steps"):
        bert_settings({"max_steps": -1})
    with pytest.raises(ValueError, match="cpu_inference"):
        bert_settings({"cpu_inference": "int4"})
    with pytest.raises(ValueError, match="vocabulary"):
        bert_settings({"scratch": {"vocabulary": "bytes"}})


def test_the_word_vocabulary_keeps_words_whole_and_an_unknown_character_costs_only_itself(tmp_path):
    from transformers import AutoTokenizer

    texts = ["坚持和加强党的全面领导，深入推进全面从严治党。", "全面从严治党永远在路上，党的自我革命永远在路上。",
             "基层党组织要发挥战斗堡垒作用，加强党的全面领导。"] * 3
    words = ScratchSettings(vocabulary="words", vocab_min_freq=2)
    tokenizer = build_scratch_tokenizer(texts, words)
    sentence = "深入推进全面从严治党，发挥战斗堡垒作用"
    pieces = tokenizer.tokenize(sentence)
    assert pieces == ["深入", "##推进", "##全面从严治党", "，", "发挥", "##战斗堡垒", "##作用"]
    assert len(pieces) < len(build_scratch_tokenizer(texts, ScratchSettings()).tokenize(sentence)) / 2 + 2
    # WordPiece spells a run or gives it up whole: a character never seen is cut off on its own first
    assert tokenizer.tokenize("推进鑫全面从严治党") == ["推进", "[UNK]", "全面从严治党"]
    assert tokenizer.tokenize("治党推进")[-1] == "##推进"  # each piece also continues a run
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(texts + ["推进鑫全面从严治党"])["input_ids"] == tokenizer(texts + ["推进鑫全面从严治党"])["input_ids"]
    assert build_scratch_tokenizer(list(reversed(texts)), words).get_vocab() == tokenizer.get_vocab()
    assert len(build_scratch_tokenizer(texts, ScratchSettings(vocabulary="words", vocab_max_size=40))) == 40


def test_classify_command_accepts_a_bert_model_directory(trained, tmp_path):
    from pipeline.__main__ import main

    model, directory, _ = trained
    texts = TRAIN[0][:3]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "text": t, "keep": "x"}, ensure_ascii=False)
                             for i, t in enumerate(texts)))
    assert main(["classify", "--model", str(directory), "--input", str(src), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = model.predict_scores(texts)
    assert [r["keep"] for r in rows] == ["x"] * 3
    for row, scores in zip(rows, expected):
        assert list(row["scores"]) == CODEBOOK.ids
        np.testing.assert_allclose([row["scores"][t] for t in CODEBOOK.ids], scores, atol=1e-4)
