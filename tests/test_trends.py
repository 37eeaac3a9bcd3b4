"""The trends stage on a six-document corpus whose shares can be counted by hand (tests/synthetic_outputs.py)."""
from __future__ import annotations

import pandas as pd
import pytest
from synthetic_outputs import paragraph_themes_frame, write_synthetic_outputs

from pipeline import io, trends
from pipeline.trends import TrendsSettings


@pytest.fixture
def root(tmp_path):
    return write_synthetic_outputs(tmp_path)


@pytest.fixture
def body(root):
    return trends.load_inputs(root / trends.PARAGRAPHS, root / trends.PARAGRAPH_THEMES)


def share(frame: pd.DataFrame, theme: str, **where) -> pd.Series:
    rows = frame[frame["theme"] == theme]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_document_shares_count_body_paragraphs_and_characters(body):
    documents = trends.compute(body, TrendsSettings()).documents
    d1 = share(documents, "political", doc_id="d1")
    assert (d1["n_paragraphs"], d1["n_chars"]) == (4, 100)  # the heading is not a body paragraph
    assert d1["share_paragraphs"] == pytest.approx(2 / 4)
    assert d1["share_chars"] == pytest.approx((10 + 20) / 100)
    assert share(documents, "ideology", doc_id="d1")["share_chars"] == pytest.approx(20 / 100)
    assert share(documents, "organization", doc_id="d1")["share_paragraphs"] == 0


def test_period_shares_pool_the_paragraphs_of_the_periods_documents(body):
    periods = trends.compute(body, TrendsSettings()).periods
    assert share(periods, "political", period="2019")["share"] == pytest.approx((2 + 1) / (4 + 2))
    assert share(periods, "political", period="2020")["share"] == pytest.approx((1 + 0) / (3 + 2))
    assert share(periods, "ideology", period="2019")["n_docs"] == 2
    by_chars = trends.compute(body, TrendsSettings(measure="chars")).periods
    assert share(by_chars, "political", period="2019")["share"] == pytest.approx((10 + 20 + 50) / 200)


def test_intervals_contain_the_estimate_and_repeat_with_the_seed(body):
    first = trends.compute(body, TrendsSettings(seed=7))
    again = trends.compute(body, TrendsSettings(seed=7))
    for frame, estimate in ((first.periods, "share"), (first.changes, "change")):
        with_interval = frame.dropna(subset=["lo", "hi"])  # periods of one document have none
        assert len(with_interval)
        assert (with_interval["lo"] <= with_interval[estimate] + 1e-12).all()
        assert (with_interval[estimate] <= with_interval["hi"] + 1e-12).all()
    pd.testing.assert_frame_equal(first.periods, again.periods)
    pd.testing.assert_frame_equal(first.changes, again.changes)
    # with two documents a period's percentiles are its extremes whatever the seed: compare the draws
    counts = trends.document_counts(body, list(first.periods["theme"].unique()), TrendsSettings())
    draws = {seed: trends.period_estimates(counts, TrendsSettings(seed=seed))[("2019",)].draws for seed in (7, 8)}
    assert (draws[7] != draws[8]).any()


def test_a_periods_interval_does_not_depend_on_the_other_periods(body):
    everything = trends.compute(body, TrendsSettings()).periods
    without_2021 = trends.compute(body[body["doc_id"] != "d6"].reset_index(drop=True), TrendsSettings()).periods
    pd.testing.assert_frame_equal(everything[everything["period"] == "2019"].reset_index(drop=True),
                                  without_2021[without_2021["period"] == "2019"].reset_index(drop=True))


def test_a_single_document_period_has_no_interval(body):
    result = trends.compute(body, TrendsSettings())
    row = share(result.periods, "work_style", period="2021")
    assert row["n_docs"] == 1 and row["share"] == pytest.approx(0.5)
    assert pd.isna(row["lo"]) and pd.isna(row["hi"])
    into_2021 = share(result.changes, "work_style", to_period="2021")
    assert pd.isna(into_2021["lo"]) and not into_2021["ci_excludes_zero"]


def test_undated_documents_are_left_out_of_periods_but_counted(body):
    result = trends.compute(body, TrendsSettings(period="year"))
    assert result.summary["excluded_undated"] == 1 and result.summary["excluded_year_only"] == 0
    assert result.summary["documents_in_periods"] == 5
    assert sorted(result.periods["period"].unique()) == ["2019", "2020", "2021"]
    assert result.documents.loc[result.documents["doc_id"] == "d5", "period"].isna().all()


def test_quarter_periods_exclude_year_only_dates_with_a_count(body):
    result = trends.compute(body, TrendsSettings(period="quarter"))
    assert sorted(result.periods["period"].unique()) == ["2019Q1", "2019Q3", "2020Q1", "2021Q2"]
    assert result.summary["excluded_year_only"] == 1  # d4 is dated "2020"
    assert result.summary["excluded_undated"] == 1
    assert share(result.periods, "political", period="2020Q1")["share"] == pytest.approx(1 / 3)


def test_month_periods_label_by_year_and_month(body):
    periods = trends.compute(body, TrendsSettings(period="month")).periods
    assert sorted(periods["period"].unique()) == ["2019-02", "2019-08", "2020-03", "2021-05"]


def test_bins_of_years_pool_their_documents(body):
    result = trends.compute(body, TrendsSettings(years_per_period=2))
    assert sorted(result.periods["period"].unique()) == ["2018–2019", "2020–2021"]
    assert share(result.periods, "political", period="2020–2021")["share"] == pytest.approx((1 + 0 + 1) / (3 + 2 + 2))
    first, last = trends.period_span("2020–2021")
    assert first == pd.Timestamp("2020-01-01") and last.date() == pd.Timestamp("2021-12-31").date()


def test_changes_between_consecutive_periods(body):
    changes = trends.compute(body, TrendsSettings()).changes
    row = share(changes, "political", from_period="2019", to_period="2020")
    assert row["change"] == pytest.approx(0.2 - 0.5)
    assert row["lo"] <= row["change"] <= row["hi"] < 0  # both years have two documents
    assert set(zip(changes["from_period"], changes["to_period"])) == {("2019", "2020"), ("2020", "2021")}


def test_top_changes_name_the_themes_that_rose_and_fell_most(body):
    top = trends.compute(body, TrendsSettings(top_k_changes=2)).top
    first_last = top[top["comparison"] == "first_to_last"]
    rose = first_last[first_last["direction"] == "rose"]
    assert rose.iloc[0]["theme"] == "work_style" and rose.iloc[0]["change"] == pytest.approx(0.5)
    assert (first_last[first_last["direction"] == "fell"]["change"] < 0).all()
    assert len(top[(top["comparison"] == "consecutive") & (top["direction"] == "fell")]) == 2


def test_by_doc_type_and_source_give_period_shares_per_group(body):
    result = trends.compute(body, TrendsSettings())
    assert share(result.by["doc_type"], "political", doc_type="讲话", period="2019")["share"] == pytest.approx(0.5)
    assert share(result.by["doc_type"], "grassroots", doc_type="通知", period="2019")["share"] == pytest.approx(0.5)
    assert "unknown" in set(result.by["source"]["source"])  # d4 has no source


def test_run_writes_every_table_and_the_dvc_plot_data(root):
    trends.run(TrendsSettings(resamples=200), root / trends.PARAGRAPHS, root / trends.PARAGRAPH_THEMES,
               root / "reports")
    tables = root / "reports" / "tables"
    for name in ("doc_theme_shares.parquet", "doc_theme_shares.csv", "period_theme_shares.csv",
                 "period_changes.csv", "by_doc_type.csv", "by_source.csv", "top_changes.csv"):
        assert (tables / name).is_file(), name
    plot = pd.read_csv(root / "reports/plots/theme_shares.csv", dtype={"period": str})
    assert list(plot.columns) == ["period", "theme", "share", "lo", "hi"]
    assert "政治建设 (political)" in set(plot["theme"])
    assert (root / "reports/trends_summary.json").is_file()


def test_missing_predictions_are_an_error_that_names_the_file(root):
    themes = paragraph_themes_frame()
    io.write_parquet(root / trends.PARAGRAPH_THEMES, themes[themes["doc_id"] != "d2"])
    with pytest.raises(ValueError, match="paragraph_themes.parquet.*rerun the predict stage"):
        trends.load_inputs(root / trends.PARAGRAPHS, root / trends.PARAGRAPH_THEMES)


def test_no_usable_date_for_the_period_says_what_to_change(body):
    undated_months = body.assign(date=body["year"].astype("string"))
    with pytest.raises(ValueError, match="trends.period: year"):
        trends.compute(undated_months, TrendsSettings(period="month"))


def test_settings_reject_an_unknown_period():
    with pytest.raises(ValueError, match="trends.period"):
        TrendsSettings(period="decade")


def test_example_paragraphs_are_the_highest_scoring_of_the_theme(body):
    examples = trends.example_paragraphs(body, "political", n=2)
    assert len(examples) == 2 and examples["score"].is_monotonic_decreasing
    assert examples.iloc[0]["doc_id"] == "d3"  # the third paragraph of d3 scores 0.75
    in_2019 = trends.example_paragraphs(body, "political", period="2019")
    assert set(in_2019["doc_id"]) == {"d1", "d2"}
