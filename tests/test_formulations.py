"""Formulations over time (counts, rates, shares, first uses) and emerging terms by keyness."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import chi2_contingency

from pipeline import config, formulations
from pipeline.__main__ import main
from pipeline.formulations import FormulationsSettings

BOM = b"\xef\xbb\xbf"
TERMS = [{"name": "全面从严治党"}, {"name": "四个意识", "variants": ["四个意识", "政治意识、大局意识、核心意识、看齐意识"]},
         {"name": "党要管党", "variants": ["党要管党"]}, {"name": "自我革命", "variants": []}]
NAMES = ["全面从严治党", "四个意识", "党要管党", "自我革命"]
# doc_id: (date, year, title, [paragraph texts])
DOCS = {
    "A": ("2014-05-14", 2014, "推动全面从严治党责任落地", ["坚持党要管党、从严治党。"]),
    "B": ("2015-03-01", 2015, "工作报告", ["前言没有提法。", "全面从严治党永远在路上。全面从严治党是长期任务。"]),
    "C": ("2015-09", 2015, "心得体会", ["要增强政治意识、大局意识、核心意识、看齐意识。"]),
    "D": (None, None, "无日期讲稿", ["全面从严治党。"]),
}


def frame(docs: dict) -> pd.DataFrame:
    return pd.DataFrame([{"doc_id": d, "para_id": f"{d}-{i}", "order": i, "heading_path": [f"{d}标题"] if i else [],
                          "text": text, "title": title, "date": date, "year": year}
                         for d, (date, year, title, texts) in docs.items() for i, text in enumerate(texts)])


def chars(doc_id: str) -> int:
    _, _, title, texts = DOCS[doc_id]
    return len(title) + sum(map(len, texts))


@pytest.fixture(scope="module")
def result():
    return formulations.compute(frame(DOCS), FormulationsSettings(terms=TERMS, resamples=200))


def test_each_document_using_a_formulation_has_its_count_rate_and_first_sentence(result):
    uses = result.documents[result.documents["formulation"] == "全面从严治党"]
    assert uses["doc_id"].tolist() == ["A", "B", "D"]  # date order, undated last
    assert uses["count"].tolist() == [1, 2, 1]
    b = uses.iloc[1]
    assert b["n_chars"] == chars("B") and b["per_10k"] == pytest.approx(round(2 / chars("B") * 10_000, 3))
    assert b["sentence"] == "全面从严治党永远在路上。" and b["heading_path"] == ["B标题"]
    assert uses.iloc[0]["sentence"] == "推动全面从严治党责任落地"  # the title counts as text
    assert pd.isna(uses.iloc[2]["period"])


def test_periods_pool_documents_with_intervals_only_where_there_are_two(result):
    periods = result.periods.set_index(["period", "formulation"])
    first = periods.loc[("2014", "全面从严治党")]
    assert first["n_docs"] == 1 and first["count"] == 1
    assert first["per_10k"] == pytest.approx(1 / chars("A") * 10_000, abs=1e-4)
    assert math.isnan(first["per_10k_lo"]) and math.isnan(first["doc_share_hi"])
    later = periods.loc[("2015", "全面从严治党")]
    assert later["n_docs"] == 2 and later["docs_using"] == 1 and later["doc_share"] == 0.5
    assert later["per_10k"] == pytest.approx(2 / (chars("B") + chars("C")) * 10_000, abs=1e-4)
    assert later["per_10k_lo"] <= later["per_10k"] <= later["per_10k_hi"] and later["per_10k_lo"] < later["per_10k_hi"]
    assert later["doc_share_lo"] == 0 and later["doc_share_hi"] == 1
    assert set(result.periods["period"]) == {"2014", "2015"}  # the undated document is in no period
    assert result.summary["excluded_undated"] == 1


def test_first_uses_name_the_earliest_document_sentence_and_variant(result):
    firsts = result.first_uses.set_index("formulation")
    assert firsts.loc["全面从严治党", ["date", "doc_id", "docs_using", "total_count"]].tolist() == [
        "2014-05-14", "A", 3, 4]
    assert firsts.loc["四个意识", "matched"] == "政治意识、大局意识、核心意识、看齐意识"
    assert firsts.loc["四个意识", "sentence"] == "要增强政治意识、大局意识、核心意识、看齐意识。"
    assert firsts.loc["党要管党", "date"] == "2014-05-14"
    unused = firsts.loc["自我革命"]
    assert unused["docs_using"] == 0 and unused["total_count"] == 0 and pd.isna(unused["date"])


def test_bootstrap_intervals_are_reproducible(result):
    again = formulations.compute(frame(DOCS), FormulationsSettings(terms=TERMS, resamples=200))
    pd.testing.assert_frame_equal(result.periods, again.periods)


def test_a_corpus_without_dated_documents_still_gets_every_table_and_the_chart(tmp_path):
    undated = {"D": DOCS["D"], "E": (None, None, "", ["坚持自我革命。"])}
    result = formulations.compute(frame(undated), FormulationsSettings(terms=TERMS, resamples=100))
    assert result.periods.empty and result.emerging.empty
    firsts = result.first_uses.set_index("formulation")
    assert firsts.loc["自我革命", ["doc_id", "sentence"]].tolist() == ["E", "坚持自我革命。"]
    written = formulations.write(result, FormulationsSettings(terms=TERMS), tmp_path)
    assert sorted(p.name for p in written) == ["documents.csv", "emerging_terms.csv", "first_uses.csv",
                                               "formulations.png", "periods.csv"]


# ---------------------------------------------------------------------------------- emerging terms

def test_log_likelihood_matches_the_g_test_of_the_two_by_two_table():
    a, b, c, d = np.array([10.0, 7.0, 3.0]), np.array([0.0, 2.0, 3.0]), 1000.0, 800.0
    expected = [chi2_contingency([[x, y], [c - x, d - y]], correction=False, lambda_="log-likelihood")[0]
                for x, y in zip(a, b)]
    assert formulations.log_likelihood(a, b, c, d) == pytest.approx(expected)
    assert formulations.log_likelihood(np.array([5.0]), np.array([5.0]), 100.0, 100.0)[0] == pytest.approx(0)


def test_terms_are_words_and_ngrams_framed_by_words_of_two_characters():
    terms, n_words = formulations.document_terms("加强党的政治建设，营造风清气正的政治生态。", max_words=2)
    assert n_words == 10  # Chinese words only: the punctuation is no word
    assert "政治 建设" in terms and "政治生态" in terms
    assert not [t for t in terms if t.split(" ")[0] in "党的正" or t.split(" ")[-1] in "党的正"]


def emerging_corpus() -> pd.DataFrame:
    before = "各级党组织要加强作风建设，改进工作作风，密切联系群众。"
    after = "各级党组织要加强作风建设，营造风清气正的政治生态。净化政治生态，政治生态要好。"
    docs = {f"{y}{k}": (f"{y}-0{k + 1}-01", y, "材料", [before if y == 2016 else after] * 2)
            for y in (2016, 2017) for k in range(3)}
    docs["2017x"] = ("2017-12-01", 2017, "材料", ["政治站位要高，政治站位要准，政治站位要稳，政治站位要实，"
                                                 "政治站位要深。"])
    return frame(docs)


def test_emerging_terms_find_what_rose_and_skip_what_did_not():
    settings = FormulationsSettings(terms=TERMS, emerging_min_count=5, emerging_min_docs=2, emerging_min_g2=3.84)
    emerging = formulations.compute(emerging_corpus(), settings).emerging
    assert set(emerging["period"]) == {"2017"} and set(emerging["reference"]) == {"2016"}
    top = emerging.iloc[0]
    assert (top["term"], top["count"], top["docs"], top["count_reference"], bool(top["new"])) == (
        "政治生态", 18, 3, 0, True)
    assert emerging["g2"].is_monotonic_decreasing and (emerging["log_ratio"] > 0).all()
    assert "作风建设" not in set(emerging["term"])  # as common before as after
    assert "政治站位" not in set(emerging["term"])  # frequent, but in one document only


def test_emerging_terms_respect_the_minimum_count():
    settings = FormulationsSettings(terms=TERMS, emerging_min_count=19, emerging_min_docs=1, emerging_min_g2=0)
    assert formulations.compute(emerging_corpus(), settings).emerging.empty


# ---------------------------------------------------------------------------------------- settings

@pytest.mark.parametrize("terms, problem", [
    ([{"name": "自我革命", "variants": ["自我革命", " "]}], "formulations.terms[0].variants: ['自我革命', ' '] holds an"),
    ([{"variants": ["自我革命"]}], "formulations.terms[0].name: '' is empty"),
    ([{"name": "自我革命", "variant": ["x"]}], "terms[0].variant: unknown key (did you mean variants?)"),
    ([{"name": "自我革命"}, {"name": "自我革命"}], "formulations.terms: names 自我革命 more than once"),
    ("自我革命", "is a single string, not a list"),
    ([], "formulations.terms: [] is empty"),
])
def test_bad_formulations_are_rejected_naming_the_key(terms, problem):
    with pytest.raises(config.SettingsError, match=re.escape(problem)):
        config.build_settings(FormulationsSettings, {"terms": terms}, "params.yaml:formulations")


def test_stage_command_writes_excel_csvs_and_the_chart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / formulations.PARAGRAPHS
    path.parent.mkdir(parents=True)
    frame(DOCS).to_parquet(path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"formulations": {"terms": TERMS, "resamples": 100}}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert main(["formulations"]) == 0
    out = tmp_path / formulations.OUT_DIR
    for name in ("documents", "periods", "first_uses", "emerging_terms"):
        assert (out / f"{name}.csv").read_bytes().startswith(BOM)
    firsts = pd.read_csv(out / "first_uses.csv", encoding="utf-8-sig")
    assert firsts["formulation"].tolist() == NAMES
    assert (out / "formulations.png").read_bytes().startswith(b"\x89PNG")
