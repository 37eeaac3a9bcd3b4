"""The Ray engine on a two-node Ray cluster inside this machine (ray.cluster_utils, as CI runs it): ingest,
segment and predict write the same bytes, in the same order, as the default single-process path; work
really spreads over both nodes through the object store; a worker killed mid-stage is retried and the
stage still writes the same bytes; a stage whose workers keep dying fails with one clear error and leaves
its previous output as it was. Without Ray installed, the error names the extra."""
from __future__ import annotations

import filecmp
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from formats import write_txt
from pipeline import predict, segment
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook
from pipeline.config import IngestSettings, SegmentSettings
from pipeline.engines import RAY_TASK_RETRIES, Engine, EngineError, map_ordered
from pipeline.ingest import stage

DEMO_RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
OUTPUTS = ["documents.parquet", "rejected.csv", "duplicates.csv", "paragraphs.parquet", "themes.parquet"]


def test_the_ray_engine_without_ray_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(EngineError, match=r"pip install -e '\.\[ray\]'"):
        Engine("ray")


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node of one CPU each, their own raylets and object stores."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def corpus(tmp_path: Path) -> Path:
    """The demo corpus (every format), or a synthetic one where the demo corpus is absent."""
    if any(DEMO_RAW.rglob("*.txt")):
        return DEMO_RAW
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(24):
        write_txt(raw / f"20{10 + i % 15}-01-01_doc{i}.txt", f"文件{i}", [
            f"一、第{i}项工作", f"各级党组织要认真落实第{i}项部署，坚决维护党中央权威和集中统一领导，确保各项要求落地见效。",
            f"（一）第{i}项措施", f"要严格执行中央八项规定精神，持续整治形式主义官僚主义，第{i}次专项检查发现问题{i}个。"])
    return raw


def run_stages(raw: Path, out: Path, model: Path, engine: Engine | None) -> None:
    stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out)), engine)
    segment.run(SegmentSettings(), str(out / "documents.parquet"), str(out / "paragraphs.parquet"), engine=engine)
    predict.run(predict.PredictSettings(model=str(model), paragraphs=str(out / "paragraphs.parquet"),
                                        output=str(out / "themes.parquet"), batch_size=16), engine)


@pytest.fixture(scope="module")
def local_outputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(raw corpus, model, outputs of the default single-process path)."""
    tmp = tmp_path_factory.mktemp("local")
    raw = corpus(tmp)
    model = DictionaryClassifier(load_codebook()).save(tmp / "model")
    run_stages(raw, tmp / "out", model, None)
    return raw, model, tmp / "out"


def assert_same_outputs(expected: Path, actual: Path) -> None:
    for name in OUTPUTS:
        assert filecmp.cmp(expected / name, actual / name, shallow=False), name


def test_the_cluster_writes_the_same_bytes_as_the_default_path(cluster, local_outputs, tmp_path):
    raw, model, expected = local_outputs
    run_stages(raw, tmp_path, model, Engine("ray", ray_address=cluster.address))
    assert_same_outputs(expected, tmp_path)


def test_work_spreads_over_both_nodes_in_input_order(cluster):
    def node_of(i):  # a lambda-like closure: Ray ships it by value to the other node
        import ray

        time.sleep(1.0)  # long enough that the head's one CPU is busy and the other node takes work
        return i, ray.get_runtime_context().get_node_id()

    results = list(map_ordered(node_of, range(8), Engine("ray"), batch=1))
    assert [i for i, _ in results] == list(range(8))
    assert len({node for _, node in results}) == 2


def test_a_batch_whose_worker_dies_is_run_again(cluster, tmp_path):
    marker = tmp_path / "died-once"

    def square_or_die(i):
        if i == 7 and not marker.exists():  # the first attempt kills its own worker process
            marker.touch()
            os._exit(1)
        return i * i

    assert list(map_ordered(square_or_die, range(20), Engine("ray"), batch=2)) == [i * i for i in range(20)]
    assert marker.exists()


def busy_ray_workers() -> list:
    """This test's cluster's worker processes running a stage's batch (Ray titles them ray::_apply);
    the cluster's nodes are children of this process, so no other Ray on the machine is touched."""
    import psutil

    found = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = process.cmdline()
        except psutil.Error:  # it ended meanwhile
            continue
        if cmdline and cmdline[0].startswith("ray::_apply"):
            found.append(process)
    return found


class WorkerKiller(threading.Thread):
    """Kills busy Ray workers while a stage runs: the first one found, or (`every`) all it finds."""

    def __init__(self, every: bool):
        super().__init__(daemon=True)
        self.every, self.killed, self.stop = every, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and (self.every or not self.killed):
            for process in busy_ray_workers():
                try:
                    process.kill()
                    self.killed += 1
                except Exception:  # it finished meanwhile
                    pass
            time.sleep(0.005)


def test_a_worker_killed_mid_stage_is_retried_and_the_stage_writes_the_same_bytes(cluster, local_outputs, tmp_path):
    raw, _, expected = local_outputs
    for attempt in range(5):  # the killer races the stage: run again until it caught a worker mid-batch
        out = tmp_path / f"run{attempt}"
        killer = WorkerKiller(every=False)
        killer.start()
        stage.run(IngestSettings(raw_dir=str(raw), out_dir=str(out)), Engine("ray"))
        killer.stop.set()
        killer.join()
        if killer.killed:
            break
    assert killer.killed >= 1  # a batch lost its worker mid-stage and ran again
    for name in ("documents.parquet", "rejected.csv", "duplicates.csv"):
        assert filecmp.cmp(expected / name, out / name, shallow=False), name


def test_a_stage_whose_workers_keep_dying_fails_cleanly_and_keeps_its_last_output(cluster, local_outputs, tmp_path,
                                                                                   monkeypatch):
    _, _, expected = local_outputs
    out = tmp_path / "paragraphs.parquet"
    out.write_bytes(b"the last good output")
    attempts = tmp_path / "attempts"
    attempts.mkdir()

    def segment_or_die(*args, **kwargs):  # every attempt kills its own worker process, deterministically
        (attempts / f"{os.getpid()}-{time.monotonic_ns()}").touch()
        os._exit(1)

    monkeypatch.setattr(segment, "group_rows", segment_or_die)  # what the stage maps over its document groups
    with pytest.raises(EngineError, match=f"{RAY_TASK_RETRIES + 1} times .* wrote nothing"):
        segment.run(SegmentSettings(), str(expected / "documents.parquet"), str(out), engine=Engine("ray"))
    assert len(list(attempts.iterdir())) >= RAY_TASK_RETRIES + 1
    assert out.read_bytes() == b"the last good output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempts", "paragraphs.parquet"]  # no temp file
