"""The codebook: load, validate (errors name the theme and field), hash."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

THEME_IDS = ("political", "ideology", "organization", "work_style", "discipline", "institutions",
             "supervision", "anti_corruption", "grassroots")
DEFAULT_CODEBOOK = "pipeline/resources/codebook.yaml"


class CodebookError(ValueError):
    pass


@dataclass(frozen=True)
class Theme:
    id: str
    name_zh: str
    definition: str
    include: str
    exclude: str
    keywords: dict[str, float]
    patterns: dict[str, float]
    heading_cues: list[str]
    exclude_patterns: list[str]
    examples: list[str]
    compiled_patterns: list[tuple[re.Pattern, float]] = field(compare=False, default_factory=list)
    compiled_excludes: list[re.Pattern] = field(compare=False, default_factory=list)

    @property
    def label(self) -> str:
        """'政治建设 (political)': how charts and reports name the theme."""
        return f"{self.name_zh} ({self.id})"


@dataclass(frozen=True)
class Codebook:
    themes: list[Theme]
    hash: str
    path: str

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.themes]

    def __getitem__(self, theme_id: str) -> Theme:
        for theme in self.themes:
            if theme.id == theme_id:
                return theme
        raise KeyError(theme_id)

    def check_ids(self, ids, where: str) -> None:
        unknown = sorted(set(ids) - set(self.ids))
        if unknown:
            raise CodebookError(f"{where}: unknown theme id(s) {unknown}; the codebook has {self.ids}")


def _weights(value, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CodebookError(f"{where}: expected a mapping of cue → weight")
    out = {}
    for cue, weight in value.items():
        if not isinstance(weight, (int, float)) or not 0 < weight <= 1:
            raise CodebookError(f"{where}['{cue}']: weight must be a number in (0, 1], got {weight!r}")
        out[str(cue)] = float(weight)
    return out


def _compile(pattern: str, where: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise CodebookError(f"{where}: bad regular expression {pattern!r}: {err}") from None


def parse_codebook(text: str, where: str) -> Codebook:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CodebookError(f"{where}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("themes"), list):
        raise CodebookError(f"{where}: expected a top-level 'themes' list")
    themes = []
    for i, raw in enumerate(data["themes"]):
        tid = raw.get("id") if isinstance(raw, dict) else None
        at = f"{where}: themes[{i}]" + (f" ({tid})" if tid else "")
        if not isinstance(raw, dict):
            raise CodebookError(f"{at}: expected a mapping")
        for required in ("id", "name_zh", "definition", "keywords", "examples"):
            if not raw.get(required):
                raise CodebookError(f"{at}: missing or empty field '{required}'")
        examples = raw["examples"]
        if not isinstance(examples, list) or not 2 <= len(examples) <= 3:
            raise CodebookError(f"{at}.examples: give 2–3 example sentences")
        patterns = _weights(raw.get("patterns"), f"{at}.patterns")
        excludes = list(raw.get("exclude_patterns") or [])
        themes.append(Theme(
            id=tid, name_zh=raw["name_zh"], definition=" ".join(str(raw["definition"]).split()),
            include=str(raw.get("include") or ""), exclude=str(raw.get("exclude") or ""),
            keywords=_weights(raw["keywords"], f"{at}.keywords"), patterns=patterns,
            heading_cues=[str(c) for c in raw.get("heading_cues") or []], exclude_patterns=excludes,
            examples=[str(e) for e in examples],
            compiled_patterns=[(_compile(p, f"{at}.patterns"), w) for p, w in patterns.items()],
            compiled_excludes=[_compile(p, f"{at}.exclude_patterns") for p in excludes]))
    ids = [t.id for t in themes]
    if len(set(ids)) != len(ids):
        raise CodebookError(f"{where}: duplicate theme ids in {ids}")
    if sorted(ids) != sorted(THEME_IDS):
        raise CodebookError(f"{where}: themes must be exactly {list(THEME_IDS)}; "
                            f"missing {sorted(set(THEME_IDS) - set(ids))}, unknown {sorted(set(ids) - set(THEME_IDS))}")
    order = {tid: i for i, tid in enumerate(THEME_IDS)}
    themes.sort(key=lambda t: order[t.id])
    canonical = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return Codebook(themes, hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16], where)


def load_codebook(path: str | Path | None = None) -> Codebook:
    """The codebook at `path`, or the packaged default (pipeline/resources/codebook.yaml)."""
    if path and Path(path).exists():
        return parse_codebook(Path(path).read_text(encoding="utf-8"), str(path))
    if path and str(path) != DEFAULT_CODEBOOK:
        raise CodebookError(f"codebook '{path}' not found: fix the path in params.yaml")
    text = resources.files("pipeline.resources").joinpath("codebook.yaml").read_text("utf-8")
    return parse_codebook(text, DEFAULT_CODEBOOK)
