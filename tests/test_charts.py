"""The charts stage: every figure renders with real Chinese glyphs (no tofu), legible labels, both formats."""
from __future__ import annotations

import importlib.util
import io as stdio
import itertools
import json
import math
import warnings

import pytest
from matplotlib.figure import Figure
from PIL import Image
from synthetic_outputs import write_synthetic_outputs

from pipeline import charts, trends
from pipeline.charts import ChartsSettings
from pipeline.codebook import load_codebook

SETTINGS = ChartsSettings(dpi=150)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = write_synthetic_outputs(tmp_path_factory.mktemp("charts"))
    trends.run(trends.TrendsSettings(resamples=200), root / trends.PARAGRAPHS, root / trends.PARAGRAPH_THEMES,
               root / "reports")
    return root


@pytest.fixture(scope="module")
def figures(root) -> dict[str, Figure]:
    charts.use_cjk_font()
    codebook = load_codebook()
    periods, documents = charts.load_tables(root / "reports/tables")
    evaluation = json.loads((root / "metrics/evaluate.json").read_text(encoding="utf-8"))
    return {"theme_composition": charts.theme_composition(periods, codebook),
            "theme_small_multiples": charts.theme_small_multiples(periods, codebook),
            "document_heatmap": charts.document_heatmap(documents, codebook),
            "method_comparison": charts.method_comparison(evaluation, codebook)}


def missing_glyph_warnings(render) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render()
    return [str(w.message) for w in caught
            if issubclass(w.category, UserWarning) and "missing from font" in str(w.message)]


def test_stage_writes_png_and_svg_of_every_figure_without_missing_glyphs(root, tmp_path):
    written = []
    assert missing_glyph_warnings(lambda: written.extend(
        charts.run(SETTINGS, root / "reports/tables", root / "metrics/evaluate.json", tmp_path))) == []
    assert sorted(p.name for p in written) == sorted(f"{name}.{fmt}" for name in charts.FIGURES
                                                     for fmt in ("png", "svg"))
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


def test_without_evaluation_there_is_no_method_comparison(root, tmp_path):
    written = charts.run(ChartsSettings(dpi=150, formats=["png"]), root / "reports/tables",
                         tmp_path / "absent.json", tmp_path)
    assert {p.stem for p in written} == set(charts.FIGURES) - {"method_comparison"}


def test_missing_mplfonts_is_an_actionable_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mplfonts" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="pip install mplfonts"):
        charts.use_cjk_font()


def test_settings_refuse_low_resolution():
    with pytest.raises(ValueError, match="charts.dpi"):
        ChartsSettings(dpi=72)
