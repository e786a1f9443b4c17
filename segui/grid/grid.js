// The Explore grid (DOM wiring; the rules are in gridcore.js, pure and tested with node).
//
// Runs as gr.HTML's js_on_load after gridcore.js, with `element`, `props`, `trigger`,
// `watch` and `server` from Gradio. Virtualised: the scrolled content is as tall as all
// the matching images, but only the cells on screen (and two rows around them) exist,
// and only their pages of rows (thumbnails as data URLs) are asked for.
//
// Protocol (segui/grid/__init__.py has the Python side):
//   server -> page: props.value = {kind: "page", seq, project, query, total, offset, rows,
//                   page_size, note}: a new query and its first page (a sort or filter
//                   change, a confusion cell); later pages: server.explore_rows({project,
//                   query, offset, limit}).
//   page -> server: props.value = {kind: "cell", cell: {t, p}}, trigger("cell"): a click
//                   on a cell of the confusion matrix (the Plotly heatmap beside it).
//   a click on an image opens it on the Label screen (the canvas's own open_image).

const GC = ExploreGridCore;
const root = element.querySelector(".exg-root");
const scroller = root.querySelector(".exg-scroll");
const spacer = root.querySelector(".exg-spacer");
const head = root.querySelector(".exg-head");
const CELL_W = 168, GAP = 8, ROW_H = 178;
const G = { key: null, project: null, query: null, total: 0, pages: new GC.Pages(32), cols: 1,
            cells: new Map(), queued: false, seq: null, note: "", fetches: 0 };
root.__exg = { G, GC, render: () => render(), ROW_H, CELL_W, GAP };   // for tests and the benchmark

function setHead(extra) {
  head.textContent = [G.note, extra].filter(Boolean).join(" · ");
}

function onValue() {
  const v = props.value;
  if (!v || v.kind !== "page" || v.seq === G.seq) return;
  G.seq = v.seq;
  G.project = v.project; G.query = v.query || {}; G.note = v.note || "";
  G.key = GC.queryKey(v.project, G.query);
  G.pages = new GC.Pages(v.page_size || 32);
  G.pages.reset(G.key, v.total || 0);
  G.total = v.total || 0;
  if (v.rows && v.rows.length) G.pages.put(Math.floor((v.offset || 0) / G.pages.size), v.rows);
  for (const el of G.cells.values()) el.remove();
  G.cells.clear();
  scroller.scrollTop = 0;
  setHead("");
  render();
}

function layout() {
  G.cols = GC.columns(scroller.clientWidth - 4, CELL_W, GAP);
  spacer.style.height = `${GC.contentHeight(G.total, G.cols, ROW_H)}px`;
}

function render() {
  G.queued = false;
  layout();
  const win = GC.visible(scroller.scrollTop, scroller.clientHeight, ROW_H, G.cols, G.total);
  for (const [i, el] of G.cells) if (i < win.first || i >= win.last) { el.remove(); G.cells.delete(i); }
  for (let i = win.first; i < win.last; i++) draw(i);
  fetchPages(GC.pagesFor(win.first, win.last, G.pages.size));
  if (!G.total) setHead("");
}

function schedule() {
  if (G.queued) return;
  G.queued = true;
  requestAnimationFrame(render);
}

function draw(i) {
  let el = G.cells.get(i);
  const row = G.pages.row(i);
  if (!el) {
    el = document.createElement("div");
    el.className = "exg-cell";
    el.tabIndex = 0;
    el.innerHTML = '<div class="exg-thumb"><img alt=""></div><div class="exg-title"></div><div class="exg-line"></div>';
    el.__row = null;            // not drawn yet: a row still on its way shows the placeholder
    spacer.appendChild(el);
    G.cells.set(i, el);
  }
  const r = Math.floor(i / G.cols), c = i % G.cols;
  el.style.transform = `translate(${c * (CELL_W + GAP)}px, ${r * ROW_H}px)`;
  if (el.__row === row) return;
  el.__row = row;
  const img = el.querySelector("img");
  const cap = GC.caption(row);
  el.dataset.id = row ? row.id : "";
  el.dataset.index = i;
  el.classList.toggle("is-loading", !row);
  el.classList.toggle("is-stale", !!(row && row.stale));
  if (row && row.thumb) img.src = row.thumb; else img.removeAttribute("src");
  el.querySelector(".exg-title").textContent = row ? `#${row.id} ${cap.title}` : "…";
  el.querySelector(".exg-line").textContent = cap.line;
  el.title = cap.tip;
}

async function fetchPages(wanted) {
  const key = G.key;
  for (const page of G.pages.missing(wanted)) {
    G.fetches += 1;
    let r;
    try {
      r = await server.explore_rows({ project: G.project, query: G.query, offset: page * G.pages.size,
                                      limit: G.pages.size });
    } catch (err) {
      if (key === G.key) { G.pages.failed(page); setHead("a page could not be loaded: " + (err && err.message || err)); }
      continue;
    }
    if (key !== G.key || !r) continue;        // an answer to an older query
    G.pages.put(page, r.rows || []);
    if (r.total !== G.total) { G.total = r.total; G.pages.total = r.total; }
    schedule();
  }
}

function openOnLabel(id) {
  // the Label tab, then the canvas's own open_image (it keeps unsaved edits as a draft)
  const tab = Array.from(document.querySelectorAll("button[role=tab]")).find((b) => b.textContent.trim() === "Label");
  if (tab) tab.click();
  const seg = document.querySelector(".seg-root");
  const go = () => seg && seg.__seg && seg.__seg.openImage && seg.__seg.openImage(id);
  setTimeout(go, 50);
}

spacer.addEventListener("click", (ev) => {
  const el = ev.target.closest(".exg-cell");
  if (el && el.dataset.id) openOnLabel(Number(el.dataset.id));
});
spacer.addEventListener("keydown", (ev) => {
  const el = ev.target.closest(".exg-cell");
  if (el && el.dataset.id && ev.key === "Enter") openOnLabel(Number(el.dataset.id));
});
scroller.addEventListener("scroll", schedule, { passive: true });
new ResizeObserver(schedule).observe(scroller);

// A click on a cell of the confusion matrix (Plotly, in #segui-explore-confusion):
// the cell's class indices are its customdata. Plotly's div is made again when the
// figure changes, so the handler is attached to whichever div is there.
function bindPlot() {
  const div = document.querySelector("#segui-explore-confusion .js-plotly-plot");
  if (!div || div.__exgBound || typeof div.on !== "function") return;
  div.__exgBound = true;
  div.on("plotly_click", (ev) => {
    const pt = ev && ev.points && ev.points[0];
    if (!pt || !pt.customdata) return;
    const [t, p] = pt.customdata;
    props.value = { kind: "cell", cell: { t, p } };
    trigger("cell");
    root.scrollIntoView({ behavior: "smooth", block: "start" });
  });
}
setInterval(bindPlot, 400);

watch("value", onValue);
if (props.value && props.value.kind) onValue();
