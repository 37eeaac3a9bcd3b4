"""Themes: codebook validation, labelling functions, splits, classifiers, classify, evaluation."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.__main__ import main
from pipeline.classifiers import classifier_class
from pipeline.classifiers.base import ModelError, load_model
from pipeline.codebook import CodebookError, load_codebook, parse_codebook
from pipeline.evaluate import by_source, score
from pipeline.labels.functions import WeakLabeler, lf_analysis
from pipeline.labels.split import SplitSettings, assign_by_year, build_splits, split_of_date

CODEBOOK = load_codebook()
CORPUS = [  # (text, themes) written for these tests
    ("各级党组织要坚决维护党中央权威和集中统一领导，提高政治判断力、政治领悟力、政治执行力。", ["political"]),
    ("要同党中央保持高度一致，确保党中央决策部署不折不扣落到实处，坚决防止搞变通、打折扣。", ["political"]),
    ("坚持读原著学原文悟原理，用党的创新理论武装头脑，坚定理想信念，补足精神之钙。", ["ideology"]),
    ("深入开展党史学习教育，引导党员干部从党的百年奋斗历程中汲取智慧和力量，牢记初心使命。", ["ideology"]),
    ("坚持新时代好干部标准，健全干部选拔任用机制，大力培养选拔优秀年轻干部。", ["organization"]),
    ("严把发展党员入口关，加强党员队伍教育管理，优化党员队伍结构。", ["organization"]),
    ("持之以恒落实中央八项规定精神，坚决纠治形式主义、官僚主义，狠刹享乐主义和奢靡之风。", ["work_style"]),
    ("领导干部要深入基层调查研究，密切党同人民群众的血肉联系，坚决反对文山会海。", ["work_style"]),
    ("组织党员逐条学习《中国共产党纪律处分条例》，增强纪律意识和规矩意识，把纪律挺在前面。", ["discipline"]),
    ("运用监督执纪“四种形态”，抓早抓小，让红脸出汗成为常态，严明党的政治纪律和组织纪律。", ["discipline"]),
    ("修订完善党内法规，健全制度体系，扎紧制度的笼子，提高制度执行力。", ["institutions"]),
    ("坚持民主集中制，完善议事规则和决策程序，推进党内法规制度建设。", ["institutions"]),
    ("十届省委第三轮巡视对12个单位党组织开展常规巡视，发现问题并督促整改，强化党内监督。", ["supervision"]),
    ("强化对一把手和领导班子的监督，完善派驻监督体制机制，严肃问责。", ["supervision"]),
    ("经查，王某某利用职务上的便利为他人谋取利益，非法收受财物，构成受贿罪。", ["anti_corruption"]),
    ("一体推进不敢腐、不能腐、不想腐，坚决打赢反腐败斗争攻坚战持久战，深化追逃追赃。", ["anti_corruption"]),
    ("推动村党组织书记担任村委会主任，增强基层党组织的政治功能，发挥战斗堡垒作用。", ["grassroots"]),
    ("各党支部要认真落实三会一课制度，开好主题党日，加强社区党组织建设。", ["grassroots"]),
    ("全年地区生产总值增长百分之六，城镇新增就业一百二十万人，居民消费价格基本稳定。", []),
    ("外交部发言人表示，中方愿同各方一道，推动构建人类命运共同体。", []),
    ("今年夏粮再获丰收，粮食产量连续多年稳定在一万三千亿斤以上。", []),
    ("会议由市委副书记主持，市委常委出席会议。", []),
]


def targets_of(rows) -> np.ndarray:
    out = np.zeros((len(rows), len(CODEBOOK.ids)))
    for i, (_, themes) in enumerate(rows):
        for theme in themes:
            out[i, CODEBOOK.ids.index(theme)] = 1
    return out


# --- codebook -------------------------------------------------------------------------------------

def _codebook_data() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("pipeline.resources").joinpath("codebook.yaml").read_text("utf-8"))


def test_packaged_codebook_has_the_nine_themes_with_names_and_examples():
    assert CODEBOOK.ids == ["political", "ideology", "organization", "work_style", "discipline",
                            "institutions", "supervision", "anti_corruption", "grassroots"]
    assert all(t.name_zh and t.keywords and 2 <= len(t.examples) <= 3 for t in CODEBOOK.themes)
    assert CODEBOOK["political"].label == "政治建设 (political)"
    assert len(CODEBOOK.hash) == 16


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d["themes"][0].pop("name_zh"), r"themes\[0\] \(political\): missing or empty field 'name_zh'"),
    (lambda d: d["themes"][1]["keywords"].update({"理论武装": 1.5}), r"ideology\)\.keywords\['理论武装'\]: weight"),
    (lambda d: d["themes"][2]["patterns"].update({"(unclosed": 0.5}), r"organization\)\.patterns: bad regular"),
    (lambda d: d["themes"].pop(), r"themes must be exactly .* missing \['grassroots'\]"),
    (lambda d: d["themes"][3].update({"examples": ["只有一个"]}), r"work_style\)\.examples: give 2–3"),
])
def test_codebook_errors_name_the_theme_and_field(breakage, message):
    data = _codebook_data()
    breakage(data)
    with pytest.raises(CodebookError, match=message):
        parse_codebook(yaml.safe_dump(data, allow_unicode=True), "codebook.yaml")


def test_codebook_hash_changes_with_content():
    data = _codebook_data()
    data["themes"][0]["keywords"]["新关键词"] = 0.5
    assert parse_codebook(yaml.safe_dump(data, allow_unicode=True), "x").hash != CODEBOOK.hash


# --- labelling functions --------------------------------------------------------------------------

def silver(text: str, headings=()) -> dict[str, float]:
    _, probs = WeakLabeler(CODEBOOK).label([text], [list(headings)])
    return dict(zip(CODEBOOK.ids, probs[0]))


def test_keyword_hits_give_silver_probability():
    probs = silver("坚持无禁区、全覆盖、零容忍，一体推进不敢腐、不能腐、不想腐。")
    assert probs["anti_corruption"] > 0.9 and probs["grassroots"] == 0


def test_a_slogan_in_a_list_is_a_passing_mention():
    listed = silver("会议强调，要增强“四个意识”、坚定“四个自信”、做到“两个维护”，推动经济高质量发展。")
    substantive = silver("全党必须做到“两个维护”，坚决维护党中央权威和集中统一领导。")
    assert listed["political"] < 0.5 < substantive["political"]


def test_exclude_pattern_guards_a_discipline_phrase_from_the_political_theme():
    probs = silver("经查，李某某违反政治纪律和政治规矩，对抗组织审查。")
    assert probs["political"] < 0.5


def test_heading_cue_makes_a_paragraph_inherit_the_theme():
    text = "要持续用力，久久为功，推动各项工作取得实效。"
    assert silver(text)["supervision"] == 0
    assert silver(text, ["五、强化党内监督"])["supervision"] >= 0.5


def test_lf_analysis_counts_coverage_overlaps_and_conflicts():
    labeler = WeakLabeler(CODEBOOK)
    texts = ["强化党内监督，开展巡视巡察。", "增长百分之六。"]
    matrix, _ = labeler.label(texts, [["强化监督"], []])
    rows = {r["lf"]: r for r in lf_analysis(labeler.lfs, matrix)}
    assert rows["supervision:keyword"]["coverage"] == 0.5
    assert rows["supervision:keyword"]["overlaps"] == 0.5  # the heading LF labels the same paragraph
    assert rows["supervision:keyword"]["conflicts"] == 0.0
    assert rows["grassroots:keyword"]["coverage"] == 0.0


# --- splits ---------------------------------------------------------------------------------------

@pytest.fixture
def labelled_project(tmp_path: Path) -> Path:
    """paragraphs + weak labels + demo gold + a training corpus, as the stages would leave them."""
    from pipeline.config import SegmentSettings
    from pipeline.segment import paragraphs_frame

    docs = [{"doc_id": f"d{i:02d}", "text": "\n".join(t for t, _ in CORPUS[i % 11: i % 11 + 6]),
             "title": f"文件{i}", "date": f"{2012 + i // 3}-01-01", "year": 2012 + i // 3,
             "doc_type": "通知", "source": "测试"} for i in range(12)]
    paragraphs = paragraphs_frame(docs, SegmentSettings(min_chars=1))
    (tmp_path / "interim").mkdir()
    paragraphs.to_parquet(tmp_path / "interim" / "paragraphs.parquet")
    weak = paragraphs[["para_id", "doc_id", "year"]].copy()
    for theme in CODEBOOK.ids:
        weak[theme] = 0.7
    (tmp_path / "processed").mkdir()
    weak.to_parquet(tmp_path / "processed" / "weak_labels.parquet")
    themes_of = dict(CORPUS)
    gold = [{"para_id": p.para_id, "text": p.text, "themes": themes_of.get(p.text, []), "primary": None}
            for p in paragraphs.itertuples() if p.doc_id < "d08"]
    (tmp_path / "gold").mkdir()
    (tmp_path / "gold" / "demo.jsonl").write_text("\n".join(json.dumps(g, ensure_ascii=False) for g in gold))
    (tmp_path / "training").mkdir()
    training = [{"id": f"t{i}", "doc_id": f"td{i // 2}", "genre": "测试", "text": t, "themes": th,
                 "primary": th[0] if th else None} for i, (t, th) in enumerate(CORPUS * 2)]
    (tmp_path / "training" / "part.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in training))
    (tmp_path / "real").mkdir()
    real = [{"id": f"r{i}", "doc_id": f"news-{i // 3}", "source": "新闻", "date": f"2020-03-{1 + i // 6:02d}",
             "coder": "a", "text": t, "themes": th, "primary": th[0] if th else None}
            for i, (t, th) in enumerate(CORPUS * 6)]
    (tmp_path / "real" / "news.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in real))
    return tmp_path


def split_settings(root: Path, **overrides) -> SplitSettings:
    return SplitSettings(**{"paragraphs": str(root / "interim" / "paragraphs.parquet"),
                            "weak_labels": str(root / "processed" / "weak_labels.parquet"),
                            "gold_dir": str(root / "gold"), "training_dir": str(root / "training"),
                            "real_dir": str(root / "real"), "out_dir": str(root / "processed"),
                            "dev_share": 0.2, "test_share": 0.2, "use_silver": True, **overrides})


def test_splits_are_disjoint_by_document_and_deterministic(labelled_project):
    first = build_splits(split_settings(labelled_project))
    second = build_splits(split_settings(labelled_project))
    docs = {name: set(frame["doc_id"]) for name, frame in first.items()}
    assert not (docs["train"] & docs["dev"]) and not (docs["train"] & docs["test"]) and not (docs["dev"] & docs["test"])
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])
    assert set(first["dev"]["origin"]) <= {"gold_demo", "training", "real"}  # silver trains only
    assert set(first["test"]["origin"]) <= {"gold_demo", "training", "real"}
    silver_docs = set(first["train"].loc[first["train"]["origin"] == "silver", "doc_id"])
    assert not silver_docs & (docs["dev"] | docs["test"])


def test_real_paragraphs_are_held_out_by_date_with_every_article_of_that_day(labelled_project):
    splits = build_splits(split_settings(labelled_project, real_dev_share=0.3, real_test_share=0.3))
    real = pd.concat([frame.assign(split=name) for name, frame in splits.items()])
    real = real[real["origin"] == "real"].merge(
        pd.read_json(labelled_project / "real" / "news.jsonl", lines=True)[["id", "date"]], on="id")
    assert real.groupby("date")["split"].nunique().max() == 1  # a day never spans two splits
    assert real.groupby("doc_id")["split"].nunique().max() == 1
    assert set(real["split"]) == {"train", "dev", "test"}


def test_an_article_filed_under_two_dates_goes_to_the_most_held_out_one(labelled_project):
    settings = split_settings(labelled_project, real_dev_share=0.3, real_test_share=0.3)
    day_in = {split_of_date(f"2020-03-{d:02d}", 0.3, 0.3, settings.seed): f"2020-03-{d:02d}" for d in range(1, 31)}
    real_file = labelled_project / "real" / "news.jsonl"
    rows = [json.loads(line) for line in real_file.read_text().splitlines()]
    article = [dict(r, date=day_in["train"]) for r in rows if r["doc_id"] == "news-0"]
    refiled = [dict(r, id=r["id"] + "-refiled", date=day_in["test"]) for r in article]
    others = [r for r in rows if r["doc_id"] != "news-0"]
    for order in (article + refiled, refiled + article):  # whichever copy the files list first
        real_file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in others + order))
        splits = build_splits(settings)
        assert {name for name, frame in splits.items() if "news-0" in set(frame["doc_id"])} == {"test"}
        assert (splits["test"]["doc_id"] == "news-0").sum() == len(article) + len(refiled)


def test_silver_is_off_by_default_and_never_the_majority_of_training_rows(labelled_project):
    default = build_splits(split_settings(labelled_project, use_silver=False))
    assert "silver" not in set(default["train"]["origin"])
    with_silver = build_splits(split_settings(labelled_project))["train"]
    silver = (with_silver["origin"] == "silver").sum()
    assert 0 < silver <= (with_silver["origin"] != "silver").sum()


def test_training_data_does_not_depend_on_the_corpus_when_gold_carries_its_documents(labelled_project):
    gold_file = labelled_project / "gold" / "demo.jsonl"
    paragraphs = pd.read_parquet(labelled_project / "interim" / "paragraphs.parquet").set_index("para_id")
    rows = [json.loads(line) for line in gold_file.read_text().splitlines()]
    for row in rows:
        row.update(doc_id=paragraphs.loc[row["para_id"], "doc_id"], year=int(paragraphs.loc[row["para_id"], "year"]),
                   heading_path=[])
    gold_file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    before = build_splits(split_settings(labelled_project, use_silver=False))
    (labelled_project / "interim" / "paragraphs.parquet").unlink()  # a user's corpus replaced the demo one
    after = build_splits(split_settings(labelled_project, use_silver=False))
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_demo_gold_splits_are_balanced_across_years():
    doc_years = {f"d{y}-{k}": y for y in range(2012, 2016) for k in range(4)}
    split = assign_by_year(doc_years, seed=1)
    for year in range(2012, 2016):
        kinds = sorted(split[f"d{year}-{k}"] for k in range(4))
        assert kinds == ["dev", "test", "train", "train"]


# --- classifiers and classify -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    texts, y = [t for t, _ in CORPUS], targets_of(CORPUS)
    out = {}
    for method, params in [("dictionary", {}), ("baseline", {"min_df": 1, "C": 10.0})]:
        model = classifier_class(method)(CODEBOOK, params).fit(texts, y, texts, y)
        out[method] = model.save(root / method)
    return out


@pytest.mark.parametrize("method", ["dictionary", "baseline"])
def test_saved_model_reloads_with_identical_scores(trained_models, method):
    texts = [t for t, _ in CORPUS]
    model = load_model(trained_models[method])
    again = load_model(trained_models[method])
    np.testing.assert_allclose(model.predict_scores(texts), again.predict_scores(texts))
    card = json.loads((trained_models[method] / "model.json").read_text())
    assert card["codebook_hash"] == CODEBOOK.hash and set(card["thresholds"]) == set(CODEBOOK.ids)


def test_baseline_learns_the_training_themes(trained_models):
    model = load_model(trained_models["baseline"])
    _, themes = model.predict([t for t, _ in CORPUS])
    hits = sum(set(expected) == set(got) for (_, expected), got in zip(CORPUS, themes))
    assert hits >= 0.8 * len(CORPUS)


@pytest.mark.parametrize("method", ["dictionary", "baseline"])
def test_classify_adds_scores_and_themes_and_passes_fields_through(trained_models, method, tmp_path):
    records = [{"id": "a", "text": CORPUS[14][0], "source": "测试"}, {"id": "b", "text": CORPUS[18][0]}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    assert main(["classify", "--model", str(trained_models[method]), "--input", str(src), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["source"] == "测试"
    assert set(rows[0]["scores"]) == set(CODEBOOK.ids) and all(0 <= s <= 1 for s in rows[0]["scores"].values())
    assert "anti_corruption" in rows[0]["themes"] and rows[1]["themes"] == []


@pytest.mark.parametrize("content, message", [
    ('{"id": 1, "text": "正常的一段话。"}\n{"id": 2, "text": \n', "in.jsonl:2: malformed JSON"),
    ('{"id": 1, "text": "正常的一段话。"}\n{"id": 2, "title": "没有正文"}\n', "in.jsonl:2: record has no 'text'"),
])
def test_classify_rejects_bad_input_naming_the_line_and_writes_nothing(trained_models, tmp_path, capsys,
                                                                        content, message):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(content)
    assert main(["classify", "--model", str(trained_models["baseline"]), "--input", str(src),
                 "--output", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))


def test_evaluate_writes_each_methods_scores_by_source_for_dvc_metrics(trained_models, tmp_path):
    from pipeline.evaluate import EvaluateSettings, run

    models = tmp_path / "models"
    for method, directory in trained_models.items():
        shutil.copytree(directory, models / method)
    test = pd.DataFrame({"text": [t for t, _ in CORPUS], "doc_id": [f"d{i // 2}" for i in range(len(CORPUS))],
                         "origin": "real", "context": "",
                         "source": ["新闻联播" if i % 2 else "政府工作报告" for i in range(len(CORPUS))]})
    test[CODEBOOK.ids] = targets_of(CORPUS)
    test.to_parquet(tmp_path / "test.parquet")
    summary = run(EvaluateSettings(methods=["dictionary", "baseline"], models_dir=str(models), bootstrap=20,
                                   test=str(tmp_path / "test.parquet"), metrics_dir=str(tmp_path / "metrics")))
    full = summary["methods"]["baseline"]["by_source"]
    assert set(full) == {"新闻联播", "政府工作报告"} and sum(v["n_test"] for v in full.values()) == len(CORPUS)
    compact = json.loads((tmp_path / "metrics" / "baseline.json").read_text(encoding="utf-8"))
    assert compact["by_source"] == {name: {"micro_f1": v["micro_f1"], "macro_f1": v["macro_f1"]}
                                    for name, v in full.items()}


def test_classify_with_an_unknown_model_path_says_how_to_fix_it(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "text": "一段话。"}\n')
    assert main(["classify", "--model", str(tmp_path / "nope"), "--input", str(src),
                 "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "not a model directory" in capsys.readouterr().err


def test_loading_refuses_a_model_for_other_themes(trained_models, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(trained_models["dictionary"], copy)
    card = json.loads((copy / "model.json").read_text())
    card["themes"] = card["themes"][:-1] + ["party_history"]
    (copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="trained for themes .* retrain it"):
        load_model(copy)


# --- evaluation -------------------------------------------------------------------------------------

def test_scores_match_a_hand_computed_case():
    themes = ["a", "b"]
    truth = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=bool)
    pred = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=bool)
    scores = np.array([[.9, .1], [.2, .8], [.7, .1], [.1, .9]])
    result = score(truth, pred, scores, themes, n_boot=200, seed=1)
    # a: tp 1, fp 1, fn 1 → F1 0.5;  b: tp 2, fp 0, fn 0 → F1 1.0
    assert result["per_theme"]["a"]["f1"] == 0.5 and result["per_theme"]["b"]["f1"] == 1.0
    assert result["macro_f1"] == 0.75 and result["micro_f1"] == round(2 * 3 / (2 * 3 + 1 + 1), 4)
    assert result["top1_accuracy"] == 1.0  # every themed row's best score is one of its themes
    assert result["no_theme_flagged"] == 1.0  # the one no-theme row got a theme
    lo, hi = result["per_theme"]["a"]["f1_ci"]
    assert lo <= 0.5 <= hi


def test_by_source_averages_over_the_themes_a_source_holds_and_counts_every_error():
    themes = ["a", "b"]
    frame = pd.DataFrame({"source": ["news", "news", "report", "report", None],
                          "doc_id": ["n1", "n2", "r1", "r1", "x1"]})
    truth = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]], dtype=bool)  # the report holds theme a only
    pred = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [0, 0]], dtype=bool)  # one false b on the report
    scores = np.where(pred, 0.9, 0.1)
    result = by_source(frame, truth, pred, scores, themes, n_boot=50, seed=0)
    assert set(result) == {"news", "report"}  # a row without a source counts in the whole set alone
    assert result["news"]["macro_f1"] == 1.0 and result["news"]["micro_f1"] == 1.0
    report = result["report"]
    assert report["macro_f1"] == 1.0  # over a alone: b is absent there, not a theme it fails at
    assert report["micro_f1"] == round(2 * 2 / (2 * 2 + 1), 4)  # the false b still counts
    assert report["support"] == {"a": 2} and report["n_documents"] == 1 and report["n_test"] == 2


def test_thresholds_maximise_dev_f1_under_the_ceiling():
    from pipeline.classifiers.base import tune_thresholds

    scores = np.array([[0.95], [0.85], [0.6], [0.3], [0.1]])
    truth = np.array([[True], [True], [False], [False], [False]])
    assert tune_thresholds(scores, truth)[0] == pytest.approx(0.625)  # lowest threshold that excludes 0.6
    assert tune_thresholds(scores, truth, ceiling=0.4)[0] == pytest.approx(0.325)
    assert tune_thresholds(scores, ~truth & False, ceiling=0.4)[0] == 0.4  # no positive: the ceiling
