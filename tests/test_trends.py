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


def test_top_changes_are_only_changes_whose_interval_excludes_zero(body):
    result = trends.compute(body, TrendsSettings(top_k_changes=2))
    top = result.top
    assert top["ci_excludes_zero"].all() and len(top)
    # 2021 holds one document: no change into it has an interval, so none is a headline, whatever its size
    assert "2021" not in set(top["to_period"]) and (top["comparison"] == "consecutive").all()
    biggest = result.changes[result.changes["to_period"] == "2021"]["change"].abs().max()
    assert biggest > top["change"].abs().max()
    fell = top[top["direction"] == "fell"]
    assert fell.iloc[0]["theme"] == "political" and fell.iloc[0]["change"] == pytest.approx(0.2 - 0.5)
    assert (top[top["direction"] == "rose"]["change"] > 0).all()


def test_by_doc_type_and_source_give_period_shares_per_group(body):
    result = trends.compute(body, TrendsSettings())
    assert share(result.by["doc_type"], "political", doc_type="讲话", period="2019")["share"] == pytest.approx(0.5)
    assert share(result.by["doc_type"], "grassroots", doc_type="通知", period="2019")["share"] == pytest.approx(0.5)
    assert "unknown" in set(result.by["source"]["source"])  # d4 has no source


def test_run_writes_every_table_and_the_dvc_plot_data(root):
    trends.run(TrendsSettings(resamples=200, correction="none"), root / trends.PARAGRAPHS,
               root / trends.PARAGRAPH_THEMES, root / "reports")
    tables = root / "reports" / "tables"
    for name in ("doc_theme_shares.parquet", "doc_theme_shares.csv", "period_theme_shares.csv",
                 "period_changes.csv", "by_doc_type.csv", "by_source.csv", "top_changes.csv"):
        assert (tables / name).is_file(), name
    plot = pd.read_csv(root / "reports/plots/theme_shares.csv", dtype={"period": str})
    assert list(plot.columns) == ["period", "theme", "share", "lo", "hi", "n_docs"]
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
    with pytest.raises(ValueError, match="period: .decade. is not a known choice"):
        TrendsSettings(period="decade")


def test_example_paragraphs_are_the_highest_scoring_of_the_theme(body):
    examples = trends.example_paragraphs(body, "political", n=2)
    assert len(examples) == 2 and examples["score"].is_monotonic_decreasing
    assert examples.iloc[0]["doc_id"] == "d3"  # the third paragraph of d3 scores 0.75
    in_2019 = trends.example_paragraphs(body, "political", period="2019")
    assert set(in_2019["doc_id"]) == {"d1", "d2"}


def yearly_body(years: list[int], doc_types: list[str] | None = None, extra: list[str | None] | None = None
                ) -> pd.DataFrame:
    """Body paragraphs of one document per entry of `years` (four paragraphs each, the first political)."""
    rows = []
    for d, year in enumerate(years):
        for p in range(4):
            rows.append({"para_id": f"y{d}-{p}", "doc_id": f"y{d}", "title": f"报告{d}", "date": str(year),
                         "year": year, "doc_type": doc_types[d] if doc_types else "报告", "source": "S",
                         "order": p, "kind": "body", "heading_path": [], "text": "文" * 10, "n_chars": 10,
                         "extra": extra[d] if extra else None,
                         "themes": ["political"] if p == 0 else (["ideology"] if p == d % 4 else [])})
    return pd.DataFrame(rows)


def test_years_of_one_document_each_are_pooled_so_every_period_has_an_interval():
    body = yearly_body(list(range(2000, 2012)))
    pooled = trends.compute(body, TrendsSettings(resamples=200, by=[]))
    assert pooled.summary["years_per_period"] == 2
    assert pooled.summary["pooling"]["reason"].startswith("12 of 12 one-year periods")
    assert pooled.summary["periods_without_interval"] == 0
    assert list(pooled.periods["period"].unique()) == [f"{y}–{y + 1}" for y in range(2000, 2012, 2)]
    assert pooled.periods["lo"].notna().all()
    kept = trends.compute(body, TrendsSettings(resamples=200, by=[], pool="off"))
    assert kept.summary["pooling"] is None and kept.summary["periods_without_interval"] == 12
    assert kept.periods["lo"].isna().all()


def test_pooling_leaves_periods_alone_when_most_hold_several_documents(body):
    assert trends.compute(body, TrendsSettings()).summary["pooling"] is None  # 2019, 2020: two each; 2021: one


def test_pooling_takes_the_narrowest_width_that_gives_every_period_an_interval():
    result = trends.compute(yearly_body([2000, 2001, 2002, 2003, 2008, 2009]), TrendsSettings(resamples=200, by=[]))
    assert result.summary["years_per_period"] == 2 and result.summary["periods_without_interval"] == 0
    assert list(result.periods["period"].unique()) == ["2000–2001", "2002–2003", "2008–2009"]
    assert result.summary["missing_periods"] == ["2004–2005", "2006–2007"]  # the charts break their lines there


def test_where_no_width_gives_every_period_an_interval_the_best_is_taken_and_the_rest_reported():
    # a lone late report: 2-year bins leave it alone (1 of 4 periods), wider bins do no better
    result = trends.compute(yearly_body([2000, 2001, 2002, 2003, 2004, 2005, 2030]),
                            TrendsSettings(resamples=200, by=[]))
    assert result.summary["years_per_period"] == 2
    assert result.summary["periods_without_interval"] == 1 == result.summary["pooling"]["periods_without_interval"]


def test_missing_periods_are_listed_and_period_ranges_include_them(body):
    assert trends.compute(body.query("year != 2020").reset_index(drop=True),
                          TrendsSettings()).summary["missing_periods"] == ["2020"]
    assert trends.period_range("2019", "2021") == ["2019", "2020", "2021"]
    assert trends.period_range("1960–1964", "1975–1979") == ["1960–1964", "1965–1969", "1970–1974", "1975–1979"]
    assert trends.period_range("2019Q4", "2020Q2") == ["2019Q4", "2020Q1", "2020Q2"]
    assert trends.period_range("2019-11", "2020-01") == ["2019-11", "2019-12", "2020-01"]


def test_the_share_of_text_carrying_any_theme_counts_paragraphs_with_at_least_one(body):
    periods = trends.compute(body, TrendsSettings()).periods
    row = share(periods, "political", period="2019")
    assert row["any_share"] == pytest.approx((3 + 2) / (4 + 2))  # d1: 3 of 4 paragraphs, d2: both
    assert row["any_lo"] <= row["any_share"] <= row["any_hi"]
    assert pd.isna(share(periods, "political", period="2021")["any_lo"])  # one document: no interval


def test_a_facet_gives_changes_and_tables_per_group(body):
    result = trends.compute(body, TrendsSettings(facet="doc_type", by=["source"], pool="off"))
    assert result.summary["facet"] == "doc_type" and set(result.by) == {"source", "doc_type"}
    assert set(result.changes["group"]) == {"讲话"}  # the only type in more than one period
    speech = share(result.changes, "political", group="讲话", from_period="2019", to_period="2020")
    assert speech["change"] == pytest.approx(1 / 3 - 2 / 4)  # d3 against d1 only: the notice d2 is apart
    assert set(trends.compute(body, TrendsSettings()).changes["group"]) == {trends.ALL}
    # every (type, year) holds one document: pooling judges the groups, not the pooled years
    pooled = trends.compute(body, TrendsSettings(facet="doc_type", by=[])).summary["pooling"]
    assert pooled["reason"] == "5 of 5 one-year periods of each doc_type held fewer than 2 documents, too few for an interval"


def test_grouping_by_a_key_of_the_extra_field(tmp_path):
    body = yearly_body([2000, 2000, 2005, 2005], extra=['{"congress": 15}', '{"congress": 15}',
                                                        '{"congress": 16}', "not json"])
    frame = body.drop(columns=["themes"])
    io.write_parquet(tmp_path / "paragraphs.parquet", frame)
    io.write_parquet(tmp_path / "themes.parquet", paragraph_themes_of(body))
    settings = TrendsSettings(by=["congress"], resamples=200)
    loaded = trends.load_inputs(tmp_path / "paragraphs.parquet", tmp_path / "themes.parquet", groups=settings.groupings)
    by_congress = trends.compute(loaded, settings).by["congress"]
    assert set(zip(by_congress["congress"], by_congress["period"])) == {("15", "2000"), ("16", "2005"),
                                                                        ("unknown", "2005")}
    with pytest.raises(ValueError, match=r"trends.by / trends.facet name 'session'.*congress"):
        trends.load_inputs(tmp_path / "paragraphs.parquet", tmp_path / "themes.parquet", groups=["session"])
    with pytest.raises(ValueError, match="not loaded"):
        trends.compute(body, settings)  # a grouping column the caller did not load is named


def paragraph_themes_of(body: pd.DataFrame) -> pd.DataFrame:
    scores = {theme: [0.8 if theme in assigned else 0.1 for assigned in body["themes"]]
              for theme in trends.load_codebook().ids}
    return body[["para_id", "doc_id", "themes"]].assign(**scores)


def test_settings_refuse_a_facet_that_is_no_metadata_column():
    with pytest.raises(ValueError, match="facet: 'period' is not a metadata column"):
        TrendsSettings(facet="period")
    with pytest.raises(ValueError, match="pool: 'always' is not a known choice"):
        TrendsSettings(pool="always")


def test_the_dvc_plot_data_has_empty_rows_where_a_period_has_no_documents(body):
    periods = trends.compute(body.query("year != 2020").reset_index(drop=True), TrendsSettings()).periods
    plot = trends.plot_rows(periods)
    assert list(plot["period"].unique()) == ["2019", "2020", "2021"]
    gap = plot[plot["period"] == "2020"]
    assert len(gap) == 9 and gap["share"].isna().all()  # a null breaks the line in the DVC template
    assert plot.loc[plot["period"] == "2019", "n_docs"].tolist() == [2] * 9
