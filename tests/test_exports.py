"""Exports researchers open in Excel: CSV with a BOM, XLSX; classify writes them too, and scores
Traditional-script text as Simplified."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from synthetic_outputs import DOCUMENTS, write_synthetic_outputs

from pipeline import exports, trends
from pipeline.__main__ import main
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import THEME_IDS, load_codebook

BOM = b"\xef\xbb\xbf"


def hostile_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "para_id": ["p1", "p2", "p3"],
        "heading_path": [["一、总体要求", "（一）加强党的政治建设"], [], np.array(["二、主要任务"])],
        "text": ["坚持全面从严治党。", "=HYPERLINK(\"http://x\",\"点击\")", "控制字符\x07在此\x1b。"],
        "score": [0.91, -0.5, np.nan],
        "period": ["2019", "2020", "2021"],
    })


def test_csv_has_a_bom_keeps_chinese_and_makes_lists_readable(tmp_path):
    path = exports.write_table(hostile_frame(), tmp_path / "t.csv")
    assert path.read_bytes().startswith(BOM)
    back = pd.read_csv(path, encoding="utf-8-sig", dtype={"period": str})
    assert back["text"][0] == "坚持全面从严治党。"
    assert back["heading_path"].tolist()[:1] == ["一、总体要求 > （一）加强党的政治建设"]
    assert back["period"].tolist() == ["2019", "2020", "2021"]
    assert back["score"][1] == -0.5  # numbers are never prefixed


def test_csv_keeps_formula_like_text_as_text(tmp_path):
    back = pd.read_csv(exports.write_table(hostile_frame(), tmp_path / "t.csv"), encoding="utf-8-sig")
    assert back["text"][1] == "'=HYPERLINK(\"http://x\",\"点击\")"


def test_xlsx_round_trip_types_formula_text_as_a_string_and_drops_control_characters(tmp_path):
    path = exports.write_table(hostile_frame(), tmp_path / "t.xlsx", sheet="段落")
    sheet = load_workbook(path)["段落"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("para_id", "heading_path", "text", "score", "period")
    assert rows[1] == ("p1", "一、总体要求 > （一）加强党的政治建设", "坚持全面从严治党。", 0.91, "2019")
    assert sheet["C3"].data_type == "s" and sheet["C3"].value == "=HYPERLINK(\"http://x\",\"点击\")"
    assert rows[3][2] == "控制字符在此。" and rows[3][3] is None


def test_xlsx_is_byte_for_byte_reproducible(tmp_path):
    first = exports.write_table(hostile_frame(), tmp_path / "a.xlsx")
    second = exports.write_table(hostile_frame(), tmp_path / "b.xlsx")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert {info.date_time for info in archive.infolist()} == {exports.FIXED_ZIP_TIME}
        assert b"2000-01-01T00:00:00Z" in archive.read("docProps/core.xml")


def test_xlsx_continues_a_long_table_on_numbered_sheets_and_cuts_giant_cells(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 3)  # two data rows per sheet
    frame = pd.DataFrame({"n": range(5), "text": ["长" * 40_000] + ["短"] * 4})
    workbook = load_workbook(exports.write_table(frame, tmp_path / "long.xlsx", sheet="kwic"))
    assert workbook.sheetnames == ["kwic", "kwic (2)", "kwic (3)"]
    values = [row for name in workbook.sheetnames for row in workbook[name].iter_rows(min_row=2, values_only=True)]
    assert [n for n, _ in values] == [0, 1, 2, 3, 4]
    assert len(values[0][1]) == exports.XLSX_MAX_CELL and values[0][1].endswith("…")
    assert "1 cell(s) longer than Excel's" in caplog.text


def test_sheet_names_are_made_valid_and_unique(tmp_path):
    frame = pd.DataFrame({"n": [1]})
    exports.write_workbook({"a/b:c": frame, "A/B:C": frame, "x" * 40: frame}, tmp_path / "t.xlsx")
    assert load_workbook(tmp_path / "t.xlsx").sheetnames == ["a_b_c", "A_B_C~2", "x" * 31]


def test_jsonl_holds_plain_json_values(tmp_path):
    path = exports.write_table(hostile_frame(), tmp_path / "t.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["heading_path"] == ["一、总体要求", "（一）加强党的政治建设"]
    assert rows[2]["heading_path"] == ["二、主要任务"] and rows[2]["score"] is None
    assert rows[1]["text"].startswith("=HYPERLINK")  # JSON keeps text as it is


# ------------------------------------------------------------------------------------ the stage

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = write_synthetic_outputs(tmp_path_factory.mktemp("export"))
    trends.run(trends.TrendsSettings(resamples=100, correction="none"), root / trends.PARAGRAPHS,
               root / trends.PARAGRAPH_THEMES, root / "reports")
    settings = exports.ExportSettings(out_dir=str(root / "reports/exports"))
    exports.run(settings, root / exports.PARAGRAPHS, root / exports.PARAGRAPH_THEMES, root / "reports/tables")
    return root / "reports/exports"


def test_export_stage_writes_every_body_paragraph_with_text_heading_path_scores_and_themes(exported):
    table = pd.read_csv(exported / "paragraph_themes.csv", encoding="utf-8-sig")
    n_body = sum(len(paragraphs) for *_, paragraphs in DOCUMENTS.values())
    assert len(table) == n_body
    assert set(THEME_IDS) <= set(table.columns)
    row = table.set_index("para_id").loc["d1-p2"]
    assert row["themes"] == "political, ideology" and row["theme_labels"] == "政治建设、思想建设"
    assert row["heading_path"] == "一、总体要求" and row["title"] == "在全面从严治党工作会议上的讲话"
    assert row["political"] == pytest.approx(0.7)
    workbook = load_workbook(exported / "paragraph_themes.xlsx")
    assert workbook["paragraph_themes"].max_row == n_body + 1


def test_export_stage_writes_every_trends_table_as_csv_and_one_workbook(exported):
    tables = sorted(p.stem for p in (exported.parent / "tables").glob("*.csv"))
    assert tables and sorted(p.stem for p in (exported / "trends").glob("*.csv")) == tables
    assert all((exported / "trends" / f"{name}.csv").read_bytes().startswith(BOM) for name in tables)
    workbook = load_workbook(exported / "trends.xlsx")
    assert workbook.sheetnames == tables
    periods = list(workbook["period_theme_shares"].iter_rows(values_only=True))
    column = periods[0].index("period")
    assert {row[column] for row in periods[1:]} == {"2019", "2020", "2021"}  # text, as in the CSV


# ------------------------------------------------------------------------------------ classify

SIMPLIFIED = "各级党组织要把维护党中央权威和集中统一领导作为最高政治原则，严肃党内政治生活。"
TRADITIONAL = "各級黨組織要把維護黨中央權威和集中統一領導作為最高政治原則，嚴肅黨內政治生活。"


@pytest.fixture(scope="module")
def dictionary_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model") / "dictionary"
    DictionaryClassifier(load_codebook()).save(directory)
    return directory


def classify(model, records: list[dict], output) -> int:
    source = output.parent / "in.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return main(["classify", "--model", str(model), "--input", str(source), "--output", str(output)])


def test_classify_scores_traditional_text_as_its_simplified_form(dictionary_model, tmp_path):
    assert classify(dictionary_model, [{"id": "s", "text": SIMPLIFIED}, {"id": "t", "text": TRADITIONAL}],
                    tmp_path / "out.jsonl") == 0
    simplified, traditional = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert "political" in simplified["themes"]
    assert traditional["scores"] == simplified["scores"] and traditional["themes"] == simplified["themes"]
    assert traditional["text"] == TRADITIONAL  # the output keeps the text as given


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_classify_writes_a_table_when_the_output_is_csv_or_xlsx(dictionary_model, tmp_path, suffix):
    records = [{"id": 1, "text": SIMPLIFIED, "source": "来源甲"}, {"id": "b", "text": "今天天气很好，适合出游。"}]
    assert classify(dictionary_model, records, tmp_path / f"out{suffix}") == 0
    table = (pd.read_csv(tmp_path / "out.csv", encoding="utf-8-sig", dtype={"id": str}) if suffix == ".csv"
             else pd.read_excel(tmp_path / "out.xlsx", dtype={"id": str}))
    assert list(table.columns[:4]) == ["id", "text", "source", "themes"]
    assert list(table.columns[4:]) == list(THEME_IDS)
    assert table["id"].tolist() == ["1", "b"] and table["text"][0] == SIMPLIFIED
    assert "political" in table["themes"][0] and pd.isna(table["themes"][1])
    assert 0 < table["political"][0] <= 1
