"""Feed files (`ingest.sources` kind `feed`): RSS 2.0, RSS 1.0 and Atom; every item or entry a document.

Feeds are untrusted, so the XML parser expands no entities, loads no DTD, opens no network connection
and keeps libxml2's size limits (no huge_tree). A damaged or truncated file still gives every item
that parsed before the damage (and those after it that lxml's recovery finds whole); the damaged item
are rejected, and the file gets a warning saying it was only partly read.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from pipeline.config import IngestSettings, SourceLayout
from pipeline.ingest.layouts import DocumentMaker
from pipeline.ingest.readers import RawDocument, ReadWarning, Rejected, RejectedRecord

ITEM_TAGS = {"item", "entry"}  # RSS 2.0 / 1.0 item, Atom entry, in any namespace
FEED_TAGS = {"channel", "feed"}  # whose <title> names the feed
# Document field → the item's child elements tried in turn (local names, any namespace): full content
# (content:encoded, Atom content) before summaries.
FEED_FIELDS = {
    "title": "title", "url": "link", "date": "pubDate|published|updated|date|issued|created",
    "text": "encoded|content|description|summary",
}
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)""")
SAFE_XML = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False,
            "remove_comments": True, "remove_pis": True}


def _local(tag) -> str | None:
    """'{http://www.w3.org/2005/Atom}entry' → 'entry'; None for comments and entity references."""
    return etree.QName(tag).localname if isinstance(tag, str) else None


def declared_encoding(path: Path) -> str:
    """The encoding an XML file declares (what lxml decodes it by); UTF-8 when it declares none."""
    with open(path, "rb") as fh:
        head = fh.read(256)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    found = _DECLARED_ENCODING.match(head.removeprefix(b"\xef\xbb\xbf"))
    return found.group(1).decode("ascii").lower() if found else "utf-8"


def _text(element) -> str:
    return "".join(element.itertext()).strip()


def _link(children: list) -> str | None:
    """RSS <link>text</link>, or Atom's <link href> for the entry itself (rel alternate or none)."""
    for child in children:
        if child.get("href") is not None and child.get("rel", "alternate") == "alternate":
            return child.get("href").strip() or None
    return next((_text(c) for c in children if _text(c)), None)


def _body(children: list) -> str | None:
    """The body markup: Atom type="xhtml" content is inline XHTML elements, anything else is text
    (RSS descriptions hold escaped or CDATA HTML)."""
    for child in children:
        if child.get("type") == "xhtml" or (len(child) and child.get("type") not in ("text", "html")):
            inner = (child.text or "") + "".join(etree.tostring(c, encoding="unicode") for c in child)
        else:
            inner = child.text or ""
        if inner.strip():
            return inner
    return None


class FeedItems:
    """Turns item elements into documents, with the layout's field mapping over FEED_FIELDS."""

    def __init__(self, path: Path, rel: str, layout: SourceLayout):
        self.rel = rel
        self.fields = {**FEED_FIELDS, **layout.fields}
        self.maker = DocumentMaker(layout, "feed", declared_encoding(path))
        self.feed_title: str | None = None

    def document(self, item, number: int) -> RawDocument | RejectedRecord:
        children: dict[str, list] = {}
        for child in item:
            name = _local(child.tag)
            if name is not None:
                children.setdefault(name, []).append(child)
        values = {}
        for field, alternatives in self.fields.items():
            for name in (a.strip().split(":")[-1] for a in alternatives.split("|")):  # content:encoded
                found = children.get(name)
                value = None
                if found:
                    value = _body(found) if field == "text" else _link(found) if name == "link" else _text(found[0])
                if value:
                    values[field] = value
                    break
        values.setdefault("source", self.feed_title)
        return self.maker.make(values, f"{self.rel}#{number}", number,
                               body_from=f"the item's <{self.fields['text']}>")


def read_feed(path: Path, rel: str, layout: SourceLayout, settings: IngestSettings
              ) -> Iterator[RawDocument | RejectedRecord | ReadWarning]:
    items = FeedItems(path, rel, layout)
    read = 0
    try:
        context = etree.iterparse(str(path), events=("end",), **SAFE_XML)
        for _, element in context:
            name = _local(element.tag)
            parent = element.getparent()
            if name == "title" and parent is not None and _local(parent.tag) in FEED_TAGS:
                items.feed_title = _text(element) or None
            elif name in ITEM_TAGS:
                read += 1
                yield items.document(element, read)
                element.clear()  # a feed of any length is read in little memory
                while element.getprevious() is not None:
                    del parent[0]
        if read == 0:
            root = _local(context.root.tag)
            raise Rejected(f"no RSS <item> or Atom <entry> in this XML (root <{root}>): " + (
                "an empty feed" if root in ("rss", "feed", "RDF") else
                "not a feed? check the glob of its ingest.sources entry"))
    except etree.XMLSyntaxError as err:
        yield from _recover(path, items, read, err)


def _recover(path: Path, items: FeedItems, read: int, err: etree.XMLSyntaxError
             ) -> Iterator[RawDocument | RejectedRecord | ReadWarning]:
    """After the strict parse stopped at `err` with `read` whole items: lxml's recovering parser's
    items that begin after the error line, a rejection for the one(s) the error cut, and a warning
    that the file was partly read (a rejection of the file when no item could be read)."""
    line = err.lineno or 0
    try:
        root = etree.parse(str(path), etree.XMLParser(recover=True, **SAFE_XML)).getroot()
    except etree.XMLSyntaxError:
        root = None
    found = [e for e in root.iter() if _local(e.tag) in ITEM_TAGS] if root is not None else []
    later = damaged = 0
    for number, element in enumerate(found[read:], read + 1):
        if element.sourceline is not None and element.sourceline > line:
            later += 1
            yield items.document(element, number)
        else:
            damaged += 1
            yield RejectedRecord(f"{items.rel}#{number}", f"item cut by the XML error at line {line}: not read")
    if read + later == 0:
        raise Rejected(f"not a readable feed: XML error at line {line} ({err.msg})")
    yield ReadWarning(items.rel, f"partly read: XML error at line {line} ({err.msg}); {read + later} item(s) "
                                 f"read, {damaged} cut by the error, any the error swallowed are lost")
