"""The unlabelled corpus for MLM pretraining (`scripts/build_pretrain_corpus.py`; build time only).

Reads the real political corpora where they lie (the government / congress report JSONL files, the
新闻联播 JSON archive, the People's Daily RSS archive, optionally the People's Daily headlines) and
writes documents as JSON lines `{"source", "date", "text"}` (paragraphs joined by newlines) to
`train.jsonl` and `heldout.jsonl`, plus `manifest.json` with what was kept and dropped.

* Never test or dev data: every document whose date `split_of_date` puts in the real coded data's dev
  or test split is dropped, whatever the source, so the encoder has never read a day (or a report
  year) the classifier is evaluated on. Dates are the ones the coded data carries: `YYYY-MM-DD` for
  news, the year for a yearly report. A news article the archive files under several days (one URL)
  goes where `split_of_documents` puts it, as in the coded data and `distill`: a held-out day anywhere
  drops every copy (documents on training dates wait until every URL's days are known).
* Deduplicated by paragraph: news repeats boilerplate and whole stories; each distinct paragraph is kept
  once (first occurrence in a stable order), and a document left empty is dropped.
* A held-out slice of documents (by a seeded hash) is written apart, for the MLM curves.

The texts belong to their publishers: the corpus is built where the data is and never shipped.
"""
from __future__ import annotations

import csv
import hashlib
import html
import json
import logging
import lzma
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import io
from pipeline.ingest.layouts import iso_date
from pipeline.labels.split import split_of_date, split_of_documents

log = logging.getLogger("pipeline.pretrain_corpus")

RSS_PLACEHOLDER = "无法提取正文内容"  # the archive's stand-in for a body it could not fetch
REPORT_FILES = ("gov_work_reports_1954-2025.jsonl", "cpc_congress_reports.jsonl",
                "cpc_congress_reports_early.jsonl")
REPORT_SOURCES = ("gov", "cpc")  # kept whole when a corpus is packed: the register the classifier is weakest on
_SPACE = re.compile(r"[\s\u3000\u00a0]+")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class CorpusSettings:
    corpora_dir: str = "../shared/corpora"  # the report JSONL files
    news_dir: str = "/tmp/corpora"  # the unpacked news archives (assets/, history/, src/)
    out_dir: str = "build/pretrain_corpus"
    headlines: bool = False  # People's Daily headlines 1946-2022, one document per day (short texts)
    min_paragraph_chars: int = 8
    heldout_share: float = 0.01  # of documents, for the held-out MLM curves
    # the real coded data's split (params.yaml split.real_dev_share / real_test_share / seed)
    dev_share: float = 0.15
    test_share: float = 0.2
    seed: int = 13


@dataclass
class Document:
    source: str
    date: str
    paragraphs: list[str]
    url: str = ""  # a news article's identity across the days an archive files it under


def clean(text: str) -> str:
    return _SPACE.sub(" ", html.unescape(text)).strip()


def html_paragraphs(markup: str) -> list[str]:
    """The body paragraphs of an article's HTML: the <p> elements of its article block (People's Daily's
    `div#ozoom`) when it has one, else all its <p> but the dateline (class "sec"); never styles or
    comments; the plain text's lines when it has no <p>. (An HTML parser moves a <p> out of an <h1>,
    so titles are left out by taking the article block, not by looking for heading ancestors.)"""
    from lxml import etree
    from lxml import html as lxml_html

    if not markup or not markup.strip():
        return []
    try:
        root = lxml_html.fragment_fromstring(markup, create_parent="div")
    except (etree.ParserError, ValueError):
        return []
    etree.strip_elements(root, "style", "script", etree.Comment, with_tail=False)
    article = root.find(".//div[@id='ozoom']")
    paragraphs = [p for p in (article if article is not None else root).iter("p") if p.get("class") != "sec"]
    texts = [p.text_content() for p in paragraphs] if paragraphs else root.text_content().splitlines()
    return [t for t in map(clean, texts) if t]


def read_reports(corpora_dir: Path) -> Iterator[Document]:
    for name in REPORT_FILES:
        path = corpora_dir / name
        if not path.is_file():
            log.warning("pretrain corpus: %s not found, skipped", path)
            continue
        for lineno, record in _json_lines(path):
            text, year = record.get("text"), record.get("year")
            if not isinstance(text, str) or not year:
                log.warning("%s:%d: no text or year, skipped", path, lineno)
                continue
            yield Document(name.split("_")[0], str(year), [clean(p) for p in text.split("\n\n")])


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) per line that is a JSON object; any other line is skipped with a warning
    naming it (one bad record must not lose the rest of the file)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                log.warning("%s:%d: not JSON (%s), skipped", path, lineno, err)
                continue
            if isinstance(record, dict):
                yield lineno, record
            else:
                log.warning("%s:%d: not a JSON object, skipped", path, lineno)


def read_xwlb(news_dir: Path) -> Iterator[Document]:
    """新闻联播: assets/YYYY/YYYYMMDD.json, one document per story, dated by its pubtime (as ingest dates it)."""
    for path in sorted(news_dir.glob("assets/*/*.json")):
        day = f"{path.stem[:4]}-{path.stem[4:6]}-{path.stem[6:8]}"
        try:
            stories = json.loads(path.read_text(encoding="utf-8")).get("videoList") or []
        except (OSError, ValueError, AttributeError) as err:
            log.warning("%s: unreadable (%s), skipped", path, err)
            continue
        for story in stories:
            detail = story.get("video_detail") if isinstance(story, dict) else None
            if isinstance(detail, dict) and isinstance(detail.get("content"), str):
                url, published = (_text(detail, "url") or _text(story, "video_url"),
                                  _text(detail, "pubtime")[:10] or _text(story, "pub_date")[:10])
                yield Document("xwlb", published if _ISO_DAY.fullmatch(published) else day,
                               html_paragraphs(detail["content"]), url)


def _text(record: dict, key: str) -> str:
    value = record.get(key)
    return value.strip() if isinstance(value, str) else ""


def read_rmrb_rss(news_dir: Path) -> Iterator[Document]:
    """People's Daily: history/rmrb_YYYY-MM-DD.xml, one document per RSS item, dated by its pubDate as
    ingest (and so the coded data) dates it: a day's file holds some items of the day before."""
    from lxml import etree

    for path in sorted(news_dir.glob("history/rmrb_*.xml")):
        day = path.stem.removeprefix("rmrb_")
        try:
            root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, recover=True))
        except (OSError, etree.XMLSyntaxError) as err:
            log.warning("%s: unreadable (%s), skipped", path, err)
            continue
        for item in root.iter("item"):
            body = item.findtext("description") or ""
            if RSS_PLACEHOLDER not in body:
                published = iso_date((item.findtext("pubDate") or "").strip() or None) or ""
                yield Document("rmrb", published if _ISO_DAY.fullmatch(published) else day, html_paragraphs(body),
                               (item.findtext("link") or "").strip())


def read_headlines(news_dir: Path) -> Iterator[Document]:
    """People's Daily headlines: src/assets/titles1/*.csv rows `title,YYYY-MM-DD,YYYY-MM`, one
    document per day."""
    for path in sorted(news_dir.glob("src/assets/titles1/*.csv")):
        by_day: dict[str, list[str]] = {}
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            for row in csv.reader(fh):
                if len(row) >= 2 and row[0].strip():
                    by_day.setdefault(row[1].strip(), []).append(clean(row[0]))
        for day in sorted(by_day):
            yield Document("headlines", day, by_day[day])


def _bucket(key: str, seed: int) -> float:
    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 16**8


def build(settings: CorpusSettings) -> dict:
    """Write train.jsonl, heldout.jsonl and manifest.json to `settings.out_dir`; return the manifest."""
    news = Path(settings.news_dir)
    sources = [read_reports(Path(settings.corpora_dir)), read_xwlb(news), read_rmrb_rss(news)]
    if settings.headlines:
        sources.append(read_headlines(news))
    counts: Counter = Counter({f"documents_dropped_also_on_a_{split}_date": 0 for split in ("dev", "test")})
    on_train_dates, urls, days = [], [], []
    for source in sources:
        for doc in source:
            if doc.url:
                urls.append(doc.url)
                days.append(doc.date)
            split = split_of_date(doc.date, settings.dev_share, settings.test_share, settings.seed)
            if split != "train":
                counts[f"documents_dropped_{split}_date"] += 1
            else:
                on_train_dates.append(doc)
    split_of_url = split_of_documents(urls, days, settings.dev_share, settings.test_share, settings.seed)
    seen: set[bytes] = set()
    kept = {"train": [], "heldout": []}
    for doc in on_train_dates:
        if split_of_url.get(doc.url, "train") != "train":  # the same article, filed on a held-out day too
            counts[f"documents_dropped_also_on_a_{split_of_url[doc.url]}_date"] += 1
            continue
        paragraphs = []
        for paragraph in doc.paragraphs:
            if len(paragraph) < settings.min_paragraph_chars:
                continue
            digest = hashlib.blake2b(paragraph.encode(), digest_size=16).digest()
            if digest in seen:
                counts["paragraphs_duplicate"] += 1
                continue
            seen.add(digest)
            paragraphs.append(paragraph)
        if not paragraphs:
            counts["documents_empty_or_duplicate"] += 1
            continue
        text = "\n".join(paragraphs)
        slice_ = "heldout" if _bucket(text, settings.seed) < settings.heldout_share else "train"
        kept[slice_].append({"source": doc.source, "date": doc.date, "text": text})
        counts[f"{slice_}_documents_{doc.source}"] += 1
        counts[f"{slice_}_chars_{doc.source}"] += len(text)
    out = Path(settings.out_dir)
    for slice_, rows in kept.items():
        io.write_jsonl(out / f"{slice_}.jsonl", rows)
    manifest = {"settings": settings.__dict__, **dict(sorted(counts.items()))}
    io.write_json(out / "manifest.json", manifest)
    log.info("pretrain corpus: %d train + %d held-out documents → %s", len(kept["train"]), len(kept["heldout"]), out)
    return manifest


def pack(corpus_dir: str | Path, out_dir: str | Path, max_bytes: int, seed: int = 0) -> dict:
    """Copy a built corpus to `out_dir` as xz-compressed JSON lines (`train.jsonl.xz`, `heldout.jsonl.xz`,
    which pretrain reads) of at most `max_bytes` together, for a machine the whole corpus cannot travel to
    (scripts/pack_for_device.py). The held-out slice and every report document are kept; news documents
    are drawn (seeded, corpus order kept) until the rest fits. The manifest gains a `packed` block."""
    src = Path(corpus_dir)
    heldout = lzma.compress((src / "heldout.jsonl").read_bytes())
    lines = [line for line in (src / "train.jsonl").read_bytes().splitlines(keepends=True) if line.strip()]
    documents = [(record["source"] in REPORT_SOURCES, len(record["text"])) for record in map(json.loads, lines)]
    is_report, sizes = np.array([d[0] for d in documents], dtype=bool), np.array([d[1] for d in documents])
    reports, news = np.flatnonzero(is_report), np.random.default_rng(seed).permutation(np.flatnonzero(~is_report))
    room, take = max_bytes - len(heldout), len(news)
    while True:
        kept = np.sort(np.concatenate([reports, news[:take]]))
        train = lzma.compress(b"".join(lines[i] for i in kept))
        if len(train) <= room:
            break
        if take == 0:
            raise ValueError(f"{src}: the held-out slice and the reports alone take {len(heldout) + len(train):,} "
                             f"bytes packed, over the {max_bytes:,} allowed")
        take = int(take * 0.98 * max(room, 0) / len(train))  # the packed size is about proportional to what is kept
    characters, characters_kept = int(sizes.sum()), int(sizes[kept].sum())
    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    manifest["packed"] = {"max_bytes": max_bytes, "bytes": len(train) + len(heldout), "seed": seed,
                          "train_documents": len(kept), "train_documents_of": len(lines),
                          "train_chars": characters_kept, "train_chars_of": characters,
                          "news_share": round(take / max(1, len(news)), 4)}
    with io.replaced_dir(out_dir) as tmp:
        io.write_bytes(tmp / "train.jsonl.xz", train)
        io.write_bytes(tmp / "heldout.jsonl.xz", heldout)
        io.write_json(tmp / "manifest.json", manifest)
    log.info("packed corpus: %d of %d training documents (%.0f%% of the characters), %.1f MB → %s", len(kept),
             len(lines), 100 * characters_kept / max(1, characters), manifest["packed"]["bytes"] / 1e6, out_dir)
    return manifest
