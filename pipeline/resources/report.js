// The report's evidence browser (pipeline/report.py inlines this file into reports/index.html).
// It reads the JSON embedded in the page (the element #report-data) and never touches the network.
// Every text from the corpus is inserted as textContent, never as HTML.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const SEP = "\u001f"; // joins group, theme and period in the keys of data.cells
  const P = Object.fromEntries(data.para_fields.map((name, i) => [name, i]));
  const D = Object.fromEntries(data.doc_fields.map((name, i) => [name, i]));
  const themeIndex = Object.fromEntries(data.themes.map((theme, i) => [theme.id, i]));
  const docIndex = new Map(data.docs.map((doc, i) => [doc[D.id], i]));
  const panel = document.getElementById("panel");
  const panelBody = document.getElementById("panel-body");
  const MAX_DOCUMENT_ROWS = 300; // rows of the document table shown at once (the filter narrows them)
  const MAX_KWIC_LINES = 500; // concordance lines shown; all matches are counted
  const CONTEXT = 24; // characters either side of a KWIC match

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  }
  const pct = (x) => (100 * x).toFixed(1) + "%";
  const score = (permille) => (permille / 1000).toFixed(3);
  const docTitle = (doc) => doc[D.title] || "（无标题）";

  function docLink(i) {
    const doc = data.docs[i];
    return el("a", { href: "#doc=" + encodeURIComponent(doc[D.id]), className: "doc-link", title: docTitle(doc) },
      docTitle(doc));
  }

  function meta(paragraph) {
    const doc = data.docs[paragraph[P.doc]];
    const parts = [docLink(paragraph[P.doc]), " · " + (doc[D.date] || "无日期")];
    if (paragraph[P.heading_path]) parts.push(" · " + paragraph[P.heading_path]);
    return el("div", { className: "meta" }, ...parts);
  }

  function paragraphItem(i, theme) {
    const paragraph = data.paras[i];
    return el("li", { className: "para", dataset: { para: i } },
      el("span", { className: "score" }, "得分 " + score(paragraph[P.scores][theme])),
      el("p", { className: "para-text" }, paragraph[P.text]),
      meta(paragraph));
  }

  function showPanel(title, note, content) {
    panelBody.replaceChildren(el("h2", { id: "panel-title" }, title), el("p", { className: "note" }, note), content);
    panel.hidden = false;
    panel.scrollTop = 0;
    panel.focus();
  }

  function closePanel() {
    panel.hidden = true;
    if (location.hash.startsWith("#doc=")) history.replaceState(null, "", location.pathname + location.search);
  }

  // A theme × period (× group) cell: the paragraphs carrying the theme, highest score first.
  function openCell(group, themeId, period) {
    const theme = themeIndex[themeId];
    const cell = data.cells[[group, themeId, period].join(SEP)];
    const label = data.themes[theme].label;
    const where = group === data.all_group ? "" : "（" + group + "）";
    if (!cell) {
      showPanel(label + " · " + period + where, "这一期没有带该主题的正文段落。", el("ol"));
      return;
    }
    const note = "这一期共有 " + cell.n + " 段正文带有该主题；按得分从高到低列出" +
      (cell.paras.length < cell.n ? "前 " + cell.paras.length + " 段（报告只嵌入每格得分最高的 " +
        data.cell_limit + " 段）" : "全部 " + cell.n + " 段") + "。" + (data.cell_note || "");
    showPanel(label + " · " + period + where, note,
      el("ol", { className: "paras" }, ...cell.paras.map((i) => paragraphItem(i, theme))));
  }

  // A document × theme cell: that document's paragraphs carrying the theme.
  function openDocumentTheme(docI, themeId) {
    const theme = themeIndex[themeId];
    const hits = [];
    data.paras.forEach((paragraph, i) => {
      if (paragraph[P.doc] === docI && paragraph[P.themes].includes(theme)) hits.push(i);
    });
    hits.sort((a, b) => data.paras[b][P.scores][theme] - data.paras[a][P.scores][theme]);
    const doc = data.docs[docI];
    const note = hits.length + " 段带有该主题（本文档正文 " + doc[D.n_paragraphs] + " 段" +
      (data.complete ? "" : "；报告只嵌入了部分段落") + "）。";
    showPanel(data.themes[theme].label + " · " + docTitle(doc), note,
      el("ol", { className: "paras" }, ...hits.map((i) => paragraphItem(i, theme))));
  }

  // The per-document page: metadata, theme shares, and the document's embedded paragraphs in order.
  function openDocument(id) {
    const docI = docIndex.get(id);
    if (docI === undefined) return;
    const doc = data.docs[docI];
    const rows = [["日期", doc[D.date] || "无日期"], ["类型", doc[D.doc_type] || "—"], ["来源", doc[D.source] || "—"],
      ["时期", doc[D.period] || "（不计入时期）"], ["正文段落", String(doc[D.n_paragraphs])]];
    if (data.facet) rows.push([data.facet, doc[D.group]]);
    const table = el("table", { className: "kv" },
      ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
    const shares = el("p", { className: "chips" }, ...data.themes.map((theme, t) => doc[D.shares][t] > 0 ?
      el("span", { className: "chip" }, theme.name + " " + pct(doc[D.shares][t] / 1000)) : null));
    const body = el("div", { className: "document" });
    let shown = 0;
    data.paras.forEach((paragraph, i) => {
      if (paragraph[P.doc] !== docI) return;
      shown += paragraph[P.level] === 0 ? 1 : 0;
      if (paragraph[P.level] > 0) {
        body.append(el("p", { className: "heading level-" + Math.min(paragraph[P.level], 4) }, paragraph[P.text]));
        return;
      }
      const chips = paragraph[P.themes].map((t) =>
        el("span", { className: "chip" }, data.themes[t].name + " " + score(paragraph[P.scores][t])));
      body.append(el("div", { className: "doc-para", dataset: { para: i } },
        el("p", {}, paragraph[P.text]), chips.length ? el("p", { className: "chips" }, ...chips) : null));
    });
    const note = data.complete ? "全文（正文 " + doc[D.n_paragraphs] + " 段）及每段的主题与得分。" :
      "报告只嵌入了本文档 " + shown + " / " + doc[D.n_paragraphs] + " 段正文（各格得分最高者）；全文见 " +
      "data/interim/paragraphs.parquet。";
    showPanel(docTitle(doc), note, el("div", {}, table, shares, body));
  }

  function route() {
    if (location.hash.startsWith("#doc=")) openDocument(decodeURIComponent(location.hash.slice(5)));
  }

  function activate(target) {
    const cell = target.closest("[data-cell]");
    if (cell) {
      openCell(cell.dataset.group, cell.dataset.theme, cell.dataset.period);
      return true;
    }
    const docCell = target.closest("[data-doc-cell]");
    if (docCell) {
      openDocumentTheme(Number(docCell.dataset.doc), docCell.dataset.theme);
      return true;
    }
    return false;
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest("#panel-close")) closePanel();
    else if (activate(event.target)) event.preventDefault();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) closePanel();
    else if ((event.key === "Enter" || event.key === " ") && activate(event.target)) event.preventDefault();
  });
  window.addEventListener("hashchange", route);

  // The document table (a heat map of each document's theme shares), narrowed by a filter.
  function renderDocuments() {
    const query = document.getElementById("doc-filter").value.trim();
    const tbody = document.querySelector("#doc-table tbody");
    const rows = [];
    let matched = 0;
    data.docs.forEach((doc, i) => {
      const haystack = [doc[D.title], doc[D.date], doc[D.doc_type], doc[D.source], doc[D.period]].join(" ");
      if (query && !haystack.includes(query)) return;
      matched += 1;
      if (rows.length >= MAX_DOCUMENT_ROWS) return;
      rows.push(el("tr", {},
        el("td", {}, docLink(i)), el("td", {}, doc[D.date] || "—"), el("td", {}, doc[D.doc_type] || "—"),
        el("td", { className: "num" }, String(doc[D.n_paragraphs])),
        ...data.themes.map((theme, t) => {
          const share = doc[D.shares][t] / 1000;
          return el("td", {
            className: "num heat" + (share > 0 ? " cell" : ""), tabIndex: share > 0 ? 0 : -1,
            style: "--heat:" + Math.min(share / data.doc_share_max, 1).toFixed(3),
            dataset: share > 0 ? { docCell: "", doc: i, theme: theme.id } : {},
          }, share > 0 ? pct(share) : "");
        })));
    });
    tbody.replaceChildren(...rows);
    document.getElementById("doc-count").textContent = matched > rows.length ?
      "显示 " + rows.length + " / " + matched + " 篇（用筛选缩小范围）" : matched + " 篇";
  }

  // KWIC: every match of the query in the embedded paragraphs (in date order), with its context, document
  // and heading path. Variants are tried longest first, as `python -m pipeline kwic --variants` does, so
  // 中央八项规定 is matched whole rather than as 八项规定 inside it.
  function kwicPattern(query, mode) {
    if (mode === "regex") return new RegExp(query, "gu");
    const variants = [...new Set(query.split(/[|｜\s,，、]+/u).filter(Boolean))]
      .sort((a, b) => b.length - a.length || (a < b ? -1 : 1))
      .map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    return variants.length ? new RegExp(variants.join("|"), "gu") : null;
  }

  function runKwic(event) {
    if (event) event.preventDefault();
    const query = document.getElementById("kwic-query").value.trim();
    const mode = document.getElementById("kwic-mode").value;
    const status = document.getElementById("kwic-status");
    const tbody = document.querySelector("#kwic-results tbody");
    tbody.replaceChildren();
    let pattern;
    try {
      pattern = query ? kwicPattern(query, mode) : null;
    } catch (error) {
      status.textContent = "正则表达式有误：" + error.message;
      return;
    }
    if (!pattern) {
      status.textContent = "";
      return;
    }
    let total = 0;
    const lines = [];
    const documents = new Set();
    for (const paragraph of data.paras) {
      const text = paragraph[P.text];
      pattern.lastIndex = 0;
      let match;
      while ((match = pattern.exec(text)) !== null) {
        if (match[0] === "") { pattern.lastIndex += 1; continue; }
        total += 1;
        documents.add(paragraph[P.doc]);
        if (lines.length < MAX_KWIC_LINES) {
          const start = match.index;
          const end = start + match[0].length;
          const doc = data.docs[paragraph[P.doc]];
          lines.push(el("tr", { className: "kwic-line" },
            el("td", { className: "left" }, text.slice(Math.max(0, start - CONTEXT), start)),
            el("td", { className: "hit" }, match[0]),
            el("td", { className: "right" }, text.slice(end, end + CONTEXT)),
            el("td", {}, docLink(paragraph[P.doc])), el("td", {}, doc[D.date] || "—"),
            el("td", {}, paragraph[P.heading_path] || "")));
        }
      }
    }
    tbody.replaceChildren(...lines);
    status.textContent = total + " 处匹配，" + documents.size + " 篇文档" +
      (total > lines.length ? "（显示前 " + lines.length + " 处）" : "") +
      (data.complete ? "" : "；只检索报告中嵌入的段落");
  }

  document.getElementById("doc-filter").addEventListener("input", renderDocuments);
  document.getElementById("kwic-form").addEventListener("submit", runKwic);
  renderDocuments();
  route();
  document.documentElement.dataset.ready = "true"; // the browser tests wait for this
})();
