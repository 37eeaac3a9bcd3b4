"""Incremental stages at scale: after a day's file is added, segment computes only that file's group of
documents and predict scores only the batch the new documents join; every other result comes from the
cache, and the outputs are the same bytes as a run without any cache."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

from pipeline import predict, segment
from pipeline.cache import ResultCache
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook
from pipeline.config import IngestSettings, SegmentSettings, SourceLayout
from pipeline.ingest import stage

DAY_DUMP = SourceLayout(glob="assets/*/*.json", kind="json_records", records_path="videoList",
                        fields={"title": "title", "date": "date", "text": "content"})
SENTENCES = ["各级党组织要坚决维护党中央权威和集中统一领导，确保党中央决策部署落地见效。",
             "纪检监察机关要坚持有腐必反、有贪必肃，坚决查处群众身边的腐败问题。",
             "组织部门要坚持新时代好干部标准，大力选拔政治过硬、敢于担当的优秀年轻干部。",
             "村党组织要发挥战斗堡垒作用，落实三会一课，带领群众发展特色产业。"]


def story(day: int, n: int) -> str:
    """Three paragraphs: a codebook sentence and seeded random characters, so no two stories are near-duplicates."""
    rng = random.Random(day * 100 + n)
    return "\n".join(SENTENCES[(n + k) % 4] + "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(40)) + "。"
                     for k in range(3))


def write_day(raw: Path, day: int) -> None:
    """A day's dump of four stories."""
    stories = [{"title": f"第{day}天第{n}条", "date": f"2024-03-{day:02d}", "content": story(day, n)} for n in range(4)]
    folder = raw / "assets" / "2024"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"202403{day:02d}.json").write_text(json.dumps({"videoList": stories}, ensure_ascii=False), "utf-8")


def run_stages(raw: Path, out: Path, model: Path, caches: Path | None) -> dict[str, ResultCache]:
    cache = {name: ResultCache(caches / name) if caches else None for name in ("ingest", "segment", "predict")}
    stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out), sources=[DAY_DUMP]), cache=cache["ingest"])
    segment.run(SegmentSettings(), str(out / "documents.parquet"), str(out / "paragraphs.parquet"),
                cache=cache["segment"])
    predict.run(predict.PredictSettings(model=str(model), paragraphs=str(out / "paragraphs.parquet"),
                                        output=str(out / "themes.parquet"), batch_size=8), cache=cache["predict"])
    return cache


def test_a_new_day_is_the_only_work_and_the_outputs_are_the_same_bytes(tmp_path):
    raw, caches = tmp_path / "raw", tmp_path / "cache"
    model = DictionaryClassifier(load_codebook()).save(tmp_path / "model")
    for day in range(1, 21):
        write_day(raw, day)
    first = run_stages(raw, tmp_path / "before", model, caches)
    assert first["segment"].computed == 20 and first["predict"].hits == 0
    write_day(raw, 21)

    cached = run_stages(raw, tmp_path / "cached", model, caches)
    uncached = run_stages(raw, tmp_path / "uncached", model, None)

    for name in ("documents.parquet", "paragraphs.parquet", "themes.parquet"):
        assert (tmp_path / "cached" / name).read_bytes() == (tmp_path / "uncached" / name).read_bytes(), name
    assert (cached["ingest"].computed, cached["segment"].computed) == (1, 1)  # the new day's file and group
    # every batch but the last (which the new documents join, as they sort after it) comes from the cache
    assert cached["predict"].hits == first["predict"].computed - 1 and cached["predict"].computed <= 3
    paragraphs = pd.read_parquet(tmp_path / "cached" / "paragraphs.parquet")
    assert len(pd.read_parquet(tmp_path / "cached" / "themes.parquet")) == (paragraphs["kind"] == "body").sum()


def test_scoring_batches_end_at_documents_chosen_by_their_content():
    ids = pd.Series(["d1", "d1", "d20", "d3", "d3", "d3", "d40", "d5"] + ["d6"] * 7 + ["d70"])
    assert predict.batch_bounds(ids, 4) == [(0, 3), (3, 7), (7, 11), (11, 15), (15, 16)]
    # a document inserted in the middle changes only the batch it joins: the others hold the same documents
    grown = pd.Series(ids.tolist()[:3] + ["d25"] + ids.tolist()[3:])

    def batches(doc_ids: pd.Series) -> list[list[str]]:
        return [doc_ids[start:stop].tolist() for start, stop in predict.batch_bounds(doc_ids, 5)]

    assert [batch for batch in batches(grown) if "d25" not in batch] == [
        batch for batch in batches(ids) if batch != ["d3", "d3", "d3", "d40"]]
