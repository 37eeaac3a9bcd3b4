"""The annotation round trip: export → Label Studio / CSV → import (all or nothing) → agreement →
adjudication → gold; and the audit loop (export --audit → code → import --audit → evaluate --audit)."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import cohen_kappa_score

from pipeline.__main__ import main
from pipeline.codebook import load_codebook
from pipeline.labels.annotate import (AnnotateSettings, AnnotationError, adjudicate, agreement, export,
                                      import_files)
from pipeline.labels.gold import load_gold
from pipeline.quantify import load_error_rates

PARAGRAPHS = [
    ("p1", 2013, "持之以恒落实中央八项规定精神，坚决纠治四风。"), ("p2", 2013, "全年地区生产总值增长百分之六。"),
    ("p3", 2016, "深入开展两学一做学习教育，坚定理想信念。"), ("p4", 2016, "强化党内监督，开展巡视巡察。"),
    ("p5", 2019, "推动村党组织书记担任村委会主任，发挥战斗堡垒作用。"), ("p6", 2019, "经查，某某非法收受财物。"),
]
THEMES = ["political", "ideology", "organization", "work_style", "discipline", "institutions", "supervision",
          "anti_corruption", "grassroots"]


def paragraphs_frame(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame({"para_id": [p for p, _, _ in rows], "doc_id": [f"d-{p}" for p, _, _ in rows],
                         "kind": "body", "heading_path": [["一、总体要求"] for _ in rows],
                         "text": [t for _, _, t in rows], "title": "文件", "year": [y for _, y, _ in rows]})


def weak_frame(paragraphs: pd.DataFrame, likely: dict[str, str]) -> pd.DataFrame:
    weak = paragraphs[["para_id", "doc_id", "year"]].copy()
    for theme in THEMES:
        weak[theme] = [0.9 if likely.get(p) == theme else 0.0 for p in weak["para_id"]]
    return weak


@pytest.fixture
def settings(tmp_path: Path) -> AnnotateSettings:
    paragraphs = paragraphs_frame(PARAGRAPHS)
    paragraphs.to_parquet(tmp_path / "paragraphs.parquet")
    likely = {"p1": "work_style", "p3": "ideology", "p4": "supervision"}
    weak_frame(paragraphs, likely).to_parquet(tmp_path / "weak.parquet")
    return AnnotateSettings(paragraphs=str(tmp_path / "paragraphs.parquet"), weak_labels=str(tmp_path / "weak.parquet"),
                            annotations_dir=str(tmp_path / "annotations"), export_dir=str(tmp_path / "export"),
                            gold_dir=str(tmp_path / "gold"), audit_dir=str(tmp_path / "audit"), bootstrap=300)


def label_studio_export(codings: dict[str, tuple[list[str], str | None]], annotator_id: int) -> list[dict]:
    """A Label Studio JSON export as its documentation describes it: tasks with `data` and
    `annotations[].result[]` entries of type choices, from_name/to_name matching the labelling config."""
    tasks = []
    for i, (para_id, (themes, primary)) in enumerate(codings.items()):
        result = [{"id": f"r{i}a", "from_name": "themes", "to_name": "text", "type": "choices",
                   "value": {"choices": themes}, "origin": "manual"}]
        if primary:
            result.append({"id": f"r{i}b", "from_name": "primary", "to_name": "text", "type": "choices",
                           "value": {"choices": [primary]}, "origin": "manual"})
        tasks.append({"id": 100 + i, "data": {"para_id": para_id, "text": "…"},
                      "annotations": [{"id": 500 + i, "completed_by": annotator_id, "result": result,
                                       "was_cancelled": False, "created_at": "2026-11-27T04:00:00Z"}],
                      "predictions": []})
    return tasks


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# --- export ----------------------------------------------------------------------------------------

def test_export_writes_label_studio_tasks_and_an_excel_csv_with_every_likely_theme(settings):
    paths = export(settings, n=4)
    tasks = json.loads(paths["json"].read_text())
    assert len(tasks) == 4
    # four likely themes (work_style, ideology, supervision and none): one paragraph each
    picked = {t["data"]["para_id"] for t in tasks}
    assert {"p1", "p3", "p4"} <= picked and len(picked & {"p2", "p5", "p6"}) == 1
    suggested = {t["data"]["para_id"]: t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks}
    assert suggested["p1"] == ["work_style"] and suggested["p4"] == ["supervision"]
    assert paths["csv"].read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM: Excel shows the Chinese
    csv_rows = pd.read_csv(paths["csv"], encoding="utf-8-sig")
    assert list(csv_rows["para_id"]) == [t["data"]["para_id"] for t in tasks]
    assert csv_rows["text"].iloc[0] in {t for _, _, t in PARAGRAPHS}
    assert export(settings, n=4)["json"].read_text() == paths["json"].read_text()  # seeded: the same sample


def test_the_sampler_shares_n_across_every_theme_then_across_years(tmp_path):
    likely_themes = THEMES + ["none"]
    rows, likely = [], {}
    for theme in likely_themes:  # 10 likely themes × 4 years × 6 paragraphs; alphabetical order must not matter
        for year in (2013, 2016, 2019, 2022):
            for k in range(6):
                para_id = f"{theme}-{year}-{k}"
                rows.append((para_id, year, f"第{k}段，{theme}。"))
                likely[para_id] = theme
    paragraphs = paragraphs_frame(rows)
    paragraphs.to_parquet(tmp_path / "paragraphs.parquet")
    weak_frame(paragraphs, likely).to_parquet(tmp_path / "weak.parquet")

    def draw(n: int, seed: int = 7) -> list[str]:
        settings = AnnotateSettings(paragraphs=str(tmp_path / "paragraphs.parquet"),
                                    weak_labels=str(tmp_path / "weak.parquet"), export_dir=str(tmp_path / "x"),
                                    seed=seed)
        return [t["data"]["para_id"] for t in json.loads(export(settings, n=n)["json"].read_text())]

    forty = draw(40)
    per_theme = Counter(p.rsplit("-", 2)[0] for p in forty)
    assert per_theme == {theme: 4 for theme in likely_themes}  # every theme, 'none' included, gets 40/10
    for theme in likely_themes:  # ... and its four come from four different years
        assert len({p.rsplit("-", 2)[1] for p in forty if p.startswith(theme + "-")}) == 4
    assert Counter(p.rsplit("-", 2)[0] for p in draw(200)) == {theme: 20 for theme in likely_themes}
    assert draw(40) == forty and draw(40, seed=8) != forty  # seeded and deterministic
    assert len(set(Counter(p.rsplit("-", 2)[0] for p in draw(45)).values()) - {4, 5}) == 0  # remainder spread


# --- import ----------------------------------------------------------------------------------------

def test_import_of_label_studio_and_csv_then_agreement(settings, tmp_path):
    first = label_studio_export({"p1": (["work_style"], "work_style"), "p2": ([], None),
                                 "p3": (["ideology"], "ideology"), "p4": (["supervision"], "supervision")}, 7)
    (tmp_path / "ls.json").write_text(json.dumps(first, ensure_ascii=False))
    (tmp_path / "coder_b.csv").write_text(
        "para_id,themes,primary,annotator\np1,work_style,work_style,bob\np2,,,bob\n"
        "p3,ideology;political,ideology,bob\np4,supervision,supervision,bob\n", encoding="utf-8")
    written = import_files([str(tmp_path / "ls.json"), str(tmp_path / "coder_b.csv")], settings)
    assert written == {"ls-7": 4, "bob": 4}
    rows = [json.loads(line) for line in (Path(settings.annotations_dir) / "bob.jsonl").read_text().splitlines()]
    assert rows[2] == {"para_id": "p3", "text": None, "themes": ["ideology", "political"], "primary": "ideology",
                       "note": "", "annotator": "bob"}
    result = agreement(settings, output=str(tmp_path / "agreement.json"))
    assert result["per_theme"]["work_style"]["krippendorff_alpha"] == 1.0
    assert result["per_theme"]["political"]["pairs"]["bob~ls-7"]["cohen_kappa"] == 0.0
    assert result["per_theme"]["political"]["krippendorff_alpha"] < 0.5
    assert result["per_theme"]["political"]["prevalence"] == {"bob": 0.25, "ls-7": 0.0}
    # a theme neither coder used: nothing to agree on — NA, never a perfect 1.000
    grassroots = result["per_theme"]["grassroots"]
    assert grassroots["krippendorff_alpha"] is None
    assert grassroots["pairs"]["bob~ls-7"]["cohen_kappa"] is None
    assert grassroots["pairs"]["bob~ls-7"]["raw_agreement"] == 1.0
    table = (tmp_path / "agreement.md").read_text(encoding="utf-8")
    assert "| grassroots | bob~ls-7 | 4 | 0 (0.0%) / 0 (0.0%) | 1.000 | NA | — | NA |" in table


def test_a_gb18030_csv_from_excel_is_read_and_errors_name_the_file_and_line(settings, tmp_path):
    sheet = tmp_path / "张三.csv"
    sheet.write_bytes("para_id,text,themes,primary,annotator\r\n"
                      "p1,持之以恒落实中央八项规定精神,work_style,work_style,张三\r\n"
                      "p2,全年地区生产总值增长百分之六。,,,张三\r\n".encode("gb18030"))
    assert import_files([str(sheet)], settings) == {"张三": 2}
    stored = Path(settings.annotations_dir) / "张三.jsonl"
    rows = [json.loads(line) for line in stored.read_text("utf-8").splitlines()]
    assert rows[0]["text"] == "持之以恒落实中央八项规定精神" and rows[0]["themes"] == ["work_style"]

    bad = tmp_path / "李四.csv"
    bad.write_bytes("para_id,themes,primary,annotator\r\np1,work_style,,李四\r\n"
                    "p2,党建,,李四\r\n".encode("gb18030"))
    with pytest.raises(AnnotationError, match=re.escape(f"{bad}:3: unknown theme id(s) ['党建']")):
        import_files([str(bad)], settings)
    binary = tmp_path / "broken.csv"
    binary.write_bytes(b"para_id,themes\x00\x00\xff\xfe\x00")
    with pytest.raises(AnnotationError, match=re.escape(f"{binary}: ") + ".*save it as UTF-8"):
        import_files([str(binary)], settings)
    no_column = tmp_path / "nocol.csv"
    no_column.write_text("id,topics\np1,work_style\n", encoding="utf-8")
    with pytest.raises(AnnotationError, match=re.escape(f"{no_column}:1: missing column(s) ['para_id', 'themes']")):
        import_files([str(no_column)], settings)


@pytest.mark.parametrize("codings, message", [
    ({"p1": (["party_history"], None)}, "unknown theme id"),
    ({"p999": (["work_style"], None)}, "unknown paragraph id 'p999'"),
    ({"p1": (["work_style"], "ideology")}, "primary 'ideology' is not among its themes"),
])
def test_a_bad_import_is_rejected_whole(settings, tmp_path, codings, message):
    good = label_studio_export({"p2": ([], None)}, 1)
    bad = label_studio_export(codings, 2)
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(AnnotationError, match=message):
        import_files([str(tmp_path / "good.json"), str(tmp_path / "bad.json")], settings)
    assert not Path(settings.annotations_dir).exists()  # nothing half-written, not even the good file


def test_a_file_that_is_not_a_label_studio_export_is_rejected(settings, tmp_path):
    (tmp_path / "x.json").write_text('{"tasks": []}')
    with pytest.raises(AnnotationError, match="expected a list of tasks"):
        import_files([str(tmp_path / "x.json")], settings)


# --- agreement on a reliability folder ------------------------------------------------------------

def test_agreement_on_a_reliability_folder_reports_kappa_with_an_interval_and_needs_no_paragraphs(tmp_path):
    rng = np.random.default_rng(0)
    first = rng.random(300) < 0.2  # coder A marks ideology on about a fifth of the paragraphs
    second = first ^ (rng.random(300) < 0.1)  # coder B differs on about a tenth
    folder = tmp_path / "reliability"
    for name, marks in (("coderA", first), ("coderB", second)):
        write_jsonl(folder / f"{name}.jsonl", [
            {"para_id": f"r-{i:03d}", "text": "段落", "themes": ["ideology"] if m else [],
             "primary": "ideology" if m else None, "annotator": name} for i, m in enumerate(marks)])
    settings = AnnotateSettings(paragraphs=str(tmp_path / "absent.parquet"), bootstrap=500)
    output = tmp_path / "reports" / "agreement.json"
    result = agreement(settings, str(output), annotations_dir=str(folder))
    pair = result["per_theme"]["ideology"]["pairs"]["coderA~coderB"]
    assert pair["n"] == 300 and pair["positives"] == {"coderA": int(first.sum()), "coderB": int(second.sum())}
    assert pair["raw_agreement"] == pytest.approx(float(np.mean(first == second)), abs=1e-4)
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(first, second), abs=1e-4)
    low, high = pair["cohen_kappa_ci"]
    assert low < pair["cohen_kappa"] < high and high - low > 0.05  # an interval, not a point
    assert result["per_theme"]["ideology"]["prevalence"]["coderA"] == pytest.approx(first.mean(), abs=1e-4)
    assert result["per_theme"]["political"]["pairs"]["coderA~coderB"]["cohen_kappa"] is None
    assert json.loads(output.read_text()) == result and output.with_suffix(".md").is_file()
    assert agreement(settings, str(tmp_path / "again.json"), annotations_dir=str(folder)) == result  # seeded

    write_jsonl(folder / "coderC.jsonl", [{"para_id": "r-000", "themes": ["党建"], "primary": None}])
    with pytest.raises(AnnotationError, match=r"coderC.jsonl:1: unknown theme id"):
        agreement(settings, str(output), annotations_dir=str(folder))


# --- adjudication ----------------------------------------------------------------------------------

def test_adjudicate_writes_agreed_rows_to_gold_and_takes_decisions_for_the_rest(settings, tmp_path):
    alice = tmp_path / "alice.csv"
    alice.write_text("para_id,themes,primary\np1,work_style,work_style\np2,,\np3,ideology,ideology\n"
                     "p5,grassroots,grassroots\n", encoding="utf-8")
    bob = write_jsonl(tmp_path / "bob.jsonl", [
        {"para_id": "p1", "themes": ["work_style"], "primary": "work_style", "annotator": "bob"},
        {"para_id": "p2", "themes": [], "primary": None, "annotator": "bob"},
        {"para_id": "p3", "themes": ["ideology", "political"], "primary": "political", "annotator": "bob"}])
    summary = adjudicate([str(alice), str(bob)], settings, name="round1")
    assert (summary["agreed"], summary["decided"], summary["pending"]) == (2, 0, 2)
    gold_path = Path(settings.gold_dir) / "round1.jsonl"
    gold = [json.loads(line) for line in gold_path.read_text(encoding="utf-8").splitlines()]
    assert gold == [
        {"para_id": "p1", "text": PARAGRAPHS[0][2], "themes": ["work_style"], "primary": "work_style",
         "coder": "alice+bob", "note": ""},
        {"para_id": "p2", "text": PARAGRAPHS[1][2], "themes": [], "primary": None, "coder": "alice+bob", "note": ""}]

    sheet_path = Path(summary["sheet"])
    assert sheet_path.read_bytes().startswith(b"\xef\xbb\xbf")
    sheet = pd.read_csv(sheet_path, encoding="utf-8-sig", keep_default_na=False, dtype=str)
    assert list(sheet["para_id"]) == ["p3", "p5"] and list(sheet["reason"]) == ["disagree", "one coder only"]
    p3 = sheet.iloc[0]
    assert (p3["alice_themes"], p3["bob_themes"], p3["bob_primary"]) == ("ideology", "ideology;political", "political")
    assert p3["text"] == PARAGRAPHS[2][2] and (p3["themes"], p3["primary"]) == ("", "")

    # the adjudicator fills the sheet in place: p3 → ideology and political, p5 → no theme at all
    sheet.loc[0, ["themes", "primary", "note"]] = ["ideology;political", "ideology", "学习教育为主"]
    sheet.loc[1, "themes"] = "none"
    sheet.to_csv(sheet_path, index=False, encoding="utf-8-sig")
    summary = adjudicate([str(alice), str(bob)], settings, name="round1", decisions=str(sheet_path))
    assert (summary["agreed"], summary["decided"], summary["pending"]) == (2, 2, 0)
    gold = {r["para_id"]: r for r in map(json.loads, gold_path.read_text(encoding="utf-8").splitlines())}
    assert gold["p3"]["themes"] == ["ideology", "political"] and gold["p3"]["primary"] == "ideology"
    assert gold["p3"]["coder"] == "adjudicated" and gold["p3"]["note"] == "学习教育为主"
    assert gold["p5"]["themes"] == [] and gold["p5"]["coder"] == "adjudicated"
    refilled = pd.read_csv(sheet_path, encoding="utf-8-sig", keep_default_na=False, dtype=str)
    assert list(refilled["themes"]) == ["ideology;political", "none"]  # rewriting the sheet keeps the decisions
    loaded = load_gold(settings.gold_dir, load_codebook())  # what the split stage reads
    assert sorted(loaded["para_id"]) == ["p1", "p2", "p3", "p5"]

    decisions = write_jsonl(tmp_path / "decisions.jsonl", [{"para_id": "p3", "themes": ["political"],
                                                            "primary": "political"}])
    summary = adjudicate([str(alice), str(bob)], settings, name="round1", decisions=str(decisions))
    assert (summary["decided"], summary["pending"]) == (1, 1)
    write_jsonl(decisions, [{"para_id": "p9", "themes": [], "primary": None}])
    with pytest.raises(AnnotationError, match=re.escape(f"{decisions}:1: unknown paragraph id 'p9'")):
        adjudicate([str(alice), str(bob)], settings, name="round1", decisions=str(decisions))


def test_adjudicate_never_drops_rows_of_an_existing_gold_file(settings, tmp_path):
    existing = write_jsonl(Path(settings.gold_dir) / "demo.jsonl", [
        {"para_id": "p6", "text": PARAGRAPHS[5][2], "themes": ["anti_corruption"], "primary": "anti_corruption"}])
    before = existing.read_bytes()
    coder = {"para_id": "p1", "themes": [], "primary": None}
    files = [str(write_jsonl(tmp_path / f"{name}.jsonl", [coder])) for name in ("a", "b")]
    with pytest.raises(AnnotationError, match="demo.jsonl: holds 1 paragraph.*pass another --name"):
        adjudicate(files, settings, name="demo")
    assert existing.read_bytes() == before


# --- the audit loop --------------------------------------------------------------------------------

def audit_corpus(root: Path) -> dict:
    """100 body paragraphs the model sorted into three predicted strata: anti_corruption (10, of which 6
    really are), supervision (40, all really anti_corruption) and none (50, really no theme)."""
    strata = {"ac": ("anti_corruption", 10), "sup": ("supervision", 40), "none": (None, 50)}
    rows, predicted = [], {}
    for prefix, (theme, size) in strata.items():
        for k in range(size):
            para_id = f"{prefix}-{k:02d}"
            rows.append((para_id, 2015 + k % 5, f"{prefix} 第{k}段"))
            predicted[para_id] = theme
    paragraphs = paragraphs_frame(rows)
    paragraphs.to_parquet(root / "paragraphs.parquet")
    predictions = paragraphs[["para_id", "doc_id"]].copy()
    for theme in THEMES:
        predictions[theme] = [0.8 if predicted[p] == theme else 0.1 for p in predictions["para_id"]]
    predictions["themes"] = [[predicted[p]] if predicted[p] else [] for p in predictions["para_id"]]
    predictions["model"], predictions["method"] = "models/default", "baseline"
    predictions.to_parquet(root / "paragraph_themes.parquet")
    (root / "metrics").mkdir()
    (root / "metrics" / "evaluate.json").write_text(json.dumps({"methods": {"baseline": {
        "test_set": "real coded paragraphs, held out by document and date", "n_test": 400, "macro_f1": 0.71,
        "per_theme": {t: {"f1": 0.7} for t in THEMES}}}}))
    params = {"annotate": {"paragraphs": str(root / "paragraphs.parquet"),
                           "predictions": str(root / "paragraph_themes.parquet"),
                           "annotations_dir": str(root / "annotations"), "audit_dir": str(root / "audit"),
                           "gold_dir": str(root / "gold"), "bootstrap": 300},
              "evaluate": {"metrics_dir": str(root / "metrics")}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return params


def true_themes(para_id: str) -> list[str]:
    prefix, k = para_id.split("-")
    if prefix == "ac":
        return ["anti_corruption"] if int(k) < 6 else []
    return ["anti_corruption"] if prefix == "sup" else []


def test_the_audit_export_is_stratified_by_predicted_theme_and_shows_no_suggestions(tmp_path):
    audit_corpus(tmp_path)
    assert main(["--params", str(tmp_path / "params.yaml"), "annotate", "export", "--audit", "--n", "30"]) == 0
    audit = tmp_path / "audit"
    sample = json.loads((audit / "sample.json").read_text())
    assert sample["population"] == 100 and sample["model"] == "models/default"
    assert sample["strata"] == {"anti_corruption": {"population": 10, "sampled": 10},
                                "none": {"population": 50, "sampled": 10},
                                "supervision": {"population": 40, "sampled": 10}}
    for row in sample["paragraphs"]:
        expected = {"ac": "anti_corruption", "sup": "supervision", "none": "none"}[row["para_id"].split("-")[0]]
        assert row["stratum"] == expected
        assert row["stratum_population"] == sample["strata"][expected]["population"]
    tasks = json.loads((audit / "tasks.json").read_text())
    assert [t["data"]["para_id"] for t in tasks] == [p["para_id"] for p in sample["paragraphs"]]
    assert all(set(t) == {"data"} for t in tasks)  # no pre-annotations
    assert all(set(t["data"]) == {"para_id", "title", "year", "heading", "text"} for t in tasks)  # no stratum
    header = pd.read_csv(audit / "tasks.csv", encoding="utf-8-sig").columns
    assert "suggested_themes" not in header and "stratum" not in header
    strata_in_order = [p["stratum"] for p in sample["paragraphs"]]
    assert strata_in_order[:10] != sorted(strata_in_order[:10])  # shuffled: the order hints at no prediction

    (audit / "codings").mkdir()
    (audit / "codings" / "ann.jsonl").write_text("")
    assert main(["--params", str(tmp_path / "params.yaml"), "annotate", "export", "--audit"]) == 2  # would orphan


def test_evaluate_audit_estimates_corpus_precision_and_recall_from_the_weighted_sample(tmp_path, capsys):
    audit_corpus(tmp_path)
    params = str(tmp_path / "params.yaml")
    assert main(["--params", params, "annotate", "export", "--audit", "--n", "30"]) == 0
    tasks = pd.read_csv(tmp_path / "audit" / "tasks.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    tasks["themes"] = [";".join(true_themes(p)) for p in tasks["para_id"]]
    tasks["annotator"] = "researcher"
    tasks.to_csv(tmp_path / "coded.csv", index=False, encoding="gb18030")  # saved by Excel in China
    assert main(["--params", params, "annotate", "import", "--audit", str(tmp_path / "coded.csv")]) == 0
    assert (tmp_path / "audit" / "codings" / "researcher.jsonl").is_file()
    assert not (tmp_path / "annotations").exists()  # audit codings never become training annotations
    capsys.readouterr()
    assert main(["--params", params, "evaluate", "--audit"]) == 0
    printed = capsys.readouterr().out
    assert "your corpus, n=30 coded paragraphs, audit sample" in printed and "project's own test split" in printed

    result = json.loads((tmp_path / "metrics" / "audit.json").read_text())
    assert result["n_coded"] == 30 and result["population"] == 100
    assert result["strata"]["supervision"] == {"population": 40, "sampled": 10, "coded": 10, "weight": 4.0}
    ac = result["per_theme"]["anti_corruption"]
    # weights: anti_corruption stratum 10/10 = 1, supervision 40/10 = 4, none 50/10 = 5. Predicted
    # anti_corruption: 6 right, 4 wrong; the 40 real ones the model called supervision are all missed.
    assert ac["sample"] == {"tp": 6, "fp": 4, "fn": 10, "tn": 10}
    assert ac["precision"] == pytest.approx(0.6, abs=1e-4)
    assert ac["recall"] == pytest.approx(6 / 46, abs=1e-4)  # the unweighted sample would say 6/16
    assert ac["f1"] == pytest.approx(12 / 56, abs=1e-4)
    assert ac["recall_ci"][0] <= ac["recall"] <= ac["recall_ci"][1]
    supervision = result["per_theme"]["supervision"]
    assert (supervision["precision"], supervision["recall"]) == (0.0, None)  # no real supervision to find
    assert result["per_theme"]["ideology"]["precision"] is None  # never predicted, never present
    assert result["macro_f1_themes"] == ["supervision", "anti_corruption"]
    assert result["macro_f1"] == pytest.approx(6 / 56, abs=1e-4)
    assert result["in_domain"]["macro_f1"] == 0.71

    rates_file = tmp_path / "audit" / "error_rates.json"
    confusion = json.loads(rates_file.read_text())["confusion"]["anti_corruption"]
    positives_effective = 46 ** 2 / (6 * 1 + 10 * 4 ** 2)  # Kish: (Σw)² / Σw² over the real positives
    assert confusion["tp"] + confusion["fn"] == pytest.approx(positives_effective, abs=1e-3)
    assert confusion["tp"] / (confusion["tp"] + confusion["fn"]) == pytest.approx(6 / 46, abs=1e-3)
    assert confusion["fp"] / (confusion["fp"] + confusion["tn"]) == pytest.approx(4 / 54, abs=1e-3)
    rates = load_error_rates(tmp_path / "no-model", THEMES, rates_file)  # what the trends stage reads
    assert rates.origin.startswith("audit sample") and rates.tpr[THEMES.index("anti_corruption")] < 0.2


def test_evaluate_audit_leaves_out_disagreements_until_adjudicated(tmp_path):
    audit_corpus(tmp_path)
    params = str(tmp_path / "params.yaml")
    assert main(["--params", params, "annotate", "export", "--audit", "--n", "30"]) == 0
    drawn = [p["para_id"] for p in json.loads((tmp_path / "audit" / "sample.json").read_text())["paragraphs"]]
    codings = tmp_path / "audit" / "codings"
    write_jsonl(codings / "a.jsonl", [{"para_id": p, "themes": true_themes(p), "primary": None} for p in drawn])
    disputed = next(p for p in drawn if p.startswith("sup"))
    write_jsonl(codings / "b.jsonl", [{"para_id": disputed, "themes": [], "primary": None}])
    assert main(["--params", params, "evaluate", "--audit"]) == 0
    result = json.loads((tmp_path / "metrics" / "audit.json").read_text())
    assert (result["n_coded"], result["n_coders_disagree"]) == (29, 1)

    assert main(["--params", params, "annotate", "adjudicate", "--audit", str(codings / "a.jsonl"),
                 str(codings / "b.jsonl")]) == 0
    sheet = tmp_path / "audit" / "adjudication" / "adjudicated.csv"
    decisions = pd.read_csv(sheet, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    decisions = decisions[decisions["para_id"] == disputed].assign(themes="anti_corruption")
    decisions.to_csv(tmp_path / "decided.csv", index=False)
    assert main(["--params", params, "annotate", "adjudicate", "--audit", str(codings / "a.jsonl"),
                 str(codings / "b.jsonl"), "--decisions", str(tmp_path / "decided.csv")]) == 0
    assert main(["--params", params, "evaluate", "--audit"]) == 0
    result = json.loads((tmp_path / "metrics" / "audit.json").read_text())
    assert (result["n_coded"], result["n_coders_disagree"]) == (30, 0)
    assert result["per_theme"]["anti_corruption"]["recall"] == pytest.approx(6 / 46, abs=1e-4)


def test_shipped_label_studio_config_names_every_theme():
    from importlib import resources

    config = resources.files("pipeline.resources").joinpath("label_studio.xml").read_text("utf-8")
    assert all(f'value="{t}"' in config for t in THEMES)
    assert 'name="themes"' in config and 'choice="multiple"' in config and 'name="primary"' in config
