"""The annotation round-trip: export a sample for coding, import coders' work, measure agreement.

- export: a sample stratified by (likely theme, year) — or, given a model, the most uncertain paragraphs
  of each stratum — as Label Studio tasks JSON with pre-annotations, and as CSV for spreadsheet coders.
- import: Label Studio JSON exports and CSVs from one or more annotators → data/annotations/<annotator>.jsonl.
  Unknown theme ids or paragraph ids reject the whole import with a message naming the record;
  nothing is half-written.
- agreement: Cohen's kappa (pairs of annotators) and Krippendorff's alpha (nominal, all annotators)
  per theme, on the paragraphs they both coded.
"""
from __future__ import annotations

import csv
import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import io
from pipeline.codebook import Codebook, load_codebook

log = logging.getLogger("pipeline.annotate")
CSV_COLUMNS = ["para_id", "title", "year", "heading", "text", "themes", "primary", "note", "annotator",
               "suggested_themes"]


class AnnotationError(ValueError):
    pass


@dataclass
class AnnotateSettings:
    paragraphs: str = "data/interim/paragraphs.parquet"
    weak_labels: str = "data/processed/weak_labels.parquet"
    annotations_dir: str = "data/annotations"
    export_dir: str = "data/annotations/export"
    sample_size: int = 200
    seed: int = 7


def _strata(paragraphs: pd.DataFrame, weak: pd.DataFrame, themes: list[str]) -> pd.Series:
    silver = weak.set_index("para_id").reindex(paragraphs["para_id"])[themes].fillna(0).to_numpy()
    likely = np.where(silver.max(axis=1) >= 0.5, np.array(themes)[silver.argmax(axis=1)], "none")
    return pd.Series(likely, index=paragraphs.index) + "|" + paragraphs["year"].astype("string").fillna("?")


def sample(paragraphs: pd.DataFrame, strata: pd.Series, n: int, seed: int,
           uncertainty: pd.Series | None = None) -> pd.DataFrame:
    """Round-robin over strata so every (theme, year) cell is represented before any gets a second
    paragraph; within a stratum, most uncertain first when `uncertainty` is given, else seeded random."""
    rng = np.random.default_rng(seed)
    order = pd.Series(rng.random(len(paragraphs)), index=paragraphs.index)
    if uncertainty is not None:
        order = -uncertainty.reindex(paragraphs.index)
    queues = {k: list(order[idx].sort_values(kind="stable").index)
              for k, idx in sorted(strata.groupby(strata).groups.items())}
    picked = []
    while len(picked) < n and any(queues.values()):
        for key in list(queues):
            if queues[key] and len(picked) < n:
                picked.append(queues[key].pop(0))
    return paragraphs.loc[picked]


def export(settings: AnnotateSettings, n: int | None = None, model_dir: str | None = None) -> dict[str, Path]:
    codebook = load_codebook()
    paragraphs = pd.read_parquet(settings.paragraphs)
    paragraphs = paragraphs[paragraphs["kind"] == "body"].reset_index(drop=True)
    weak = pd.read_parquet(settings.weak_labels)
    suggestions = weak.set_index("para_id").reindex(paragraphs["para_id"])[codebook.ids].fillna(0).to_numpy()
    thresholds, version, uncertainty = np.full(len(codebook.ids), 0.5), "weak_label", None
    if model_dir:
        from pipeline.classifiers.base import load_model

        model = load_model(model_dir, codebook)
        suggestions, thresholds, version = model.predict_scores(paragraphs["text"].tolist()), model.thresholds, model_dir
        # closest to a threshold = least sure; the paragraph's most uncertain theme counts
        uncertainty = pd.Series(1 - np.abs(suggestions - thresholds[None, :]).min(axis=1), index=paragraphs.index)
    chosen = sample(paragraphs, _strata(paragraphs, weak, codebook.ids), n or settings.sample_size,
                    settings.seed, uncertainty)
    tasks, rows = [], []
    for i, para in zip(chosen.index, chosen.itertuples()):
        suggested = [t for t, s, thr in zip(codebook.ids, suggestions[i], thresholds) if s >= thr]
        heading = " > ".join(para.heading_path)
        data = {"para_id": para.para_id, "title": para.title or "", "year": "" if pd.isna(para.year) else int(para.year),
                "heading": heading, "text": para.text}
        tasks.append({"data": data, "predictions": [{"model_version": version, "result": [
            {"from_name": "themes", "to_name": "text", "type": "choices", "value": {"choices": suggested}}]}]})
        rows.append({**data, "themes": "", "primary": "", "note": "", "annotator": "",
                     "suggested_themes": ";".join(suggested)})
    out = Path(settings.export_dir)
    io.write_json(out / "tasks.json", tasks)
    io.write_csv(out / "tasks.csv", pd.DataFrame(rows, columns=CSV_COLUMNS))
    log.info("annotate export: %d paragraphs → %s/tasks.json and tasks.csv", len(tasks), out)
    return {"json": out / "tasks.json", "csv": out / "tasks.csv"}


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
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
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


def parse_csv(path: Path, default_annotator: str | None) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"para_id", "themes"} - set(reader.fieldnames or [])
        if missing:
            raise AnnotationError(f"{path}: missing column(s) {sorted(missing)}")
        rows = []
        for lineno, row in enumerate(reader, 2):
            annotator = default_annotator or (row.get("annotator") or "").strip()
            if not annotator:
                raise AnnotationError(f"{path}:{lineno}: no annotator (fill the column or pass --annotator)")
            rows.append({"para_id": row["para_id"].strip(), "text": row.get("text"),
                         "themes": _split_ids(row.get("themes")), "primary": (row.get("primary") or "").strip() or None,
                         "note": row.get("note") or "", "where": f"{path}:{lineno}", "annotator": annotator})
    return rows


def validate(rows: list[dict], codebook: Codebook, para_ids: set[str]) -> None:
    for row in rows:
        unknown = sorted(set(row["themes"]) - set(codebook.ids))
        if unknown:
            raise AnnotationError(f"{row['where']}: unknown theme id(s) {unknown}; allowed: {codebook.ids}")
        if row["primary"] and row["primary"] not in codebook.ids:
            raise AnnotationError(f"{row['where']}: unknown primary theme '{row['primary']}'")
        if row["primary"] and row["primary"] not in row["themes"]:
            raise AnnotationError(f"{row['where']}: primary '{row['primary']}' is not among its themes")
        if row["para_id"] not in para_ids:
            raise AnnotationError(f"{row['where']}: unknown paragraph id '{row['para_id']}' (not in the "
                                  "current paragraphs.parquet)")


def import_files(paths: list[str], settings: AnnotateSettings, annotator: str | None = None) -> dict[str, int]:
    """Import every file or nothing; returns rows written per annotator."""
    codebook = load_codebook()
    rows = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise AnnotationError(f"{path}: no such file")
        parser = parse_csv if path.suffix.lower() == ".csv" else parse_label_studio
        rows.extend(parser(path, annotator))
    para_ids = set(pd.read_parquet(settings.paragraphs, columns=["para_id"])["para_id"])
    validate(rows, codebook, para_ids)
    written = {}
    for who, group in itertools.groupby(sorted(rows, key=lambda r: r["annotator"]), key=lambda r: r["annotator"]):
        target = Path(settings.annotations_dir) / f"{who}.jsonl"
        existing = {r["para_id"]: r for _, r in io.read_jsonl(target)} if target.exists() else {}
        for row in group:  # a later coding of the same paragraph replaces the earlier one
            existing[row["para_id"]] = {k: row[k] for k in ("para_id", "text", "themes", "primary", "note", "annotator")}
        written[who] = io.write_jsonl(target, [existing[k] for k in sorted(existing)])
    log.info("annotate import: %d codings from %d file(s) → %s", len(rows), len(paths), written)
    return written


def agreement(settings: AnnotateSettings, output: str = "reports/agreement.json") -> dict:
    import krippendorff
    from sklearn.metrics import cohen_kappa_score

    codebook = load_codebook()
    coders = {}
    for path in sorted(Path(settings.annotations_dir).glob("*.jsonl")):
        coders[path.stem] = {r["para_id"]: set(r["themes"]) for _, r in io.read_jsonl(path)}
    if len(coders) < 2:
        raise AnnotationError(f"agreement needs two or more annotators in {settings.annotations_dir}/*.jsonl; "
                              f"found {sorted(coders)}")
    names = sorted(coders)
    units = sorted(set().union(*coders.values()))
    result = {"annotators": names, "paragraphs": len(units), "per_theme": {}}
    for theme in codebook.ids:
        matrix = np.array([[float(theme in coders[c][u]) if u in coders[c] else np.nan for u in units]
                           for c in names])
        pairs = {}
        for a, b in itertools.combinations(range(len(names)), 2):
            both = ~np.isnan(matrix[a]) & ~np.isnan(matrix[b])
            if both.sum() >= 2:
                kappa = cohen_kappa_score(matrix[a, both], matrix[b, both]) if len(
                    set(matrix[a, both]) | set(matrix[b, both])) > 1 else 1.0
                pairs[f"{names[a]}~{names[b]}"] = {"n": int(both.sum()), "cohen_kappa": round(float(kappa), 4)}
        values = matrix[:, (~np.isnan(matrix)).sum(axis=0) >= 2]
        alpha = None
        if values.size and len(np.unique(values[~np.isnan(values)])) > 1:
            alpha = round(float(krippendorff.alpha(reliability_data=values, level_of_measurement="nominal")), 4)
        elif values.size:
            alpha = 1.0
        result["per_theme"][theme] = {"krippendorff_alpha": alpha, "pairs": pairs}
    io.write_json(output, result)
    return result
