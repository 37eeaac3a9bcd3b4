"""MLM pretraining: the corpus builder (dev/test dates dropped, deduplicated, held-out slice), whole-word
masking, sequence packing, a tiny end-to-end run (export, resume) and fine-tuning from its result."""
from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pipeline.labels.split import split_of_date  # noqa: E402
from pipeline.pretrain import (STANDARD_VOCAB_SHA256, WholeWordMasking, _packed, build_mlm_model,  # noqa: E402
                               corpus_file, encode_with_words, load_tokenizer, mlm_outputs, packed_sequences,
                               pretrain_settings, read_documents, run, training_flops_per_token, whole_word_mask)
from pipeline.pretrain_corpus import CorpusSettings, build, html_paragraphs, pack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VOCAB = ROOT / "models" / "pretrained" / "zh-political-bert-mini" / "vocab.txt"  # shipped: the standard vocab
if not VOCAB.is_file():
    VOCAB = ROOT.parent / "shared" / "models" / "chinese-bert-vocab" / "vocab.txt"
pytestmark = pytest.mark.skipif(not VOCAB.is_file(), reason="no copy of the standard Chinese BERT vocab")
SPLIT = dict(dev_share=0.15, test_share=0.2, seed=13)
SENTENCES = ["全面从严治党永远在路上。", "各级党组织要加强政治建设。", "坚持以人民为中心的发展思想。",
             "深化巡视巡察，强化党内监督。", "建强基层党组织，发挥战斗堡垒作用。", "GDP增长5.2%，就业总体稳定。"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(VOCAB))


def dates_in(split: str, n: int) -> list[str]:
    days = (f"2020-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29))
    return [d for d in days if split_of_date(d, **SPLIT) == split][:n]


# --- the corpus builder --------------------------------------------------------------------------------

def write_corpora(tmp: Path, train_days: list[str], test_day: str, dev_year: int, train_year: int) -> tuple[Path, Path]:
    corpora, news = tmp / "corpora", tmp / "news"
    corpora.mkdir()
    (corpora / "gov_work_reports_1954-2025.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"year": train_year, "text": "一、过去一年的工作\n\n我们坚持稳中求进工作总基调。\n\n全面从严治党永远在路上。"},
        {"year": dev_year, "text": "这一年的报告属于开发集，不得用于预训练。"},
        {"year": None, "text": "没有年份的记录"},
    ]) + "\n{broken json\n", encoding="utf-8")
    for i, day in enumerate(train_days + [test_day]):
        folder = news / "assets" / day[:4]
        folder.mkdir(parents=True, exist_ok=True)
        stories = [{"video_detail": {"content": f"<p>第{i}条新闻的正文段落，内容各不相同。</p><p>央视网消息：各地认真学习。</p>"}},
                   {"video_detail": "not a dict"}]
        (folder / f"{day.replace('-', '')}.json").write_text(json.dumps({"videoList": stories}, ensure_ascii=False))
    (news / "assets" / "2020" / "20200230.json").write_text("{not json")
    body = ('&lt;h1&gt;&lt;p&gt;标题不算正文&lt;/p&gt;&lt;/h1&gt;&lt;p class="sec"&gt;《人民日报》第 01 版&lt;/p&gt;'
            '&lt;style&gt;.x{margin:0}&lt;/style&gt;&lt;div id="ozoom"&gt;&lt;p&gt;人民日报的一段正文，讲基层治理。&lt;/p&gt;'
            '&lt;/div&gt;')
    rss = (f"<?xml version='1.0' encoding='UTF-8'?><rss><channel><item><title>a</title><description>{body}"
           "</description></item><item><title>b</title><description>无法提取正文内容</description></item>"
           "</channel></rss>")
    (news / "history").mkdir(parents=True)
    (news / "history" / f"rmrb_{train_days[0]}.xml").write_text(rss, encoding="utf-8")
    (news / "history" / f"rmrb_{test_day}.xml").write_text(rss.replace("基层治理", "测试日"), encoding="utf-8")
    return corpora, news


def test_the_corpus_leaves_out_dev_and_test_dates_and_duplicates(tmp_path):
    train_days, test_day = dates_in("train", 3), dates_in("test", 1)[0]
    years = {split_of_date(str(y), **SPLIT): y for y in range(1954, 2026)}
    corpora, news = write_corpora(tmp_path, train_days, test_day, years["dev"], years["train"])
    manifest = build(CorpusSettings(corpora_dir=str(corpora), news_dir=str(news), out_dir=str(tmp_path / "out"),
                                    heldout_share=0.0, min_paragraph_chars=4, **SPLIT))
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert all(split_of_date(r["date"], **SPLIT) == "train" for r in rows)
    assert {r["date"] for r in rows} == set(train_days) | {str(years["train"])}
    text = "\n".join(r["text"] for r in rows)
    assert "开发集" not in text and "测试日" not in text and "无法提取正文内容" not in text
    assert "标题不算正文" not in text and "margin" not in text and "人民日报的一段正文" in text
    assert text.count("央视网消息：各地认真学习。") == 1  # a repeated paragraph is kept once
    assert manifest["documents_dropped_dev_date"] == 1 and manifest["documents_dropped_test_date"] == 2
    assert manifest["paragraphs_duplicate"] == 2
    assert (tmp_path / "out" / "heldout.jsonl").read_text() == ""


def test_news_is_dated_and_held_out_as_the_coded_data_is(tmp_path):
    """An item is dated by its pubDate (a day's file holds some of the day before), and an article filed
    under two days goes by its URL to the more held-out split, as in the coded data."""
    (train_day, other_train_day), test_day = dates_in("train", 2), dates_in("test", 1)[0]
    news = tmp_path / "news"
    (news / "history").mkdir(parents=True)

    def item(url: str, body: str, published: str = "") -> str:
        return (f"<item><link>{url}</link><pubDate>{published}</pubDate>"
                f"<description>&lt;p&gt;{body}&lt;/p&gt;</description></item>")

    published_on_test_day = datetime.date.fromisoformat(test_day).strftime("%a, %d %b %Y 07:48:18 +0800")
    for day, items in [(train_day, [item("http://rmrb/a", "两天都登的文章，不能进预训练。"),
                                    item("http://rmrb/b", "只登在训练日的文章留下。"),
                                    item("http://rmrb/d", "测试日发表、存在训练日文件里的文章。", published_on_test_day)]),
                       (test_day, [item("http://rmrb/a", "两天都登的文章，不能进预训练。")]),
                       (other_train_day, [item("http://rmrb/c", "另一训练日的文章也留下。")])]:
        (news / "history" / f"rmrb_{day}.xml").write_text(
            f"<?xml version='1.0' encoding='UTF-8'?><rss><channel>{''.join(items)}</channel></rss>", encoding="utf-8")
    manifest = build(CorpusSettings(corpora_dir=str(tmp_path / "none"), news_dir=str(news),
                                    out_dir=str(tmp_path / "out"), heldout_share=0.0, min_paragraph_chars=4, **SPLIT))
    text = (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8")
    assert "两天都登" not in text and "测试日发表" not in text and "只登在训练日" in text and "另一训练日" in text
    assert manifest["documents_dropped_also_on_a_test_date"] == 1 and manifest["documents_dropped_test_date"] == 2


def test_the_held_out_slice_is_a_stable_share_of_documents(tmp_path):
    corpora, news = write_corpora(tmp_path, dates_in("train", 40), dates_in("test", 1)[0], 1990, 1991)
    settings = CorpusSettings(corpora_dir=str(corpora), news_dir=str(news), out_dir=str(tmp_path / "a"),
                              heldout_share=0.3, min_paragraph_chars=4, **SPLIT)
    build(settings)
    heldout = (tmp_path / "a" / "heldout.jsonl").read_text()
    assert 0 < len(heldout.splitlines()) < 30
    build(CorpusSettings(**{**settings.__dict__, "out_dir": str(tmp_path / "b")}))
    assert (tmp_path / "b" / "heldout.jsonl").read_text() == heldout


def test_a_packed_corpus_fits_its_budget_keeps_every_report_and_pretrain_reads_it(tmp_path):
    rng = np.random.default_rng(0)  # random characters: text xz cannot squeeze below its entropy

    def document(source: str, i: int) -> dict:
        return {"source": source, "date": "2020", "text": f"{i}" + "".join(chr(c) for c in rng.integers(0x4E00, 0x9FA5, 300))}

    docs = [document("gov" if i % 10 == 0 else "cpc" if i % 10 == 5 else "xwlb", i) for i in range(200)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")
    (corpus / "heldout.jsonl").write_text(json.dumps(document("xwlb", -1), ensure_ascii=False) + "\n", "utf-8")
    (corpus / "manifest.json").write_text(json.dumps({"paragraphs_duplicate": 3}), "utf-8")

    manifest = pack(corpus, tmp_path / "packed", max_bytes=40_000, seed=1)
    packed = tmp_path / "packed"
    assert sum(f.stat().st_size for f in packed.glob("*.xz")) <= 40_000 == manifest["packed"]["max_bytes"]
    assert manifest["paragraphs_duplicate"] == 3  # the built corpus's counts travel with it
    texts = read_documents(corpus_file(str(packed), "train"))
    reports = [d["text"] for d in docs if d["source"] != "xwlb"]
    assert set(reports) <= set(texts) and 40 < len(texts) < 200  # every report; some of the news
    assert texts == [d["text"] for d in docs if d["text"] in set(texts)]  # in corpus order
    assert manifest["packed"]["train_documents"] == len(texts)
    assert manifest["packed"]["train_chars"] == sum(map(len, texts))
    assert f"{len(texts)} of 200 training documents" in _packed(manifest)
    assert read_documents(corpus_file(str(packed), "heldout")) == [json.loads(
        (corpus / "heldout.jsonl").read_text("utf-8"))["text"]]
    assert corpus_file(str(corpus), "train") == corpus / "train.jsonl"  # plain JSON lines where they are
    assert pack(corpus, tmp_path / "all", max_bytes=10**6)["packed"]["train_documents"] == 200
    with pytest.raises(ValueError, match="reports alone"):
        pack(corpus, tmp_path / "none", max_bytes=5_000)


def test_html_paragraphs_survive_bad_markup():
    assert html_paragraphs("") == [] and html_paragraphs("   ") == []
    assert html_paragraphs("纯文本一行\n第二行") == ["纯文本一行", "第二行"]
    assert html_paragraphs("<p>未闭合<p>第二段 &amp; 实体") == ["未闭合", "第二段 & 实体"]


# --- masking and packing ---------------------------------------------------------------------------------

def test_every_token_of_a_word_shares_its_word_id(tokenizer):
    ids, words = encode_with_words(tokenizer, "全面从严治党，GDP增长")
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[:6] == list("全面从严治党") and len(set(words[:6])) == 1  # a domain term: one jieba word
    assert words[tokens.index("gdp")] != words[tokens.index("增")]


def test_packed_sequences_are_full_and_framed(tokenizer):
    sequences = list(packed_sequences(tokenizer, SENTENCES * 4, 32))
    assert len(sequences) >= 4
    for ids, words in sequences:
        assert len(ids) == len(words) == 32
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        specials = np.isin(ids, tokenizer.all_special_ids)
        assert np.array_equal(words < 0, specials)
    stream = np.concatenate([ids[1:-1] for ids, _ in sequences])
    first = encode_with_words(tokenizer, SENTENCES[0])[0]
    assert stream[:len(first)].tolist() == first and stream[len(first)] == tokenizer.sep_token_id


def test_whole_word_masking_masks_whole_words_at_the_rate(tokenizer):
    sequences = list(packed_sequences(tokenizer, SENTENCES * 60, 64))
    ids, words = np.stack([s[0] for s in sequences]), np.stack([s[1] for s in sequences])
    rng = np.random.default_rng(0)
    inputs, labels = whole_word_mask(ids, words, rng, 0.15, tokenizer.mask_token_id, len(tokenizer),
                                     np.array(tokenizer.all_special_ids))
    predicted = labels != -100
    assert not predicted[words < 0].any()  # never [CLS]/[SEP]
    assert np.array_equal(labels[predicted], ids[predicted])
    for row in range(len(ids)):  # a word is predicted with all of its tokens or not at all
        for word in np.unique(words[row][predicted[row]]):
            assert predicted[row][words[row] == word].all()
    rate = predicted.sum() / (words >= 0).sum()
    assert 0.10 < rate <= 0.16
    masked = inputs[predicted] == tokenizer.mask_token_id
    kept = inputs[predicted] == ids[predicted]
    assert 0.7 < masked.mean() < 0.9 and 0.05 < (kept & ~masked).mean() < 0.16
    assert np.array_equal(inputs[~predicted], ids[~predicted])
    again = whole_word_mask(ids, words, np.random.default_rng(0), 0.15, tokenizer.mask_token_id,
                            len(tokenizer), np.array(tokenizer.all_special_ids))
    assert np.array_equal(again[0], inputs)  # seeded: the same masks


# --- a tiny run end to end -------------------------------------------------------------------------------

def tiny_settings(tmp: Path, **overrides):
    corpus = tmp / "corpus"
    corpus.mkdir(exist_ok=True)
    docs = [{"source": "t", "date": "2020-01-01", "text": "\n".join(SENTENCES[i:] + SENTENCES[:i])} for i in range(6)]
    (corpus / "train.jsonl").write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs * 5))
    (corpus / "heldout.jsonl").write_text(json.dumps(docs[0], ensure_ascii=False))
    params = {"corpus": str(corpus), "vocab": str(VOCAB), "out_dir": str(tmp / "model"), "name": "tiny",
              "checkpoint_dir": str(tmp / "ckpt"), "live_dir": str(tmp / "live"), "max_length": 32,
              "architecture": {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
                               "dropout": 0.0},
              "batch_size": 8, "learning_rate": 3e-3, "warmup_steps": 2, "max_steps": 30, "eval_sequences": 4,
              "eval_every_steps": 10, "save_every_steps": 10, "precision": "fp32", "threads": 1, **overrides}
    return pretrain_settings(params)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    return run(tiny_settings(tmp)), tmp


def test_a_tiny_run_learns_and_exports_a_standard_checkpoint(pretrained):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    stats, tmp = pretrained
    out = tmp / "model"
    history = stats["history"]
    assert [h["step"] for h in history] == [10, 20, 30] and stats["tokens_seen"] == 30 * 8 * 32
    assert history[-1]["eval_mlm_loss"] < history[0]["eval_mlm_loss"] - 0.5
    assert 0 <= history[-1]["eval_masked_accuracy"] <= 1
    assert hashlib.sha256((out / "vocab.txt").read_bytes()).hexdigest() == STANDARD_VOCAB_SHA256
    model = AutoModelForMaskedLM.from_pretrained(out, local_files_only=True)
    assert model.dtype == torch.float16 and model.config.vocab_size == 21128
    assert AutoTokenizer.from_pretrained(out, local_files_only=True)("党")["input_ids"][1] == \
        VOCAB.read_text(encoding="utf-8").split("\n").index("党")
    card = (out / "MODEL_CARD.md").read_text()
    assert "Apache-2.0" in card and str(history[-1]["eval_mlm_loss"]) in card
    assert 0 < stats["mfu"] < 1 and f"MFU {stats['mfu']:.1%}" in card
    assert (tmp / "live" / "metrics.json").is_file()
    assert (tmp / "ckpt" / "trainer_state.json").is_file() and (tmp / "ckpt" / "optimizer.safetensors").is_file()


def test_the_mfu_counts_the_flops_a_training_step_does(tmp_path):
    from dataclasses import replace

    from torch.utils.flop_counter import FlopCounterMode

    s = tiny_settings(tmp_path, max_length=128, architecture={"num_layers": 2, "hidden_size": 64, "num_heads": 4,
                                                               "intermediate_size": 256, "dropout": 0.0})
    model, tokenizer, _ = build_mlm_model(s)
    model.set_attn_implementation("eager")  # attention as matmuls the counter sees (SDPA's CPU kernel it does not)
    rows = list(packed_sequences(tokenizer, SENTENCES * 40, s.max_length))[:8]
    batch = WholeWordMasking(tokenizer, s.mlm_probability, seed=0)(rows)
    with FlopCounterMode(display=False) as counter:
        mlm_outputs(model, batch)[0].backward()
    counted = counter.get_total_flops() / batch["input_ids"].numel()
    masked = float((batch["labels"] != -100).float().mean())  # the head scores the masked tokens only
    assert training_flops_per_token(model.config, replace(s, mlm_probability=masked)) == pytest.approx(counted, rel=0.02)


def test_a_rerun_resumes_from_the_checkpoint(pretrained, tmp_path):
    import shutil

    _, tmp = pretrained
    shutil.copytree(tmp / "ckpt", tmp_path / "ckpt")
    stats = run(tiny_settings(tmp_path, max_steps=40))
    assert stats["resumes"] == 1 and stats["steps"] == 40 and [h["step"] for h in stats["history"]][-2:] == [30, 40]
    with pytest.raises(ValueError, match="delete that folder"):
        run(tiny_settings(tmp_path, max_steps=50, architecture={"num_layers": 2, "hidden_size": 32,
                                                                 "num_heads": 2, "intermediate_size": 64}))


def test_the_classifier_fine_tunes_the_pretrained_encoder(pretrained, tmp_path, monkeypatch):
    from pipeline.classifiers.base import read_card
    from pipeline.classifiers.bert import BertClassifier
    from pipeline.codebook import load_codebook

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, tmp = pretrained
    codebook = load_codebook()
    targets = np.eye(len(codebook.ids), dtype=np.float32)[np.arange(12) % 9]
    model = BertClassifier(codebook, {"base_model": str(tmp / "model"), "max_length": 32, "stride": 8,
                                      "max_steps": 3, "batch_size": 4, "live_dir": "",
                                      "checkpoint_dir": str(tmp_path / "ckpt")}).fit(SENTENCES * 2, targets)
    assert model.model.dtype == torch.float32  # the fp16 checkpoint is fine-tuned in full precision
    card = read_card(model.save(tmp_path / "bert"))
    assert card["base_model"]["kind"] == "local" and card["training"]["steps"] == 3


def test_layers_the_checkpoint_lacks_are_drawn_at_the_scale_a_small_encoder_trains_from(pretrained):
    from transformers import AutoModelForMaskedLM

    from pipeline.classifiers.bert import bert_settings, build_model
    from pipeline.codebook import load_codebook

    _, tmp = pretrained
    settings = bert_settings({"base_model": str(tmp / "model"), "max_length": 32, "stride": 8})
    model, _, _ = build_model(settings, SENTENCES, load_codebook().ids)
    pretrained_mlm = AutoModelForMaskedLM.from_pretrained(tmp / "model", local_files_only=True)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight,
                       pretrained_mlm.bert.embeddings.word_embeddings.weight.float())  # the encoder is loaded
    scale = 32 ** -0.5  # MLM pretraining leaves no pooler: it and the theme head are new
    for layer in (model.bert.pooler.dense, model.classifier):
        assert 0.75 * scale < layer.weight.std().item() < 1.25 * scale  # not the checkpoint's 0.02
        assert not layer.bias.any()


def test_settings_are_checked():
    with pytest.raises(ValueError, match="mlm_probability"):
        pretrain_settings({"mlm_probability": 1.5})
    with pytest.raises(ValueError, match="hidden_size"):
        pretrain_settings({"architecture": {"hidden_size": 30, "num_heads": 4}})
    with pytest.raises(ValueError, match="unknown key"):
        pretrain_settings({"epochs": 3})


def test_a_missing_corpus_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_pretrain_corpus.py"):
        run(pretrain_settings({"corpus": str(tmp_path / "none")}))


SHIPPED = ROOT / "models" / "pretrained" / "zh-political-bert-mini"


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="the shipped encoder is absent")
def test_the_shipped_encoder_is_standard_small_and_fine_tunes(tmp_path, monkeypatch):
    from safetensors import safe_open

    from pipeline.classifiers.base import read_card
    from pipeline.classifiers.bert import BertClassifier
    from pipeline.codebook import load_codebook

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) <= 30 * 2**20
    assert hashlib.sha256((SHIPPED / "vocab.txt").read_bytes()).hexdigest() == STANDARD_VOCAB_SHA256
    with safe_open(str(SHIPPED / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}
    stats = json.loads((SHIPPED / "pretrain.json").read_text())
    assert stats["final"]["eval_mlm_loss"] in [h["eval_mlm_loss"] for h in stats["history"]]
    assert (SHIPPED / "MODEL_CARD.md").is_file() and "Apache-2.0" in (SHIPPED / "MODEL_CARD.md").read_text()
    codebook = load_codebook()
    targets = np.eye(len(codebook.ids), dtype=np.float32)[np.arange(12) % 9]
    model = BertClassifier(codebook, {"base_model": str(SHIPPED), "max_length": 32, "stride": 8, "max_steps": 2,
                                      "batch_size": 4, "live_dir": "", "checkpoint_dir": str(tmp_path / "ckpt")}
                           ).fit(SENTENCES * 2, targets)
    assert read_card(model.save(tmp_path / "bert"))["base_model"]["vocab_size"] == 21128
