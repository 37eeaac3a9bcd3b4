"""The report stage: one offline page, and the summaries the notebooks share with it."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from synthetic_outputs import gold_test_frame, write_synthetic_outputs

from pipeline import charts, io, report, trends
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook


def build_outputs(root, with_evaluation: bool = True):
    write_synthetic_outputs(root, with_evaluation)
    trends.run(trends.TrendsSettings(resamples=200), root / trends.PARAGRAPHS, root / trends.PARAGRAPH_THEMES,
               root / "reports")
    charts.run(charts.ChartsSettings(dpi=150, formats=["png"]), root / "reports/tables",
               root / "metrics/evaluate.json", root / "reports/figures")
    return root


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    root = build_outputs(tmp_path_factory.mktemp("report"))
    return report.run(report.ReportSettings(), root).read_text(encoding="utf-8")


def test_page_is_utf8_chinese_html(page):
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page


def test_page_embeds_every_chart_as_a_data_uri(page):
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(sources) == len(charts.FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in sources)


def test_page_loads_nothing_from_the_network(page):
    assert not re.search(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', page, re.IGNORECASE)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page


def test_page_has_tables_evaluation_corpus_and_provenance(page):
    assert "变化最大的主题" in page and "各时期主题份额" in page  # top changes, period shares
    for method in ("dictionary", "baseline"):
        assert f"<td>{method}</td>" in page
    assert "0.50 [0.35, 0.65]" in page  # the per-theme F1 with its CI
    assert "政治建设 (political)" in page
    assert "models/baseline" in page and load_codebook().hash in page
    assert "清除杂质行" in page and "<td>12</td>" in page  # junk lines removed, from ingest_report.json


def test_page_without_evaluation_or_ingest_report_still_renders(tmp_path):
    root = build_outputs(tmp_path, with_evaluation=False)
    (root / report.INGEST_REPORT).unlink()
    page = report.render(root, report.ReportSettings())
    assert "尚未评估" in page
    assert len(re.findall(r"<img ", page)) == len(charts.FIGURES) - 1


def test_corpus_stats_count_documents_dates_and_structure(tmp_path):
    stats = report.corpus_stats(write_synthetic_outputs(tmp_path))
    assert (stats["documents"], stats["body_paragraphs"], stats["headings"]) == (6, 14, 6)
    assert (stats["with_month"], stats["with_year_only"], stats["undated"]) == (4, 1, 1)
    assert (stats["first_year"], stats["last_year"]) == (2019, 2021)
    assert stats["doc_types"]["讲话"] == 4 and stats["heading_depths"] == {1: 6}
    assert stats["ingest"]["junk_lines_removed"] == 12


def test_document_outline_indents_headings_by_level():
    paragraphs = pd.DataFrame({"doc_id": "d", "order": [0, 1, 2, 3], "kind": ["heading", "heading", "body", "heading"],
                               "level": [1, 2, 0, 1], "text": ["一、总体要求", "（一）指导思想", "正文", "二、主要任务"]})
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

