"""Settings: every params.yaml section is typed and checked before any work starts; a bad value is one line
`params.yaml:<section>.<key>: <what is wrong>, allowed: <what is>` and exit code 2, never a traceback, a
silently shipped wrong model or a run that never ends. The checks come from each field's annotation and
metadata, so a field added later is checked with no extra code."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.__main__ import main
from pipeline.config import IngestSettings, Settings, SettingsError, build_settings, setting

ROOT = Path(__file__).resolve().parents[1]


def write_params(tmp_path: Path, params: dict | str) -> Path:
    path = tmp_path / "params.yaml"
    text = params if isinstance(params, str) else yaml.safe_dump(params, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def run_cli(tmp_path: Path, params: dict | str, *command: str, capsys) -> tuple[int, list[str]]:
    path = write_params(tmp_path, params)
    code = main(["--params", str(path), *command])
    return code, capsys.readouterr().err.splitlines()


# Each known failure: the params.yaml text as users write it, and the one line that must come back.
KNOWN_FAILURES = {
    "max_chars 0 never finished": ("segment:\n  max_chars: 0\n",
                                   "segment.max_chars: 0 is out of range, allowed: an integer ≥ 1"),
    "negative max_chars": ("segment:\n  max_chars: -400\n",
                           "segment.max_chars: -400 is out of range, allowed: an integer ≥ 1"),
    "metric that is never computed": ("select_model:\n  metric: accuracy\n",
                                      "select_model.metric: 'accuracy' is not a known choice, allowed: one of "
                                      "macro_f1, micro_f1, top1_accuracy"),
    "untrained BERT": ("bert:\n  epochs: -1\n", "bert.epochs: -1 is out of range, allowed: a number > 0"),
    "dev share above 1": ("split:\n  dev_share: 1.5\n",
                          "split.dev_share: 1.5 is out of range, allowed: a number ≥ 0 and < 1"),
    "shares leave nothing to train on": ("split:\n  dev_share: 0.6\n  test_share: 0.5\n",
                                         "split.dev_share: dev_share + test_share = 1.1 leaves nothing to train on"),
    "size as a word": ("ingest:\n  max_file_mb: big\n",
                       "ingest.max_file_mb: 'big' is not a number, allowed: a number > 0"),
    "workers as a word": ("ingest:\n  workers: two\n",
                          "ingest.workers: 'two' is not an integer, allowed: an integer ≥ 0"),
    "a folder where a list belongs": ("refresh:\n  watch_dirs: some/dir\n",
                                      "refresh.watch_dirs: 'some/dir' is a single string, not a list, allowed: a "
                                      "list of strings, e.g. [some/dir]"),
    "trends.period": ("trends:\n  period: week\n",
                      "trends.period: 'week' is not a known choice, allowed: one of year, quarter, month"),
    "to_simplified": ("ingest:\n  to_simplified: sometimes\n",
                      "ingest.to_simplified: 'sometimes' is not a known choice, allowed: one of auto, always, never"),
    "YAML yes is no mode": ("ingest:\n  to_simplified: yes\n",
                            "ingest.to_simplified: true is not a string (quote it), allowed: one of auto, always, "
                            "never"),
    "bert.precision": ("bert:\n  precision: fp8\n",
                       "bert.precision: 'fp8' is not a known choice, allowed: one of auto, bf16, fp16, fp32"),
    "execution.engine": ("execution:\n  engine: dask\n",
                         "execution.engine: 'dask' is not a known choice, allowed: one of local, ray"),
    "predict.model typo": ("predict:\n  model: bets\n",
                           "predict.model: 'bets' is neither a method nor a path, allowed: one of best, dictionary, "
                           "baseline, bert, or a model directory such as ./my_model"),
    "chart format": ("charts:\n  formats: [png, gif]\n",
                     "charts.formats[1]: 'gif' is not a known choice, allowed: one of png, svg, pdf"),
    "nested key": ("bert:\n  scratch:\n    hidden_size: 100\n    num_heads: 3\n",
                   "bert.scratch.hidden_size: 100 is not a multiple of num_heads (3)"),
    "key typo": ("segment:\n  max_char: 300\n", "segment.max_char: unknown key (did you mean max_chars?)"),
    "section typo": ("segement:\n  max_chars: 300\n", "segement: unknown section (did you mean segment?)"),
    "non-http URL": ("refresh:\n  urls: ['file:///etc/passwd']\n",
                     "refresh.urls[0]: 'file:///etc/passwd' is not an http(s) URL, allowed: http:// or https:// URLs"),
    "empty value": ("report:\n  title:\n", "report.title: has no value, allowed: a non-empty string"),
}


@pytest.mark.parametrize("name", KNOWN_FAILURES)
def test_a_bad_value_is_one_line_naming_section_key_and_what_is_allowed(name, tmp_path, capsys):
    text, expected = KNOWN_FAILURES[name]
    code, lines = run_cli(tmp_path, text, "report", capsys=capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'params.yaml'}:{expected}"), lines


def test_every_section_is_checked_before_any_command_does_work(tmp_path):
    """A bad value for a late stage stops the first one: `ingest` writes nothing, and a fresh interpreter
    prints one line and no traceback."""
    (tmp_path / "raw").mkdir()
    write_params(tmp_path, {"ingest": {"raw_dir": "raw", "out_dir": "out"}, "bert": {"epochs": -1}})
    result = subprocess.run([sys.executable, "-m", "pipeline", "ingest"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip() == "params.yaml:bert.epochs: -1 is out of range, allowed: a number > 0"
    assert not (tmp_path / "out").exists()


def test_broken_yaml_is_one_line_with_its_position(tmp_path, capsys):
    code, lines = run_cli(tmp_path, "segment:\n  max_chars: [400\n", "report", capsys=capsys)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"{tmp_path / 'params.yaml'}: is not valid YAML at line 3")


def test_the_repositorys_params_yaml_is_valid_and_every_section_is_known():
    settings = config.validate_params(ROOT / "params.yaml")
    assert set(settings) == set(config.SECTIONS)
    assert set(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))) <= set(config.SECTIONS)


def test_numbers_written_as_yaml_strings_are_coerced(tmp_path):
    path = write_params(tmp_path, "bert:\n  learning_rate: 3e-5\nbaseline:\n  max_features: 2e5\n  C: '0.5'\n")
    settings = config.validate_params(path)
    assert yaml.safe_load("x: 3e-5")["x"] == "3e-5"  # why the coercion exists
    assert settings["bert"].learning_rate == pytest.approx(3e-5) and type(settings["bert"].learning_rate) is float
    assert settings["baseline"].max_features == 200_000 and type(settings["baseline"].max_features) is int
    assert settings["baseline"].C == 0.5


@pytest.mark.parametrize("value, expected", [
    (2.5, "2.5 is not an integer"), (True, "true is not an integer"), ("1e400", "'1e400' is not an integer"),
])
def test_integers_take_whole_numbers_only(value, expected):
    with pytest.raises(SettingsError, match=f"^workers: {expected}"):
        build_settings(IngestSettings, {"workers": value})


def test_a_string_is_never_taken_as_a_list_of_its_characters():
    with pytest.raises(SettingsError, match=r"^records\.text: 'body' is a single string, not a list"):
        build_settings(IngestSettings, {"records": {"text": "body"}})
    with pytest.raises(SettingsError, match=r"^records\.title\[1\]: 3 is not a string \(quote it\)"):
        build_settings(IngestSettings, {"records": {"title": ["title", 3]}})
    assert build_settings(IngestSettings, {"records": {"text": ["正文"]}}).records.text == ["正文"]


def test_direct_construction_is_checked_too():
    from pipeline.classifiers.settings import BertSettings
    from pipeline.labels.split import SplitSettings

    with pytest.raises(SettingsError, match=r"^dev_share: 1.5 is out of range"):
        SplitSettings(dev_share=1.5)
    with pytest.raises(SettingsError, match=r"^stride: 300 leaves no new text"):
        BertSettings(max_length=256, stride=300)
    assert config.SegmentSettings(max_chars="500").max_chars == 500


def test_a_field_added_later_is_checked_from_its_annotation_and_metadata():
    """What another stage's author does: subclass or extend a settings class with plain dataclass fields."""

    @dataclass
    class Extended(IngestSettings):
        retries: int = field(default=3, metadata={"ge": 0, "le": 10})
        mirrors: list[str] = field(default_factory=list)
        mode: str = setting("fast", choices=("fast", "thorough"))

    with pytest.raises(SettingsError, match=r"^params.yaml:ingest\.retries: 11 is out of range, allowed: an "
                                            r"integer ≥ 0 and ≤ 10$"):
        build_settings(Extended, {"retries": 11}, "params.yaml:ingest")
    with pytest.raises(SettingsError, match=r"^mirrors: 'a/b' is a single string"):
        build_settings(Extended, {"mirrors": "a/b"})
    with pytest.raises(SettingsError, match=r"^mode: 'slow' is not a known choice, allowed: one of fast, thorough"):
        Extended(mode="slow")
    assert build_settings(Extended, {"retries": "4", "mirrors": ["x"]}).retries == 4


def test_a_dataclass_that_is_no_settings_subclass_is_checked_when_loaded():
    @dataclass
    class Plain:
        limit: float = field(default=1.0, metadata={"gt": 0})

    with pytest.raises(SettingsError, match=r"^plain\.limit: 0 is out of range, allowed: a number > 0$"):
        build_settings(Plain, {"limit": 0}, "plain")


def _field_types(cls, seen=None) -> typing.Iterator[tuple[str, object]]:
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        hint = hints[spec.name]
        yield f"{cls.__name__}.{spec.name}", hint
        for inner in [hint, *typing.get_args(hint)]:
            if dataclasses.is_dataclass(inner):
                yield from _field_types(inner)


@pytest.mark.parametrize("section", sorted(config.SECTIONS))
def test_every_field_of_every_section_has_a_type_the_checks_know(section):
    """An annotation the checks do not know (a tuple, Any …) would let any value through: refuse it here."""
    cls = config.settings_class(section)
    assert issubclass(cls, Settings)
    known = {bool, int, float, str, type(None)}
    for name, hint in _field_types(cls):
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (list, dict, typing.Union, types.UnionType):
            assert all(a in known or dataclasses.is_dataclass(a) for a in args), name
        else:
            assert hint in known or dataclasses.is_dataclass(hint), name
    cls()  # the defaults obey the rules
