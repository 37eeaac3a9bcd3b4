"""The charts stage: trend tables and evaluation metrics → figures under reports/figures (PNG + SVG).

Figures are `matplotlib.figure.Figure` objects on an Agg canvas, never made through pyplot: no GUI
backend is ever loaded, no global figure state leaks, and a notebook can display the same figures
inline. Chinese text needs a CJK font: `use_cjk_font()` registers the Noto Sans CJK SC that the
`mplfonts` package ships.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from pipeline import io
from pipeline.codebook import Codebook, load_codebook
from pipeline.trends import period_span

log = logging.getLogger("pipeline.charts")

TABLES_DIR = "reports/tables"
EVALUATE = "metrics/evaluate.json"
OUT_DIR = "reports/figures"
CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"
FORMATS = ("png", "svg", "pdf")
# no version or creation date in the files and fixed SVG ids: an unchanged chart stays byte-identical
STABLE_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
STABLE_RC = {"svg.hashsalt": "pipeline-charts"}
# name → caption; the report shows the figures in this order (a missing one is skipped).
FIGURES = {
    "theme_composition": "主题构成随时间的变化：各主题在全部主题标注中的占比（堆叠面积）",
    "theme_small_multiples": "各主题段落占比及其 95% 置信区间（按文档重抽样的自助法）；底部为每期文档数",
    "document_heatmap": "文档 × 主题热图：每篇文档中带有该主题的正文段落占比，按日期排序",
    "method_comparison": "各方法在测试集上的分主题 F1（误差线为 95% 置信区间）",
}


@dataclass
class ChartsSettings:
    dpi: int = 200  # PNG resolution
    formats: list[str] = field(default_factory=lambda: ["png", "svg"])
    heatmap_max_docs: int = 80  # more documents are thinned evenly over time, so labels stay legible

    def __post_init__(self):
        if self.dpi < 150:
            raise ValueError(f"params.yaml: charts.dpi = {self.dpi}; use at least 150 for legible PNGs")
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown or not self.formats:
            raise ValueError(f"params.yaml: charts.formats = {self.formats}; choose from {list(FORMATS)}")


def use_cjk_font() -> str:
    """Register the Noto Sans CJK SC font bundled with `mplfonts` and make it the default sans-serif
    (DejaVu Sans stays as the fallback for glyphs it lacks); return the font's family name.

    Raises FileNotFoundError saying how to install the font when `mplfonts` or its font file is missing.
    """
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("charts need the CJK font shipped by the `mplfonts` package, which is not "
                           "installed: run `bash scripts/setup.sh` (or `pip install mplfonts==0.0.11`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / CJK_FONT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall it with `pip install --force-reinstall "
                           "mplfonts==0.0.11`")
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    mpl.rcParams["font.family"] = "sans-serif"
    mpl.rcParams["font.sans-serif"] = [family, "DejaVu Sans"]
    mpl.rcParams["axes.unicode_minus"] = False  # U+2212 is missing from Noto CJK: draw '-' instead
    return family


# --------------------------------------------------------------------------------------------- helpers

def new_figure(width: float, height: float) -> Figure:
    """An empty figure (inches) on an Agg canvas, laid out with constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def theme_colors(codebook: Codebook) -> dict[str, tuple]:
    """One fixed colour per theme (codebook order), the same in every chart."""
    palette = mpl.colormaps["tab10"].colors
    return {theme: palette[i % len(palette)] for i, theme in enumerate(codebook.ids)}


def period_midpoints(periods: pd.Index) -> tuple[pd.DatetimeIndex, float]:
    """(the middle of each period label, the shortest period in days): a share describes the whole
    period, so it is drawn at its middle."""
    spans = [period_span(p) for p in periods]
    middles = pd.DatetimeIndex([first + (last - first) / 2 for first, last in spans])
    return middles, min(((last - first) / pd.Timedelta(days=1) for first, last in spans), default=365.0)


def _time_axis(ax, periods: pd.Index) -> None:
    """Few enough date ticks never to collide; whole years only when the periods are years."""
    if periods.str.fullmatch(r"\d{4}(–\d{4})?").all():
        years = pd.to_numeric(periods.str[:4])
        span = int(years.max() - years.min()) + 1
        base = next(b for b in (1, 2, 5, 10, 20, 50, 100) if span / b <= 8)
        ax.xaxis.set_major_locator(mdates.YearLocator(base))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    else:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
            locator, formats=["%Y", "%-m月", "%-d日", "%H:%M", "%H:%M", "%S"],
            offset_formats=["", "%Y", "%Y年%-m月", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]))


def _wide(periods: pd.DataFrame, column: str, codebook: Codebook) -> pd.DataFrame:
    """periods × themes (codebook order) of one column of the period shares table."""
    return periods.pivot(index="period", columns="theme", values=column).reindex(columns=codebook.ids)


def document_label(date, year, title, max_chars: int = 20) -> str:
    """'2019-03-20  关于加强基层党组织建设的…': the date (or year, or 无日期) and the title, shortened and
    without a leading year that only repeats the date ('1955年政府工作报告' → '政府工作报告')."""
    when = date if pd.notna(date) else str(int(year)) if pd.notna(year) else "无日期"
    title = str(title).strip() if pd.notna(title) else ""
    if pd.notna(year) and title.startswith(f"{int(year)}年") and len(title) > 5:
        title = title[5:]
    title = title or "（无标题）"
    return f"{when}  {title if len(title) <= max_chars else title[: max_chars - 1] + '…'}"


# ---------------------------------------------------------------------------------------------- charts

def theme_composition(periods: pd.DataFrame, codebook: Codebook) -> Figure:
    """Stacked area: each theme's part of all theme assignments per period.

    A paragraph may carry several themes, so raw shares overlap and their stack means nothing; each
    period's shares are therefore normalised to sum to 1 (the figure shows composition, not volume).
    """
    shares = _wide(periods, "share", codebook)
    totals = shares.sum(axis=1).replace(0, np.nan)
    composition = shares.div(totals, axis=0).fillna(0.0)
    colors = theme_colors(codebook)
    fig = new_figure(11, 5.5)
    ax = fig.add_subplot()
    ax.stackplot(period_midpoints(composition.index)[0], composition.T.to_numpy(),
                 labels=[codebook[t].label for t in codebook.ids], colors=[colors[t] for t in codebook.ids],
                 alpha=0.85)
    ax.set_ylim(0, 1)
    ax.margins(x=0)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("占全部主题标注的比例")
    ax.set_title("主题构成随时间的变化")
    _time_axis(ax, composition.index)
    # reversed, so the legend reads top-down in the order of the stack
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside right upper", frameon=False, title="主题")
    return fig


def theme_small_multiples(periods: pd.DataFrame, codebook: Codebook) -> Figure:
    """One panel per theme (share with its CI band, common y scale) over a strip of documents per period."""
    shares, lo, hi = (_wide(periods, c, codebook) for c in ("share", "lo", "hi"))
    n_docs = periods.drop_duplicates("period").set_index("period")["n_docs"].reindex(shares.index)
    x, period_days = period_midpoints(shares.index)
    colors = theme_colors(codebook)
    ids = codebook.ids
    ncols = 3
    nrows = -(-len(ids) // ncols)
    layout = [[ids[r * ncols + c] if r * ncols + c < len(ids) else "." for c in range(ncols)]
              for r in range(nrows)] + [[f"counts{c}" for c in range(ncols)]]
    fig = new_figure(12, 2.6 * nrows + 1.6)
    axes = fig.subplot_mosaic(layout, sharex=True, height_ratios=[1] * nrows + [0.4])
    top = float(np.nanmax([hi.max().max(), shares.max().max()]))
    for theme in ids:
        ax = axes[theme]
        ax.fill_between(x, lo[theme], hi[theme], color=colors[theme], alpha=0.25, linewidth=0)
        ax.plot(x, shares[theme], color=colors[theme], marker="o", markersize=3, linewidth=1.5)
        ax.set_title(codebook[theme].label, fontsize=11)
        ax.set_ylim(0, max(top * 1.05, 0.05))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelbottom=False)
    # one strip under each column, so every panel has its document counts right below it
    for c in range(ncols):
        strip = axes[f"counts{c}"]
        strip.bar(x, n_docs.to_numpy(), width=0.8 * period_days, color="0.55")
        strip.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
        strip.set_ylabel("文档数" if c == 0 else "")
        strip.grid(axis="y", alpha=0.3)
        _time_axis(strip, shares.index)
    fig.suptitle("各主题的段落占比（阴影：95% 置信区间；底部：每期文档数）")
    return fig


def document_heatmap(documents: pd.DataFrame, codebook: Codebook, max_docs: int = 80) -> Figure:
    """Documents (rows, ordered by date; undated last) × themes: share of the document's body paragraphs
    that carry the theme. Beyond `max_docs` documents, an evenly spaced selection over time is shown."""
    shares = documents.pivot(index="doc_id", columns="theme", values="share_paragraphs")[codebook.ids]
    docs = documents.drop_duplicates("doc_id").set_index("doc_id")
    order = docs.assign(_key=docs["date"].fillna(docs["year"].astype("string")).fillna("9999")) \
        .sort_values(["_key", "title"]).index
    shown = order[np.unique(np.linspace(0, len(order) - 1, max_docs).round().astype(int))] \
        if len(order) > max_docs else order
    labels = [document_label(docs.at[d, "date"], docs.at[d, "year"], docs.at[d, "title"]) for d in shown]
    values = shares.loc[shown].to_numpy()
    height = 2.2 + 0.24 * len(shown)
    fig = new_figure(10, height)
    ax = fig.add_subplot()
    # the colour scale ends at the largest share shown (at least 5%), not at 100%: real shares are
    # mostly small, and a fixed 0–100% scale would paint them all the same pale colour
    image = ax.imshow(values, aspect="auto", cmap="YlGnBu", vmin=0, vmax=max(float(np.nanmax(values)), 0.05),
                      interpolation="nearest")
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.set_xticks(range(len(codebook.ids)), [codebook[t].label for t in codebook.ids], rotation=35,
                  ha="right", rotation_mode="anchor")
    ax.tick_params(axis="x", top=True, labeltop=False)
    colorbar = fig.colorbar(image, ax=ax, format=PercentFormatter(1.0, decimals=0),
                            shrink=min(1.0, 6 / height))  # a tall figure keeps a colour bar of readable size
    colorbar.set_label("带该主题的正文段落占比")
    title = "文档 × 主题"
    if len(shown) < len(order):
        title += f"（按时间均匀抽取 {len(shown)} / {len(order)} 篇）"
    ax.set_title(title)
    return fig


def method_comparison(evaluation: dict, codebook: Codebook) -> Figure:
    """Per-theme test F1 of each method in metrics/evaluate.json, with CI error bars (horizontal bars,
    so the theme labels never collide); the legend gives each method's micro and macro F1."""
    methods = evaluation.get("methods", {})
    ids = codebook.ids
    height = 0.8 / max(len(methods), 1)
    y = np.arange(len(ids))
    fig = new_figure(10, 1.2 + 0.55 * len(ids) * max(1, len(methods) / 2))
    ax = fig.add_subplot()
    colors = mpl.colormaps["Set2"].colors
    for i, (method, result) in enumerate(methods.items()):
        per_theme = result.get("per_theme", {})
        f1 = np.array([per_theme.get(t, {}).get("f1", np.nan) for t in ids], dtype=float)
        ci = np.array([per_theme.get(t, {}).get("f1_ci", [np.nan, np.nan]) for t in ids], dtype=float)
        err = np.clip(np.vstack([f1 - ci[:, 0], ci[:, 1] - f1]), 0, None)
        ax.barh(y + (i - (len(methods) - 1) / 2) * height, f1, height=height * 0.9, xerr=err,
                color=colors[i % len(colors)], error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.3"},
                label=f"{method}（micro-F1 {result.get('micro_f1', np.nan):.2f}，"
                      f"macro-F1 {result.get('macro_f1', np.nan):.2f}）")
    support = {t: max((r.get("per_theme", {}).get(t, {}).get("support", 0) for r in methods.values()),
                      default=0) for t in ids}
    ax.set_yticks(y, [f"{codebook[t].label}  n={support[t]}" for t in ids])
    ax.invert_yaxis()  # codebook order top-down
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1（测试集）")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("各方法分主题 F1")
    fig.legend(loc="outside lower center", ncols=min(len(methods), 3), frameon=False)
    return fig


# ------------------------------------------------------------------------------------------- the stage

def save(fig: Figure, out_dir: str | Path, name: str, settings: ChartsSettings) -> list[Path]:
    """Write `fig` as out_dir/name.<format> for each format (atomically); return the paths."""
    paths = []
    for fmt in settings.formats:
        path = Path(out_dir) / f"{name}.{fmt}"
        with io.atomic_path(path) as tmp, mpl.rc_context(STABLE_RC):
            fig.savefig(tmp, format=fmt, dpi=settings.dpi, metadata=STABLE_METADATA[fmt])
        paths.append(path)
    return paths


def load_tables(tables_dir: str | Path = TABLES_DIR) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(period theme shares, document theme shares) as the trends stage wrote them."""
    tables = Path(tables_dir)
    periods = pd.read_csv(tables / "period_theme_shares.csv", dtype={"period": str})
    documents = pd.read_parquet(tables / "doc_theme_shares.parquet")
    return periods, documents


def run(settings: ChartsSettings, tables_dir: str | Path = TABLES_DIR,
        evaluate_path: str | Path | None = EVALUATE, out_dir: str | Path = OUT_DIR) -> list[Path]:
    """The DVC stage: every figure of FIGURES under `out_dir`; the method comparison only when
    `evaluate_path` is given and exists. Returns the files written."""
    use_cjk_font()
    codebook = load_codebook()
    periods, documents = load_tables(tables_dir)
    figures = {
        "theme_composition": theme_composition(periods, codebook),
        "theme_small_multiples": theme_small_multiples(periods, codebook),
        "document_heatmap": document_heatmap(documents, codebook, settings.heatmap_max_docs),
    }
    if evaluate_path is not None and Path(evaluate_path).is_file():
        evaluation = json.loads(Path(evaluate_path).read_text(encoding="utf-8"))
        figures["method_comparison"] = method_comparison(evaluation, codebook)
    elif evaluate_path is not None:
        log.warning("charts: %s not found: no method comparison chart", evaluate_path)
    written = [path for name, fig in figures.items() for path in save(fig, out_dir, name, settings)]
    log.info("charts: %d figures → %s", len(figures), out_dir)
    return written
