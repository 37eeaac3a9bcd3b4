"""Site junk removal driven by a YAML rule file (pipeline/resources/junk_rules.yaml by default)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class JunkRule:
    id: str
    description: str
    pattern: re.Pattern
    max_chars: int
    site: str | None = None

    def matches(self, line: str) -> bool:
        return len(line) <= self.max_chars and self.pattern.fullmatch(line) is not None


@dataclass
class JunkReport:
    removed: list[tuple[str, str]]  # (rule id, line)
    site: str | None


class JunkRules:
    """An ordered set of whole-line junk rules; `clean` keeps every line no rule matches."""

    def __init__(self, rules: list[JunkRule]):
        self.rules = rules
        self.longest = max((rule.max_chars for rule in rules), default=-1)  # longer lines are never junk
        self.any_rule = _any_of(rules)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "JunkRules":
        if path:
            text = Path(path).read_text(encoding="utf-8")
            where = str(path)
        else:
            text = resources.files("pipeline.resources").joinpath("junk_rules.yaml").read_text("utf-8")
            where = "pipeline/resources/junk_rules.yaml"
        data = yaml.safe_load(text) or {}
        rules = []
        for i, raw in enumerate(data.get("rules") or []):
            missing = {"id", "pattern", "max_chars"} - set(raw)
            if missing:
                raise ValueError(f"{where}: rule #{i + 1} lacks {sorted(missing)}")
            try:
                pattern = re.compile(raw["pattern"], re.IGNORECASE)
            except re.error as err:
                raise ValueError(f"{where}: rule '{raw['id']}' has a bad pattern: {err}") from None
            rules.append(JunkRule(raw["id"], raw.get("description", ""), pattern,
                                  int(raw["max_chars"]), raw.get("site")))
        return cls(rules)

    def match(self, line: str) -> JunkRule | None:
        if len(line) > self.longest:  # most lines of a document: no rule to try
            return None
        if self.any_rule is not None and not self.any_rule.fullmatch(line):  # most short lines: one regex
            return None
        for rule in self.rules:
            if rule.matches(line):
                return rule
        return None

    def _site(self, line: str) -> str | None:
        return next((r.site for r in self.rules if r.site and r.pattern.fullmatch(line)), None)

    def clean(self, lines: list[str]) -> tuple[list[str], JunkReport]:
        kept, removed, site = [], [], None
        for line in lines:
            rule = self.match(line)
            if rule is None:
                kept.append(line)
                continue
            removed.append((rule.id, line))
            site = site or self._site(line)
        return kept, JunkReport(removed, site)


def _any_of(rules: list[JunkRule]) -> re.Pattern | None:
    """One pattern that fullmatches where some rule's does, to skip the rules one by one on the lines
    no rule matches; None where patterns cannot be joined (a back-reference would change meaning,
    group names can clash)."""
    texts = [rule.pattern.pattern for rule in rules]
    if not texts or any(re.search(r"\\\d|\(\?P=", text) for text in texts):
        return None
    try:
        return re.compile("|".join(f"(?:{text})" for text in texts), re.IGNORECASE)
    except re.error:
        return None
