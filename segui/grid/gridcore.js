// The Explore grid's pure logic (tested with node: tests/js/grid.test.js): which
// images are on screen for a scroll position, which pages to ask the server for, a
// bounded cache of pages per query, and the caption of a cell. No DOM here.
const ExploreGridCore = (() => {
  // how many cells of width `cellW` (+ `gap`) fit in `width`
  function columns(width, cellW, gap) {
    return Math.max(1, Math.floor((Math.max(0, width) + gap) / (cellW + gap)));
  }

  // rows of `cols` cells; the items [first, last) on screen for a scroll position, with
  // `overscan` extra rows above and below (so a scroll shows cells already there)
  function visible(scrollTop, viewH, rowH, cols, total, overscan = 2) {
    if (total <= 0 || rowH <= 0) return { first: 0, last: 0 };
    const rows = Math.ceil(total / cols);
    // a scroll position past the end (the query shrank) shows the last rows
    const onScreen = Math.ceil(Math.max(0, viewH) / rowH);
    const r0 = Math.max(0, Math.min(Math.floor(scrollTop / rowH), rows - onScreen) - overscan);
    const r1 = Math.min(rows, Math.ceil((scrollTop + Math.max(0, viewH)) / rowH) + overscan);
    return { first: r0 * cols, last: Math.min(total, Math.max(r0, r1) * cols) };
  }

  // the page numbers that hold items [first, last)
  function pagesFor(first, last, pageSize) {
    const out = [];
    if (last <= first) return out;
    for (let p = Math.floor(first / pageSize); p <= Math.floor((last - 1) / pageSize); p++) out.push(p);
    return out;
  }

  // the height of the scrolled content for `total` items
  function contentHeight(total, cols, rowH) {
    return Math.ceil(Math.max(0, total) / cols) * rowH;
  }

  // a query's identity (its keys in order), so answers to an older query are dropped
  function queryKey(project, query) {
    const q = query || {};
    const keys = Object.keys(q).sort();
    return JSON.stringify([project, keys.map((k) => [k, q[k]])]);
  }

  // Pages of one query: the rows the server sent, at most `max` pages (the least recently
  // used beyond that are dropped; they are fetched again when scrolled back to).
  class Pages {
    constructor(pageSize, max = 24) {
      this.size = pageSize; this.max = max;
      this.reset(null, 0);
    }
    reset(key, total) {
      this.key = key; this.total = total;
      this.pages = new Map(); this.asked = new Set();
    }
    put(page, rows) {
      this.asked.delete(page);
      this.pages.delete(page);
      this.pages.set(page, rows);
      while (this.pages.size > this.max) this.pages.delete(this.pages.keys().next().value);
    }
    touch(page) {
      const rows = this.pages.get(page);
      if (rows !== undefined) { this.pages.delete(page); this.pages.set(page, rows); }
    }
    row(i) {
      const rows = this.pages.get(Math.floor(i / this.size));
      return rows ? rows[i % this.size] : undefined;
    }
    // the pages of `wanted` neither held nor asked for yet (and marks them asked)
    missing(wanted) {
      const out = [];
      for (const p of wanted) {
        if (this.pages.has(p)) { this.touch(p); continue; }
        if (this.asked.has(p)) continue;
        this.asked.add(p); out.push(p);
      }
      return out;
    }
    failed(page) { this.asked.delete(page); }
  }

  function pct(v) { return v === null || v === undefined ? "–" : `${Math.round(100 * v)}%`; }
  function num(v) { return v === null || v === undefined ? "–" : v.toFixed(2); }

  // the caption lines of a cell: the name, then what it is and its figures
  function caption(row) {
    if (!row) return { title: "", line: "", tip: "" };
    const bits = [row.status, row.split !== "none" ? row.split : null, row.review ? `review ${row.review}` : null]
      .filter(Boolean);
    const figs = [`IoU ${pct(row.iou)}`, `unc. ${num(row.uncertainty)}`];
    if (row.pixels !== null && row.pixels !== undefined) figs.unshift(`${row.pixels.toLocaleString("en")} px`);
    if (row.disagreement !== null && row.disagreement !== undefined) figs.push(`disagr. ${num(row.disagreement)}`);
    const tip = [`#${row.id} ${row.name}`, bits.join(", "), row.author ? `by ${row.author}${row.date ? " on " + row.date : ""}` : "",
      `IoU ${pct(row.iou)}, accuracy ${pct(row.accuracy)}, uncertainty ${num(row.uncertainty)}`,
      row.stale ? "metrics of an older model or revision: being computed again" : "",
      `mask: ${row.mask || "none yet"}`, "click: open on the Label screen"].filter(Boolean).join("\n");
    return { title: row.name, line: `${bits.join(" · ")} · ${figs.join(" · ")}`, tip };
  }

  return { columns, visible, pagesFor, contentHeight, queryKey, Pages, caption, pct, num };
})();

if (typeof module !== "undefined" && module.exports) module.exports = ExploreGridCore;
