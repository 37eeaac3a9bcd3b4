"""params.yaml → one typed settings object per stage.

Each stage reads only its own section (as DVC's `params: [section]` declares); unknown keys are an
error that names the key, so a typo in params.yaml never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PARAMS_FILE = "params.yaml"


@dataclass
class RecordFields:
    """Field names tried, in order, for documents stored as .jsonl/.csv records."""

    text: list[str] = field(default_factory=lambda: ["text", "content", "body", "正文"])
    title: list[str] = field(default_factory=lambda: ["title", "标题"])
    date: list[str] = field(default_factory=lambda: ["date", "pub_date", "published", "日期"])
    year: list[str] = field(default_factory=lambda: ["year", "年份"])
    source: list[str] = field(default_factory=lambda: ["source", "site", "来源"])
    doc_type: list[str] = field(default_factory=lambda: ["doc_type", "genre", "类型"])
    id: list[str] = field(default_factory=lambda: ["id", "doc_id"])


@dataclass
class DedupSettings:
    near_threshold: float = 0.8  # estimated Jaccard of character shingles
    num_perm: int = 128
    shingle_chars: int = 5
    sample_mod: int = 8  # MinHash sees every 8th shingle (by hash value): 8× faster, same estimate


@dataclass
class IngestSettings:
    raw_dir: str = "data/raw"
    out_dir: str = "data/interim"
    junk_rules: str = ""  # empty: the packaged pipeline/resources/junk_rules.yaml
    to_simplified: str = "auto"  # auto | always | never (OpenCC t2s)
    min_chinese_chars: int = 30
    max_file_mb: float = 64.0
    max_docx_uncompressed_mb: float = 200.0
    metadata_csv: str = "metadata.csv"  # sidecar file name looked up in each folder
    records: RecordFields = field(default_factory=RecordFields)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    workers: int = 1


@dataclass
class SegmentSettings:
    max_chars: int = 400  # longer paragraphs are split at sentence ends
    min_chars: int = 15  # shorter fragments are merged into a neighbour
    heading_max_chars: int = 60  # a whole line this short with no sentence end may be a heading
    inline_heading_max_chars: int = 32  # a heading run into its body text is cut at most here
    run_on_line_chars: int = 300  # lines longer than this are searched for inline headings
    workers: int = 1  # local processes segmenting documents in parallel (same output)


def build_settings(cls, data: dict | None, where: str):
    """Instantiate dataclass `cls` from a dict, recursing into nested dataclasses."""
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build_settings(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def stage_settings(section: str, cls, params_path: str | Path = PARAMS_FILE):
    """The typed settings of one stage, from its section of params.yaml (defaults where absent)."""
    return build_settings(cls, load_params(params_path).get(section), f"{params_path}:{section}")
