"""params.yaml → one typed settings object per stage, checked before any work starts.

Each stage reads only its own section (as DVC's `params: [section]` declares) into a settings dataclass
that derives from `Settings`. Constructing one checks every field: its value is coerced to the
annotated type (a number written as a string, e.g. `3e-5`, which YAML reads as text, becomes a
float; a single string where a list is expected is an error, never a list of characters), then held
to the rules in the field's metadata (`setting(…)` or `field(metadata=…)`): `ge`, `gt`, `le`, `lt`,
`choices` (for a list: of each item) and `nonempty`. Checks that span fields go in the class's
`__post_init__` after `super().__post_init__()`, raising `SettingsError`. A field added later needs
nothing but its annotation and rules. Unknown keys are an error naming the key, so a typo never
silently falls back to a default.

`validate_params` checks every section of params.yaml at once (`python -m pipeline` does this before
any command), so a bad value in a late stage's section stops `dvc repro` at its first stage, not
hours later. Every error is one line: `params.yaml:<section>.<key>: <what is wrong>, allowed: <what is>`.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import math
import operator
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PARAMS_FILE = "params.yaml"
SECTIONS = {  # params.yaml section → its settings class; a new section must be added here
    "ingest": "pipeline.config:IngestSettings",
    "segment": "pipeline.config:SegmentSettings",
    "weak_label": "pipeline.labels.weak_label:WeakLabelSettings",
    "split": "pipeline.labels.split:SplitSettings",
    "dictionary": "pipeline.classifiers.settings:DictionarySettings",
    "baseline": "pipeline.classifiers.settings:BaselineSettings",
    "bert": "pipeline.classifiers.settings:BertSettings",
    "pretrain": "pipeline.classifiers.settings:PretrainSettings",
    "distill": "pipeline.classifiers.settings:DistillSettings",
    "evaluate": "pipeline.evaluate:EvaluateSettings",
    "select_model": "pipeline.select_model:SelectSettings",
    "predict": "pipeline.predict:PredictSettings",
    "annotate": "pipeline.labels.annotate:AnnotateSettings",
    "trends": "pipeline.trends:TrendsSettings",
    "charts": "pipeline.charts:ChartsSettings",
    "report": "pipeline.report:ReportSettings",
    "execution": "pipeline.engines:ExecutionSettings",
    "refresh": "pipeline.refresh:RefreshSettings",
    "formulations": "pipeline.formulations:FormulationsSettings",
    "export": "pipeline.exports:ExportSettings",
}


class SettingsError(ValueError):
    """A value params.yaml may not hold; `str()` is the one line shown to the user."""

    def __init__(self, key: str, problem: str, allowed: str = ""):
        super().__init__(f"{key}: {problem}" + (f", allowed: {allowed}" if allowed else ""))
        self.key, self.problem, self.allowed = key, problem, allowed

    def within(self, where: str) -> SettingsError:
        """The same error, its key prefixed by the section (or field) that holds it."""
        return SettingsError(_join(where, self.key), self.problem, self.allowed) if where else self


def setting(default, *, ge=None, gt=None, le=None, lt=None, choices=None, nonempty: bool = False):
    """A dataclass field with the rules its values are held to (a list default is copied per instance)."""
    rules = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices).items() if v is not None}
    if nonempty:
        rules["nonempty"] = True
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=rules)
    return field(default=default, metadata=rules)


@dataclass
class Settings:
    """Base of every settings dataclass: construction coerces and checks each field (module docstring)."""

    def __post_init__(self):
        hints = _type_hints(type(self))
        for spec in dataclasses.fields(self):
            value = check_value(getattr(self, spec.name), hints[spec.name], spec.metadata, spec.name)
            setattr(self, spec.name, value)


@dataclass
class RecordFields(Settings):
    """Field names tried, in order, for documents stored as .jsonl/.csv records."""

    text: list[str] = field(default_factory=lambda: ["text", "content", "body", "正文"])
    title: list[str] = field(default_factory=lambda: ["title", "标题"])
    date: list[str] = field(default_factory=lambda: ["date", "pub_date", "published", "日期"])
    year: list[str] = field(default_factory=lambda: ["year", "年份"])
    source: list[str] = field(default_factory=lambda: ["source", "site", "来源"])
    doc_type: list[str] = field(default_factory=lambda: ["doc_type", "genre", "类型"])
    id: list[str] = field(default_factory=lambda: ["id", "doc_id"])
    url: list[str] = field(default_factory=lambda: ["url", "link", "链接"])
    # any other field of a record is kept in the document's `extra` column


@dataclass
class DedupSettings(Settings):
    near_threshold: float = setting(0.8, gt=0, le=1)  # estimated Jaccard of character shingles
    num_perm: int = setting(128, ge=2)
    shingle_chars: int = setting(5, ge=1)
    sample_mod: int = setting(8, ge=1)  # MinHash sees every 8th shingle (by hash value): 8× faster, same estimate


SOURCE_KINDS = ("feed", "json_records", "headlines_csv")
DOCUMENT_FIELDS = ("text", "title", "date", "year", "source", "doc_type", "url")  # other fields: kept as extra


@dataclass
class SourceLayout(Settings):
    """An archive layout (`ingest.sources`): files whose path ends like `glob` are read as `kind`.
    The first matching entry wins; files matching none are read by their suffix. docs/sources.md
    explains every key with worked examples."""

    glob: str = setting("", nonempty=True)  # matched against the end of each path; ** spans folders
    kind: str = setting("", choices=SOURCE_KINDS)  # feed (RSS, Atom) | json_records (.json, .jsonl) | headlines_csv
    fields: dict[str, str] = setting({})  # document field → where its value is ("a.b|c": the first non-empty)
    records_path: str = ""  # json_records: dotted path to each .json file's record list ("" = the file)
    columns: list[str] = setting([])  # headlines_csv without header: the names of columns 0, 1, …
    header: bool = False  # headlines_csv: the first row names the columns
    title_pattern: str = ""  # regex on the title: named groups become fields; group `title` is the title
    body_format: str = setting("auto", choices=("auto", "html", "text"))  # auto: HTML if it holds tags
    body_xpath: str = ""  # HTML bodies: XPath of the element(s) holding the article ("" or no match: all)
    placeholders: list[str] = setting([])  # bodies that stand for "no text": such records are rejected
    source: str = ""  # a fixed source for every document ("" = the record's own)
    doc_type: str = ""  # a fixed doc_type ("" = the record's own, else from the title)
    min_chinese_chars: int = setting(-1, ge=-1)  # -1: ingest.min_chinese_chars (headlines are shorter)
    dedup: str = setting("near", choices=("near", "exact", "same_date"))  # same_date: duplicates within a date
    per: str = setting("row", choices=("row", "date"))  # headlines_csv: a document per row, or per date (a day's list)

    def __post_init__(self):
        super().__post_init__()
        empty = sorted(name for name, where in self.fields.items() if not where.strip())
        if empty:
            raise SettingsError(f"fields.{empty[0]}", "is empty", "where the value is, e.g. video_detail.title|title")
        if self.kind != "feed" and "text" not in self.fields:
            raise SettingsError("fields", f"has no `text` (kind {self.kind} needs it)",
                                "a mapping with text: where each record's text is, e.g. text: video_detail.content")
        unnamed = sorted(set(self.fields.values()) - set(self.columns))
        if self.kind == "headlines_csv" and not self.header and unnamed:
            raise SettingsError("fields", f"names column(s) {unnamed} that `columns` does not list",
                                f"one of {self.columns} (columns names a header-less file's columns in order)")
        if self.per == "date" and (self.kind != "headlines_csv" or "date" not in self.fields):
            raise SettingsError("per", f"date needs kind headlines_csv and a `date` field (kind {self.kind}, "
                                       f"fields {sorted(self.fields)})", "row, or date with those")
        try:
            re.compile(self.title_pattern)
        except re.error as err:
            raise SettingsError("title_pattern", f"is not a regular expression ({err})",
                                r"a Python regex, e.g. '^\[(?P<page>[^\]]+)\]\s*(?P<title>.+)$'") from None
        if self.body_xpath:
            from lxml import etree

            try:
                etree.XPath(self.body_xpath)
            except etree.XPathSyntaxError as err:
                raise SettingsError("body_xpath", f"is not an XPath ({err})",
                                    "an XPath 1.0 expression, e.g. //div[@id='ozoom']") from None


@dataclass
class IngestSettings(Settings):
    raw_dir: str = setting("data/raw", nonempty=True)
    out_dir: str = setting("data/interim", nonempty=True)
    junk_rules: str = ""  # empty: the packaged pipeline/resources/junk_rules.yaml
    to_simplified: str = setting("auto", choices=("auto", "always", "never"))  # auto | always | never (OpenCC t2s)
    min_chinese_chars: int = setting(30, ge=0)
    max_file_mb: float = setting(64.0, gt=0)
    max_docx_uncompressed_mb: float = setting(200.0, gt=0)
    max_docx_ratio: float = setting(100.0, gt=1)  # a large docx member unpacking more than this is a zip bomb
    max_seconds_per_file: float = setting(120.0, gt=0)  # reading a file longer rejects it (HTML, docx, PDF, layouts)
    metadata_csv: str = setting("metadata.csv", nonempty=True)  # sidecar file name looked up in each folder
    records: RecordFields = field(default_factory=RecordFields)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    workers: int = setting(0, ge=0)  # processes reading files in parallel; 0: one per core from 16 MB (same output)
    sources: list[SourceLayout] = field(default_factory=list)  # archive layouts (feeds, JSON dumps, headline CSVs)


@dataclass
class SegmentSettings(Settings):
    max_chars: int = setting(400, ge=1)  # longer paragraphs are split at sentence ends
    min_chars: int = setting(15, ge=0)  # shorter fragments are merged into a neighbour
    heading_max_chars: int = setting(60, ge=1)  # a whole line this short with no sentence end may be a heading
    inline_heading_max_chars: int = setting(32, ge=1)  # a heading run into its body text is cut at most here
    run_on_line_chars: int = setting(300, ge=1)  # lines longer than this are searched for inline headings
    outline: bool = True  # false: every line is a body paragraph (a day's list of headlines has no outline)
    workers: int = setting(1, ge=0)  # processes segmenting documents in parallel; 0: one per core (same output)

    def __post_init__(self):
        super().__post_init__()
        if self.min_chars > self.max_chars:
            raise SettingsError("min_chars", f"{self.min_chars} is above max_chars ({self.max_chars})",
                                "at most max_chars: fragments are merged up to max_chars")


def build_settings(cls, data: dict | None, where: str = ""):
    """`cls` built from a params mapping (None: every default); a SettingsError names `where`.key."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise SettingsError(where, f"{_show(data)} is not a mapping",
                            f"the keys of {cls.__name__}, one `key: value` per line under it")
    specs = {spec.name: spec for spec in dataclasses.fields(cls) if spec.init}
    hints = _type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in specs:
            raise SettingsError(_join(where, str(key)), "unknown key" + _did_you_mean(str(key), specs),
                                "one of " + ", ".join(specs))
        try:  # here too, so a dataclass that is no Settings subclass is checked as well
            values[key] = check_value(value, hints[key], specs[key].metadata, key)
        except SettingsError as err:
            raise err.within(where) from None
    try:
        return cls(**values)
    except SettingsError as err:
        raise err.within(where) from None
    except ValueError as err:  # a cross-field check written before SettingsError: still one line, located
        raise (SettingsError(where, str(err)) if where else err) from None


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            params = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SettingsError(str(path), f"is not valid YAML{at} ({getattr(err, 'problem', None) or err})",
                            "sections of `key: value` lines, e.g. `segment:` then `  max_chars: 400`") from None
    if params is not None and not isinstance(params, dict):
        raise SettingsError(str(path), f"holds a {type(params).__name__}, not sections",
                            "a mapping of section names (ingest:, segment:, …) to their keys")
    return params or {}


def stage_settings(section: str, cls, params_path: str | Path = PARAMS_FILE):
    """The typed settings of one stage, from its section of params.yaml (defaults where absent)."""
    return build_settings(cls, load_params(params_path).get(section), f"{params_path}:{section}")


def validate_params(params_path: str | Path = PARAMS_FILE, sections: typing.Iterable[str] | None = None
                    ) -> dict[str, Settings]:
    """Sections of params.yaml built and checked (absent ones at their defaults): section → settings.
    Every section unless `sections` names the ones a command reads; unknown section names are always
    an error."""
    params = load_params(params_path)
    for section in params:
        if section not in SECTIONS:
            raise SettingsError(f"{params_path}:{section}", "unknown section" + _did_you_mean(str(section), SECTIONS),
                                "one of " + ", ".join(SECTIONS))
    return {section: build_settings(settings_class(section), params.get(section), f"{params_path}:{section}")
            for section in (SECTIONS if sections is None else sections)}


def settings_class(section: str) -> type:
    module, _, name = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module), name)


# --- coercion and rules ----------------------------------------------------------------------------

BOUNDS = {"gt": (operator.gt, ">"), "ge": (operator.ge, "≥"), "lt": (operator.lt, "<"), "le": (operator.le, "≤")}
NOUNS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@functools.cache
def _type_hints(cls) -> dict:
    return typing.get_type_hints(cls)


def check_value(value, hint, rules: typing.Mapping, key: str):
    """`value` coerced to the type `hint` and held to `rules`; SettingsError naming `key` otherwise."""
    coerced = _coerce(value, hint, rules, key)
    problem = _broken_rule(coerced, rules)
    if problem:
        raise SettingsError(key, f"{_show(value)} {problem}", _describe(hint, rules))
    return coerced


def _coerce(value, hint, rules: typing.Mapping, key: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    allowed = _describe(hint, rules)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        for option in options[:-1]:
            try:
                return _coerce(value, option, rules, key)
            except SettingsError:
                continue
        return _coerce(value, options[-1], rules, key)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build_settings(hint, value, key)  # None: its defaults
    if value is None:
        none = ' (write "" for none)' if hint is str and not rules.get("nonempty") else ""
        raise SettingsError(key, "has no value", allowed + none)
    if origin is list:
        if isinstance(value, str):  # a string is never taken as a list of its characters
            raise SettingsError(key, f"{_show(value)} is a single string, not a list", f"{allowed}, e.g. [{value}]")
        if not isinstance(value, (list, tuple)):
            raise SettingsError(key, f"{_show(value)} is not a list", allowed)
        item_rules = {k: v for k, v in rules.items() if k != "nonempty"}
        item = args[0] if args else typing.Any
        return [check_value(v, item, item_rules, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(key, f"{_show(value)} is not a mapping", allowed)
        key_type, value_type = args or (typing.Any, typing.Any)
        return {_coerce(k, key_type, {}, key): _coerce(v, value_type, {}, f"{key}.{k}") for k, v in value.items()}
    if hint not in NOUNS:  # Any, or a type these rules do not know: taken as written
        return value
    coerced = _as_type(value, hint)
    if coerced is None:
        quote = " (quote it)" if hint is str and isinstance(value, (int, float)) else ""
        raise SettingsError(key, f"{_show(value)} is not {NOUNS[hint]}{quote}", allowed)
    return coerced


def _as_type(value, hint):
    """`value` as a bool, int, float or str, or None when it is not one. Numbers may be written as
    strings (YAML reads `3e-5` as text); an integer may be written as a whole float (`1e5`)."""
    if hint is bool:
        return value if isinstance(value, bool) else None
    if hint is str:
        return os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            return None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    if hint is int:
        return int(number) if isinstance(number, int) or number.is_integer() else None
    return float(number) if math.isfinite(number) else None


def _broken_rule(value, rules: typing.Mapping) -> str | None:
    """What is wrong with a well-typed value under `rules` (items of a list were checked one by one)."""
    if rules.get("nonempty") and isinstance(value, (str, list, dict)) and not value:
        return "is empty"
    if "choices" in rules and not isinstance(value, list) and value not in rules["choices"]:
        return "is not a known choice"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not all(compare(value, rules[rule]) for rule, (compare, _) in BOUNDS.items() if rule in rules):
            return "is out of range"
    return None


def _describe(hint, rules: typing.Mapping) -> str:
    """What a field takes, in words: 'an integer ≥ 1', 'one of auto, always, never', 'a list of strings'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg, rules) for arg in args if arg is not type(None)) + (
            ", or empty" if type(None) in args else "")
    choices = rules.get("choices")
    if origin is list:
        if choices:
            return "a list of one or more of " + ", ".join(map(str, choices))
        item = args[0] if args else None
        item = {str: "strings", int: "integers", float: "numbers"}.get(item) or (
            f"{item.__name__} mappings" if dataclasses.is_dataclass(item) else "values")
        return ("a non-empty list of " if rules.get("nonempty") else "a list of ") + item
    if choices:
        return "one of " + ", ".join(map(str, choices))
    if dataclasses.is_dataclass(hint):
        return f"a mapping of {hint.__name__} keys"
    if origin is dict:
        return "a mapping"
    noun = "a non-empty string" if hint is str and rules.get("nonempty") else NOUNS.get(hint, str(hint))
    bounds = [f"{sign} {rules[rule]}" for rule, (_, sign) in BOUNDS.items() if rule in rules]
    return " and ".join([noun + (" " + bounds[0] if bounds else ""), *bounds[1:]])


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _show(value) -> str:
    """A value as params.yaml spells it, for messages."""
    shown = ("true" if value else "false") if isinstance(value, bool) else "null" if value is None else repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "…"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
