"""The notebooks run headless (nbclient, kernel python3) on the synthetic corpus and are stored without
outputs; the README's notebook command works."""
from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from synthetic_outputs import write_synthetic_outputs

from pipeline import report
from pipeline.classifiers.dictionary import DictionaryClassifier
from pipeline.codebook import load_codebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ["01_corpus", "02_errors", "03_trends", "04_kwic_formulations"]
WITH_CHARTS = {"01_corpus", "03_trends", "04_kwic_formulations"}
# The audit sample of the synthetic corpus: para_id → the coder's themes (the predictions are in
# synthetic_outputs.DOCUMENTS): d1-p1 agrees, d1-p3 is missed (ideology), d3-p1 spurious (anti_corruption).
AUDIT_CODINGS = {"d1-p1": ["political"], "d1-p3": ["ideology"], "d3-p1": []}


def write_audit_sample(root: Path) -> None:
    audit_dir = root / "data/annotations/audit"
    (audit_dir / "codings").mkdir(parents=True)
    (audit_dir / "sample.json").write_text(json.dumps({"strata": {}, "paragraphs": [
        {"para_id": p, "stratum": "none"} for p in [*AUDIT_CODINGS, "d2-p1"]]}), encoding="utf-8")
    (audit_dir / "codings/coder_a.jsonl").write_text("".join(
        json.dumps({"para_id": p, "themes": t, "primary": t[0] if t else None}) + "\n"
        for p, t in AUDIT_CODINGS.items()), encoding="utf-8")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = write_synthetic_outputs(tmp_path_factory.mktemp("notebooks"))
    DictionaryClassifier(load_codebook()).save(root / "models" / "dictionary")  # no baseline, no bert
    write_audit_sample(root)
    return root


@pytest.fixture(scope="module")
def bare_root(tmp_path_factory):
    """Only the required inputs: no models, test split, evaluation or ingest report."""
    root = write_synthetic_outputs(tmp_path_factory.mktemp("bare"), with_evaluation=False)
    (root / report.INGEST_REPORT).unlink()
    (root / report.TEST_SET).unlink()
    return root


def printed(outputs: list) -> str:
    return "".join(o.text for o in outputs if o.output_type == "stream")


@functools.cache  # several tests read one run's outputs: a kernel start costs seconds
def execute(name: str, root: Path) -> tuple:
    """Run the notebook headless on `root`; return its outputs (nbclient raises on a failing cell)."""
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPELINE_ROOT", str(root))  # the kernel inherits this environment
        NotebookClient(notebook, kernel_name="python3", timeout=120,
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return tuple(o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_headless_on_the_synthetic_corpus(name, root):
    outputs = execute(name, root)
    assert any(o.output_type in ("display_data", "execute_result") for o in outputs)
    if name in WITH_CHARTS:
        assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not [o for o in outputs if o.output_type == "stream" and "missing from font" in o.text]


@pytest.mark.parametrize("name", ["01_corpus", "02_errors"])
def test_notebook_tolerates_missing_optional_inputs(name, bare_root):
    assert execute(name, bare_root)


def test_errors_notebook_analyses_the_corpus_and_its_audit_sample(root):
    text = printed(execute("02_errors", root))
    assert "14 body paragraphs of 6 documents" in text
    assert "audit sample: 4 paragraphs, 3 coded" in text
    assert "2 disagreements with your coders" in text
    assert "test rows: 4; models: ['dictionary']" in text


def test_errors_notebook_says_how_to_draw_an_audit_sample_when_there_is_none(bare_root):
    assert "no audit sample in" in printed(execute("02_errors", bare_root))


def test_kwic_notebook_shows_lines_first_uses_and_the_chart(root):
    outputs = execute("04_kwic_formulations", root)
    text = printed(outputs)
    assert "【全面从严治党】" in text and "matches in 6 documents" in text
    tables = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "在全面从严治党工作会议上的讲话" in tables  # d1's title: the first use of 全面从严治党


def readme_notebook_command() -> list[str]:
    """The README's `jupyter nbconvert …` line, split into arguments."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^jupyter nbconvert .*$", readme, flags=re.MULTILINE)
    assert line, "README.md has no `jupyter nbconvert` command"
    return shlex.split(line.group(0).split("#")[0])


def test_the_readme_notebook_command_runs_a_notebook(root, tmp_path):
    """The command as the README gives it, on one notebook (not all, for time) and into tmp_path."""
    args = readme_notebook_command()
    notebooks = [a for a in args if a.endswith(".ipynb")]
    assert notebooks and "--execute" in args and "--output-dir" in args
    options = [a for a in args[2:] if not a.endswith(".ipynb")]
    options[options.index("--output-dir") + 1] = str(tmp_path)
    jupyter = Path(sys.executable).with_name("jupyter")
    environment = {**os.environ, "PIPELINE_ROOT": str(root)}
    done = subprocess.run([str(jupyter), "nbconvert", *options, str(NOTEBOOKS / "04_kwic_formulations.ipynb")],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    page = next(tmp_path.glob("04_kwic_formulations.*")).read_text(encoding="utf-8")
    assert "全面从严治党" in page


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
