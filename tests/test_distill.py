"""Distillation: which unlabeled paragraphs the teacher may label (train-split documents only, nothing coded),
which it keeps, and a tiny end-to-end run whose checkpoint `train_bert` fine-tunes with its theme head."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

torch = pytest.importorskip("torch")

from pipeline.classifiers import classifier_class  # noqa: E402
from pipeline.classifiers.bert import bert_settings, build_model  # noqa: E402
from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.distill import candidate_paragraphs, distill_settings, run, transfer_set  # noqa: E402
from pipeline.labels.split import SplitSettings, split_of_date  # noqa: E402

CODEBOOK = load_codebook()
SPLIT = SplitSettings(real_dev_share=0.15, real_test_share=0.2, seed=13)
THEME_PHRASES = {
    "political": "坚决维护党中央权威和集中统一领导，严明政治纪律和政治规矩",
    "anti_corruption": "坚持有腐必反、有贪必肃，坚决查处群众身边的腐败问题",
    "grassroots": "村党组织发挥战斗堡垒作用，落实三会一课，带领群众增加集体收入",
}
OTHER = ["今年粮食总产量再创新高，夏粮收购进度快于去年同期。", "气象台发布寒潮预警，北方大部地区将有大风降温天气。",
         "国际乒联世界杯决赛落幕，中国选手包揽男女单打冠军。", "新建高铁线路开通运营，沿线城市通行时间大幅缩短。"]


def dates_in(split: str, n: int) -> list[str]:
    days = (f"2021-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29))
    return [d for d in days if split_of_date(d, SPLIT.real_dev_share, SPLIT.real_test_share, SPLIT.seed) == split][:n]


def coded_rows(n: int, origin: str = "real") -> pd.DataFrame:
    """Coded paragraphs: each theme phrase with a varying opening, and plain news as no theme."""
    rows = []
    for i in range(n):
        theme = CODEBOOK.ids.index(list(THEME_PHRASES)[i % 3]) if i % 4 else None
        text = (f"第{i}次会议强调，" + THEME_PHRASES[CODEBOOK.ids[theme]] + "。") if theme is not None else \
            f"第{i}条消息：" + OTHER[i % len(OTHER)]
        rows.append({"id": f"c{i}", "doc_id": f"d{i}", "text": text, "context": "", "origin": origin,
                     "weight": 1.0, **{t: float(j == theme) for j, t in enumerate(CODEBOOK.ids)}})
    return pd.DataFrame(rows)


def paragraph(doc: str, date: str, text: str, kind: str = "body", url: str | None = None) -> dict:
    return {"doc_id": doc, "kind": kind, "text": text, "title": "标题", "heading_path": [], "date": date,
            "url": url or f"http://example.cn/{doc}"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("distill")
    splits = tmp / "splits"
    splits.mkdir()
    coded = coded_rows(48)
    coded.to_parquet(splits / "train.parquet")
    coded_rows(16).assign(text=lambda f: "开发集" + f["text"]).to_parquet(splits / "dev.parquet")
    coded_rows(8).assign(text=lambda f: "测试集" + f["text"]).to_parquet(splits / "test.parquet")
    teacher = classifier_class("baseline")(CODEBOOK, {"min_df": 1, "calibration_folds": 0})
    teacher.fit(coded["text"].tolist(), coded[CODEBOOK.ids].to_numpy()).save(tmp / "teacher")
    train_days, (dev_day,), (test_day,) = dates_in("train", 4), dates_in("dev", 1), dates_in("test", 1)
    rows = [paragraph(f"t{i}", train_days[i % 4], f"{i}号文件指出，{THEME_PHRASES[t]}。")
            for i, t in enumerate(list(THEME_PHRASES) * 4)]
    rows += [paragraph(f"n{i}", train_days[i % 4], f"{i}号消息：{OTHER[i % 4]}") for i in range(30)]
    rows += [
        paragraph("dev", dev_day, "开发日的段落：" + THEME_PHRASES["political"] + "。"),
        paragraph("test", test_day, "测试日的段落：" + THEME_PHRASES["political"] + "。"),
        # one article the archive files under a train day and the test day: held out with the test day
        paragraph("twice-a", train_days[0], "两天都收录的文章：" + THEME_PHRASES["grassroots"] + "。", url="u:twice"),
        paragraph("twice-b", test_day, "两天都收录的文章，第二段：" + THEME_PHRASES["grassroots"] + "。", url="u:twice"),
        paragraph("coded", train_days[1], coded["text"].iloc[1]),  # already coded: never a transfer row
        paragraph("head", train_days[1], "一、坚持党的全面领导，加强政治建设", kind="heading"),
        paragraph("short", train_days[1], "很短。"),
        paragraph("latin", train_days[1], "Xinhua News Agency English service, with 两个 Chinese words."),
    ]
    pd.DataFrame(rows).to_parquet(tmp / "paragraphs.parquet")
    params = {"split": {"real_dev_share": SPLIT.real_dev_share, "real_test_share": SPLIT.real_test_share,
                        "seed": SPLIT.seed},
              "bert": {"max_length": 32, "stride": 8, "cpu_inference": "fp32", "precision": "fp32",
                       "warmup_ratio": 0.0, "eval_batch_size": 16}}
    (tmp / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return tmp


def settings(tmp: Path, **overrides):
    return distill_settings({"paragraphs": [str(tmp / "paragraphs.parquet")], "teacher": str(tmp / "teacher"),
                             "splits_dir": str(tmp / "splits"), "min_chars": 8, "relevant_score": 0.5,
                             "negatives": 5, "max_steps": 30, "batch_size": 8, "learning_rate": 3e-3,
                             "out_dir": str(tmp / "student"), "checkpoint_dir": str(tmp / "ckpt"), "live_dir": "",
                             "student": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
                                         "max_position_embeddings": 64, "vocabulary": "words"},
                             **overrides})


def test_only_unseen_paragraphs_of_training_split_documents_are_candidates(project):
    coded = set(pd.read_parquet(project / "splits" / "train.parquet")["text"])
    kept = candidate_paragraphs(str(project / "paragraphs.parquet"), settings(project), SPLIT, coded)
    assert set(kept["doc_id"]) == {f"t{i}" for i in range(12)} | {f"n{i}" for i in range(30)}
    assert (kept["table"] == str(project / "paragraphs.parquet")).all()


def test_every_relevant_paragraph_is_kept_and_negatives_are_drawn_reproducibly(project):
    from pipeline.classifiers.base import load_model

    teacher = load_model(project / "teacher")
    transfer = transfer_set(settings(project), SPLIT, teacher)
    relevant = transfer[CODEBOOK.ids].max(axis=1) >= 0.5
    assert set(transfer.loc[relevant, "doc_id"]) == {f"t{i}" for i in range(12)}  # the teacher knows these phrases
    assert (~relevant).sum() == 5 and transfer["doc_id"].is_unique
    again = transfer_set(settings(project), SPLIT, teacher)
    assert transfer["text"].tolist() == again["text"].tolist()
    assert transfer_set(settings(project, seed=7), SPLIT, teacher)["text"].tolist() != transfer["text"].tolist()


def test_a_tiny_run_ships_a_checkpoint_that_train_bert_fine_tunes_with_its_head(project, monkeypatch):
    from safetensors import safe_open

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stats = run(settings(project), str(project / "params.yaml"))
    out = project / "student"
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                              "distill.json", "MODEL_CARD.md"}
    assert not list(project.glob(".student.*"))  # the temp folder was swapped in
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}
        head = weights.get_tensor("classifier.weight").float()
    recorded = json.loads((out / "distill.json").read_text())
    assert recorded["transfer"]["paragraphs"] == 17 and recorded["transfer"]["coded_rows"] == 48
    assert recorded["training"]["steps"] == stats["training"]["steps"] == 30
    assert "only documents of the real train split" in (out / "MODEL_CARD.md").read_text().lower()
    model, tokenizer, _ = build_model(bert_settings({"base_model": str(out), "max_length": 32, "stride": 8}),
                                      [], CODEBOOK.ids)
    assert torch.equal(model.classifier.weight, head)  # the theme head is the student's, not drawn afresh
    assert recorded["student"]["vocabulary"] == "words" and model.config.num_hidden_layers == 1  # `student`'s shape
    assert tokenizer.tokenize("党组织")[0] != tokenizer.unk_token  # the student's vocabulary travels with it


def test_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="min_chars"):
        distill_settings({"min_chars": 900, "max_chars": 800})
    with pytest.raises(ValueError, match="relevant_score"):
        distill_settings({"relevant_score": 1.5})
    table = tmp_path / "bad.parquet"
    pd.DataFrame({"text": ["只有正文一列"]}).to_parquet(table)
    with pytest.raises(ValueError, match="bad.parquet: no column doc_id"):
        candidate_paragraphs(str(table), distill_settings({}), SPLIT, set())
    with pytest.raises(FileNotFoundError, match="none.parquet: no such paragraph table: build"):
        candidate_paragraphs(str(tmp_path / "none.parquet"), distill_settings({}), SPLIT, set())


SHIPPED = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "zh-political-bert-distilled"


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="the shipped student is absent")
def test_the_shipped_student_is_small_documented_and_the_default_base(monkeypatch):
    from pipeline.classifiers.settings import BertSettings
    from pipeline.config import stage_settings

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = SHIPPED.parents[2] / "params.yaml"
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) <= 30 * 2**20
    stats = json.loads((SHIPPED / "distill.json").read_text())
    split = stage_settings("split", SplitSettings, params)
    assert stats["split"] == {"real_dev_share": split.real_dev_share, "real_test_share": split.real_test_share,
                              "seed": split.seed}  # it held out the dates the shipped splits hold out
    assert stats["transfer"]["paragraphs"] > 50_000 and stats["training"]["steps"] > 0
    assert (SHIPPED.parents[2] / stage_settings("bert", BertSettings, params).base_model).resolve() == SHIPPED
    model, _, info = build_model(bert_settings({"base_model": str(SHIPPED)}), [], CODEBOOK.ids)
    assert model.config.id2label == dict(enumerate(CODEBOOK.ids)) and info["kind"] == "local"
