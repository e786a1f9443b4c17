// The word heatmap layer of the Label screen: the active model's probability map for
// a typed word or phrase (or a class of the list) as a heat overlay over the photo,
// with a colour bar. Concatenated after canvas.js (same scope: S, $, server,
// requestRender, setStatus, decodeIndexPng); canvas.js calls drawHeat() while
// rendering, heatImageChanged() when another image is shown, and binds W / Esc to
// toggleHeat() / hideHeat(). The server function `heatmap` answers {image_id, data
// (greyscale PNG: probability * 255), phrase, class, min, max, cached, ms}.
//
// The same layer and colour bar show the model's uncertainty (U, toggleUncertainty):
// the server function `uncertainty` answers {image_id, data (normalised entropy of
// the softmax over the label set * 255), mean, max, cached, ms}. S.heat.kind says
// which map is shown ("word", "uncertainty" or "changed"); root.dataset.heatKind too.
// What changed (C, toggleChanges): `what_changed` answers {image_id, data (255 where
// the predicted class changed from the previous active model version to the active
// one), from, to, changed, share, pairs [[from class, to class, pixels], ...], pair_count,
// corrections}. With one version and corrections > 0 the change is the instant layer's:
// the model's own prediction against the one shown, learnt from that many corrected images.
//
// Module state lives in S.heat and in `var`s (no const: canvas.js may call these
// functions before this file's top level has run).

/* eslint-disable no-var */
var HEAT_HOVER_MS = 300;
var HEAT_UNC = "\u0000uncertainty";   // the uncertainty map's key in S.heat.cache and as S.heat.pinned
var HEAT_CHG = "\u0000changed";       // what changed: the same

// viridis, 9 stops (matplotlib's), interpolated to a 256-entry ABGR table at alpha 255
var HEAT_LUT = (function () {
  const stops = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  const out = new Uint32Array(256), rgb = [];
  for (let v = 0; v < 256; v++) {
    const t = (v / 255) * (stops.length - 1), k = Math.min(Math.floor(t), stops.length - 2), f = t - k;
    const c = stops[k].map((a, j) => Math.round(a + (stops[k + 1][j] - a) * f));
    rgb.push(c);
    out[v] = ((c[2] << 16) | (c[1] << 8) | c[0]) >>> 0;   // alpha added per pixel
  }
  out.rgb = rgb;
  return out;
})();

function heatState() {
  if (!S.heat) {
    S.heat = { shown: false, kind: "word", id: null, phrase: "", cls: null, mean: 0, min: 0, max: 0, values: null, canvas: null,
      opacity: 0.65, seq: 0, hoverTimer: null, hover: false, pinned: null, cache: new Map() };
  }
  return S.heat;
}

// the overlay: viridis, more opaque where the word is more likely (the photo shows
// through where it is not)
function paintHeat(h, values, w, hgt) {
  if (!h.canvas) h.canvas = document.createElement("canvas");
  h.canvas.width = w;
  h.canvas.height = hgt;
  const ctx = h.canvas.getContext("2d");
  const img = ctx.createImageData(w, hgt);
  const u32 = new Uint32Array(img.data.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    u32[i] = (HEAT_LUT[v] | (((90 + ((165 * v) / 255)) & 255) << 24)) >>> 0;
  }
  ctx.putImageData(img, 0, 0);
  root.__seg.heatCanvas = h.canvas;
}

function drawHeat() {
  const h = S.heat;
  if (!h || !h.shown || !h.canvas || !S.img || h.id !== S.img.id) return;
  const { s, ox, oy } = S.view;
  vctx.imageSmoothingEnabled = s < 1;
  vctx.globalAlpha = h.opacity;
  vctx.drawImage(h.canvas, ox, oy, S.img.width * s, S.img.height * s);
  vctx.globalAlpha = 1;
}

function heatBar() {
  const h = heatState(), bar = $(".seg-heatbar");
  bar.hidden = !h.shown;
  const unc = h.kind === "uncertainty", chg = h.kind === "changed";
  root.dataset.heat = h.shown && !unc && !chg ? h.phrase : "";
  const scale = $(".seg-heat-scale");   // a changed / unchanged mask has no 0..1 scale
  for (const el of [scale, scale.previousElementSibling, scale.nextElementSibling]) el.hidden = chg;
  root.dataset.heatKind = h.shown ? h.kind : "";
  if (!h.shown) return;
  $(".seg-heat-close").title = unc ? "Hide the map (U, Esc)" : chg ? "Hide the map (C, Esc)" : "Hide the map (W, Esc)";
  if (chg) {
    const c = h.changes, fix = changeCorrections(c);
    $(".seg-heat-name").textContent = "changed";
    $(".seg-heat-name").title = c.from == null ? (fix ? `Pixels whose predicted class the instant layer changed: ` +
        `model v${c.to}'s own prediction against the one shown, learnt from ${fix}` : "The project has one model version: nothing to compare")
      : `Pixels whose predicted class changed from model v${c.from} (active before) to v${c.to} (active)` +
        (fix ? `, the active one with the instant layer (${fix})` : "");
    const top = c.pairs.map(([a, b, n]) => `${a}→${b} ${n}`).join(" · ");
    const what = c.from == null ? `v${c.to} + ${fix}` : `v${c.from}→v${c.to}${fix ? " + " + fix : ""}`;
    $(".seg-heat-note").textContent = c.from == null && !fix ? "one model version"
      : `${what}: ${c.changed} px (${(100 * c.share).toFixed(1)} %)${top ? " · " + top : ""}`;
  }
  // the class vectors behind a word or uncertainty map: the instant layer's, learnt from corrections
  const fix = !chg ? changeCorrections(h) : "", tuned = fix ? ` · ${fix}` : "";
  const tunedTitle = fix ? ` (the class vectors the instant layer learnt from ${fix}, as the mask shown)` : "";
  if (unc) {
    $(".seg-heat-name").textContent = "uncertainty";
    $(".seg-heat-name").title = "Normalised entropy of the model's softmax over the label set: 0 sure, 1 all classes alike" + tunedTitle;
    $(".seg-heat-note").textContent = `mean ${(100 * h.mean).toFixed(0)} % · max ${(100 * h.max).toFixed(0)} %${tuned}`;
  }
  const what = h.cls ? `class “${h.cls}”` : `“${h.phrase}” against the label set`;
  if (!unc && !chg) {
    $(".seg-heat-name").textContent = h.cls || h.phrase;
    $(".seg-heat-name").title = `Probability of ${what} (max ${(100 * h.max).toFixed(0)} %)` + tunedTitle;
    $(".seg-heat-note").textContent = `${h.cls ? "" : "vs label set · "}max ${(100 * h.max).toFixed(0)} %${tuned}`;
  }
  const sc = $(".seg-heat-scale");
  if (!sc.dataset.drawn) {
    const ctx = sc.getContext("2d");
    for (let x = 0; x < sc.width; x++) {
      const c = HEAT_LUT.rgb[Math.round((x / (sc.width - 1)) * 255)];
      ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
      ctx.fillRect(x, 0, 1, sc.height);
    }
    sc.dataset.drawn = "1";
  }
  $(".seg-heat-opacity").value = Math.round(h.opacity * 100);
}

// Show the map of `phrase` on the open image (hover: shown while a class row is hovered).
async function showHeat(phrase, hover = false) {
  if (phrase === HEAT_UNC) return showUncertainty();
  if (phrase === HEAT_CHG) return showChanges();
  const h = heatState();
  phrase = String(phrase || "").trim();
  if (!S.img) { setStatus("Open an image first.", "error", "image"); return; }
  if (!phrase) { setStatus("Type a word to see the model's map of it, e.g. “sky”.", "error", "heat-phrase"); return; }
  const id = S.img.id, src = S.img.source, seq = ++h.seq;
  if (!hover) { h.pinned = phrase; h.hoverAsked = false; }
  try {
    const r = await heatFetch(h, phrase.toLowerCase(), id, src, hover ? "" : `Asking the model about “${phrase}”…`,
      () => server.heatmap({ image_id: id, phrase }));
    if (!r) return;
    if (seq !== h.seq || !S.img || S.img.id !== id) return;   // a newer request, or another image
    paintHeat(h, r.values, S.img.width, S.img.height);
    Object.assign(h, { shown: true, kind: "word", id, phrase: r.phrase, cls: r.class, min: r.min, max: r.max, values: r.values, hover,
      corrections: r.corrections || 0 });
    heatBar();
    requestRender();
    if (!hover) setStatus(`Map of “${r.phrase}”${r.class ? "" : " against the label set"}: W hides it, Esc too.`, "info", "heat");
  } catch (err) {
    if (seq !== h.seq) return;
    console.error(err);
    setStatus(`No map for “${phrase}”: ${(err && err.message) || err}`, "error");
  }
}

function hideHeat() {
  const h = heatState();
  h.seq++;
  h.shown = false;
  h.pinned = null;
  clearTimeout(h.hoverTimer);
  heatBar();
  requestRender();
  clearStatus("heat");   // "Map of …: W hides it" is no longer true
}

// The active model's uncertainty over the open image (U): normalised entropy, 0..1.
async function showUncertainty() {
  const h = heatState();
  if (!S.img) { setStatus("Open an image first.", "error", "image"); return; }
  const id = S.img.id, src = S.img.source, seq = ++h.seq;
  h.pinned = HEAT_UNC;
  h.hoverAsked = false;
  try {
    const r = await heatFetch(h, HEAT_UNC, id, src, "Asking the model where it is unsure…",
      () => server.uncertainty({ image_id: id }));
    if (!r) return;
    if (seq !== h.seq || !S.img || S.img.id !== id) return;
    paintHeat(h, r.values, S.img.width, S.img.height);
    Object.assign(h, { shown: true, kind: "uncertainty", id, phrase: "", cls: null, min: 0, max: r.max, mean: r.mean,
      values: r.values, hover: false, corrections: r.corrections || 0 });
    heatBar();
    requestRender();
    setStatus(`Uncertainty (entropy over the label set): mean ${(100 * r.mean).toFixed(0)} %; U hides it, Esc too.`, "info", "heat");
  } catch (err) {
    if (seq !== h.seq) return;
    console.error(err);
    setStatus(`No uncertainty map: ${(err && err.message) || err}`, "error");
  }
}

// U: the uncertainty map; again (or Esc): hidden. From a word map it switches.
function toggleUncertainty() {
  const h = heatState();
  if (h.shown && h.kind === "uncertainty") { hideHeat(); return; }
  showUncertainty();
}

// What changed on the open image from the previous active model version to the active one (C).
async function showChanges() {
  const h = heatState();
  if (!S.img) { setStatus("Open an image first.", "error", "image"); return; }
  const id = S.img.id, src = S.img.source, seq = ++h.seq;
  h.pinned = HEAT_CHG;
  h.hoverAsked = false;
  try {
    const r = await heatFetch(h, HEAT_CHG, id, src, "Comparing the model versions' predictions…",
      () => server.what_changed({ image_id: id }));
    if (!r) return;
    if (seq !== h.seq || !S.img || S.img.id !== id) return;
    paintHeat(h, r.values, S.img.width, S.img.height);
    Object.assign(h, { shown: true, kind: "changed", id, phrase: "", cls: null, min: 0, max: 1, values: r.values,
      changes: r, hover: false });
    heatBar();
    requestRender();
    const fix = changeCorrections(r);
    setStatus(r.from == null ? (fix ? `${r.changed} px changed class by the instant layer, learnt from ${fix}: C hides it, Esc too.`
      : "The project has one model version: nothing changed. C hides it.")
      : `${r.changed} px changed class from v${r.from} to v${r.to}${fix ? " (with " + fix + ")" : ""}: C hides it, Esc too.`,
    "info", "heat");
  } catch (err) {
    if (seq !== h.seq) return;
    console.error(err);
    setStatus(`No comparison: ${(err && err.message) || err}`, "error");
  }
}

// The map `key` of image `id` (whose mask came from `src`): the one asked before if still
// true (heatCached), else asked with ask() (the status says `busy` meanwhile, unless ""),
// decoded and kept (24 at most). -> the answer with its `values`, or null when the server
// answered for another image. (The caller checks that the page still wants it.)
async function heatFetch(h, key, id, src, busy, ask) {
  const cached = heatCached(h, key);
  if (cached) return cached;
  if (busy) setStatus(busy, "busy");
  const r = await ask();
  if (!r || r.image_id !== id) return null;
  r.values = await decodeIndexPng(r.data, S.img.width, S.img.height);
  if (h.cache.size >= 24) h.cache.delete(h.cache.keys().next().value);
  r.source = src;
  h.cache.set(key, r);
  return r;
}

// A map of the open image asked before, still true: the same image and the same source of
// its mask (another model version, the instant layer's newer fit or a new revision: ask again)
function heatCached(h, key) {
  const r = h.cache.get(key);
  return r && S.img && r.image_id === S.img.id && r.source === S.img.source ? r : null;
}

// "12 corrections": what the instant layer learnt from, behind a map (an answer's or
// S.heat's `corrections`); "" for none
function changeCorrections(c) {
  const n = (c && c.corrections) || 0;
  return n ? `${n} correction${n === 1 ? "" : "s"}` : "";
}

function toggleChanges() {
  const h = heatState();
  if (h.shown && h.kind === "changed") { hideHeat(); return; }
  showChanges();
}

// W: the typed word's map, else the selected class's; again: hidden
function toggleHeat() {
  const h = heatState();
  if (h.shown && h.kind === "word") { hideHeat(); return; }
  const typed = $(".seg-heat-phrase").value.trim();
  const c = S.byIndex.get(S.active);
  showHeat(typed || (c ? c.name : ""));
}

function heatImageChanged() {
  const h = heatState();
  if (h.shown && (!S.img || h.id !== S.img.id)) hideHeat();
  h.cache.clear();
}

$(".seg-heat-show").addEventListener("click", () => showHeat($(".seg-heat-phrase").value));
$(".seg-heat-phrase").addEventListener("keydown", (e) => {
  if (e.key === "Enter") { e.preventDefault(); showHeat(e.target.value); }
  else if (e.key === "Escape") { e.target.blur(); hideHeat(); }
});
$(".seg-heat-opacity").addEventListener("input", (e) => { heatState().opacity = +e.target.value / 100; requestRender(); });
$(".seg-heat-close").addEventListener("click", hideHeat);
// hovering a class row shows its map after a short pause; leaving the list goes back
$(".seg-classes").addEventListener("mouseover", (e) => {
  const h = heatState(), row = e.target.closest("[data-class]");
  clearTimeout(h.hoverTimer);
  const c = row && S.byIndex.get(+row.dataset.class);
  if (!c || !S.img) return;
  h.hoverTimer = setTimeout(() => { h.hoverAsked = true; showHeat(c.name, true); }, HEAT_HOVER_MS);
});
$(".seg-classes").addEventListener("mouseleave", () => {
  const h = heatState();
  clearTimeout(h.hoverTimer);
  if (!h.hover && !h.hoverAsked) return;
  h.hoverAsked = false;
  if (h.pinned) showHeat(h.pinned); else { h.seq++; h.shown = false; heatBar(); requestRender(); }
});
