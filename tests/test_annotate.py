"""The annotation round-trip: export → Label Studio / CSV → import (all or nothing) → agreement."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.labels.annotate import AnnotateSettings, AnnotationError, agreement, export, import_files

PARAGRAPHS = [
    ("p1", 2013, "持之以恒落实中央八项规定精神，坚决纠治四风。"), ("p2", 2013, "全年地区生产总值增长百分之六。"),
    ("p3", 2016, "深入开展两学一做学习教育，坚定理想信念。"), ("p4", 2016, "强化党内监督，开展巡视巡察。"),
    ("p5", 2019, "推动村党组织书记担任村委会主任，发挥战斗堡垒作用。"), ("p6", 2019, "经查，某某非法收受财物。"),
]
THEMES = ["political", "ideology", "organization", "work_style", "discipline", "institutions", "supervision",
          "anti_corruption", "grassroots"]


@pytest.fixture
def settings(tmp_path: Path) -> AnnotateSettings:
    paragraphs = pd.DataFrame({
        "para_id": [p for p, _, _ in PARAGRAPHS], "doc_id": ["d1", "d1", "d2", "d2", "d3", "d3"],
        "kind": "body", "heading_path": [[] for _ in PARAGRAPHS], "text": [t for _, _, t in PARAGRAPHS],
        "title": "文件", "year": [y for _, y, _ in PARAGRAPHS]})
    paragraphs.to_parquet(tmp_path / "paragraphs.parquet")
    weak = paragraphs[["para_id", "doc_id", "year"]].copy()
    for theme in THEMES:
        weak[theme] = 0.0
    weak.loc[0, "work_style"] = weak.loc[2, "ideology"] = weak.loc[3, "supervision"] = 0.9
    weak.to_parquet(tmp_path / "weak.parquet")
    return AnnotateSettings(paragraphs=str(tmp_path / "paragraphs.parquet"), weak_labels=str(tmp_path / "weak.parquet"),
                            annotations_dir=str(tmp_path / "annotations"), export_dir=str(tmp_path / "export"))


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


def test_export_writes_label_studio_tasks_and_csv_stratified_by_theme_and_year(settings):
    paths = export(settings, n=4)
    tasks = json.loads(paths["json"].read_text())
    assert len(tasks) == 4
    years = {t["data"]["year"] for t in tasks}
    assert years == {2013, 2016, 2019}  # every year before any year gets a second paragraph
    suggested = {t["data"]["para_id"]: t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks}
    assert suggested.get("p1", ["work_style"]) == ["work_style"]
    csv_rows = pd.read_csv(paths["csv"])
    assert list(csv_rows["para_id"]) == [t["data"]["para_id"] for t in tasks]


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


def test_shipped_label_studio_config_names_every_theme():
    from importlib import resources

    config = resources.files("pipeline.resources").joinpath("label_studio.xml").read_text("utf-8")
    assert all(f'value="{t}"' in config for t in THEMES)
    assert 'name="themes"' in config and 'choice="multiple"' in config and 'name="primary"' in config
