"""The notebooks run headless (nbclient, kernel python3) on the synthetic corpus and are stored without outputs."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from synthetic_outputs import write_synthetic_outputs

from pipeline import report
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_corpus", "02_errors", "03_trends"]
WITH_CHARTS = {"01_corpus", "03_trends"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = write_synthetic_outputs(tmp_path_factory.mktemp("notebooks"))
    DictionaryClassifier(load_codebook()).save(root / "models" / "dictionary")  # no baseline, no bert
    return root


@pytest.fixture(scope="module")
def bare_root(tmp_path_factory):
    """Only the required inputs: no models, test split, evaluation or ingest report."""
    root = write_synthetic_outputs(tmp_path_factory.mktemp("bare"), with_evaluation=False)
    (root / report.INGEST_REPORT).unlink()
    (root / report.TEST_SET).unlink()
    return root


def execute(name: str, root: Path, monkeypatch) -> list:
    """Run the notebook headless on `root`; return its outputs (nbclient raises on a failing cell)."""
    monkeypatch.setenv("PIPELINE_ROOT", str(root))  # the kernel inherits this environment
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_headless_on_the_synthetic_corpus(name, root, monkeypatch):
    outputs = execute(name, root, monkeypatch)
    assert any(o.output_type in ("display_data", "execute_result") for o in outputs)
    if name in WITH_CHARTS:
        assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not [o for o in outputs if o.output_type == "stream" and "missing from font" in o.text]


@pytest.mark.parametrize("name", ["01_corpus", "02_errors"])
def test_notebook_tolerates_missing_optional_inputs(name, bare_root, monkeypatch):
    assert execute(name, bare_root, monkeypatch)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
