"""The path a user's downloaded Chinese checkpoint takes: checkpoint directories built from the real
configs in ../shared/models (bert-base-chinese, albert_chinese_tiny; shrunk for speed, same model_type,
the real 21,128-wordpiece vocab, random weights) are fine-tuned by the BERT classifier, saved, loaded and
used by `classify`; hub names resolve from the HF cache at a pinned revision; damaged model files are
one clear error. Skipped where ../shared is absent."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.classifiers.base import ModelError, load_model, read_card  # noqa: E402
from pipeline.classifiers.bert import BertClassifier, resolve_base_model  # noqa: E402
from pipeline.codebook import load_codebook  # noqa: E402

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "chinese-bert-vocab"
pytestmark = pytest.mark.skipif(not (SHARED_MODELS / "vocab.txt").is_file(), reason="../shared/models is absent")

CODEBOOK = load_codebook()
SHRINK = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
PHRASES = ["坚决做到两个维护", "加强理论学习", "严格选人用人", "整治形式主义", "严明廉洁纪律",
           "完善党内法规制度", "深化巡视巡察", "严肃查处贪污受贿", "建强基层党组织"]


def split(n: int, offset: int) -> tuple[list[str], np.ndarray]:
    texts, targets = [], np.zeros((n, len(CODEBOOK.ids)), dtype=np.float32)
    for i in range(n):
        theme = (i + offset) % 9
        texts.append(f"今年以来，我们{PHRASES[theme]}，取得新成效。")
        targets[i, theme] = 1
    return texts, targets


TRAIN, DEV = split(36, 0), split(18, 36)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def make_checkpoint(config_file: str, directory: Path) -> Path:
    """A checkpoint as a user downloads it: the real architecture's config (shrunk), random weights,
    the standard vocab's tokenizer."""
    from transformers import AutoConfig, AutoModelForMaskedLM, BertTokenizerFast

    real = json.loads((SHARED_MODELS / config_file).read_text())
    shrink = {**SHRINK, **({"embedding_size": 16} if real["model_type"] == "albert" else {})}
    config = AutoConfig.for_model(**{**real, **shrink})
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(config).save_pretrained(directory)
    BertTokenizerFast(vocab=str(SHARED_MODELS / "vocab.txt")).save_pretrained(directory)
    return directory


def params(tmp: Path, base_model: str, **overrides) -> dict:
    return {"base_model": base_model, "max_length": 32, "stride": 8, "epochs": 2, "max_steps": 8,
            "batch_size": 8, "learning_rate": 1e-3, "precision": "fp32", "eval_batch_size": 16,
            "live_dir": "", "checkpoint_dir": str(tmp / "ckpt"), **overrides}


@pytest.mark.parametrize("config_file", ["bert-base-chinese.config.json", "albert_chinese_tiny.config.json"])
def test_a_downloaded_checkpoint_is_fine_tuned_saved_loaded_and_classifies(config_file, tmp_path):
    from pipeline.__main__ import main

    checkpoint = make_checkpoint(config_file, tmp_path / "checkpoint")
    model = BertClassifier(CODEBOOK, params(tmp_path, str(checkpoint))).fit(*TRAIN, *DEV)
    assert model.model.config.model_type == json.loads((SHARED_MODELS / config_file).read_text())["model_type"]
    assert len(model.tokenizer) == 21128 and model.info["training"]["steps"] == 8
    saved = model.save(tmp_path / "model")
    card = read_card(saved)
    assert card["base_model"]["kind"] == "local" and card["base_model"]["vocab_size"] == 21128

    texts = DEV[0][:5] + ["与主题无关的一句话。"]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in enumerate(texts)))
    assert main(["classify", "--model", str(saved), "--input", str(src), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = load_model(saved, CODEBOOK).theme_scores(texts)
    np.testing.assert_allclose([[r["scores"][t] for t in CODEBOOK.ids] for r in rows], expected, atol=1e-4)
    np.testing.assert_allclose(model.theme_scores(texts), expected, atol=1e-5)


def fake_hub_cache(root: Path, checkpoint: Path, name: str, refs: dict[str, str]) -> Path:
    """The HF cache layout (models--owner--name/refs/<ref> → snapshots/<commit>/…), as a download leaves it."""
    repo = root / f"models--{name.replace('/', '--')}"
    for ref, commit in refs.items():
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        if not (repo / "snapshots" / commit).exists():
            shutil.copytree(checkpoint, repo / "snapshots" / commit)
    return root


def test_a_hub_name_resolves_from_the_cache_at_the_pinned_revision(tmp_path, monkeypatch):
    from huggingface_hub import constants

    main_commit, tagged_commit = "a" * 40, "b" * 40
    checkpoint = make_checkpoint("bert-base-chinese.config.json", tmp_path / "checkpoint")
    monkeypatch.setattr(constants, "HF_HUB_CACHE",
                        str(fake_hub_cache(tmp_path / "hub", checkpoint, "hfl/rbt-demo",
                                           {"main": main_commit, "v1": tagged_commit})))
    assert resolve_base_model("hfl/rbt-demo").commit == main_commit
    pinned = resolve_base_model("hfl/rbt-demo", revision="v1")
    assert (pinned.kind, pinned.revision, pinned.commit) == ("hub_cache", "v1", tagged_commit)
    with pytest.raises(ModelError, match="revision 'v2' not found locally"):
        resolve_base_model("hfl/rbt-demo", revision="v2")

    model = BertClassifier(CODEBOOK, params(tmp_path, "hfl/rbt-demo", revision="v1", max_steps=2)).fit(*TRAIN)
    card = read_card(model.save(tmp_path / "model"))
    assert card["base_model"]["commit"] == tagged_commit and card["params"]["revision"] == "v1"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("saved")
    checkpoint = make_checkpoint("bert-base-chinese.config.json", tmp / "checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        return BertClassifier(CODEBOOK, params(tmp, str(checkpoint), max_steps=2)).fit(*TRAIN).save(tmp / "model")


def damaged_copy(saved: Path, tmp_path: Path) -> Path:
    return shutil.copytree(saved, tmp_path / "damaged")


def test_a_truncated_weights_file_is_one_error_naming_it(saved_model, tmp_path, capsys):
    from pipeline.__main__ import main

    copy = damaged_copy(saved_model, tmp_path)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match=str(weights)):
        load_model(copy, CODEBOOK)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "text": TRAIN[0][0]}, ensure_ascii=False))
    assert main(["classify", "--model", str(copy), "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(weights) in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_config_whose_hidden_size_changed_is_one_error_naming_the_weights(saved_model, tmp_path):
    copy = damaged_copy(saved_model, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["hidden_size"] = 48
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=str(copy / "model.safetensors")) as err:
        load_model(copy, CODEBOOK)
    assert "\n" not in str(err.value)
