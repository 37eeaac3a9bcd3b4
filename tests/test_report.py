"""The report stage: one offline page, findings first, the evidence behind every number embedded, and the
summaries the notebooks share with it. (tests/test_browser.py clicks through the same page in Chromium.)"""
from __future__ import annotations

import base64
import io as stdio
import json
import re

import pandas as pd
import pytest
from fontTools.ttLib import TTFont
from synthetic_outputs import gold_test_frame, write_model_outputs, write_synthetic_outputs

from pipeline import charts, io, report, trends
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook

SETTINGS = report.ReportSettings()


def build_outputs(root, with_evaluation: bool = True, with_charts: bool = False, **trend_settings):
    """The stage outputs the report reads; charts (seconds to draw) only where a test looks at them."""
    write_synthetic_outputs(root, with_evaluation)
    model = write_model_outputs(root)
    trends.run(trends.TrendsSettings(resamples=200, correction="none", **trend_settings), root / trends.PARAGRAPHS,
               root / trends.PARAGRAPH_THEMES, root / "reports")
    if with_charts:
        charts.run(charts.ChartsSettings(dpi=150, formats=["png"]), root / "reports/tables",
                   root / "metrics/evaluate.json", root / "reports/figures",
                   test_path=root / "data/processed/test.parquet", model_dir=model)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_outputs(tmp_path_factory.mktemp("report"), with_charts=True)


@pytest.fixture(scope="module")
def page(root) -> str:
    return report.run(SETTINGS, root).read_text(encoding="utf-8")


def embedded_data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)[1])


def cell_paragraphs(data: dict, key: tuple[str, str, str]) -> list[tuple[str, int]]:
    """(doc_id, order) of the paragraphs a cell lists, in order."""
    doc, order = data["para_fields"].index("doc"), data["para_fields"].index("order")
    return [(data["docs"][data["paras"][i][doc]][0], data["paras"][i][order])
            for i in data["cells"][report.CELL_KEY.join(key)]["paras"]]


def test_page_is_utf8_chinese_html(page):
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page


def test_page_embeds_every_chart_as_a_data_uri(page):
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(sources) == len(charts.FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in sources)


def test_page_loads_nothing_from_the_network(page):
    assert not re.search(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', page, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", page, re.IGNORECASE)
    assert "<link" not in page.lower() and "@import" not in page
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts == [' type="application/json" id="report-data"', ""]  # the data and the inline script


def test_findings_come_first_and_name_only_changes_whose_interval_excludes_zero(page):
    sections = re.findall(r'<h2 id="(\w+)"', page)
    assert sections[0] == "findings" and sections[-1] == "provenance"
    findings = page[page.index('id="findings"'):page.index('id="trends"')]
    # political fell from 50% (2019) to 20% (2020); the larger jump into 2021 rests on one document
    assert "政治建设 (political)</b>：2019 → 2020 下降 30.0 个百分点" in findings
    assert "2021" not in re.sub(r"（2019–2021）", "", findings.split("<ul class=\"note\">")[0])
    assert 'data-group="all" data-theme="political" data-period="2020">20.0%</span>' in findings
    assert "1 个时期只有一篇文档" in findings


def test_without_a_change_the_data_support_there_is_no_headline(tmp_path):
    root = build_outputs(tmp_path)
    top = pd.read_csv(root / report.TABLES / "top_changes.csv")
    io.write_csv(root / report.TABLES / "top_changes.csv", top.iloc[:0])
    page = report.render(root, SETTINGS)
    assert "没有任何时期间变化的 95% 置信区间排除零" in page and "个百分点（" not in page


def test_every_share_cell_points_at_its_paragraphs_sorted_by_score(page):
    data = embedded_data(page)
    assert cell_paragraphs(data, ("all", "political", "2019")) == [("d1", 2), ("d1", 1), ("d2", 1)]
    assert data["cells"][report.CELL_KEY.join(("all", "political", "2019"))]["n"] == 3
    assert data["complete"] is True and len(data["paras"]) == 20  # 14 body paragraphs + 6 headings
    cells = re.findall(r'<td class="num heat cell"[^>]*data-group="all" data-theme="(\w+)" data-period="(\d+)"', page)
    assert ("political", "2019") in cells and len(cells) == len(data["cells"])


def test_a_large_corpus_embeds_only_the_top_paragraphs_of_each_cell_and_says_so(root):
    settings = report.ReportSettings(embed_all_max_chars=0, cell_paragraphs=1, examples_per_theme=1)
    page = report.render(root, settings)
    data = embedded_data(page)
    assert data["complete"] is False
    assert all(len(cell["paras"]) == 1 for cell in data["cells"].values())
    assert cell_paragraphs(data, ("all", "political", "2019")) == [("d1", 2)]
    kinds = data["para_fields"].index("level")
    body = [p for p in data["paras"] if p[kinds] == 0]
    assert len(body) < 14 and "每格得分最高的 1 段" in page
    assert len(data["docs"]) == len({data["docs"][p[0]][0] for p in body})  # documents without evidence left out


def test_the_embedded_data_cannot_close_its_script_element(tmp_path):
    root = build_outputs(tmp_path)
    paragraphs = pd.read_parquet(root / report.PARAGRAPHS)
    paragraphs.loc[paragraphs["para_id"] == "d1-p1", "text"] = "</script><script>alert(1)</script>"
    io.write_parquet(root / report.PARAGRAPHS, paragraphs)
    page = report.render(root, SETTINGS)
    assert page.count("</script>") == 2 and "alert(1)" in json.dumps(embedded_data(page), ensure_ascii=False)


def test_the_font_is_a_subset_holding_every_character_the_page_uses(page):
    face = re.search(r'@font-face \{ font-family: "Report Sans CJK";.*?base64,([A-Za-z0-9+/=]+)\) format\("(\w+)"\)',
                     page)
    assert face[2] == "woff2"
    font = TTFont(stdio.BytesIO(base64.b64decode(face[1])))
    covered = set(map(chr, font.getBestCmap()))
    chinese = {c for c in page if "\u4e00" <= c <= "\u9fff"}
    assert chinese and chinese <= covered
    assert len(covered) < 2 * len(set(page))  # a subset: the full font maps over 40,000 characters
    assert len(face[1]) * 3 / 4 < 1_000_000
    assert "SIL Open Font License" in str(font["name"].getDebugName(13))  # the licence travels with it


def test_examples_show_the_highest_scoring_paragraphs_of_each_theme_with_their_scores(page):
    examples = page[page.index('id="examples"'):page.index('id="documents"')]
    political = examples[examples.index("政治建设 (political)"):examples.index("思想建设 (ideology)</h3>")]
    assert re.findall(r"得分 (0\.\d{3})", political) == ["0.750", "0.700", "0.700"]
    assert '<a href="#doc=d3">纪委全会工作报告</a>' in political


def test_model_quality_shows_the_real_test_numbers_of_the_model_behind_the_shares(page):
    model = page[page.index('id="model"'):page.index('id="corpus"')]
    assert "模型 <code>baseline</code> 在测试集" in model and "macro-F1 0.65" in model
    assert "0.60 [0.45, 0.75]" in model  # baseline's F1 on political with its interval
    assert "期望校准误差 ECE = " in model
    assert "dvc plots show" in model


def test_quantification_table_compares_true_raw_and_corrected_shares(tmp_path):
    root = build_outputs(tmp_path)
    evaluation = json.loads((root / report.EVALUATE).read_text(encoding="utf-8"))
    evaluation["methods"]["baseline"]["quantification"] = {
        "per_theme": {t: {"true": 0.1, "raw": 0.2, "pcc": 0.11, "acc": 0.09} for t in load_codebook().ids},
        "mean_abs_error_raw": 0.1, "mean_abs_error_pcc": 0.01, "mean_abs_error_acc": 0.01}
    io.write_json(root / report.EVALUATE, evaluation)
    page = report.render(root, SETTINGS)
    assert "份额估计的准确度" in page and "<td>10.0%</td><td>20.0%</td><td>11.0%</td><td>9.0%</td>" in page
    assert "10.00 个百分点" in page


def test_model_quality_shows_the_test_numbers_by_source(tmp_path):
    root = build_outputs(tmp_path)
    evaluation = json.loads((root / report.EVALUATE).read_text(encoding="utf-8"))
    evaluation["methods"]["baseline"]["by_source"] = {"政府工作报告": {
        "n_test": 154, "n_documents": 13, "micro_f1": 0.79, "micro_f1_ci": [0.72, 0.85], "macro_f1": 0.61,
        "macro_f1_ci": [0.41, 0.65], "support": {"political": 2, "ideology": 11}}}
    io.write_json(root / report.EVALUATE, evaluation)
    page = report.render(root, SETTINGS)
    assert "分来源结果 By source" in page
    row = re.search(r"<tr><td>政府工作报告</td>.*?</tr>", page).group(0)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row) == ["政府工作报告", "154", "13", "0.79 [0.72, 0.85]",
                                                       "0.61 [0.41, 0.65]", "2"]


def test_pooled_periods_and_gaps_are_said_and_shown(tmp_path):
    root = build_outputs(tmp_path, years_per_period=1)
    summary = json.loads((root / report.TRENDS_SUMMARY).read_text(encoding="utf-8"))
    summary |= {"pooling": {"years_per_period": 5, "reason": "9 of 14 one-year periods held fewer than 2 documents",
                            "periods_without_interval": 0, "periods": 3}, "missing_periods": ["2020"]}
    io.write_json(root / report.TRENDS_SUMMARY, summary)
    periods = pd.read_csv(root / report.TABLES / "period_theme_shares.csv", dtype={"period": str})
    io.write_csv(root / report.TABLES / "period_theme_shares.csv", periods[periods["period"] != "2020"])
    page = report.render(root, SETTINGS)
    assert "自动把每 5 年合并为一期" in page and "折线在此断开：2020" in page
    assert '<tr class="gap"><td>2020</td>' in page


def test_a_facet_gives_a_table_per_group_whose_cells_open_that_groups_paragraphs(tmp_path):
    root = build_outputs(tmp_path, facet="doc_type", pool="off")
    page = report.render(root, SETTINGS)
    assert "<h3>doc_type = 讲话</h3>" in page
    data = embedded_data(page)
    assert cell_paragraphs(data, ("讲话", "political", "2019")) == [("d1", 2), ("d1", 1)]  # d2 is a notice


def test_page_without_evaluation_or_ingest_report_still_renders(tmp_path):
    root = build_outputs(tmp_path, with_evaluation=False)
    (root / report.INGEST_REPORT).unlink()
    page = report.render(root, SETTINGS)
    assert "尚未评估" in page and "<img " not in page  # and no charts drawn yet either


def test_page_has_tables_evaluation_corpus_and_provenance(page):
    assert "各时期主题份额" in page
    for method in ("dictionary", "baseline"):
        assert f"<td>{method}</td>" in page
    assert "0.50 [0.35, 0.65]" in page  # the per-theme F1 with its CI
    assert "政治建设 (political)" in page
    assert "models/baseline" in page and load_codebook().hash in page
    assert "清除杂质行" in page and "<td>12</td>" in page  # junk lines removed, from ingest_report.json


def test_corpus_stats_count_documents_dates_and_structure(tmp_path):
    stats = report.corpus_stats(write_synthetic_outputs(tmp_path))
    assert (stats["documents"], stats["body_paragraphs"], stats["headings"]) == (6, 14, 6)
    assert (stats["with_month"], stats["with_year_only"], stats["undated"]) == (4, 1, 1)
    assert (stats["first_year"], stats["last_year"]) == (2019, 2021)
    assert stats["doc_types"]["讲话"] == 4 and stats["heading_depths"] == {1: 6}
    assert stats["ingest"]["junk_lines_removed"] == 12


def test_document_outline_indents_headings_by_level():
    paragraphs = pd.DataFrame({"doc_id": "d", "order": [0, 1, 2, 3],
                               "kind": ["heading", "heading", "body", "heading"], "level": [1, 2, 0, 1],
                               "text": ["一、总体要求", "（一）指导思想", "正文", "二、主要任务"]})
    assert report.document_outline(paragraphs, "d") == "一、总体要求\n  （一）指导思想\n二、主要任务"


def test_provenance_flags_results_made_with_another_codebook(tmp_path):
    root = write_synthetic_outputs(tmp_path)  # its evaluate.json says codebook_hash "synthetic"
    assert report.provenance(root)["consistent"] is False
    io.write_json(root / report.EVALUATE, {"codebook_hash": load_codebook().hash, "methods": {}})
    prov = report.provenance(root)
    assert prov["consistent"] is True and prov["models"][0]["method"] == "baseline"


def test_disagreements_list_missed_and_spurious_themes_per_method():
    codebook = load_codebook()
    test = gold_test_frame()
    predicted = {"dictionary": [["political"], ["anti_corruption", "discipline"], ["grassroots"], []]}
    errors = report.disagreements(test, predicted, codebook)
    assert set(zip(errors["id"], errors["theme"], errors["error"])) == {
        ("t2", "discipline", "spurious"), ("t3", "organization", "missed"), ("t4", "work_style", "missed")}


def test_saved_models_score_the_test_set(tmp_path):
    codebook = load_codebook()
    DictionaryClassifier(codebook).save(tmp_path / "models" / "dictionary")
    models = report.available_models(tmp_path)
    assert list(models) == ["dictionary"]
    test = gold_test_frame()
    predictions = report.score_test_set(test, models, codebook)
    assert len(predictions["dictionary"]) == len(test)
    assert "anti_corruption" in predictions["dictionary"][1]  # 受贿 … 惩治腐败


def test_settings_bound_the_embedded_paragraphs():
    with pytest.raises(ValueError, match="cell_paragraphs: 0 is out of range"):
        report.ReportSettings(cell_paragraphs=0)


def test_a_cell_says_how_a_corrected_share_relates_to_the_paragraphs_it_lists(root):
    codebook = load_codebook()
    summary = json.loads((root / report.TRENDS_SUMMARY).read_text(encoding="utf-8"))
    evidence = report.load_evidence(root, SETTINGS, codebook, summary)
    assert "校准概率之平均" in json.loads(report.evidence_json(evidence, codebook, SETTINGS, "pcc"))["cell_note"]
    assert json.loads(report.evidence_json(evidence, codebook, SETTINGS, None))["cell_note"] is None
