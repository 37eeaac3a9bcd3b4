"""The annotation round trip: export a sample for coding, import coders' work, measure agreement, adjudicate.

- export: a sample shared fairly across likely themes (from the weak labels, 'none' included): round-robin
  over themes, and within a theme over its years; within a (theme, year) cell in seeded random order, or,
  given a model, the most uncertain paragraphs first. Written as Label Studio tasks JSON with the
  suggestions as pre-annotations, and as CSV (UTF-8 with BOM, so Excel shows the Chinese).
  `export --audit` (pipeline/labels/audit.py) draws a random sample to check the model instead.
- import: Label Studio JSON exports, CSVs (UTF-8, or GB18030 as Excel saves them in China) and JSONL →
  data/annotations/<annotator>.jsonl. A bad record rejects the whole import with a message naming the
  file and line; nothing is half-written.
- agreement: one coder per file of a folder; per theme each coder's prevalence, and per pair of coders
  n, raw agreement and Cohen's kappa with a bootstrap interval; Krippendorff's alpha over all coders →
  reports/agreement.json and .md. Kappa and alpha are NA (null) where no coder's marks vary (a theme
  nobody used): there is nothing to agree on, which is not perfect agreement.
- adjudicate: paragraphs that two or more coders coded alike go straight to gold; the others go to an
  adjudication sheet (the codings side by side) whose filled-in decisions, given back with
  --decisions, go to gold too.
"""
from __future__ import annotations

import csv
import itertools
import json
import logging
from collections import defaultdict, deque
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.codebook import Codebook, load_codebook
from pipeline.config import Settings, setting
from pipeline.exports import write_csv
from pipeline.ingest.readers import Rejected, decode_bytes
from pipeline.labels.gold import targets
from pipeline.text import HEADING_SEPARATOR, frame_contexts

log = logging.getLogger("pipeline.annotate")
CSV_COLUMNS = ["para_id", "title", "year", "heading", "text", "themes", "primary", "note", "annotator"]
STORED_FIELDS = ("para_id", "text", "themes", "primary", "note", "annotator")  # of data/annotations/<annotator>.jsonl
NO_THEME = {"none", "无"}  # what an adjudicator writes for "no theme"; an empty cell means "not decided yet"
INTERVAL_MIN_DEFINED = 0.95  # an interval needs the statistic defined in this share of the resamples


class AnnotationError(ValueError):
    pass


@dataclass
class AnnotateSettings(Settings):
    paragraphs: str = "data/interim/paragraphs.parquet"
    weak_labels: str = "data/processed/weak_labels.parquet"
    predictions: str = "data/processed/paragraph_themes.parquet"  # what an audit sample is stratified by
    annotations_dir: str = "data/annotations"
    export_dir: str = "data/annotations/export"
    gold_dir: str = "data/annotations/gold"
    audit_dir: str = "data/annotations/audit"
    sample_size: int = setting(200, ge=1)
    seed: int = setting(7, ge=0)
    bootstrap: int = setting(1000, ge=0)  # resamples for agreement and audit intervals; 0: none


# --- export ----------------------------------------------------------------------------------------

def fair_sample(themes, years, n: int, seed: int, priority: np.ndarray | None = None) -> list[int]:
    """Positions of up to `n` rows shared fairly: each round gives every theme one row until `n` is
    reached or the theme runs out; a theme's rows cycle through its years. Within a (theme, year) cell,
    highest `priority` first, ties and no priority in seeded random order. Theme and year orders are
    seeded shuffles too, so a last, partial round favours no theme by its name."""
    themes = [str(t) for t in themes]
    years = ["" for _ in themes] if years is None else ["?" if pd.isna(y) else str(y) for y in years]
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(len(themes))
    rank = np.zeros(len(themes)) if priority is None else -np.asarray(priority, dtype=float)
    cells: dict[tuple[str, str], deque] = defaultdict(deque)
    for position in np.lexsort((tiebreak, rank)):
        cells[(themes[position], years[position])].append(int(position))
    theme_order = sorted({theme for theme, _ in cells})
    theme_order = [theme_order[i] for i in rng.permutation(len(theme_order))]
    year_cycles = {}
    for theme in theme_order:
        theme_years = sorted(year for t, year in cells if t == theme)
        year_cycles[theme] = deque(theme_years[i] for i in rng.permutation(len(theme_years)))
    picked: list[int] = []
    while len(picked) < n and any(year_cycles.values()):
        for theme in theme_order:
            cycle = year_cycles[theme]
            if len(picked) == n or not cycle:
                continue
            year = cycle.popleft()
            cell = cells[(theme, year)]
            picked.append(cell.popleft())
            if cell:
                cycle.append(year)
    return picked


def sample_size(n: int | None, settings: AnnotateSettings) -> int:
    if n is not None and n < 1:
        raise AnnotationError(f"--n {n}: a sample needs 1 or more paragraphs")
    return n or settings.sample_size


def body_paragraphs(path: str) -> pd.DataFrame:
    paragraphs = pd.read_parquet(path)
    return paragraphs[paragraphs["kind"] == "body"].reset_index(drop=True)


def _likely_themes(paragraphs: pd.DataFrame, weak: pd.DataFrame, themes: list[str]) -> np.ndarray:
    silver = weak.set_index("para_id").reindex(paragraphs["para_id"])[themes].fillna(0).to_numpy()
    return np.where(silver.max(axis=1) >= 0.5, np.array(themes)[silver.argmax(axis=1)], "none")


def _plain(value) -> str:
    return "" if value is None or (np.ndim(value) == 0 and pd.isna(value)) else str(value)


def write_tasks(chosen: pd.DataFrame, out_dir: Path, suggested: list[list[str]] | None = None,
                model_version: str | None = None) -> dict[str, Path]:
    """Label Studio tasks (with `suggested` themes as pre-annotations when given) and the same as CSV."""
    tasks, rows = [], []
    for k, para in enumerate(chosen.itertuples(index=False)):
        year = _plain(para.year)
        data = {"para_id": para.para_id, "title": _plain(para.title), "year": int(float(year)) if year else "",
                "heading": HEADING_SEPARATOR.join(para.heading_path) if para.heading_path is not None else "",
                "text": para.text}
        task = {"data": data}
        row = {**data, "themes": "", "primary": "", "note": "", "annotator": ""}
        if suggested is not None:
            task["predictions"] = [{"model_version": model_version, "result": [
                {"from_name": "themes", "to_name": "text", "type": "choices", "value": {"choices": suggested[k]}}]}]
            row["suggested_themes"] = ";".join(suggested[k])
        tasks.append(task)
        rows.append(row)
    columns = CSV_COLUMNS + (["suggested_themes"] if suggested is not None else [])
    io.write_json(out_dir / "tasks.json", tasks)
    write_csv(pd.DataFrame(rows, columns=columns), out_dir / "tasks.csv")
    return {"json": out_dir / "tasks.json", "csv": out_dir / "tasks.csv"}


def export(settings: AnnotateSettings, n: int | None = None, model_dir: str | None = None) -> dict[str, Path]:
    codebook = load_codebook()
    paragraphs = body_paragraphs(settings.paragraphs)
    weak = pd.read_parquet(settings.weak_labels)
    suggestions = weak.set_index("para_id").reindex(paragraphs["para_id"])[codebook.ids].fillna(0).to_numpy()
    thresholds, version, uncertainty = np.full(len(codebook.ids), 0.5), "weak_label", None
    if model_dir:
        from pipeline.classifiers.base import load_model

        model = load_model(model_dir, codebook)
        suggestions, thresholds, version = model.theme_scores(paragraphs["text"].tolist(), frame_contexts(paragraphs)), model.thresholds, model_dir
        # closest to a threshold = least sure; the paragraph's most uncertain theme counts
        uncertainty = 1 - np.abs(suggestions - thresholds[None, :]).min(axis=1)
    picked = fair_sample(_likely_themes(paragraphs, weak, codebook.ids), paragraphs["year"],
                         sample_size(n, settings), settings.seed, uncertainty)
    suggested = [[t for t, s, thr in zip(codebook.ids, suggestions[i], thresholds) if s >= thr] for i in picked]
    paths = write_tasks(paragraphs.iloc[picked], Path(settings.export_dir), suggested, version)
    log.info("annotate export: %d paragraphs → %s and %s", len(picked), paths["json"], paths["csv"])
    return paths


# --- reading coders' files -------------------------------------------------------------------------

def read_text_file(path: Path) -> str:
    """A coder's file as text: UTF-8 (with or without BOM), else its detected encoding — GB18030 when
    Excel in China saved it, UTF-16 for Excel's "Unicode text"."""
    try:
        text, encoding = decode_bytes(path.read_bytes())
    except Rejected as err:
        raise AnnotationError(f"{path}: {err}; save it as UTF-8 (in Excel: CSV UTF-8)") from None
    if encoding != "utf-8":
        log.info("%s: read as %s", path, encoding)
    return text


def csv_records(path: Path, required: set[str]):
    """(line, row) of a CSV or Excel tab-separated file, blank rows skipped; errors name the file and line."""
    text = read_text_file(path)
    header = text.split("\n", 1)[0]
    reader = csv.DictReader(StringIO(text, newline=""), delimiter="\t" if "\t" in header and "," not in header else ",")
    try:
        reader.fieldnames = [(name or "").strip() for name in reader.fieldnames or []]
        missing = required - set(reader.fieldnames)
        if missing:
            raise AnnotationError(f"{path}:1: missing column(s) {sorted(missing)}; the header has {reader.fieldnames}")
        for row in reader:
            if any((value or "").strip() for value in row.values() if isinstance(value, str)):
                yield reader.line_num, {k: (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
    except csv.Error as err:
        raise AnnotationError(f"{path}:{reader.line_num}: not readable as CSV ({err})") from None


def _split_ids(value) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value or "").strip()
    if text.startswith("["):
        return [str(v) for v in json.loads(text)]
    return [part.strip() for part in text.replace("，", ";").replace(",", ";").split(";") if part.strip()]


def parse_label_studio(path: Path, default_annotator: str | None) -> list[dict]:
    """Rows from a Label Studio JSON export: one per (task, annotation), cancelled annotations skipped."""
    try:
        tasks = json.loads(read_text_file(path))
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(tasks, list):
        raise AnnotationError(f"{path}: expected a list of tasks (Label Studio 'JSON' export)")
    rows = []
    for i, task in enumerate(tasks):
        where = f"{path} task #{i + 1}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "para_id" not in data:
            raise AnnotationError(f"{where}: no data.para_id (tasks must come from `annotate export`)")
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            who = annotation.get("completed_by")
            if isinstance(who, dict):
                who = who.get("email") or who.get("id")
            values = {r.get("from_name"): r.get("value", {}) for r in annotation.get("result") or []}
            themes = values.get("themes", {}).get("choices", [])
            primary = (values.get("primary", {}).get("choices") or [None])[0]
            note = " ".join(values.get("note", {}).get("text", []) or [])
            rows.append({"para_id": data["para_id"], "text": data.get("text"), "themes": themes,
                         "primary": primary, "note": note, "where": where,
                         "annotator": default_annotator or f"ls-{who}"})
    return rows


def parse_csv(path: Path, default_annotator: str | None, fallback_annotator: str | None = None) -> list[dict]:
    rows = []
    for lineno, row in csv_records(path, {"para_id", "themes"}):
        where = f"{path}:{lineno}"
        annotator = default_annotator or row.get("annotator") or fallback_annotator
        if not annotator:
            raise AnnotationError(f"{where}: no annotator (fill the column or pass --annotator)")
        if not row["para_id"]:
            raise AnnotationError(f"{where}: no para_id (keep the column as exported)")
        rows.append({"para_id": row["para_id"], "text": row.get("text") or None, "themes": _split_ids(row["themes"]),
                     "primary": row.get("primary") or None, "note": row.get("note", ""), "where": where,
                     "annotator": annotator})
    return rows


def parse_jsonl(path: Path, default_annotator: str | None) -> list[dict]:
    """Rows of a coder's JSON lines ({para_id, themes, primary, …}); the annotator is the row's, else the
    file's name."""
    rows = []
    try:
        for lineno, obj in io.read_jsonl(path):
            where = f"{path}:{lineno}"
            para_id = obj.get("para_id") or obj.get("id")
            if not para_id:
                raise AnnotationError(f"{where}: no para_id")
            themes = obj.get("themes")
            if not isinstance(themes, list):
                raise AnnotationError(f"{where}: 'themes' must be a list of theme ids, e.g. [\"ideology\"]")
            rows.append({"para_id": str(para_id), "text": obj.get("text"), "themes": [str(t) for t in themes],
                         "primary": obj.get("primary") or None, "note": obj.get("note") or "", "where": where,
                         "annotator": default_annotator or obj.get("annotator") or obj.get("coder") or path.stem})
    except AnnotationError:
        raise
    except ValueError as err:  # io.read_jsonl names the file and line
        raise AnnotationError(str(err)) from None
    return rows


def read_codings(path: Path, annotator: str | None = None, fallback_annotator: str | None = None) -> list[dict]:
    """A coder's file by its suffix: .csv (or Excel tab-separated .txt/.tsv), .jsonl, else Label Studio JSON."""
    if not path.is_file():
        raise AnnotationError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return parse_csv(path, annotator, fallback_annotator)
    if suffix == ".jsonl":
        return parse_jsonl(path, annotator)
    return parse_label_studio(path, annotator)


def validate(rows: list[dict], codebook: Codebook, para_ids: set[str] | None = None,
             para_ids_from: str = "the current paragraphs.parquet") -> None:
    for row in rows:
        unknown = sorted(set(row["themes"]) - set(codebook.ids))
        if unknown:
            raise AnnotationError(f"{row['where']}: unknown theme id(s) {unknown}; allowed: {codebook.ids}")
        if row["primary"] and row["primary"] not in codebook.ids:
            raise AnnotationError(f"{row['where']}: unknown primary theme '{row['primary']}'")
        if row["primary"] and row["primary"] not in row["themes"]:
            raise AnnotationError(f"{row['where']}: primary '{row['primary']}' is not among its themes")
        if para_ids is not None and row["para_id"] not in para_ids:
            raise AnnotationError(f"{row['where']}: unknown paragraph id '{row['para_id']}' (not in {para_ids_from})")


def _coding(row: dict) -> tuple[frozenset, str | None]:
    return frozenset(row["themes"]), row["primary"]


def codings_by_paragraph(rows: list[dict]) -> dict[str, dict]:
    """One coder's rows by para_id; the same paragraph coded twice, differently, is an error."""
    out: dict[str, dict] = {}
    for row in rows:
        earlier = out.get(row["para_id"])
        if earlier is not None and _coding(earlier) != _coding(row):
            raise AnnotationError(f"{row['where']}: paragraph '{row['para_id']}' is coded again, differently "
                                  f"from {earlier['where']}; keep one coding per paragraph in a coder's file")
        out[row["para_id"]] = row
    return out


def import_files(paths: list[str], settings: AnnotateSettings, annotator: str | None = None,
                 audit: bool = False) -> dict[str, int]:
    """Import every file or nothing; returns rows written per annotator. `audit`: codings of the audit
    sample, kept apart (data/annotations/audit/codings/) so they never train the model they judge."""
    codebook = load_codebook()
    rows = [row for name in paths for row in read_codings(Path(name), annotator)]
    if audit:
        from pipeline.labels.audit import load_sample

        sample = load_sample(settings.audit_dir)
        validate(rows, codebook, {p["para_id"] for p in sample["paragraphs"]},
                 f"the audit sample {Path(settings.audit_dir) / 'sample.json'}")
        target_dir = Path(settings.audit_dir) / "codings"
    else:
        validate(rows, codebook, set(pd.read_parquet(settings.paragraphs, columns=["para_id"])["para_id"]))
        target_dir = Path(settings.annotations_dir)
    written = {}
    for who, group in itertools.groupby(sorted(rows, key=lambda r: r["annotator"]), key=lambda r: r["annotator"]):
        target = target_dir / f"{who}.jsonl"
        existing = {r["para_id"]: r for _, r in io.read_jsonl(target)} if target.exists() else {}
        for row in group:  # a later coding of the same paragraph replaces the earlier one
            existing[row["para_id"]] = {k: row[k] for k in STORED_FIELDS}
        written[who] = io.write_jsonl(target, [existing[k] for k in sorted(existing)])
    log.info("annotate import: %d codings from %d file(s) → %s", len(rows), len(paths), written)
    return written


# --- agreement -------------------------------------------------------------------------------------

def resample_counts(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, len(groups)) multiplicities of a bootstrap that resamples rows with replacement within
    each group (one group: a plain bootstrap), so every resample keeps each group's size."""
    groups = np.asarray(groups)
    counts = np.zeros((n_boot, len(groups)))
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        draws = members[rng.integers(0, len(members), (n_boot, len(members)))]
        np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1)
    return counts


def interval(draws: np.ndarray) -> list[float] | None:
    """95% percentile interval of bootstrap draws (NaN: undefined in that resample), or None when the
    statistic is undefined in too many resamples to bound it (a theme too rare in the sample)."""
    draws = np.asarray(draws, dtype=float)
    defined = draws[~np.isnan(draws)]
    if not len(draws) or len(defined) < INTERVAL_MIN_DEFINED * len(draws):
        return None
    return [round(float(np.percentile(defined, 2.5)), 4), round(float(np.percentile(defined, 97.5)), 4)]


def cohen_kappa(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cohen's kappa of two coders' 0/1 marks, per row of `weights` (paragraph multiplicities); NaN where
    chance agreement is 1 (neither coder's marks vary), where kappa is undefined."""
    x, y = x.astype(float), y.astype(float)
    total = weights.sum(axis=-1)
    share_x, share_y = weights @ x / total, weights @ y / total
    observed = weights @ (x == y).astype(float) / total
    chance = share_x * share_y + (1 - share_x) * (1 - share_y)
    undefined = chance > 1 - 1e-12
    return np.where(undefined, np.nan, (observed - chance) / np.where(undefined, 1.0, 1 - chance))


def _round(value) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 4)


def load_coders(directory: Path, codebook: Codebook) -> dict[str, dict[str, dict]]:
    """Coder (file name) → para_id → coding, for every *.jsonl in `directory`."""
    coders = {}
    for path in sorted(directory.glob("*.jsonl")):
        rows = parse_jsonl(path, None)
        validate(rows, codebook)
        coders[path.stem] = codings_by_paragraph(rows)
    return coders


def _theme_agreement(marks: np.ndarray, coded: np.ndarray, names: list[str], pairs: dict, with_interval: bool) -> dict:
    """One theme: each coder's prevalence, each pair's n / marks / raw agreement / kappa (+ interval), and
    alpha over all coders. `marks` and `coded` are coders × paragraphs."""
    import krippendorff

    entry = {"prevalence": {c: _round(marks[i, coded[i]].mean()) for i, c in enumerate(names)},
             "krippendorff_alpha": None, "pairs": {}}
    for (a, b), (both, resamples) in pairs.items():
        x, y = marks[a, both], marks[b, both]
        entry["pairs"][f"{names[a]}~{names[b]}"] = {
            "n": len(both), "positives": {names[a]: int(x.sum()), names[b]: int(y.sum())},
            "raw_agreement": _round(np.mean(x == y)),
            "cohen_kappa": _round(cohen_kappa(x, y, np.ones(len(both)))),
            "cohen_kappa_ci": interval(cohen_kappa(x, y, resamples)) if with_interval else None}
    shared = coded.sum(axis=0) >= 2
    values = np.where(coded[:, shared], marks[:, shared], np.nan)
    if len(np.unique(values[~np.isnan(values)])) > 1:
        entry["krippendorff_alpha"] = _round(krippendorff.alpha(reliability_data=values,
                                                                level_of_measurement="nominal"))
    return entry


def agreement(settings: AnnotateSettings, output: str = "reports/agreement.json",
              annotations_dir: str | None = None) -> dict:
    """Agreement among the coders of `annotations_dir` (default annotate.annotations_dir), one per file;
    needs only their files. Writes `output` and the same as a Markdown table beside it (.md)."""
    directory = Path(annotations_dir or settings.annotations_dir)
    codebook = load_codebook()
    coders = load_coders(directory, codebook)
    if len(coders) < 2:
        raise AnnotationError(f"agreement needs two or more coders' files in {directory}/*.jsonl (one per "
                              f"coder); found {sorted(coders)}")
    names = sorted(coders)
    units = sorted(set().union(*coders.values()))
    coded = np.array([[u in coders[c] for u in units] for c in names])
    marks = np.stack([targets(pd.Series([coders[c][u]["themes"] if u in coders[c] else [] for u in units]),
                              codebook.ids) >= 0.5 for c in names])  # coders × units × themes
    rng = np.random.default_rng(settings.seed)
    pairs = {}
    for a, b in itertools.combinations(range(len(names)), 2):
        both = np.flatnonzero(coded[a] & coded[b])
        if len(both):
            pairs[(a, b)] = (both, resample_counts(np.zeros(len(both)), settings.bootstrap, rng))
    result = {"directory": str(directory), "annotators": names, "paragraphs": len(units),
              "bootstrap": {"resamples": settings.bootstrap, "seed": settings.seed, "unit": "paragraph",
                            "interval": "95% percentile"},
              "pairs": {}, "per_theme": {}}
    for (a, b), (both, _) in pairs.items():
        same = [_coding(coders[names[a]][units[u]]) == _coding(coders[names[b]][units[u]]) for u in both]
        same_primary = [coders[names[a]][units[u]]["primary"] == coders[names[b]][units[u]]["primary"] for u in both]
        result["pairs"][f"{names[a]}~{names[b]}"] = {"n": len(both), "identical_codings": _round(np.mean(same)),
                                                      "same_primary": _round(np.mean(same_primary))}
    for j, theme in enumerate(codebook.ids):
        result["per_theme"][theme] = _theme_agreement(marks[:, :, j], coded, names, pairs, settings.bootstrap > 0)
    io.write_json(output, result)
    io.write_text(Path(output).with_suffix(".md"), agreement_markdown(result))
    return result


def _na(value, digits: int = 3) -> str:
    return "NA" if value is None else f"{value:.{digits}f}"


def agreement_markdown(result: dict) -> str:
    boot = result["bootstrap"]
    lines = [
        "# Inter-coder agreement", "",
        f"Coders (one per file in `{result['directory']}`): {', '.join(result['annotators'])}; "
        f"{result['paragraphs']} paragraphs coded.", "",
        "Per theme and pair of coders: n paragraphs both coded; how many each marked with the theme; raw "
        "agreement (share marked alike); Cohen's κ with a 95% bootstrap interval "
        f"({boot['resamples']} resamples of paragraphs, seed {boot['seed']}); Krippendorff's α (nominal) "
        "over all coders. **NA**: no coder's marks vary (nobody used the theme), so agreement beyond "
        "chance is undefined — not perfect. No interval (—): the theme is too rare in the sample to bound κ.",
        "", "| theme | coders | n | marked (each coder) | raw agreement | κ | κ 95% CI | α |",
        "|---|---|---:|---|---:|---:|---|---:|"]
    for theme, entry in result["per_theme"].items():
        for pair, row in entry["pairs"].items():
            ci = row["cohen_kappa_ci"]
            marked = " / ".join(f"{count} ({count / max(row['n'], 1):.1%})" for count in row["positives"].values())
            lines.append(f"| {theme} | {pair} | {row['n']} | {marked} | {_na(row['raw_agreement'])} | "
                         f"{_na(row['cohen_kappa'])} | {'—' if ci is None else f'[{ci[0]:.3f}, {ci[1]:.3f}]'} | "
                         f"{_na(entry['krippendorff_alpha'])} |")
    lines += ["", "| coders | n | identical codings (themes and primary) | same primary |", "|---|---:|---:|---:|"]
    lines += [f"| {pair} | {row['n']} | {_na(row['identical_codings'])} | {_na(row['same_primary'])} |"
              for pair, row in result["pairs"].items()]
    return "\n".join(lines) + "\n"


# --- adjudication ----------------------------------------------------------------------------------

def load_decisions(path: Path, codebook: Codebook, para_ids: set[str]) -> dict[str, dict]:
    """An adjudicator's decisions (CSV/JSONL: para_id, themes, primary, optional note) by para_id. In a
    CSV an empty `themes` cell is a paragraph not decided yet and `none` one with no theme; in JSONL a
    row is a decision and [] means no theme."""
    if path.suffix.lower() == ".jsonl":
        rows = parse_jsonl(path, "adjudicated")
    else:
        rows = []
        for lineno, row in csv_records(path, {"para_id", "themes"}):
            if not row["themes"]:
                continue
            themes = [] if row["themes"].lower() in NO_THEME else _split_ids(row["themes"])
            rows.append({"para_id": row["para_id"], "themes": themes, "primary": row.get("primary") or None,
                         "note": row.get("note", ""), "where": f"{path}:{lineno}", "annotator": "adjudicated"})
    validate(rows, codebook, para_ids, "the coders' files")
    return codings_by_paragraph(rows)


def _texts(paragraphs_path: str, para_ids: list[str]) -> dict[str, str]:
    """The current text of each paragraph, where paragraphs.parquet exists and holds it."""
    if not Path(paragraphs_path).is_file():
        return {}
    frame = pd.read_parquet(paragraphs_path, columns=["para_id", "text"])
    return dict(frame[frame["para_id"].isin(para_ids)].itertuples(index=False, name=None))


def _side_by_side(codings: dict[str, dict]) -> dict[str, str]:
    """Each coder's themes and primary as columns of the adjudication sheet."""
    columns = {}
    for coder, row in codings.items():
        columns[f"{coder}_themes"] = ";".join(sorted(row["themes"]))
        columns[f"{coder}_primary"] = row["primary"] or ""
    return columns


def adjudicate(paths: list[str], settings: AnnotateSettings, name: str = "adjudicated",
               decisions: str | None = None, audit: bool = False) -> dict:
    """Gold from two or more coders' files (one coder per file): rows coded alike by every coder who
    coded them (two at least) are written as they are; an adjudicator's decision wins over the codings.
    The rest — disagreements and paragraphs only one coder coded — go to an adjudication sheet with the
    codings side by side; fill its `themes`/`primary` and pass it back as `decisions`. Gold goes to
    gold_dir/<name>.jsonl (audit: audit_dir/gold/<name>.jsonl), rewritten from the inputs each run."""
    if len(paths) < 2:
        raise AnnotationError(f"adjudicate needs two or more coders' files (one per coder); got {paths}")
    codebook = load_codebook()
    coders: dict[str, dict[str, dict]] = {}
    for name_ in paths:
        path = Path(name_)
        rows = read_codings(path, fallback_annotator=path.stem)
        validate(rows, codebook)
        coders[path.stem if path.stem not in coders else str(path)] = codings_by_paragraph(rows)
    units = sorted(set().union(*coders.values()))
    decided = load_decisions(Path(decisions), codebook, set(units)) if decisions else {}
    texts = _texts(settings.paragraphs, units)
    base = Path(settings.audit_dir) if audit else Path(settings.annotations_dir)
    gold_path = (base / "gold" if audit else Path(settings.gold_dir)) / f"{name}.jsonl"
    if gold_path.is_file():
        dropped = {r.get("para_id") for _, r in io.read_jsonl(gold_path)} - set(units)
        if dropped:
            raise AnnotationError(f"{gold_path}: holds {len(dropped)} paragraph(s) none of these files codes "
                                  f"(e.g. {sorted(dropped)[0]}); rewriting it would lose them — pass another --name")
    gold, sheet, without_text = [], [], []
    counts = {"agreed": 0, "decided": 0, "pending": 0}
    for unit in units:
        codings = {c: rows[unit] for c, rows in coders.items() if unit in rows}
        agreed = len(codings) >= 2 and len({_coding(r) for r in codings.values()}) == 1
        first = next(iter(codings.values()))
        text = texts.get(unit) or next((r["text"] for r in codings.values() if r.get("text")), None)
        decision = decided.get(unit)
        if not agreed:
            sheet.append({"para_id": unit, "text": text or "",
                          "reason": "disagree" if len(codings) >= 2 else "one coder only",
                          **_side_by_side(codings),
                          "themes": "" if decision is None else (";".join(decision["themes"]) or "none"),
                          "primary": "" if decision is None else (decision["primary"] or ""),
                          "note": "" if decision is None else decision["note"]})
        if decision is None and not agreed:
            counts["pending"] += 1
            continue
        if not text:
            without_text.append(unit)
            continue
        chosen, coder = (decision, "adjudicated") if decision else (
            first, "+".join(sorted({r["annotator"] for r in codings.values()})))
        counts["decided" if decision else "agreed"] += 1
        gold.append({"para_id": unit, "text": text, "themes": sorted(chosen["themes"]),
                     "primary": chosen["primary"], "coder": coder, "note": chosen.get("note") or ""})
    if gold or gold_path.is_file():  # no empty gold file where there was none: the split stage reads them all
        io.write_jsonl(gold_path, gold)
    sheet_path = None
    if sheet:
        coder_columns = [f"{c}_{field}" for c in coders for field in ("themes", "primary")]
        sheet_path = base / "adjudication" / f"{name}.csv"
        write_csv(pd.DataFrame(sheet).reindex(
            columns=["para_id", "reason", "text", *coder_columns, "themes", "primary", "note"]).fillna(""), sheet_path)
    for unit in without_text:
        log.warning("adjudicate: %s has no text (not in %s and no coder's file gives it); left out of gold",
                    unit, settings.paragraphs)
    summary = {"gold": str(gold_path), "written": len(gold), **counts, "without_text": without_text,
               "sheet": str(sheet_path) if sheet_path else None, "coders": list(coders)}
    log.info("annotate adjudicate: %s", summary)
    return summary
