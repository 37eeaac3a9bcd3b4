"""The charts stage: trend tables and evaluation metrics → figures under reports/figures (PNG + SVG).

Figures are `matplotlib.figure.Figure` objects on an Agg canvas, never made through pyplot: no GUI
backend is ever loaded, no global figure state leaks, and a notebook can display the same figures
inline. Chinese text needs a CJK font: `use_cjk_font()` registers the Noto Sans CJK SC that the
`mplfonts` package ships.

Trend lines are drawn over every period from the first to the last, so a period without documents is a
gap in the line, not a straight segment across it; with `trends.facet` each group (e.g. doc_type) has
its own line, and the number of documents behind every point is printed under it. The model figures
(per-theme F1, precision-recall, confusion, reliability) are the offline counterparts of the DVC plots:
`dvc plots show` loads its chart library from the network.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
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
from pipeline.config import Settings, setting
from pipeline.text import frame_contexts
from pipeline.trends import ALL, period_range, period_span

log = logging.getLogger("pipeline.charts")

TABLES_DIR = "reports/tables"
EVALUATE = "metrics/evaluate.json"
TEST_SET = "data/processed/test.parquet"
DEFAULT_MODEL = "models/default"
OUT_DIR = "reports/figures"
RELIABILITY = "reliability.csv"  # the reliability diagram's bins, beside the figures (the report reads them)
CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"
FORMATS = ("png", "svg", "pdf")
# no version or creation date in the files and fixed SVG ids: an unchanged chart stays byte-identical
STABLE_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
STABLE_RC = {"svg.hashsalt": "pipeline-charts"}
MAX_COUNT_LABELS = 40  # more periods than this: the document counts are bars without printed numbers
WILSON_Z = 1.959964  # 95% Wilson intervals of the reliability diagram's observed frequencies
NO_THEME = "none"  # evaluate's confusion rows: no gold theme / no theme predicted
# name → caption; the report shows the figures in this order (a missing one is skipped).
TREND_FIGURES = {
    "theme_small_multiples": "各主题的正文占比及其 95% 置信区间（按文档重抽样的自助法）；无文档的时期断开，"
                             "每个点下方为该期文档数",
    "theme_composition": "上：带任一主题的正文占比（分类计数，95% 置信区间）；下：各主题在全部主题标注中的构成",
    "document_heatmap": "文档 × 主题热图：每篇文档中带有该主题的正文段落占比，按日期排序",
}
MODEL_FIGURES = {
    "method_comparison": "各方法在测试集上的分主题 F1（误差线为 95% 置信区间）",
    "reliability": "可靠性图：预测概率分箱后的平均预测值与实际比例（真实测试集，全部主题合计）",
    "pr_curves": "各主题的精确率–召回率曲线，每条线一个方法（测试集）",
    "confusion": "首位主题混淆矩阵，每个方法一幅（行：人工标注，列：模型预测；按行归一化）",
}
FIGURES = {**TREND_FIGURES, **MODEL_FIGURES}


@dataclass
class ChartsSettings(Settings):
    dpi: int = setting(200, ge=150)  # PNG resolution; less is not legible
    formats: list[str] = setting(["png", "svg"], choices=FORMATS, nonempty=True)
    heatmap_max_docs: int = setting(80, ge=1)  # more documents are thinned evenly over time, so labels stay legible


def cjk_font_path() -> Path:
    """The Noto Sans CJK SC font file bundled with `mplfonts` (charts draw with it, the report embeds a
    subset of it).

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
    return path


def use_cjk_font() -> str:
    """Register the bundled Noto Sans CJK SC (`cjk_font_path`) and make it the default sans-serif
    (DejaVu Sans stays as the fallback for glyphs it lacks); return the font's family name."""
    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    mpl.rcParams["font.family"] = "sans-serif"
    mpl.rcParams["font.sans-serif"] = [family, "DejaVu Sans"]
    mpl.rcParams["axes.unicode_minus"] = False  # U+2212 is missing from Noto CJK: draw '-' instead
    return family


# --------------------------------------------------------------------------------------------- helpers

class PercentTicks(PercentFormatter):
    """Shares (0–1) as percentages with as many decimals as the ticks need and no more: ticks 2.5% apart
    print 2.5%, 5.0%, 7.5% (a fixed 0 decimals would print 2%, 5%, 8%)."""

    def __init__(self):
        super().__init__(1.0, decimals=0)

    def format_ticks(self, values):
        percents = np.asarray(values, dtype=float) * 100
        self.decimals = next((d for d in range(4) if np.allclose(percents, np.round(percents, d), atol=1e-9)), 4)
        return [self.fix_minus(self.format_pct(value, 1.0)) for value in values]  # fixed decimals: range unused


def new_figure(width: float, height: float) -> Figure:
    """An empty figure (inches) on an Agg canvas, laid out with constrained layout."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def theme_colors(codebook: Codebook) -> dict[str, tuple]:
    """One fixed colour per theme (codebook order), the same in every chart."""
    palette = mpl.colormaps["tab10"].colors
    return {theme: palette[i % len(palette)] for i, theme in enumerate(codebook.ids)}


def method_colors(methods) -> dict[str, tuple]:
    """One colour per method, the same in every model figure."""
    palette = mpl.colormaps["Set2"].colors
    return {method: palette[i % len(palette)] for i, method in enumerate(methods)}


def period_midpoints(periods: pd.Index) -> tuple[pd.DatetimeIndex, float]:
    """(the middle of each period label, the shortest period in days): a share describes the whole
    period, so it is drawn at its middle."""
    spans = [period_span(p) for p in periods]
    middles = pd.DatetimeIndex([first + (last - first) / 2 for first, last in spans])
    return middles, min(((last - first) / pd.Timedelta(days=1) for first, last in spans), default=365.0)


def all_periods(labels: pd.Series) -> pd.Index:
    """Every period from the first to the last of `labels`, those without documents included."""
    present = sorted(labels.dropna().unique())
    return pd.Index(period_range(present[0], present[-1]) if present else [], dtype=object)


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


def grouped(periods: pd.DataFrame, by_facet: pd.DataFrame | None = None, facet: str | None = None) -> pd.DataFrame:
    """The shares a trend chart draws, with a `group` column: the facet's groups (from the facet's
    `by_<facet>` table), or ALL for the pooled period table."""
    if facet and by_facet is not None:
        return by_facet.rename(columns={facet: "group"}).astype({"group": str})
    return periods.assign(group=ALL)


def _count_strip(ax, frame: pd.DataFrame, periods: pd.Index, colors: dict[str, tuple], label: bool) -> None:
    """Documents per period (stacked by group) under the trend panels, each total printed on its bar."""
    counts = frame.drop_duplicates(["group", "period"]).pivot(index="period", columns="group", values="n_docs")
    counts = counts.reindex(periods).fillna(0)
    x, days = period_midpoints(periods)
    bottom = np.zeros(len(periods))
    for group in counts.columns:
        ax.bar(x, counts[group].to_numpy(), bottom=bottom, width=0.8 * days, color=colors[group], alpha=0.6)
        bottom += counts[group].to_numpy()
    if len(periods) <= MAX_COUNT_LABELS:
        for xi, total in zip(x, bottom):
            if total:
                ax.annotate(f"{int(total)}", (xi, total), xytext=(0, 1), textcoords="offset points",
                            ha="center", va="bottom", fontsize=6.5, color="0.25")
    ax.set_ylim(0, max(bottom.max(), 1) * 1.45)  # room for the printed totals
    ax.yaxis.set_major_locator(MaxNLocator(nbins=2, integer=True))
    ax.set_ylabel("文档数" if label else "")
    ax.grid(axis="y", alpha=0.3)
    _time_axis(ax, periods)


# ---------------------------------------------------------------------------------------------- charts

def theme_composition(periods: pd.DataFrame, codebook: Codebook) -> Figure:
    """Two panels over the periods (a period without documents is an empty slot): above, how much of the
    text carries any theme at all, with its interval; below, how the theme assignments divide among the
    nine themes (stacked bars, each period normalised to 100%: a paragraph may carry several themes, so
    the raw shares overlap and their stack would mean nothing)."""
    shares = _wide(periods, "share", codebook)
    composition = shares.div(shares.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    any_theme = periods.drop_duplicates("period").set_index("period").reindex(shares.index)
    x, days = period_midpoints(shares.index)
    width = 0.8 * days
    colors = theme_colors(codebook)
    fig = new_figure(11, 7)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    top.bar(x, any_theme["any_share"], width=width, color="0.6")
    has_ci = any_theme["any_lo"].notna().to_numpy()
    top.errorbar(x[has_ci], any_theme["any_share"][has_ci],
                 yerr=np.vstack([any_theme["any_share"] - any_theme["any_lo"],
                                 any_theme["any_hi"] - any_theme["any_share"]])[:, has_ci],
                 fmt="none", ecolor="0.2", elinewidth=1, capsize=2)
    top.set_ylim(0, max(float(np.nanmax(any_theme[["any_share", "any_hi"]].to_numpy())) * 1.1, 0.05))
    top.yaxis.set_major_formatter(PercentTicks())
    top.set_ylabel("带任一主题的正文")
    top.grid(axis="y", alpha=0.3)
    top.set_title("有多少正文带有主题，主题之间如何分配")
    stacked = np.zeros(len(composition))
    for theme in codebook.ids:
        bottom.bar(x, composition[theme], bottom=stacked, width=width, color=colors[theme],
                   label=codebook[theme].label, alpha=0.9)
        stacked += composition[theme].to_numpy()
    bottom.set_ylim(0, 1)
    bottom.yaxis.set_major_formatter(PercentTicks())
    bottom.set_ylabel("占全部主题标注的比例")
    _time_axis(bottom, all_periods(periods["period"]))
    # reversed, so the legend reads top-down in the order of the stack
    handles, labels = bottom.get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside right upper", frameon=False, title="主题")
    return fig


def theme_small_multiples(periods: pd.DataFrame, codebook: Codebook, by_facet: pd.DataFrame | None = None,
                          facet: str | None = None) -> Figure:
    """One panel per theme (share with its CI band, common y scale) over a strip of documents per period.

    Lines run over every period from the first to the last, so a period without documents breaks them;
    with a facet, each group of `by_facet` (the `by_<facet>` table) has its own line and colour."""
    frame = grouped(periods, by_facet, facet)
    full = all_periods(frame["period"])
    x, _ = period_midpoints(full)
    groups = sorted(frame["group"].unique())
    palette = mpl.colormaps["tab10"].colors
    group_colors = {g: palette[i % len(palette)] for i, g in enumerate(groups)}
    ids = codebook.ids
    ncols = 3
    nrows = -(-len(ids) // ncols)
    layout = [[ids[r * ncols + c] if r * ncols + c < len(ids) else "." for c in range(ncols)]
              for r in range(nrows)] + [[f"counts{c}" for c in range(ncols)]]
    fig = new_figure(12, 2.6 * nrows + 1.8)
    axes = fig.subplot_mosaic(layout, sharex=True, height_ratios=[1] * nrows + [0.5])
    top = float(np.nanmax(frame[["share", "hi"]].to_numpy(dtype=float)))
    for theme in ids:
        ax = axes[theme]
        for group in groups:
            rows = frame[(frame["theme"] == theme) & (frame["group"] == group)].set_index("period").reindex(full)
            color = group_colors[group] if facet else theme_colors(codebook)[theme]
            ax.fill_between(x, rows["lo"].astype(float), rows["hi"].astype(float), color=color, alpha=0.2,
                            linewidth=0)
            ax.plot(x, rows["share"].astype(float), color=color, marker="o", markersize=3, linewidth=1.5,
                    label=group)
        ax.set_title(codebook[theme].label, fontsize=11)
        ax.set_ylim(0, max(top * 1.05, 0.05))
        ax.yaxis.set_major_formatter(PercentTicks())
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelbottom=False)
    strip_colors = group_colors if facet else {ALL: (0.55, 0.55, 0.55)}
    for c in range(ncols):  # one strip under each column: every point has its document count below it
        _count_strip(axes[f"counts{c}"], frame, full, strip_colors, label=c == 0)
    title = "各主题的正文占比（阴影：95% 置信区间；底部：每期文档数）"
    if facet:
        title += f"，按 {facet} 分组"
        handles, labels = axes[ids[0]].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(groups), 5), frameon=False)
    fig.suptitle(title)
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
    colorbar = fig.colorbar(image, ax=ax, format=PercentTicks(),
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
    colors = method_colors(methods)
    for i, (method, result) in enumerate(methods.items()):
        per_theme = result.get("per_theme", {})
        f1 = np.array([per_theme.get(t, {}).get("f1", np.nan) for t in ids], dtype=float)
        ci = np.array([per_theme.get(t, {}).get("f1_ci", [np.nan, np.nan]) for t in ids], dtype=float)
        err = np.clip(np.vstack([f1 - ci[:, 0], ci[:, 1] - f1]), 0, None)
        ax.barh(y + (i - (len(methods) - 1) / 2) * height, f1, height=height * 0.9, xerr=err,
                color=colors[method], error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.3"},
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


def calibration_bins(truth: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Reliability of predicted probabilities, pooled over themes: per equal-width bin of the score, the
    number of (paragraph, theme) pairs, their mean score, the observed share of true themes with a 95%
    Wilson interval, and the bin's part of the expected calibration error (`ece_part`; their sum is the
    ECE). Empty bins are left out."""
    truth, scores = np.asarray(truth, dtype=float).ravel(), np.asarray(scores, dtype=float).ravel()
    bins = np.clip((scores * n_bins).astype(int), 0, n_bins - 1)
    rows = []
    for b in np.unique(bins):
        inside = bins == b
        n, observed = int(inside.sum()), float(truth[inside].mean())
        centre = (observed + WILSON_Z ** 2 / (2 * n)) / (1 + WILSON_Z ** 2 / n)
        half = WILSON_Z * np.sqrt(observed * (1 - observed) / n + WILSON_Z ** 2 / (4 * n * n)) / (1 + WILSON_Z ** 2 / n)
        predicted = float(scores[inside].mean())
        rows.append({"bin_lo": b / n_bins, "bin_hi": (b + 1) / n_bins, "n": n, "predicted": predicted,
                     "observed": observed, "lo": max(centre - half, 0.0), "hi": min(centre + half, 1.0),
                     "ece_part": n / len(scores) * abs(observed - predicted)})
    return pd.DataFrame(rows, columns=["bin_lo", "bin_hi", "n", "predicted", "observed", "lo", "hi", "ece_part"])


def reliability_diagram(bins: pd.DataFrame, model: str) -> Figure:
    """Observed share of true themes against the mean predicted probability per bin (with Wilson
    intervals; the diagonal is perfect calibration), over a strip of how many predictions fall in each bin."""
    fig = new_figure(6.5, 6.5)
    ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="完全校准")
    spread = np.vstack([bins["observed"] - bins["lo"], bins["hi"] - bins["observed"]])
    ax.errorbar(bins["predicted"], bins["observed"], yerr=np.clip(spread, 0, None),  # clip: float rounding at 0 and 1
                fmt="o-", color="#b22222", capsize=3, markersize=4,
                label=f"{model}（ECE {bins['ece_part'].sum():.3f}）")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("实际带该主题的比例")
    ax.yaxis.set_major_formatter(PercentTicks())
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    ax.set_title("可靠性图（真实测试集）")
    middles = (bins["bin_lo"] + bins["bin_hi"]) / 2
    strip.bar(middles, bins["n"], width=0.9 * (bins["bin_hi"] - bins["bin_lo"]), color="0.6")
    for x, n in zip(middles, bins["n"]):
        strip.annotate(f"{n}", (x, n), xytext=(0, 1), textcoords="offset points", ha="center", va="bottom",
                       fontsize=7, color="0.25")
    strip.set_ylim(0, bins["n"].max() * 1.35)
    strip.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    strip.set_ylabel("预测数")
    strip.set_xlabel("预测概率")
    strip.xaxis.set_major_formatter(PercentTicks())
    return fig


def pr_curves(points: pd.DataFrame, codebook: Codebook) -> Figure:
    """Precision against recall, one panel per theme, one line per method (metrics/plots/pr_curves.csv)."""
    colors = method_colors(points["method"].unique())
    ncols = 3
    nrows = -(-len(codebook.ids) // ncols)
    fig = new_figure(11, 3.0 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, theme in zip(axes, codebook.ids):
        for method, color in colors.items():
            curve = points[(points["theme"] == theme) & (points["method"] == method)].sort_values("recall")
            ax.plot(curve["recall"], curve["precision"], color=color, linewidth=1.5, label=method)
        ax.set_title(codebook[theme].label, fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[len(codebook.ids):]:
        ax.set_visible(False)
    fig.supxlabel("召回率 recall")
    fig.supylabel("精确率 precision")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(colors), 4), frameon=False)
    return fig


def confusion_matrices(rows: pd.DataFrame, codebook: Codebook) -> Figure:
    """Top-1 confusion (metrics/plots/confusion.csv), one matrix per method: share of each gold theme's
    test paragraphs (rows, 无主题 = none) whose best predicted theme is each column, with the counts."""
    classes = [*codebook.ids, NO_THEME]
    names = [codebook[t].name_zh for t in codebook.ids] + ["无主题"]
    methods = list(dict.fromkeys(rows["method"]))
    fig = new_figure(6.2 * len(methods), 6.4)
    axes = np.atleast_1d(fig.subplots(1, len(methods), squeeze=False)[0])
    for ax, method in zip(axes, methods):
        counts = pd.crosstab(rows.loc[rows["method"] == method, "actual"],
                             rows.loc[rows["method"] == method, "predicted"]).reindex(
            index=classes, columns=classes, fill_value=0)
        shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1)
        for (i, j), n in np.ndenumerate(counts.to_numpy()):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if shares.iat[i, j] > 0.6 else "0.2")
        ax.set_xticks(range(len(classes)), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_yticks(range(len(classes)), names, fontsize=8)
        ax.set_xlabel("模型预测（首位）")
        ax.set_ylabel("人工标注（首个）")
        ax.set_title(method)
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


def load_summary(tables_dir: str | Path = TABLES_DIR) -> dict:
    """trends_summary.json, which the trends stage writes beside its tables folder ({} if absent)."""
    path = Path(tables_dir).parent / "trends_summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def load_facet(tables_dir: str | Path, summary: dict) -> tuple[str | None, pd.DataFrame | None]:
    """(the facet trends grouped by, its by_<facet> table), or (None, None) without a facet."""
    facet = summary.get("facet")
    if not facet:
        return None, None
    return facet, pd.read_csv(Path(tables_dir) / f"by_{facet}.csv", dtype={"period": str, facet: str})


def test_scores(test_path: str | Path, model_dir: str | Path, codebook: Codebook) -> tuple[np.ndarray, np.ndarray]:
    """(gold themes, calibrated scores of the model in `model_dir`) on the test split's real paragraphs
    (origin `real`, as evaluate's headline numbers), or the whole split where it has none."""
    from pipeline.classifiers.base import load_model
    from pipeline.evaluate import theme_matrix

    test = pd.read_parquet(test_path)
    if "origin" in test and (test["origin"] == "real").any():
        test = test[test["origin"] == "real"]
    scores, _ = load_model(model_dir, codebook).predict(test["text"].tolist(), frame_contexts(test))
    return theme_matrix(test, codebook.ids), scores


def model_figures(evaluate_path: Path, codebook: Codebook, test_path: Path, model_dir: Path
                  ) -> tuple[dict[str, Figure], pd.DataFrame | None]:
    """The model-quality figures that their inputs allow, and the reliability bins (None without them):
    F1 by method (evaluate.json), PR curves and confusion (the CSVs evaluate writes beside it in plots/),
    reliability (the test split scored by `model_dir`)."""
    figures, bins = {"method_comparison": method_comparison(json.loads(evaluate_path.read_text(encoding="utf-8")),
                                                            codebook)}, None
    if test_path.is_file() and (model_dir / "model.json").is_file():
        bins = calibration_bins(*test_scores(test_path, model_dir, codebook))
        figures["reliability"] = reliability_diagram(bins, model_dir.name)
    else:
        log.warning("charts: no reliability diagram: %s or %s/model.json is missing", test_path, model_dir)
    plots = evaluate_path.parent / "plots"
    if (plots / "pr_curves.csv").is_file():
        figures["pr_curves"] = pr_curves(pd.read_csv(plots / "pr_curves.csv"), codebook)
    if (plots / "confusion.csv").is_file():
        figures["confusion"] = confusion_matrices(pd.read_csv(plots / "confusion.csv"), codebook)
    return figures, bins


def run(settings: ChartsSettings, tables_dir: str | Path = TABLES_DIR,
        evaluate_path: str | Path | None = EVALUATE, out_dir: str | Path = OUT_DIR,
        test_path: str | Path = TEST_SET, model_dir: str | Path | None = None) -> list[Path]:
    """The DVC stage: the trend figures of TREND_FIGURES under `out_dir`, and — when `evaluate_path` is
    given and exists — the model figures of MODEL_FIGURES; the reliability diagram scores `test_path`
    with `model_dir` (default: the model trends_summary.json names, else models/default) and writes its
    bins to `out_dir`/reliability.csv. Returns the files written."""
    use_cjk_font()
    codebook = load_codebook()
    periods, documents = load_tables(tables_dir)
    summary = load_summary(tables_dir)
    facet, by_facet = load_facet(tables_dir, summary)
    figures = {
        "theme_small_multiples": theme_small_multiples(periods, codebook, by_facet, facet),
        "theme_composition": theme_composition(periods, codebook),
        "document_heatmap": document_heatmap(documents, codebook, settings.heatmap_max_docs),
    }
    written = []
    if evaluate_path is not None and Path(evaluate_path).is_file():
        model_dir = Path(model_dir or summary.get("model") or DEFAULT_MODEL)
        model, bins = model_figures(Path(evaluate_path), codebook, Path(test_path), model_dir)
        figures |= model
        if bins is not None:
            io.write_csv(Path(out_dir) / RELIABILITY, bins.round(4))
            written.append(Path(out_dir) / RELIABILITY)
    elif evaluate_path is not None:
        log.warning("charts: %s not found: no model figures", evaluate_path)
    written += [path for name, fig in figures.items() for path in save(fig, out_dir, name, settings)]
    log.info("charts: %d figures → %s", len(figures), out_dir)
    return written
