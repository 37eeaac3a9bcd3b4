"""The Ray engine: ingest, segment and predict on a local Ray (2 CPUs) write the same bytes, in the same
order, as the default single-process path; without Ray installed, the error names the extra."""
from __future__ import annotations

import filecmp
import sys
import time
from pathlib import Path

import pytest

from formats import write_txt
from pipeline import predict, segment
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook
from pipeline.config import IngestSettings, SegmentSettings
from pipeline.engines import Engine, EngineError, map_ordered
from pipeline.ingest import stage

DEMO_RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
OUTPUTS = ["documents.parquet", "rejected.csv", "duplicates.csv", "paragraphs.parquet", "themes.parquet"]


def test_the_ray_engine_without_ray_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(EngineError, match=r"pip install -e '\.\[ray\]'"):
        Engine("ray")


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def corpus(tmp_path: Path) -> Path:
    """The demo corpus (every format), or a small synthetic one where the demo corpus is absent."""
    if any(DEMO_RAW.rglob("*.txt")):
        return DEMO_RAW
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(12):
        write_txt(raw / f"20{10 + i}-01-01_doc{i}.txt", f"文件{i}", [
            f"一、第{i}项工作", f"各级党组织要认真落实第{i}项部署，坚决维护党中央权威和集中统一领导，确保各项要求落地见效。",
            f"（一）第{i}项措施", f"要严格执行中央八项规定精神，持续整治形式主义官僚主义，第{i}次专项检查发现问题{i}个。"])
    return raw


def run_stages(raw: Path, out: Path, model: Path, engine: Engine | None) -> None:
    stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out)), engine)
    segment.run(SegmentSettings(), str(out / "documents.parquet"), str(out / "paragraphs.parquet"), engine=engine)
    predict.run(predict.PredictSettings(model=str(model), paragraphs=str(out / "paragraphs.parquet"),
                                        output=str(out / "themes.parquet"), batch_size=16), engine)


def test_ray_writes_the_same_bytes_as_the_default_path(ray, tmp_path):
    raw = corpus(tmp_path)
    model = DictionaryClassifier(load_codebook()).save(tmp_path / "model")
    run_stages(raw, tmp_path / "local", model, None)
    run_stages(raw, tmp_path / "ray", model, Engine("ray"))
    for name in OUTPUTS:
        assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "ray" / name, shallow=False), name


def test_map_ordered_keeps_input_order_whatever_finishes_first(ray):
    # later items finish first on two workers; results still come back in input order. A lambda:
    # Ray ships it by value, where a function of this test module would need the module on the workers
    slow_square = lambda i: (time.sleep(i / 4000), i * i)[1]  # noqa: E731
    items = list(range(40, 0, -1))
    assert list(map_ordered(slow_square, items, Engine("ray"), batch=3)) == [i * i for i in items]
