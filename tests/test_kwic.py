"""Keyword in context: matches with their context and place, in date order, printed and exported."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline import kwic
from pipeline.__main__ import main
from pipeline.exports import json_records

BOM = b"\xef\xbb\xbf"


def corpus() -> pd.DataFrame:
    """Four documents out of date order: one undated, one dated by year only."""
    rows = [
        ("u", None, None, "无日期讲稿", 1, ["一、要求"], "必须坚决做到两个维护。"),
        ("b", "2022-10-28", 2022, "学习心得", 2, ["二、体会"], "深刻领悟两个确立的决定性意义，坚决做到两个维护。"),
        ("b", "2022-10-28", 2022, "学习心得", 1, [], "第一段没有提法。"),
        ("a", "2018-06-28", 2018, "讲政治", 3, ["一、讲政治", "（一）忠诚"], "做到“两个维护”，\n不能只停留在口头上。"),
        ("y", None, 2020, "只有年份的评论", 1, [], "落实中央八项规定精神，严格执行八项规定。"),
    ]
    return pd.DataFrame([{"doc_id": d, "date": date, "year": year, "title": title, "order": order,
                          "heading_path": path, "text": text, "para_id": f"{d}-{order}"}
                         for d, date, year, title, order, path, text in rows])


def test_lines_are_sorted_by_date_with_year_only_and_undated_documents_after():
    lines = kwic.kwic_lines(corpus(), kwic.variants_pattern(["两个维护", "两个确立"]), width=4)
    assert lines[["doc_id", "match"]].values.tolist() == [
        ["a", "两个维护"], ["b", "两个确立"], ["b", "两个维护"], ["u", "两个维护"]]
    first = lines.iloc[0]
    assert (first["left"], first["right"]) == ("做到“", "”， 不")  # the line break became a space
    assert first["heading_path"] == ["一、讲政治", "（一）忠诚"] and first["title"] == "讲政治"
    assert lines["offset"].tolist() == [3, 4, 19, 6]


def test_year_only_documents_sort_by_their_year():
    frame = corpus()
    frame.loc[frame["doc_id"] == "y", "text"] = "两个维护要落实。"
    lines = kwic.kwic_lines(frame, "两个维护", width=2)
    assert lines["doc_id"].tolist() == ["a", "y", "b", "u"]


def test_variants_match_the_longest_form_first():
    pattern = kwic.variants_pattern(["八项规定", "中央八项规定", " ", "八项规定"])
    lines = kwic.kwic_lines(corpus(), pattern, width=3)
    assert lines["match"].tolist() == ["中央八项规定", "八项规定"]
    assert lines.iloc[1][["left", "right"]].tolist() == ["格执行", "。"]


def test_context_is_cut_at_the_paragraph_edges_and_empty_matches_are_skipped():
    lines = kwic.kwic_lines(corpus(), r"必须|(?=两个)", width=10)
    assert lines["match"].tolist() == ["必须"]
    assert lines.iloc[0][["left", "right"]].tolist() == ["", "坚决做到两个维护。"]


def test_a_pattern_that_is_no_regex_says_how_to_fix_it():
    with pytest.raises(ValueError, match=r"not a regular expression .*--variants"):
        kwic.kwic_lines(corpus(), "两个(维护", width=5)


def test_format_lines_align_the_matches():
    lines = kwic.kwic_lines(corpus(), "两个维护", width=6)
    printed = kwic.format_lines(lines, width=6)
    columns = [kwic.display_width(line.split("【")[0]) for line in printed]
    assert len(set(columns)) == 1
    assert printed[0].endswith("2018-06-28  讲政治 › 一、讲政治 › （一）忠诚")
    assert "无日期  无日期讲稿 › 一、要求" in printed[-1]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_command_prints_and_exports_csv_from_parse_jsonl(tmp_path, capsys):
    source = write_jsonl(tmp_path / "paragraphs.jsonl", json_records(corpus()))
    out = tmp_path / "kwic.csv"
    assert main(["kwic", "--variants", "两个维护", "两个确立", "--input", str(source), "--width", "5",
                 "-o", str(out), "--limit", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.out.count("【") == 2 and "【两个维护】" in printed.out
    assert "4 matches in 3 paragraphs of 3 documents" in printed.err and "2 more not shown" in printed.err
    assert out.read_bytes().startswith(BOM)
    table = pd.read_csv(out, encoding="utf-8-sig")
    assert table["match"].tolist() == ["两个维护", "两个确立", "两个维护", "两个维护"]
    assert table["heading_path"][0] == "一、讲政治 > （一）忠诚"


def test_command_reads_classify_output_skipping_records_without_text(tmp_path, caplog):
    source = write_jsonl(tmp_path / "classified.jsonl", [
        {"id": 7, "text": "坚持自我革命。", "scores": {"political": 0.2}, "themes": []},
        {"id": 8, "text": None}, {"id": 9}])
    out = tmp_path / "kwic.jsonl"
    assert main(["kwic", "自我革命", "--input", str(source), "-o", str(out)]) == 0
    assert "2 record(s) without a 'text' string skipped" in caplog.text
    row = json.loads(out.read_text(encoding="utf-8"))
    assert (row["para_id"], row["left"], row["match"], row["date"]) == (7, "坚持", "自我革命", None)


def test_command_without_a_pattern_or_with_a_missing_input_fails_in_one_line(tmp_path, capsys):
    assert main(["kwic", "--input", str(tmp_path / "none.parquet")]) == 2
    assert "nothing to search for" in capsys.readouterr().err
    assert main(["kwic", "两个维护", "--input", str(tmp_path / "none.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and "--input" in err
    bad = tmp_path / "paragraphs.txt"
    bad.write_text("两个维护", encoding="utf-8")
    assert main(["kwic", "两个维护", "--input", str(bad)]) == 2
    assert "cannot read .txt" in capsys.readouterr().err


def test_command_reads_paragraphs_parquet(tmp_path, capsys):
    path = tmp_path / "paragraphs.parquet"
    corpus().to_parquet(path)
    assert main(["kwic", "八项规定", "--input", str(path), "-o", str(tmp_path / "k.xlsx")]) == 0
    assert pd.read_excel(tmp_path / "k.xlsx")["match"].tolist() == ["八项规定", "八项规定"]
