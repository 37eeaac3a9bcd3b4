"""The charts stage: every figure renders with real Chinese glyphs (no tofu), legible labels, both formats."""
from __future__ import annotations

import importlib.util
import io as stdio
import itertools
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image
from synthetic_outputs import write_model_outputs, write_synthetic_outputs

from pipeline import charts, trends
from pipeline.charts import ChartsSettings
from pipeline.codebook import load_codebook

SETTINGS = ChartsSettings(dpi=150)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = write_synthetic_outputs(tmp_path_factory.mktemp("charts"))
    write_model_outputs(root)
    trends.run(trends.TrendsSettings(resamples=200, correction="none"), root / trends.PARAGRAPHS,
               root / trends.PARAGRAPH_THEMES, root / "reports")
    return root


def run_stage(root, out_dir, settings=SETTINGS, evaluate="metrics/evaluate.json"):
    return charts.run(settings, root / "reports/tables", root / evaluate, out_dir,
                      test_path=root / "data/processed/test.parquet", model_dir=root / "models/dictionary")


@pytest.fixture(scope="module")
def figures(root) -> dict[str, Figure]:
    charts.use_cjk_font()
    codebook = load_codebook()
    periods, documents = charts.load_tables(root / "reports/tables")
    evaluation = json.loads((root / "metrics/evaluate.json").read_text(encoding="utf-8"))
    bins = charts.calibration_bins(*charts.test_scores(root / "data/processed/test.parquet",
                                                       root / "models/dictionary", codebook))
    return {"theme_composition": charts.theme_composition(periods, codebook),
            "theme_small_multiples": charts.theme_small_multiples(periods, codebook),
            "document_heatmap": charts.document_heatmap(documents, codebook),
            "method_comparison": charts.method_comparison(evaluation, codebook),
            "reliability": charts.reliability_diagram(bins, "dictionary"),
            "pr_curves": charts.pr_curves(pd.read_csv(root / "metrics/plots/pr_curves.csv"), codebook),
            "confusion": charts.confusion_matrices(pd.read_csv(root / "metrics/plots/confusion.csv"), codebook)}


def missing_glyph_warnings(render) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render()
    return [str(w.message) for w in caught
            if issubclass(w.category, UserWarning) and "missing from font" in str(w.message)]


def test_stage_writes_png_and_svg_of_every_figure_without_missing_glyphs(root, tmp_path):
    written = []
    assert missing_glyph_warnings(lambda: written.extend(run_stage(root, tmp_path))) == []
    assert sorted(p.name for p in written) == sorted([f"{name}.{fmt}" for name in charts.FIGURES
                                                      for fmt in ("png", "svg")] + [charts.RELIABILITY])
    with Image.open(tmp_path / "theme_composition.png") as png:
        assert round(png.info["dpi"][0]) >= 150
    assert "<svg" in (tmp_path / "theme_composition.svg").read_text(encoding="utf-8")[:500]


def test_the_glyph_check_catches_tofu_when_only_dejavu_is_available():
    import matplotlib as mpl

    def render_with_dejavu():
        with mpl.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
            fig = Figure()
            fig.add_subplot().set_title("政治建设")
            fig.savefig(stdio.BytesIO(), format="png")

    assert missing_glyph_warnings(render_with_dejavu)


def test_legends_and_titles_name_themes_in_chinese_with_their_id(figures):
    composition = [t.get_text() for t in figures["theme_composition"].legends[0].get_texts()]
    assert "政治建设 (political)" in composition and len(composition) == 9
    titles = [ax.get_title() for ax in figures["theme_small_multiples"].axes]
    assert "政治建设 (political)" in titles
    heatmap_columns = [t.get_text() for t in figures["document_heatmap"].axes[0].get_xticklabels()]
    assert heatmap_columns[0] == "政治建设 (political)"
    method_rows = [t.get_text() for t in figures["method_comparison"].axes[0].get_yticklabels()]
    assert method_rows[0].startswith("政治建设 (political)")
    methods = [t.get_text() for t in figures["method_comparison"].legends[0].get_texts()]
    assert [m.split("（")[0] for m in methods] == ["dictionary", "baseline"]


def overlapping(labels, renderer, dpi: float) -> bool:
    texts = [t for t in labels if t.get_visible() and t.get_text()]
    angle = texts[0].get_rotation() % 180 if texts else 0
    if angle % 90:
        # slanted labels are parallel strips whose bounding boxes always overlap; the strips themselves
        # clear each other when the tick spacing × sin(angle) is at least the text height
        anchors = sorted(t.get_window_extent(renderer).x1 for t in texts)
        height = texts[0].get_fontsize() * dpi / 72
        return any((b - a) * math.sin(math.radians(angle)) < height for a, b in zip(anchors, anchors[1:]))
    boxes = [t.get_window_extent(renderer) for t in texts]
    return any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


@pytest.mark.parametrize("name", list(charts.FIGURES))
def test_tick_labels_never_overlap(figures, name):
    fig = figures[name]
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    for ax in fig.axes:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            assert not overlapping(labels, renderer, fig.dpi), f"{name}: tick labels overlap in {ax.get_title()!r}"


def test_heatmap_labels_documents_by_date_and_title_and_thins_beyond_the_limit(root):
    codebook = load_codebook()
    _, documents = charts.load_tables(root / "reports/tables")
    full = charts.document_heatmap(documents, codebook)
    rows = [t.get_text() for t in full.axes[0].get_yticklabels()]
    assert rows[0] == "2019-02-10  在全面从严治党工作会议上的讲话" and rows[-1].startswith("无日期")
    thinned = charts.document_heatmap(documents, codebook, max_docs=3)
    assert len(thinned.axes[0].get_yticklabels()) == 3 and "3 / 6" in thinned.axes[0].get_title()


def test_without_evaluation_there_are_no_model_figures(root, tmp_path):
    written = run_stage(root, tmp_path, ChartsSettings(dpi=150, formats=["png"]), evaluate="absent.json")
    assert {p.stem for p in written} == set(charts.TREND_FIGURES)


def test_missing_mplfonts_is_an_actionable_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mplfonts" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="pip install mplfonts"):
        charts.use_cjk_font()


def test_settings_refuse_low_resolution():
    with pytest.raises(ValueError, match="dpi: 72 is out of range"):
        ChartsSettings(dpi=72)


def test_percent_ticks_print_as_many_decimals_as_the_steps_need():
    formatter = charts.PercentTicks()
    assert formatter.format_ticks([0, 0.025, 0.05, 0.075]) == ["0.0%", "2.5%", "5.0%", "7.5%"]
    assert formatter.format_ticks([0, 0.1, 0.2]) == ["0%", "10%", "20%"]
    assert formatter.format_ticks([0.001, 0.0015]) == ["0.10%", "0.15%"]


def periods_with_a_gap(codebook) -> pd.DataFrame:
    """Shares for 2019, 2021 and 2022 (none in 2020), of 3, 1 and 2 documents."""
    rows = []
    for period, n_docs in (("2019", 3), ("2021", 1), ("2022", 2)):
        for k, theme in enumerate(codebook.ids):
            share = 0.02 * (k + 1)
            rows.append({"period": period, "theme": theme, "label": codebook[theme].label, "share": share,
                         "lo": np.nan if n_docs == 1 else share - 0.01, "hi": np.nan if n_docs == 1 else share + 0.01,
                         "share_raw": share, "n_docs": n_docs, "n_paragraphs": 10 * n_docs, "n_chars": 100 * n_docs,
                         "any_share": 0.4, "any_lo": np.nan if n_docs == 1 else 0.3,
                         "any_hi": np.nan if n_docs == 1 else 0.5})
    return pd.DataFrame(rows)


def test_trend_lines_break_where_a_period_has_no_documents_and_every_point_shows_its_count():
    codebook = load_codebook()
    fig = charts.theme_small_multiples(periods_with_a_gap(codebook), codebook)
    panel = next(ax for ax in fig.axes if ax.get_title() == codebook["political"].label)
    line = panel.get_lines()[0]
    assert len(line.get_xdata()) == 4 and np.isnan(line.get_ydata()[1])  # 2019, 2020 (gap), 2021, 2022
    strips = [ax for ax in fig.axes if ax.get_ylabel() == "文档数"]
    assert [t.get_text() for t in strips[0].texts] == ["3", "1", "2"]  # printed under every point


def test_a_facet_draws_one_line_per_group_in_every_panel():
    codebook = load_codebook()
    periods = periods_with_a_gap(codebook)
    by_type = pd.concat([periods.assign(doc_type="政府工作报告"),
                         periods[periods["period"] != "2021"].assign(doc_type="党代会报告")])
    fig = charts.theme_small_multiples(periods, codebook, by_type, "doc_type")
    panel = next(ax for ax in fig.axes if ax.get_title() == codebook["ideology"].label)
    assert [line.get_label() for line in panel.get_lines()] == ["党代会报告", "政府工作报告"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["党代会报告", "政府工作报告"]
    assert "按 doc_type 分组" in fig._suptitle.get_text()


def test_the_composition_shows_how_much_text_carries_any_theme_above_the_normalised_mix():
    codebook = load_codebook()
    fig = charts.theme_composition(periods_with_a_gap(codebook), codebook)
    any_panel, mix = fig.axes[:2]
    assert [round(bar.get_height(), 3) for bar in any_panel.patches] == [0.4, 0.4, 0.4]
    heights = np.array([bar.get_height() for bar in mix.patches]).reshape(len(codebook.ids), 3)
    assert np.allclose(heights.sum(axis=0), 1.0)  # each period's mix sums to 100%


def test_calibration_bins_compare_mean_scores_with_observed_frequencies():
    scores = np.array([[0.05, 0.15], [0.05, 0.85], [0.95, 0.85], [0.95, 0.15]])
    truth = np.array([[0, 0], [0, 1], [1, 0], [1, 0]])
    bins = charts.calibration_bins(truth, scores, n_bins=10)
    assert bins["bin_lo"].tolist() == [0.0, 0.1, 0.8, 0.9]
    assert bins["n"].tolist() == [2, 2, 2, 2]
    assert bins["observed"].tolist() == [0.0, 0.0, 0.5, 1.0]
    assert ((bins["lo"] <= bins["observed"]) & (bins["observed"] <= bins["hi"])).all()
    assert bins["ece_part"].sum() == pytest.approx((0.05 + 0.15 + 0.35 + 0.05) * 2 / 8)


def test_model_figures_separate_methods_and_themes(figures):
    pr = figures["pr_curves"]
    panel = next(ax for ax in pr.axes if ax.get_title() == "政治建设 (political)")
    assert [line.get_label() for line in panel.get_lines()] == ["dictionary", "baseline"]
    assert [ax.get_title() for ax in figures["confusion"].axes] == ["dictionary", "baseline"]
    counts = [t.get_text() for t in figures["confusion"].axes[0].texts]
    assert sorted(counts) == ["1", "1", "1", "1"]
