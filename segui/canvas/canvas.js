// The mask canvas of the Label screen (DOM wiring; the rules are in core.js, the
// request / optimistic-Next state machine in nav.js, the key map and the tools in
// input.js: all three pure and tested with node).
//
// Runs as gr.HTML's js_on_load, after core.js, nav.js and input.js, with `element`, `props`,
// `trigger`, `watch` and `server` from Gradio. The class map lives here as class
// indices (SegCore.LabelMap); the photo, the prediction and the SLIC superpixels
// come from the server. Every operation is one step of one history.
//
// Protocol (segui/canvas/__init__.py has the Python side):
//   server -> page: props.value = {kind: "load" | "saved" | "result" | "prompt" |
//                   "classes" | "info", seq, request, ...}; watch('value') picks it up.
//   page -> server: props.value = {image_id, map (index PNG data URL), edited,
//                   request, args}, then trigger(<event>) with the event's name.

const C = SegCore;
const Nav = SegNav;
const root = element.querySelector(".seg-root");
const $ = (sel) => root.querySelector(sel);
const $$ = (sel) => Array.from(root.querySelectorAll(sel));
const stage = $(".seg-stage");
const view = $(".seg-view");
const vctx = view.getContext("2d");
const maskCanvas = document.createElement("canvas");
const mctx = maskCanvas.getContext("2d");
const reviewCanvas = document.createElement("canvas");   // where the model disagrees (reviewers)
const rctx = reviewCanvas.getContext("2d");
const promptCanvas = document.createElement("canvas");
const pctx = promptCanvas.getContext("2d");
const codecCanvas = document.createElement("canvas");
const cctx = codecCanvas.getContext("2d", { willReadFrequently: true });

const S = {
  project: null, img: null, photo: null, map: null, pred: null, seg: null, segQueue: [],
  classes: [], byIndex: new Map(), ignore: 255, hidden: new Set(), lut: null, thin: [],
  active: null, tool: "brush", size: 12, protect: "all", opacity: 0.55, maskVisible: true,
  view: { s: 1, ox: 0, oy: 0 }, fitted: true, history: new C.History(200),
  edit: null, last: null, polygon: [], cursor: null, space: false, pan: null, touches: new Map(),
  rid: 0, pending: new Map(), navPending: null, lastSeq: null, prompt: null,
  review: null, reviewMask: null, showDisagree: true, rights: { review: false, admin: false },
  queue: null, filter: "unlabelled", visited: [], frames: 0, keepSet: null, thumbs: new Map(), thumbWant: new Set(),
  encoded: { step: undefined, id: null, url: null }, syncTimer: null, renderQueued: false,
  modelSeen: null, modelNote: null,   // the active model version last heard of; the note for its reopen
  fitAsked: null,                      // "image:adapter" opened again for a newer instant layer (Nav.newerFit)
  modelLabel: "",                     // the header's word while a newly active version is prepared
  job: null,                          // the project's newest fine-tuning job, as the heartbeat last said
};
root.__seg = { S, C, Nav, setStatus };   // handle for the failure hook and for tests
root.__seg.openImage = (id) => openImage(id);   // the Explore grid opens an image here

// Durable edits (journal.js): the open image's unsaved map is journaled in IndexedDB at
// every change until the server confirms it; edits of images left behind unconfirmed
// form the outbox, sent with backoff; a reload restores them. Undo is kept per image.
const JN = SegJournal;
const idb = JN.idbStore();
const journal = new JN.Journal(idb || new JN.MemoryStore());
S.volatile = !idb;        // no IndexedDB: the journal lives in memory only (a reload would lose it)
S.user = null;            // whose journal (the load payload says; "" without accounts)
S.jstamp = 0;             // the journal stamp of the open image's map as it is now
S.docs = new JN.DocCache(30);
S.conflicts = new Map();  // image id -> a save conflict not yet decided ({image, base, theirs, mine, author}; conflict.js)
S.boot = null;            // the server process that answered last (a heartbeat sees a restart)
root.__seg.journal = journal;

// Tabs (journal.js): every tab of the site shares one IndexedDB, each journal sees only
// its own tab's entries. The tab's id is kept in sessionStorage (a reload keeps it, a new
// tab gets its own); while the page is open the tab holds a Web Lock named after it, so
// a duplicated tab (sessionStorage is copied) finds the lock taken and takes a new id,
// and a tab whose lock is free is gone: a living tab adopts its entries (adoptOrphans).
// Without Web Locks (a page served over plain http from another host than localhost):
// a tab unseen (localStorage heartbeat) for TAB_GONE_MS is gone.
const TAB_LOCK = "segui-tab-";
const TAB_GONE_MS = 5 * 60 * 1000;
const locks = typeof navigator !== "undefined" && navigator.locks ? navigator.locks : null;

function newTabId() {
  return (typeof crypto !== "undefined" && crypto.randomUUID) ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

// Hold this tab's lock until the page goes. -> whether it was free.
function holdTab(id) {
  return new Promise((resolve) => {
    locks.request(TAB_LOCK + id, { ifAvailable: true }, (lock) => {
      resolve(!!lock);
      return lock ? new Promise(() => {}) : null;   // held while the page lives
    }).catch(() => resolve(false));
  });
}

async function tabId() {
  let id = null;
  try { id = sessionStorage.getItem("segui-tab"); } catch (err) { /* no sessionStorage: a new id */ }
  if (locks) {
    for (let tries = 0; tries < 4; tries++) {
      if (id && await holdTab(id)) break;
      // the page this one reloads may still hold the lock for a moment; after that, a duplicate
      if (id && tries < 2) { await new Promise((r) => setTimeout(r, 250)); continue; }
      id = newTabId();
    }
  } else if (!id) id = newTabId();
  try { sessionStorage.setItem("segui-tab", id); } catch (err) { /* kept for this page only */ }
  return id;
}

function tabSeen() {
  if (locks) return;
  try { localStorage.setItem(`segui-seen-${journal.tab}`, String(Date.now())); } catch (err) { /* none */ }
}

// journal.adopt's claim: run `fn` if tab `tab` is gone, one adopter at a time.
function claimTab(tab, fn) {
  if (locks) return locks.request(TAB_LOCK + tab, { ifAvailable: true }, async (lock) => { if (!lock) return false; await fn(); return true; });
  let seen = 0;
  try { seen = +localStorage.getItem(`segui-seen-${tab}`) || 0; } catch (err) { /* none */ }
  if (Date.now() - seen < TAB_GONE_MS) return Promise.resolve(false);
  return Promise.resolve(fn()).then(() => true);
}

// Entries a closed tab left: this tab sends them now (the outbox).
async function adoptOrphans(quiet = false) {
  if (S.adopting) return [];
  S.adopting = true;
  try {
    const got = await journal.adopt(claimTab, S.img ? S.img.id : S.opening);
    if (got.length) {
      root.dataset.adopted = (+root.dataset.adopted || 0) + got.length;
      if (!quiet && S.user !== null) {
        const n = got.filter((e) => e.user === S.user).length;
        if (n) setStatus(`Another tab of this browser closed with ${n === 1 ? "1 edit" : `${n} edits`} the server had not confirmed: this tab is saving ${n === 1 ? "it" : "them"} now (see “not yet saved”).`, "warning");
      }
      updateOutbox();
    }
    return got;
  } catch (err) {
    console.warn("could not adopt the edits of a closed tab", err);
    return [];
  } finally { S.adopting = false; }
}

async function startJournal() {
  journal.tab = await tabId();
  root.dataset.tab = journal.tab;
  tabSeen();
  await journal.open();
  for (const e of await adoptOrphans(true)) journal.restored.push(e.key);   // said with what a reload restored
  S.restoredAtStart = journal.restored.map((k) => journal.entries.get(k)).filter(Boolean);   // (resumeTarget)
  return journal;
}
S.journalReady = startJournal();
root.__seg.server = server;   // (tests call the server functions as the page does)

// the tools ({down, move, up} each, input.js) and the helpers they share with the page
const T = SegInput.makeTools(S, C, {
  commit, changed, setStatus, className, requestRender, closePolygon, now: () => performance.now(),
});
const { paintValue, newEdit, inImage, valueAt } = T;
const tool = () => T.tools[S.tool];

// ------------------------------------------------------------------ helpers

function rgbOf(hex) {
  const h = String(hex).replace("#", "");
  return [parseInt(h.slice(0, 2), 16), parseInt(h.slice(2, 4), 16), parseInt(h.slice(4, 6), 16)];
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fmtCount(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
  if (n >= 1e3) return (n / 1e3).toFixed(n >= 1e4 ? 0 : 1) + "k";
  return String(n);
}

// A message about a passing condition names it (`until`: "superpixels" while they load,
// "image" for what holds of the open image or of having none); clearStatus(name) takes
// it away (or puts `replacement`) when that condition ends, so the line never keeps
// saying what stopped being true. Other messages report an action and stay until the next.
function setStatus(text, level = "info", until = "") {
  const el = $(".seg-status");
  el.textContent = text || "";
  el.title = text || "";      // the whole of a message longer than the three lines shown
  el.dataset.level = level;
  el.dataset.until = text ? until : "";
}

function clearStatus(until, replacement = "") {
  if ($(".seg-status").dataset.until === until) setStatus(replacement);
}

function className(idx) {
  if (idx === S.ignore) return "void";
  const c = S.byIndex.get(idx);
  return c ? c.name : `class ${idx}`;
}

// ------------------------------------------------------------------ codecs

async function decodePng(url, w, h) {
  const blob = await (await fetch(url)).blob();
  const bmp = await createImageBitmap(blob, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  if (bmp.width !== w || bmp.height !== h) throw new Error(`map is ${bmp.width}x${bmp.height}, image is ${w}x${h}`);
  codecCanvas.width = w;
  codecCanvas.height = h;
  cctx.clearRect(0, 0, w, h);
  cctx.drawImage(bmp, 0, 0);
  bmp.close();
  return cctx.getImageData(0, 0, w, h).data;
}

async function decodeIndexPng(url, w, h) {
  const d = await decodePng(url, w, h);
  const out = new Uint8Array(w * h);
  for (let i = 0; i < out.length; i++) out[i] = d[4 * i];
  return out;
}

function encodeMap() {
  const top = S.history.top();
  if (S.encoded.id === S.img.id && S.encoded.step === top && S.encoded.url) return S.encoded.url;
  const { width: w, height: h, data } = S.map;
  codecCanvas.width = w;
  codecCanvas.height = h;
  const img = cctx.createImageData(w, h);
  const u32 = new Uint32Array(img.data.buffer);
  for (let i = 0; i < data.length; i++) { const v = data[i]; u32[i] = (0xff000000 | (v << 16) | (v << 8) | v) >>> 0; }
  cctx.putImageData(img, 0, 0);
  const url = codecCanvas.toDataURL("image/png");
  S.encoded = { step: top, id: S.img.id, url };
  return url;
}

// ------------------------------------------------------------------ talking to the server

function outgoing(request, args) {
  return {
    image_id: S.img ? S.img.id : null,
    map: S.map && S.img ? encodeMap() : null,
    edited: S.map ? S.history.isDirty() : false,
    request, args: args || {}, stamp: S.jstamp, base: S.img ? S.img.revision : null,
  };
}

// Keep props.value (what Gradio sends when another component's event reads the
// canvas, e.g. an upload) close to the map: re-encoded when the labeller pauses.
function scheduleSync() {
  journalize();
  clearTimeout(S.syncTimer);
  S.syncTimer = setTimeout(syncNow, 350);
}

function syncNow() {
  S.syncTimer = null;
  if (S.map && S.img) props.value = outgoing(null, {});
}

// A click or focus outside the canvas may start another component's event that reads
// props.value (the project list, a tab, an upload): a sync still waiting goes now, so
// that an edit made just before is in it (a project switch saves it as the draft).
function flushSync(ev) {
  if (S.syncTimer === null || root.contains(ev.target)) return;
  clearTimeout(S.syncTimer);
  syncNow();
}
document.addEventListener("pointerdown", flushSync, true);
document.addEventListener("focusin", flushSync, true);

function request(event, args = {}, busy = "", afterPaint = false) {
  if (Nav.navigating(S)) {
    // until the server has answered a move to another image, it still holds the old one:
    // a save, tool or split now would land on the wrong image
    if (!Nav.isNav(event)) { setStatus("One moment: the next image is being opened.", "busy"); updateTitle(); }
    return false;
  }
  commitShapes();   // what is pending goes with the map (objects.js)
  const rid = Nav.begin(S, event, { snapshot: S.map ? S.map.data.slice() : null, step: S.history.top(), image: S.img ? S.img.id : null, t: performance.now() });
  clearTimeout(S.syncTimer);
  S.syncTimer = null;
  const t0 = performance.now();
  const value = outgoing(rid, args);   // the map as it is now, whatever is shown next
  const send = () => {
    props.value = value;
    trigger(event);
    if (S.timing && S.timing.rid === rid) S.timing.sent = performance.now();
  };
  S.timing = { event, rid, t0 };   // for benchmarks/bench_canvas.py
  // afterPaint: let the browser draw what the caller shows next before Gradio's own
  // work for the event (its props and status updates) takes the main thread
  if (afterPaint) requestAnimationFrame(() => setTimeout(send, 0)); else send();
  if (busy) setStatus(busy, "busy");
  updateButtons();
  return rid;
}

// ------------------------------------------------------------------ durable edits (journal.js)

function author() {
  const el = document.querySelector("#segui-author input, #segui-author textarea");
  return el ? el.value : "";   // the server applies its rule (a login name wins; none typed: refused)
}

// The open image's map changed (or was restored): journal it while it is unsaved.
function journalize() {
  if (!S.img || !S.map || S.user === null) return;
  const rec = S.history.isDirty()
    ? { user: S.user, project: S.project, image: S.img.id, name: S.img.name, base: S.img.revision,
      width: S.map.width, height: S.map.height, data: S.map.data.slice(), author: author() }
    : { user: S.user, image: S.img.id, clean: true };
  // Until startJournal knows this tab's id (a Web Lock, slow on a loaded machine), an entry
  // would be keyed to no tab, and the page reloaded after a crash would not find it as its
  // own: journal it as soon as the id is known (in order, so the newest map wins).
  if (!journal.tab) S.journalReady.then(() => journalRecord(rec));
  else journalRecord(rec);
}

function journalRecord(rec) {
  let stamp;
  if (rec.clean) {
    journal.discard(rec.user, null, rec.image);
    stamp = journal.stamp();
  } else stamp = journal.record(rec).stamp;
  if (S.img && S.img.id === rec.image) S.jstamp = stamp;
  updateOutbox();
}

// The image being left stays in memory with its undo history (and the stamp of its map).
function stashDoc() {
  if (S.img && S.map) S.docs.put(S.img.id, { data: S.map.data.slice(), history: S.history, stamp: S.jstamp });
}

// An image opens: keep its undo history from an earlier visit, restore journaled edits
// the server does not have (JN.reconcile), apply a loaded revision. -> a note, or "".
function reconcileDoc(doc) {
  const id = doc.img.id, w = doc.img.width, h = doc.img.height;
  const cached = S.docs.get(id);
  const entry = S.user === null ? null : journal.get(S.user, null, id);
  const r = JN.reconcile(doc.map.data, cached, entry);
  let note = "";
  if (r.map === "cached") doc.map = new C.LabelMap(w, h, cached.data.slice());
  if (r.history === "cached") {
    doc.history = cached.history;
    doc.history.mark(r.dirty ? {} : doc.history.top());   // {}: no step is what the server has
  }
  if (r.restore) {
    const e = new C.Edit(doc.map, null);
    C.replaceAll(e, r.restore);
    const step = e.finish("restore of unsaved edits");
    if (step) doc.history.push(step);
    if (entry.base === doc.img.revision) {
      // the server's map is still the one they were made on: store them at once
      doc.autosave = true;
      note = "Restored your edits of this image that the server had not confirmed (kept in this browser); saving them…";
    } else {
      // someone saved meanwhile: both stay; the labeller decides (Ctrl+Z shows theirs)
      note = `Restored your unsaved edits of this image (kept in this browser), made on revision ${entry.base}; ` +
        `the server now has revision ${doc.img.revision}. Ctrl+Z shows that one; Ctrl+S stores yours on top (both stay in the revision list).`;
    }
  }
  if (r.dirty && entry && entry.base < doc.img.revision && !S.conflicts.has(id)) {
    // edits made on an older revision than the server's: compare (unless that one is mine)
    S.conflicts.set(id, { image: id, base: entry.base, theirs: doc.img.revision, mine: null, author: "", unlessMine: true });
  }
  if (entry && !journal.own(entry) && (r.restore || r.map === "cached")) doc.adopted = entry.key;   // the canvas holds it now
  if (r.drop) journal.discardKey(entry.key);
  if (doc.revisionStep) {
    const e = new C.Edit(doc.map, null);
    C.replaceAll(e, doc.revisionStep.data);
    const step = e.finish(`revision ${doc.revisionStep.revision}`);
    if (step) doc.history.push(step);
    doc.revisionStep = null;
  }
  return note;
}

// The server holds the map the page sent for an image (its journal stamp) as `revision`.
function confirmKept(k) {
  if (S.user === null || k.stamp == null) return;
  journal.confirm(S.user, null, k.image_id, k.stamp, k.revision);
  const c = S.docs.get(k.image_id);
  if (c && c.stamp <= k.stamp && (!S.img || S.img.id !== k.image_id)) c.history.mark(c.history.top());
  updateOutbox();
}

// Class indices -> an index PNG data URL (as encodeMap, for a journaled map).
function encodeData(data, w, h) {
  codecCanvas.width = w;
  codecCanvas.height = h;
  const img = cctx.createImageData(w, h);
  const u32 = new Uint32Array(img.data.buffer);
  for (let i = 0; i < data.length; i++) { const v = data[i]; u32[i] = (0xff000000 | (v << 16) | (v << 8) | v) >>> 0; }
  cctx.putImageData(img, 0, 0);
  return codecCanvas.toDataURL("image/png");
}

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error("no answer from the server")), ms))]);
}

// The outbox: journaled edits of images not open here, sent one at a time with backoff.
async function flushOutbox() {
  if (S.flushing || S.user === null) return;
  const now = performance.now();
  const busy = new Set([...S.pending.values()].filter((p) => now - p.t < 60000).map((p) => p.image));
  if (S.opening != null) busy.add(S.opening);
  const open = S.img ? S.img.id : null;
  const due = journal.due(S.user, S.retryOpen === open ? null : open, busy);
  if (!due.length) return;
  S.flushing = true;
  try {
    for (const e of due) {
      const own = journal.own(e);   // (else adopted from a closed tab: not what the canvas holds)
      const isOpen = S.img && S.img.id === e.image && own;
      if (isOpen && S.retryOpen !== e.image) continue;
      e.sending = true;
      updateOutbox();
      try {
        const r = await withTimeout(server.store_edit({ image_id: e.image, map: encodeData(e.data, e.width, e.height),
          base: e.base, stamp: e.stamp, author: e.author }), 30000);
        if (!r || r.image_id !== e.image) throw new Error("the server did not confirm it");
        e.sending = false;
        journal.confirmKey(e.key, e.stamp, r.revision);
        if (r.conflict_with) S.conflicts.set(e.image, { ...r.conflict_with, image: e.image });
        const c = S.docs.get(e.image);
        if (c && c.stamp <= e.stamp) c.history.mark(c.history.top());
        if (isOpen) {   // the open image's edits, after its own save failed
          S.img.revision = r.revision;
          if (S.jstamp === e.stamp) S.history.mark(S.history.top());
          S.retryOpen = null;
          updateTitle();
          updateButtons();
        }
        const what = `Your edit of ${e.name}, kept in this browser,`;
        if (!own && S.img && S.img.id === e.image) {
          // another tab's edit of the image open here: stored; this page's next save of it meets it as a conflict
          S.conflicts.delete(e.image);
          setStatus(`An edit of this image from another tab of this browser (closed before it was saved) is now stored as revision ${r.revision}; ` +
            "your next save of it opens the comparison, nothing is lost.", "warning");
        } else if (r.conflict && isOpen) showConflict(S.conflicts.get(e.image), `${what} is stored. ${r.conflict}`);
        else if (r.conflict) setStatus(`${what} is stored. ${r.conflict} Open the image to compare the two.`, "warning");
        else setStatus(r.same ? `${what} was already stored (revision ${r.revision}).` : `${what} is now stored as draft revision ${r.revision}.`);
      } catch (err) {
        journal.failed(e, (err && err.message) || String(err));
      }
      updateOutbox();
    }
  } finally { S.flushing = false; }
}

function updateOutbox() {
  const out = S.user === null ? [] : journal.pending(S.user).filter((e) => !(S.img && e.image === S.img.id && journal.own(e) && S.retryOpen !== e.image));
  const b = $(".seg-outbox");
  b.hidden = !out.length;
  b.textContent = `⚠ ${JN.summary(out)}`;
  root.dataset.outbox = out.length;
  const list = $(".seg-outbox-list");
  if (!out.length) list.hidden = true;
  if (list.hidden) return;
  const now = Date.now();
  list.innerHTML = `<div class="seg-outbox-head">${navigator.onLine === false ? "<b>This browser is offline.</b> " : ""}Edits this browser keeps until the server stores them` +
    (journal.broken ? ` (in memory only: ${esc(journal.broken)})` : "") + `:</div>` +
    out.map((e) => `<div class="seg-outbox-item">${esc(JN.describe(e, now))} <button data-outbox-open="${e.image}">Open</button></div>`).join("") +
    `<div class="seg-row"><button class="seg-outbox-retry">Retry now</button></div>`;
}

// After a reload or a crash: say what the journal brought back (once).
function announceRestored() {
  if (S.announced || S.user === null || !S.img) return;
  S.announced = true;
  const mine = (S.restoredSnapshot || journal.restored.map((k) => journal.entries.get(k)))
    .filter((e) => e && e.user === S.user);
  const others = mine.filter((e) => e.image !== S.img.id).length;
  if (!others) return;
  const here = mine.length - others ? " This image's are back on the canvas, unsaved." : "";
  setStatus(`This browser kept ${mine.length === 1 ? "1 edit" : `${mine.length} edits`} the server had not confirmed ` +
    `before the page was reloaded.${here} ${others === 1 ? "1 is" : `${others} are`} being saved now (see “not yet saved”).`, "warning");
}

// The heartbeat: a server restarted with no request in flight has lost this page's open
// image (its session's state) and nothing told the page. Every HEARTBEAT_MS (and when the
// tab shows again or the browser is back online) the page asks the server who it is
// (`alive`: the process's id); another id than the one that opened the image means a
// restart: the page reopens its image by itself, its unsaved edits kept (journal).
const HEARTBEAT_MS = 3000;

async function heartbeat() {
  if (S.beating || !S.boot || document.hidden) return;
  S.beating = true;
  try {
    const r = await withTimeout(server.alive({ project: S.project || "" }), 10000);
    if (S.serverLost) { S.serverLost = false; clearStatus("server"); }
    const restarted = !!(r && r.boot && r.boot !== S.boot);
    // a move to another image that the old server process took with it is never answered:
    // without this the page would wait for it for ever (and refuse every edit meanwhile)
    const move = Nav.pendingMove(S, performance.now());
    if (move && (restarted || move.waited > NAV_LOST_MS)) giveUpMove(move.event, restarted);
    if (restarted) reopenAfterRestart(r.boot);
    else if (stuckSinceRestart(performance.now())) reloadAfterRestart();
    else noticeModel(r && r.active);
  } catch (err) {
    // down (a restart under way) or this login ended; the journal keeps the edits meanwhile
    const msg = String((err && err.message) || err);
    if (!S.serverLost && S.img) {
      S.serverLost = true;
      setStatus(/40[13]|login|Not allowed/i.test(msg)
        ? "The server no longer knows this login (it restarted or the session ended): reload the page and log in; your unsaved edits are kept in this browser."
        : "The server does not answer; your edits are kept in this browser and the image is reopened when it is back.", "warning", "server");
    }
  } finally { S.beating = false; }
}

// Another model version became the project's active one (a job promoted, or someone
// activated a version): an image open unedited is opened again with its prediction (the
// server predicts it with the new version and the instant layer rebuilt on it); otherwise
// the labeller is told. Without this the mask on screen stayed the old model's until the
// labeller moved on, with nothing saying a new model was there.
function noticeModel(active) {
  if (active && active.project === S.project) {
    const before = Nav.jobLabel(S.job);
    const news = Nav.jobNews(S, active.job, active.name);
    const preparing = Nav.modelLabel(S, active);
    if (Nav.jobLabel(S.job) !== before || preparing !== S.modelLabel) { S.modelLabel = preparing; updateTitle(); }
    if (news) setStatus(news, "warning");
  }
  const what = Nav.newerModel(S, active);
  if (what === "reopen") {
    const text = `${active.name} is now the active model (a job was promoted, or someone chose it): this image ` +
      "shows its prediction (C: what changed).";
    const rid = request("open_image", { open: S.img.id, filter: S.filter }, `${active.name} is now the active model: predicting this image with it…`);
    if (rid) S.modelNote = { rid, text };
  } else if (what === "tell") {
    const mine = S.history.isDirty() ? "your edits" : "its mask";
    setStatus(`${active.name} is now the active model (a job was promoted, or someone chose it): the next images ` +
      `show its predictions; this one keeps ${mine} (C: where it differs).`, "info");
  } else if (Nav.newerFit(S, active)) {
    // corrections learnt since this unedited image was predicted: shown predicted with them
    // (said with the pixels it changed; nothing said when none did: a restart's rebuild of
    // the same corrections)
    const id = S.img.id, before = S.map.data.slice();
    const rid = request("open_image", { open: id, filter: S.filter }, "Predicting this image again with the corrections learnt since…");
    if (rid) {
      S.modelNote = { rid, text: () => {
        const n = S.img && S.img.id === id && S.map ? C.countDiffering(before, S.map.data) : -1;
        return n > 0 ? `This mask was predicted again with the corrections learnt since it was made: ${fmtCount(n)} px changed.` : "";
      } };
    }
  }
}

// A move unanswered this long while the server answers the heartbeat is taken as lost
// (a late answer is still shown when it comes).
const NAV_LOST_MS = 60000;

function giveUpMove(event, restarted) {
  root.__seg.failed(event);   // back to the image it left (an anticipated Next); the page is free again
  if (restarted) { S.lostMove = true; return; }   // the reopen says so (reopenAfterRestart)
  const kept = S.map && S.history.isDirty() ? " Your edits are kept in this browser." : "";
  setStatus(`The server has not answered the move to the next image for a minute: press it again.${kept}`, "warning");
}

function reopenAfterRestart(boot) {
  const now = performance.now();
  S.restartSeen = now;
  const waiting = [...S.pending.values()].some((p) => now - p.t < 30000);
  if (!S.img || waiting || Nav.navigating(S)) return;   // (an answer on its way; the next beat looks again)
  S.boot = boot;
  const args = { open: S.img.id, reopen: true, filter: S.filter };
  if (S.lostMove) args.lost_move = true;   // a Next the old server never answered (giveUpMove)
  if (request("open_image", args, "The server restarted: reopening this image…")) S.lostMove = false;
}

// After a restart Gradio's page can be left unable to send events at all (its client drops
// every event once it has taken the connection for lost, until it reloads the page, and
// now and then it does not reload): a request sent after the restart was seen that has no
// answer for STUCK_MS while the server answers the heartbeat is taken as never sent, and
// the page reloads itself (the journal keeps the unsaved edits and the tab reopens its
// image), once its journal writes have landed.
const STUCK_MS = 15000;

function stuckSinceRestart(now) {
  if (S.restartSeen == null || S.reloading) return false;
  return [...S.pending.values()].some((p) => typeof p.t === "number" && p.t >= S.restartSeen && now - p.t > STUCK_MS);
}

function reloadAfterRestart() {
  if (journal.unwritten) return;   // the next beat looks again
  if (S.map && S.history.isDirty() && (journal.broken || S.volatile)) {
    // the edits live only in this page: a reload would lose them
    setStatus("The server restarted and this page cannot reach it again. Your unsaved edits are only in this page (this browser could not store them): reloading would lose them.", "error", "server");
    S.reloading = true;
    return;
  }
  S.reloading = true;
  setStatus("The server restarted and this page could not reach it again: reloading it (your unsaved edits are kept in this browser)…", "busy");
  location.reload();
}

let ticks = 0;
setInterval(() => {
  flushOutbox();
  ticks++;
  if (ticks % (HEARTBEAT_MS / 1000) === 0) heartbeat();
  if (ticks % 5 === 0) { tabSeen(); if (journal.tab) adoptOrphans(); }
}, 1000);
window.addEventListener("online", () => { journal.retryAll(); flushOutbox(); heartbeat(); });
document.addEventListener("visibilitychange", () => { if (!document.hidden) heartbeat(); });

root.__seg.failed = (event) => {
  // an event raised an error (Gradio shows its message): its requests wait no more
  const undo = Nav.fail(S, event);
  if (undo) { showDoc(undo.leaving); schedulePeek(); }   // back from an anticipated Next
  updateTitle();   // e.g. the split select back to the image's split
  const kept = S.map && S.history.isDirty() ? " Your unsaved edits are kept in this browser until the server stores them." : "";
  // a save (or a move that saves) failed: the open image's journaled edits join the outbox
  if (kept && ["save_draft", "submit_next", "go_next", "open_image"].includes(event)) S.retryOpen = S.img.id;
  setStatus(`The last action failed; see the message. Nothing was changed here.${kept}`, "error");
  updateButtons();
};

async function onValue() {
  const v = props.value;
  if (!Nav.fresh(S, v)) return;
  const p = v.request != null ? S.pending.get(v.request) : null;
  if (p && S.timing && S.timing.rid === v.request) S.timing.received = performance.now();
  try {
    if (v.queue) setQueue(v.queue);
    if (v.classes) setClasses(v.classes, v.ignore_index, v.thin);
    if (v.kind === "classes") labelSetChanged();
    if (v.rights) setRights(v.rights);
    if (typeof v.user === "string") S.user = v.user;
    if (typeof v.boot === "string") S.boot = v.boot;
    if (v.kept) confirmKept(v.kept);
    const route = Nav.route(S, v);
    if (route === "settle") {
      await settleOptimistic(v);
      if (v.kind === "saved") onSaved(v, p);    // back on the image the server saved
    } else if (route === "load") {
      await loadImage(v);
      if (v.drawer === "close") toggleDrawer(false);   // an upload that added every file
    }
    else if (route === "saved") onSaved(v, p);
    else if (route === "result") await onResult(v, p);
    else if (route === "prompt") await onPrompt(v, p);
    else if (route === "split") { S.img.split = v.split; updateTitle(); }
    if (v.request != null && S.choiceNote && v.request === S.choiceNote.rid && v.kind === "saved" && !v.conflict) v.note = S.choiceNote.text(v.revision);
    if (S.modelNote && v.request === S.modelNote.rid) {
      const m = S.modelNote;
      S.modelNote = null;
      const text = typeof m.text === "function" ? m.text() : m.text;
      if (text) v.note = text + (v.note ? " " + v.note : "");
    }
    if (v.request != null && v.request === S.restoreRid && v.note) v.note = "Restored your edits of this image that the server had not confirmed (kept in this browser): " + v.note;
    if (v.note) setStatus(v.note, v.level || "info", v.until || "");
    else if ($(".seg-status").dataset.level === "busy" && (p || v.kind === "load")) setStatus("");
  } catch (err) {
    console.error(err);
    setStatus(`Could not show the server's answer: ${err.message}`, "error");
  } finally {
    // the request is answered only once its answer is on screen
    if (p && S.timing && S.timing.rid === v.request && !S.timing.answered) S.timing.answered = performance.now();
    Nav.answered(S, v);
    updateButtons();
  }
}

watch("value", onValue);

// ------------------------------------------------------------------ classes and palette

function setClasses(classes, ignore, thin) {
  S.classes = classes.map((c) => ({ index: c.index, name: c.name, color: c.color, rgb: rgbOf(c.color) }));
  S.byIndex = new Map(S.classes.map((c) => [c.index, c]));
  if (ignore != null) S.ignore = ignore;
  if (thin) S.thin = thin;
  if (S.active === null || (S.active !== S.ignore && !S.byIndex.has(S.active))) S.active = S.classes.length ? S.classes[0].index : S.ignore;
  // clean-up's "never erase" list starts as the thin classes; the labeller's changes
  // to it hold until the project or its thin classes change
  const keepKey = JSON.stringify([S.project, S.thin]);
  if (!S.keepSet || S.keepKey !== keepKey) { S.keepSet = new Set(S.thin); S.keepKey = keepKey; }
  for (const h of [...S.hidden]) if (!S.byIndex.has(h)) S.hidden.delete(h);
  S.lut = C.colorTable(S.classes, S.ignore, S.hidden);
  renderClassList();
  renderKeep();
  if (S.map) { recolor(null); requestRender(); }
}

// The label set's words changed on the projects screen: the server forgot the
// predictions made for the old words. The next image prepared ahead carries one of them;
// the open image shows one too when nothing was annotated on it yet: open it again
// (its new prediction) unless the labeller has edits or a shape under way.
function labelSetChanged() {
  clearTimeout(S.peekTimer);
  S.ahead = null;
  if (!S.img || !S.map) return;
  if (S.img.revision === 0 && !S.history.isDirty() && !pendingShape() && !S.edit) {
    request("open_image", { open: S.img.id, filter: S.filter }, "The label set changed: predicting this image with its words…");
  } else schedulePeek();
}

function renderClassList() {
  const list = $(".seg-classes");
  const q = $(".seg-filter").value;
  $(".seg-filter").hidden = S.classes.length <= 9 && !q;
  const keyOf = new Map(S.classes.map((c, pos) => [c.index, SegInput.classKeyLabel(pos)]));
  const shown = C.filterClasses(S.classes, q);
  const rows = shown.map((c) => classRow(c.index, c.name, c.color, keyOf.get(c.index) || ""));
  if (!q || "void".includes(q.toLowerCase())) rows.push(classRow(S.ignore, "void (unlabelled)", null, "0"));
  list.innerHTML = rows.join("");
  updateCounts();
  updateActive();
}

function classRow(idx, name, color, key) {
  const sw = color ? `style="background:${color}"` : "";
  const hidden = S.hidden.has(idx);
  const eye = idx === S.ignore ? "" : `<button class="seg-eye" data-eye="${idx}" title="Show or hide this class (while hidden, no tool paints over it)">${hidden ? "○" : "●"}</button>`;
  return `<div class="seg-class${hidden ? " is-hidden" : ""}" data-class="${idx}" title="${esc(name)}">` +
    `${eye}<span class="seg-swatch${color ? "" : " void"}" ${sw}></span>` +
    `${key ? `<kbd title="key ${esc(key.replace("⇧", "Shift+"))}">${esc(key)}</kbd>` : '<span class="seg-nokey"></span>'}<span class="seg-name">${esc(name)}</span><span class="seg-count" data-count="${idx}"></span></div>`;
}

function updateCounts() {
  if (!S.map) {   // no image open (an empty project): no figures, not the last image's
    for (const el of $$(".seg-count")) { el.textContent = ""; el.title = ""; }
    return;
  }
  const total = S.map.width * S.map.height;
  for (const el of $$(".seg-count")) {
    const n = S.map.counts[+el.dataset.count];
    el.textContent = n ? fmtCount(n) : "";
    el.title = `${n} px (${((100 * n) / total).toFixed(1)} %)`;
  }
}

function updateActive() {
  for (const el of $$(".seg-class")) el.classList.toggle("is-active", +el.dataset.class === S.active);
  const c = S.byIndex.get(S.active);
  $(".seg-current").innerHTML = `<span class="seg-swatch${c ? "" : " void"}" style="${c ? `background:${c.color}` : ""}"></span>` +
    `<b>${esc(className(S.active))}</b>`;
  root.dataset.active = S.active;
}

function selectClass(idx) {
  S.active = idx;
  if (tool().erases) setTool("brush");
  updateActive();
  if (S.obj && S.obj.clicks) commitObject();   // picking a class commits the previewed object (objects.js)
  else if (S.vpoly) requestRender();
}

function renderKeep() {
  const box = $(".seg-keep");
  $(".seg-keep-summary").textContent = "Never erase: " +
    (S.classes.filter((c) => S.keepSet && S.keepSet.has(c.index)).map((c) => c.name).join(", ") || "nothing");
  box.innerHTML = S.classes.map((c) =>
    `<label class="seg-chip"><input type="checkbox" data-keep="${c.index}" ${S.keepSet && S.keepSet.has(c.index) ? "checked" : ""}>` +
    `<span class="seg-swatch" style="background:${c.color}"></span>${esc(c.name)}</label>`).join("");
}

// ------------------------------------------------------------------ drawing

function recolor(box) {
  if (!S.map) return;
  const w = S.map.width, h = S.map.height;
  if (maskCanvas.width !== w || maskCanvas.height !== h || !S.maskData) {
    maskCanvas.width = w;
    maskCanvas.height = h;
    S.maskData = mctx.createImageData(w, h);
    S.mask32 = new Uint32Array(S.maskData.data.buffer);
    box = null;
  }
  const x0 = box ? Math.max(0, box.x0) : 0, y0 = box ? Math.max(0, box.y0) : 0;
  const x1 = box ? Math.min(w - 1, box.x1) : w - 1, y1 = box ? Math.min(h - 1, box.y1) : h - 1;
  if (x1 < x0 || y1 < y0) return;
  const d = S.map.data, out = S.mask32, lut = S.lut;
  for (let y = y0; y <= y1; y++) {
    let i = y * w + x0;
    const end = y * w + x1;
    for (; i <= end; i++) out[i] = lut[d[i]];
  }
  mctx.putImageData(S.maskData, 0, 0, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
}

function changed(box) {
  recolor(box);
  requestRender();
  scheduleCounts();
}

function scheduleCounts() {
  if (S.countsQueued) return;
  S.countsQueued = true;
  setTimeout(() => { S.countsQueued = false; updateCounts(); }, 60);
}

function requestRender() {
  if (S.renderQueued) return;
  S.renderQueued = true;
  requestAnimationFrame(render);
}

function sizeView() {
  const dpr = window.devicePixelRatio || 1;
  const W = stage.clientWidth, H = stage.clientHeight;
  if (view.width !== Math.round(W * dpr) || view.height !== Math.round(H * dpr)) {
    view.width = Math.round(W * dpr);
    view.height = Math.round(H * dpr);
    view.style.width = W + "px";
    view.style.height = H + "px";
    if (S.fitted) fit();
  }
  return { W, H, dpr };
}

function render() {
  S.renderQueued = false;
  const { W, H, dpr } = sizeView();
  vctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  vctx.fillStyle = "#1e2127";
  vctx.fillRect(0, 0, W, H);
  if (S.map) {
    const { s, ox, oy } = S.view, w = S.map.width, h = S.map.height;
    if (S.photo) {
      vctx.imageSmoothingEnabled = s < 1;
      vctx.drawImage(S.photo, ox, oy, w * s, h * s);
    }
    if (S.maskVisible && S.opacity > 0 && !(S.heat && S.heat.shown)) {   // a word heatmap replaces the mask while shown
      vctx.imageSmoothingEnabled = false;
      vctx.globalAlpha = S.opacity;
      vctx.drawImage(maskCanvas, ox, oy, w * s, h * s);
      vctx.globalAlpha = 1;
    }
    if (S.reviewMask && S.showDisagree) {
      vctx.imageSmoothingEnabled = false;
      vctx.drawImage(reviewCanvas, ox, oy, w * s, h * s);
    }
    if (S.prompt) {
      vctx.imageSmoothingEnabled = false;
      vctx.globalAlpha = 0.7;
      vctx.drawImage(promptCanvas, ox, oy, w * s, h * s);
      vctx.globalAlpha = 1;
    }
    drawHeat();   // the word heatmap layer (heatmap.js)
    drawPolygon();
    drawShapes();   // a pending object or editable polygon (objects.js)
    drawCursor();
  }
  S.frames++;
  root.dataset.frame = S.frames;
  root.dataset.imageShown = S.img ? S.img.id : "";
}

function toScreen(x, y) { return [S.view.ox + x * S.view.s, S.view.oy + y * S.view.s]; }

function drawPolygon() {
  if (!S.polygon.length) return;
  const pts = S.polygon.map(([x, y]) => toScreen(x, y));
  const c = S.byIndex.get(paintValue());
  vctx.lineWidth = 2;
  vctx.strokeStyle = c ? c.color : "#ffffff";
  vctx.fillStyle = c ? c.color + "55" : "#ffffff33";
  vctx.beginPath();
  pts.forEach(([x, y], k) => (k ? vctx.lineTo(x, y) : vctx.moveTo(x, y)));
  if (S.cursor) vctx.lineTo(S.cursor.sx, S.cursor.sy);
  vctx.closePath();
  vctx.fill();
  vctx.stroke();
  vctx.fillStyle = "#fff";
  for (const [x, y] of pts) vctx.fillRect(x - 3, y - 3, 6, 6);
}

function drawCursor() {
  if (!S.cursor || S.pan || S.space) return;
  if (tool().ring) {
    const r = (S.size / 2) * S.view.s;
    vctx.beginPath();
    vctx.arc(S.cursor.sx, S.cursor.sy, Math.max(r, 1), 0, Math.PI * 2);
    vctx.lineWidth = 1.5;
    vctx.strokeStyle = "#000";
    vctx.stroke();
    vctx.beginPath();
    vctx.arc(S.cursor.sx, S.cursor.sy, Math.max(r - 1.5, 0.5), 0, Math.PI * 2);
    const c = S.byIndex.get(paintValue());
    vctx.strokeStyle = c ? c.color : "#fff";
    vctx.stroke();
  }
}

function fit() {
  if (!S.map) return;
  S.view = C.fitView(S.map.width, S.map.height, stage.clientWidth, stage.clientHeight, 6);
  S.fitted = true;
  requestRender();
}

new ResizeObserver(() => requestRender()).observe(stage);
// A narrow window wraps the toolbar onto a second row: that row's height comes off the
// canvas (canvas.css --seg-toolbar-extra), so the bottom bar stays in view.
const toolbarEl = $(".seg-toolbar");
new ResizeObserver(() => {
  const row = Math.max(0, ...[...toolbarEl.children].map((c) => c.offsetHeight));
  root.style.setProperty("--seg-toolbar-extra", `${Math.max(0, toolbarEl.offsetHeight - row)}px`);
}).observe(toolbarEl);

// ------------------------------------------------------------------ loading

// Show a per-image part of the state (Nav.DOC: what Next swaps and a failed Next restores).
function showDoc(d) {
  for (const k of Nav.DOC) S[k] = d[k];
  cancelPolygon();
  shapesImageChanged();   // (objects.js)
  S.prompt = null;
  clearStatus("image");
  clearStatus("prompt");        // a text prompt belongs to its image
  clearStatus("superpixels");   // its queued clicks went with the image
  heatImageChanged();   // a word heatmap belongs to its image (heatmap.js)
  $(".seg-promptbar").hidden = true;
  $(".seg-empty").hidden = !!S.map;
  root.dataset.superpixels = S.seg && S.img ? S.img.id : "";
  recolor(null);
  drawReviewMask();
  showReview();
  fit();
  render();
  updateCounts();
  updateTitle();
  updateButtons();
  markCurrent();
}

// ------------------------------------------------------------------ review

// The disagreement mask as a red overlay with a bright outline, so a reviewer sees
// where to look; drawn above the class mask while the "Disagreement" box (D) is ticked.
function drawReviewMask() {
  const m = S.reviewMask;
  if (!m || !S.img) return;
  const w = S.img.width, h = S.img.height;
  reviewCanvas.width = w;
  reviewCanvas.height = h;
  const img = rctx.createImageData(w, h);
  const u32 = new Uint32Array(img.data.buffer);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!m[i]) continue;
      const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !m[i - 1] || !m[i + 1] || !m[i - w] || !m[i + w];
      u32[i] = edge ? 0xff0000ff : 0x660000ff;   // ABGR: opaque red edge, translucent fill
    }
  }
  rctx.putImageData(img, 0, 0);
}

function showReview() {
  const r = S.review, box = $(".seg-review"), fb = $(".seg-feedback");
  root.dataset.review = r ? r.state : "";
  root.dataset.disagreement = S.reviewMask ? "1" : "0";
  fb.hidden = true;
  fb.className = "seg-feedback";
  box.hidden = true;
  if (!r || !S.img) return;
  if (r.decision) {
    fb.hidden = false;
    fb.classList.add(r.decision === "rejected" ? "is-rejected" : "is-accepted");
    const what = r.decision === "rejected" ? "Rejected" : "Accepted";
    const again = r.decision === "rejected" && r.state !== "rejected" ? "" :
      (r.decision === "rejected" ? " Fix it and submit again (Ctrl+Enter)." : "");
    fb.innerHTML = `<b>${what}</b> by ${esc(r.reviewer)} (${esc(r.at)})${r.comment ? `: “${esc(r.comment)}”` : "."}${again}`;
  }
  if (r.can_review && r.revision != null) {
    box.hidden = false;
    // the score: the largest part the model is sure is labelled wrong, weighted by how wholly
    // it is wrong, as a share of the labelled pixels (0: nothing; 100: the whole image)
    // (said as a share: "0.8 / 100" read as a low mark on the image the queue put first)
    const score = r.score == null ? "not scored yet" : `<b>${(100 * r.score).toFixed(1)} %</b> of the image`;
    const rank = r.rank != null ? `, ${r.rank} of ${r.pending} awaiting review` : "";
    const where = S.reviewMask ? ` · most in ${fmtCount(r.mask_pixels || 0)} px (red)` :
      " · no region it is sure is wrong";
    const info = $(".seg-review-info");    // kept to about two lines: the class list above keeps its rows
    info.innerHTML = `<b>Review</b> of revision ${r.revision} (${esc(r.state)}` +
      `${r.draft_on_top ? "; a newer draft is on top" : ""}) · model disagreement: ${score}${rank}${where}`;
    info.title = "Model disagreement: the largest part of the image the model is sure is labelled wrong, " +
      "as a share of the labelled pixels (0 = it doubts nothing, 100 = the whole image)";
    $(".seg-review-comment").value = "";
  }
}

function setRights(r) {
  S.rights = r;
  const opt = $(".seg-review-only");
  opt.hidden = !r.review;
  if (!r.review && S.filter === "review") { S.filter = "unlabelled"; $(".seg-queue").value = "unlabelled"; }
}

function decide(decision) {
  if (!S.img || !S.review) return;
  const comment = $(".seg-review-comment").value.trim();
  if (decision === "rejected" && !comment) {
    setStatus("Say what is wrong: a rejection needs a comment for the annotator.", "warning", "comment");
    $(".seg-review-comment").focus();
    return;
  }
  request("review_image", { decision, comment, filter: "review" }, decision === "accepted" ? "Accepting…" : "Rejecting…");
}

function toggleDisagreement(on) {
  S.showDisagree = on === undefined ? !S.showDisagree : on;
  $(".seg-disagree").checked = S.showDisagree;
  requestRender();
}

// Photo, map and prediction of a "load" payload, decoded (and superpixels when asked).
async function decodeLoad(v, withSegments) {
  const im = v.image;
  const photo = new Image();
  photo.src = im.url;
  const rv = v.review || null;
  const [map, pred, , seg, reviewMask] = await Promise.all([
    decodeIndexPng(v.map, im.width, im.height),
    v.pred ? decodeIndexPng(v.pred, im.width, im.height) : Promise.resolve(null),
    photo.decode(),
    withSegments ? fetchSegments(im.id, im.width, im.height) : Promise.resolve(null),
    rv && rv.mask ? decodeIndexPng(rv.mask, im.width, im.height) : Promise.resolve(null),
  ]);
  return {
    img: im, photo, map: new C.LabelMap(im.width, im.height, map), pred, seg, segQueue: [],
    history: new C.History(200), encoded: { step: undefined, id: null, url: null }, review: rv, reviewMask,
  };
}

function enter(v, doc) {
  if (S.edit) tool().up();   // a stroke still under way: one step of the image it was drawn on
  Nav.visit(S, v, doc.img.id);
  rememberOpen(v.project, doc.img.id);
  stashDoc();
  if (S.project !== v.project) S.job = null;   // (another project's job: the next beat says this one's)
  S.project = v.project;
  S.ahead = null;
  const note = reconcileDoc(doc, v);
  showDoc(doc);
  journalize();
  if (doc.adopted) { journal.discardKey(doc.adopted); doc.adopted = null; updateOutbox(); }   // journalize recorded it as this tab's
  if (note) { setStatus(note, "warning"); v.note = note + (v.note ? " " + v.note : ""); v.level = "warning"; }
  const conflict = S.conflicts.get(doc.img.id);
  if (conflict && conflict.mine != null && conflict.mine !== doc.img.revision) S.conflicts.delete(doc.img.id);   // stored over since
  else if (conflict) setTimeout(() => { if (S.img === doc.img) showConflict(conflict, v.note); }, 0);
  updateConflictBtn();
  if (doc.autosave) {
    doc.autosave = false;
    setTimeout(() => autosaveRestored(doc.img.id, 0), 0);   // once the answer that opened it is settled
  }
  if (S.timing) S.timing.shown = performance.now();
}

// A reload (the labeller's, or Gradio's after a server restart) shows the image this tab
// had open, not the queue's next one: the tab keeps its open image in sessionStorage (a
// reload keeps it, a new tab starts without), and the first image a reloaded page is
// given is swapped for it once, if it belongs to the same project, unless that first image
// came back with unsaved edits from the journal (those are shown and saved first). The
// server checks the open as any other (another project's or a deleted image is refused).
const OPEN_KEY = "segui-open";

function rememberOpen(project, id) {
  try { sessionStorage.setItem(OPEN_KEY, JSON.stringify({ project, id })); } catch (err) { /* not kept: no resume */ }
}

let wasOpen = null;   // what this tab had open before the page (re)loaded, read before the first image overwrites it
try { wasOpen = JSON.parse(sessionStorage.getItem(OPEN_KEY) || "null"); } catch (err) { /* none */ }

// -> the image id to reopen instead of `v`'s (once per page), or null.
function resumeTarget(v) {
  if (S.resumeChecked) return null;
  S.resumeChecked = true;
  const was = wasOpen;
  if (!was || was.project !== v.project || !Number.isInteger(was.id) || was.id === v.image.id) return null;
  if (S.history.isDirty()) return null;   // the first image came with its unsaved edits restored: they are shown first
  // what the reload brought back is said once the page shows the reopened image, as it was
  // at the start (the first image's restore and the outbox may have stored some of it by then)
  S.restoredSnapshot = S.restoredAtStart || [];
  return was.id;
}

// Store the edits the journal restored into image `id` while it is still open with them.
// Another view of the same image may have replaced the document meanwhile (Gradio's first
// answers after a reload come several at once; the cached document keeps the edits), and a
// move under way holds requests: wait for it rather than leave the edits unsaved under a
// "saving them…" that never happens.
function autosaveRestored(id, tries) {
  if (!S.img || S.img.id !== id || !S.history.isDirty()) return;
  if (Nav.navigating(S)) {
    if (tries < 100) setTimeout(() => autosaveRestored(id, tries + 1), 100);
    return;
  }
  S.restoreRid = request("save_draft", {}, "Saving the restored edits…");
}

// An answer that shows a map (another image, or the open one again) waits until a stroke
// under way has ended (the pointer up, or at most `limit` ms): else the stroke would go
// on painting the map it replaced and be lost. Seen under load: one of Gradio's first
// answers, opening the image again, arriving during the labeller's first stroke.
async function strokeEnded(limit = 10000) {
  const t0 = performance.now();
  while (S.edit && performance.now() - t0 < limit) await new Promise((r) => setTimeout(r, 20));
}

async function loadImage(v) {
  if (!v.image) {
    S.resumeChecked = true;   // (a reload resumes only into the first image it is given)
    S.project = v.project;
    S.visited = [];
    showDoc({ img: null, photo: null, map: null, pred: null, seg: null, segQueue: [], history: new C.History(200),
      encoded: { step: undefined, id: null, url: null }, review: null, reviewMask: null });
    $(".seg-empty").textContent = v.empty || "No image open.";
    return;
  }
  S.opening = v.image.id;   // (the outbox leaves it alone until shown: it may be restored into the canvas)
  try {
    const doc = await decodeLoad(v, false);
    if (v.restore) {   // "Load revision N": the latest map, with revision N on top as an unsaved edit
      doc.revisionStep = { revision: v.restore.revision, data: doc.map.data };
      doc.map = new C.LabelMap(v.image.width, v.image.height, await decodeIndexPng(v.restore.latest, v.image.width, v.image.height));
    }
    await S.journalReady;
    await strokeEnded();
    // routed before the page's own save of this image landed (decoding takes a while, and
    // Gradio's first answers after a reload come several at once): stale by now, not shown
    if (Nav.staleLoad(S, v)) return;
    enter(v, doc);
  } finally { S.opening = null; }
  const resume = resumeTarget(v);
  if (resume === null) announceRestored();   // (else said with the reopened image)
  props.value = outgoing(null, {});
  loadSuperpixels(v.image.id);
  schedulePeek();
  if (resume !== null) request("open_image", { open: resume, filter: S.filter }, "Reopening the image this tab had open…");
}

async function fetchSegments(id, w, h) {
  const r = await server.superpixels({ image_id: id });
  if (!r || r.image_id !== id) return null;
  const d = await decodePng(r.data, w, h);
  const seg = new Uint16Array(w * h);
  for (let i = 0; i < seg.length; i++) seg[i] = d[4 * i] | (d[4 * i + 1] << 8);
  return C.indexSegments(seg);
}

async function loadSuperpixels(id) {
  try {
    const seg = await fetchSegments(id, S.img.width, S.img.height);
    if (!S.img || S.img.id !== id || !seg) return;
    S.seg = seg;
    root.dataset.superpixels = id;
    const queued = S.segQueue;
    S.segQueue = [];
    clearStatus("superpixels", queued.length ? `Superpixels arrived: ${queued.length === 1 ? "your click was" : `your ${queued.length} clicks were`} applied.` : "");
    for (const q of queued) runSuperpixel(q);
  } catch (err) {
    console.error(err);
    if (S.img && S.img.id === id) setStatus(`Superpixels could not be computed: ${err.message}`, "error", "image");
  }
}

// ------------------------------------------------------------------ the next image, ahead of time

// A second after an image opens, ask the server what Next would open and decode it
// (photo, map, prediction, superpixels), so that Next shows it at once.
function schedulePeek() {
  clearTimeout(S.peekTimer);
  S.ahead = null;
  S.peekTimer = setTimeout(peekNext, 900);
}

function peekNext() {
  const id = S.img && S.img.id;
  if (!id || !S.project) return;
  const promise = peek(id, S.filter, S.project);
  S.peeking = { id, promise };
  promise.finally(() => { if (S.peeking && S.peeking.promise === promise) S.peeking = null; });
}

async function peek(id, filter, project) {
  try {
    const v = await server.peek_next({ project, current: id, filter });
    if (!v || !v.image) return;
    const doc = await decodeLoad(v, true);
    if (Nav.aheadWanted(S, id, filter)) S.ahead = { current: id, filter, v, doc };
  } catch (err) {
    console.warn("could not prepare the next image", err);
  }
}

// Show the prepared next image while the server saves and confirms (request `rid`).
function showAhead(rid) {
  const a = Nav.anticipate(S, rid);
  enter(a.v, a.doc);
  return true;
}

// The server answered the Next that showAhead anticipated (Nav.settle says how).
async function settleOptimistic(v) {
  const { action, o } = Nav.settle(S, v);
  if (action === "replace") {
    // the same image, but its mask was prepared ahead by a model that has since been
    // replaced: show the server's (the prepared one stays on screen while it decodes)
    const doc = await decodeLoad(v, false);
    await strokeEnded();
    // unless the labeller has started editing it (then it comes in under their strokes) or moved on
    if (Nav.replaceWanted(S, o, v)) {
      enter(v, doc);
      loadSuperpixels(doc.img.id);
    } else if (Nav.mergeWanted(S, o, v)) {
      mergeNewer(v, doc);
    }
  } else if (action === "keep") {
    Object.assign(S.img, v.image, { url: S.img.url });   // the same image and revision: keep it
    updateTitle();
  }
  if (action === "replace" || action === "keep") {
    props.value = outgoing(null, {});
    schedulePeek();
    return;
  }
  if (action === "other") { showDoc(o.leaving); await loadImage(v); return; }   // another image than expected
  // the server stayed on the image (a save conflict, nothing next, an error): back to it
  showDoc(o.leaving);
  schedulePeek();
}

// The server's newer prediction of the open image (the instant layer learnt the last submit,
// or another model version was made active) came after the labeller started editing the one
// prepared ahead: it comes in where they have not painted, as one step Ctrl+Z takes back.
// The server's open image holds the newer one, so its tools (snap) see only their strokes.
function mergeNewer(v, doc) {
  const e = new C.Edit(S.map, null);
  const r = C.mergeResult(e, S.pred, doc.map.data);
  S.pred = doc.pred;
  Object.assign(S.img, v.image, { url: S.img.url });
  updateTitle();
  const step = e.finish("the newer prediction");
  if (step) { S.history.push(step); changed(step.box); scheduleSync(); updateButtons(); }
  // (said before the answer's own note about the image left, which the status line shows next)
  v.note = `This mask was just updated ${v.image.adapted ? "with your submit" : "by the newer model"}: ` +
    `${fmtCount(r.changed)} px, none you painted (Ctrl+Z undoes).` + (v.note ? " " + v.note : "");
}

function updateTitle() {
  const im = S.img;
  if (!im) { $(".seg-title").textContent = ""; $(".seg-info").textContent = ""; return; }
  const rv = S.review && S.review.state;
  const rb = rv ? ` <span class="seg-badge s-review-${esc(rv)}">${rv === "pending" ? "in review" : esc(rv)}</span>` : "";
  $(".seg-title").innerHTML = `<b title="${esc(im.name)}">${esc(im.name)}</b> <span class="seg-badge s-${esc(im.status)}">${esc(im.status)}</span>${rb}`;
  const adapted = im.adapted && im.revision === 0 ?     // the map shown is the instant layer's prediction
    ` · adapted to ${im.adapted} correction${im.adapted === 1 ? "" : "s"}` : "";
  const job = S.modelLabel || Nav.jobLabel(S.job);   // (the heartbeat's: a new model prepared, or a job under way)
  $(".seg-info").textContent = `${im.width}×${im.height} · id ${im.id}${adapted}${job ? " · " + job : ""}`;
  $(".seg-split").value = im.split;
  $(".seg-info").title = im.source || "";
}

// ------------------------------------------------------------------ the image strip

// One page of the project's images (the server's Studio.strip): a column of thumbnails
// with file name and status colour, the open image highlighted; a click opens the image
// through the usual navigation (unsaved edits become a draft first). Thumbnails are
// asked for (server function `thumbnails`) only for the items scrolled into view, and
// kept here by image id and key (the key changes with each saved revision).
const STRIP_WORDS = SegStrip.WORDS;

function thumbItem(it) {
  const t = S.thumbs.get(it.id);
  const img = t && t.key === it.thumb ? `<img alt="" src="${t.url}">` : '<span class="seg-thumb-ph"></span>';
  const st = it.status === "unlabelled" ? "" : `<span class="seg-thumb-st">${esc(STRIP_WORDS[it.status] || it.status)}</span>`;
  return `<button class="seg-thumb t-${esc(it.status)}" data-open="${it.id}" data-status="${esc(it.status)}" ` +
    `title="${esc(it.name)} (${esc(it.status)}) · #${it.pos}">${img}${st}<span class="seg-thumb-name">${esc(it.name)}</span></button>`;
}

function setQueue(q) {
  S.queue = q;
  const strip = $(".seg-strip");
  strip.innerHTML = q.items.map(thumbItem).join("");
  const sum = SegStrip.summary(q);
  $(".seg-page-info").textContent = sum.range;
  $(".seg-page-prev").disabled = !sum.canPrev;
  $(".seg-page-next").disabled = !sum.canNext;
  root.dataset.stripPage = q.page ?? "";
  $(".seg-progress").textContent = sum.progress;
  // each count opens the next image of its status (the queue beside Next is set to it)
  $(".seg-legend").innerHTML = sum.legend.map(([k, n, f]) => f
    ? `<button class="seg-legend-go" data-filter="${esc(f)}" title="${esc(k)}: open the next one (sets the queue beside Next to “${esc(queueWords(f))}”)"><i class="t-${esc(k)}"></i>${n} ${esc(k)}</button>`
    : `<span title="${esc(k)}"><i class="t-${esc(k)}"></i>${n} ${esc(k)}</span>`).join("");
  markCurrent(q.current);
  for (const el of strip.querySelectorAll(".seg-thumb")) thumbObserver.observe(el);
}

function markCurrent(id = S.img ? S.img.id : null) {
  const strip = $(".seg-strip");
  let cur = null;
  for (const el of strip.querySelectorAll(".seg-thumb")) {
    const on = +el.dataset.open === id;
    el.classList.toggle("is-current", on);
    if (on) cur = el;
  }
  // not scrollIntoView: it scrolls the page
  if (cur) strip.scrollTop = cur.offsetTop - strip.offsetTop - (strip.clientHeight - cur.offsetHeight) / 2;
}

const thumbObserver = new IntersectionObserver((entries) => {
  for (const e of entries) if (e.isIntersecting) { S.thumbWant.add(+e.target.dataset.open); thumbObserver.unobserve(e.target); }
  if (S.thumbWant.size) { clearTimeout(S.thumbTimer); S.thumbTimer = setTimeout(fetchThumbs, 40); }
}, { root: $(".seg-strip"), rootMargin: "60px" });

async function fetchThumbs() {
  const q = S.queue;
  if (!q || !q.project) return;
  const ids = SegStrip.toFetch(S.thumbWant, q.items, S.thumbs);
  S.thumbWant.clear();
  if (!ids.length) return;
  try {
    const got = await server.thumbnails({ project: q.project, ids });
    for (const t of got || []) {
      S.thumbs.set(t.id, { key: t.key, url: t.url });
      const el = $(`.seg-strip [data-open="${t.id}"]`);
      const it = S.queue && S.queue.items.find((x) => x.id === t.id);
      if (el && it && it.thumb === t.key) {
        const ph = el.querySelector(".seg-thumb-ph, img");
        const img = document.createElement("img");
        img.alt = "";
        img.src = t.url;
        ph.replaceWith(img);
      }
    }
    root.dataset.thumbs = S.thumbs.size;
  } catch (err) {
    console.warn("could not load thumbnails", err);
  }
}

async function stripPage(delta) {
  const q = S.queue;
  if (!q || !q.project) return;
  try {
    const r = await server.strip_page({ project: q.project, page: (q.page || 0) + delta, current: S.img ? S.img.id : null });
    if (r && r.items) setQueue(r);
  } catch (err) {
    setStatus(`Could not show that page of images: ${(err && err.message) || err}`, "error");
  }
}

// The Upload · Revisions drawer (a Gradio column of the Label screen, LABEL_CSS): fixed
// over the image column and the left of the image, so nothing in the page moves.
function toggleDrawer(open) {
  const d = document.getElementById("segui-drawer");
  if (!d) return;
  const on = open === undefined ? d.dataset.open !== "1" : open;
  d.dataset.open = on ? "1" : "";
  $(".seg-drawer-btn").classList.toggle("is-on", on);
  if (on) placeDrawer();
}

function placeDrawer() {
  const d = document.getElementById("segui-drawer");
  if (!d || d.dataset.open !== "1") return;
  const s = stage.getBoundingClientRect(), f = $(".seg-films").getBoundingClientRect();
  d.style.top = `${Math.max(0, s.top)}px`;
  d.style.left = `${f.left}px`;
  d.style.maxHeight = `${Math.max(200, Math.min(s.bottom, innerHeight) - Math.max(0, s.top))}px`;
}

window.addEventListener("resize", placeDrawer);
window.addEventListener("scroll", placeDrawer, { passive: true });

// ------------------------------------------------------------------ answers

function onSaved(v, p) {
  if (p && p.image === (S.img && S.img.id) && !v.conflict) {
    S.history.mark(p.step);
  } else if (p && v.conflict) {
    S.history.mark(p.step);   // stored as a draft on top of theirs: nothing is lost
  }
  if (S.img && v.image_id === S.img.id) {
    if (v.split) S.img.split = v.split;
    S.img.status = v.status || S.img.status;
    S.img.revision = v.revision ?? S.img.revision;
    S.img.source = v.source || S.img.source;
    updateTitle();
    journalize();   // the journal follows the map's state now: nothing left to keep, or the edits made since
    if (v.conflict_with) {   // someone else saved meanwhile: both are stored; compare and choose
      const c = { ...v.conflict_with, image: v.image_id };
      S.conflicts.set(v.image_id, c);
      setTimeout(() => showConflict(c, v.note), 0);
    }
  }
}

async function onResult(v, p) {
  if (!S.img || v.image_id !== S.img.id) return;
  const result = await decodeIndexPng(v.map, S.img.width, S.img.height);
  const snapshot = p && p.snapshot ? p.snapshot : S.map.data.slice();
  const e = new C.Edit(S.map, null);
  const r = C.mergeResult(e, snapshot, result);
  const step = e.finish(v.label || "tool");
  if (step) { S.history.push(step); changed(step.box); scheduleSync(); }
  if (v.kind === "result" && v.clear_prompt) { S.prompt = null; $(".seg-promptbar").hidden = true; requestRender(); }
  if (r.kept) v.note = (v.note || "") + ` ${r.kept} px you painted meanwhile were kept.`;
}

async function onPrompt(v) {
  if (!S.img || v.image_id !== S.img.id) return;
  const mask = await decodeIndexPng(v.mask, S.img.width, S.img.height);
  promptCanvas.width = S.img.width;
  promptCanvas.height = S.img.height;
  const img = pctx.createImageData(S.img.width, S.img.height);
  const u32 = new Uint32Array(img.data.buffer);
  for (let i = 0; i < mask.length; i++) u32[i] = mask[i] ? 0xffffffff : 0;
  pctx.putImageData(img, 0, 0);
  S.prompt = { phrase: v.phrase, pixels: v.pixels, known: v.known };
  const bar = $(".seg-promptbar");
  bar.hidden = false;
  $(".seg-prompt-info").textContent = `“${v.phrase}”: ${fmtCount(v.pixels)} px (white).`;
  $(".seg-accept-name").value = v.phrase;
  // the bar sits under the prompt box, at the foot of the side panel: below the fold of
  // a 900 px window. The status says "Accept it", so bring the button into view (once the
  // status line, set after this, has taken its place)
  requestAnimationFrame(() => { if (!bar.hidden) bar.scrollIntoView({ block: "nearest" }); });
  requestRender();
}

// ------------------------------------------------------------------ operations

function commit(edit, label) {
  const step = edit.finish(label);
  const note = C.lockedNote(edit);   // the stroke met a hidden (locked) class: say so once
  if (note) setStatus(note, "warning", "hidden");
  if (!step) return null;
  S.history.push(step);
  changed(step.box);
  scheduleSync();
  updateButtons();
  return step;
}

function undo() {
  if (S.edit) return;
  if (pendingShape()) { shapeUndo(); return; }
  const step = S.history.undo(S.map);
  if (step) { changed(step.box); scheduleSync(); setStatus(`Undid ${step.label}.`); }
  updateButtons();
}

function redo() {
  if (S.edit) return;
  if (pendingShape()) { shapeRedo(); return; }
  const step = S.history.redo(S.map);
  if (step) { changed(step.box); scheduleSync(); setStatus(`Redid ${step.label}.`); }
  updateButtons();
}

function clearAll() {
  if (!S.map) return;
  const e = new C.Edit(S.map, null);
  C.replaceAll(e, new Uint8Array(S.map.data.length).fill(S.ignore));
  if (commit(e, "clear")) setStatus("Cleared the mask to void. Ctrl+Z brings it back.");
}

function resetToPrediction() {
  if (!S.map) return;
  if (!S.pred) { setStatus("This image has no prediction of the active model yet.", "error", "image"); return; }
  const e = new C.Edit(S.map, null);
  C.replaceAll(e, S.pred);
  if (commit(e, "reset to prediction")) setStatus("Reset to the model's prediction. Ctrl+Z undoes it.");
}

function runSuperpixel(q) {
  const e = newEdit(q.value, q.first);
  for (const s of q.segments) C.fillSegment(e, S.seg, s);
  for (let k = 1; k < q.points.length; k++) {
    const [a, b] = [q.points[k - 1], q.points[k]];
    for (const s of C.segmentsAlong(S.seg, S.map.width, S.map.height, a[0], a[1], b[0], b[1])) C.fillSegment(e, S.seg, s);
  }
  if (q.points.length === 1) {
    const [x, y] = q.points[0];
    C.fillSegment(e, S.seg, S.seg.segments[Math.floor(y) * S.map.width + Math.floor(x)]);
  }
  commit(e, "superpixel fill");
}

// Closing a polygon leaves it editable; Enter (or another tool) fills it (objects.js).
function closePolygon(erase) { openPolygon(erase); }

function cancelPolygon() {
  if (S.polygon.length) { S.polygon = []; requestRender(); }
}

// ------------------------------------------------------------------ pointer

function imagePoint(ev) {
  const r = view.getBoundingClientRect();
  const sx = ev.clientX - r.left, sy = ev.clientY - r.top;
  return { sx, sy, x: (sx - S.view.ox) / S.view.s, y: (sy - S.view.oy) / S.view.s };
}

// Input while an image is opening is applied to the image shown (and journaled: if that
// image is left before the server confirms, the outbox stores it), never dropped.
function blocked() {
  return false;
}

view.addEventListener("pointerdown", (ev) => {
  if (!S.map) return;
  view.focus({ preventScroll: true });
  if (ev.pointerType === "touch") {
    S.touches.set(ev.pointerId, imagePoint(ev));
    if (S.touches.size === 2) { abortEdit(); startPinch(); return; }
  }
  const p = imagePoint(ev);
  if (ev.button !== 1 && !S.space && !Nav.navigating(S)) {
    const sh = shapesDown(p, ev);   // click-to-object, editable polygon handles (objects.js)
    if (sh) { if (sh === "drag") capture(ev); ev.preventDefault(); return; }
  }
  if (ev.button === 1 || (ev.button === 0 && S.space) || ev.button === 2) {
    S.pan = { sx: p.sx, sy: p.sy, ox: S.view.ox, oy: S.view.oy };
    capture(ev);
    ev.preventDefault();
    return;
  }
  if (ev.button !== 0) return;
  if (ev.altKey) {
    if (inImage(p)) { selectClass(valueAt(p)); setStatus(`Picked ${className(S.active)}.`); }
    return;
  }
  if (blocked()) return;
  if (tool().down(p, ev)) capture(ev);
});

function capture(ev) {
  try { view.setPointerCapture(ev.pointerId); } catch (err) { /* synthetic or finished pointer */ }
}

view.addEventListener("pointermove", (ev) => {
  if (ev.pointerType === "touch" && S.touches.has(ev.pointerId)) {
    S.touches.set(ev.pointerId, imagePoint(ev));
    if (S.pinch) { movePinch(); return; }
  }
  const p = imagePoint(ev);
  S.cursor = p;
  if (S.pan) {
    S.view = { s: S.view.s, ox: S.pan.ox + p.sx - S.pan.sx, oy: S.pan.oy + p.sy - S.pan.sy };
    S.fitted = false;
  } else if (shapesMove(p)) {
    return;
  } else if (S.edit && S.last) {
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
    for (const ce of events.length ? events : [ev]) {
      const q = imagePoint(ce);
      tool().move(q);
      S.last = q;
    }
    changed(S.edit.box);
    return;
  } else if (S.spQueued && ev.buttons & 1) {
    S.spQueued.points.push([p.x, p.y]);
  }
  requestRender();
});

function endPointer(ev) {
  if (ev && ev.pointerType === "touch") {
    S.touches.delete(ev.pointerId);
    if (S.pinch) { if (S.touches.size < 2) S.pinch = null; return; }
  }
  if (S.pan) { S.pan = null; requestRender(); return; }
  if (shapesUp()) return;
  tool().up();
}

view.addEventListener("pointerup", endPointer);
view.addEventListener("pointercancel", (ev) => { abortEdit(); endPointer(ev); });
view.addEventListener("pointerleave", () => { S.cursor = null; requestRender(); });
view.addEventListener("contextmenu", (ev) => ev.preventDefault());
view.addEventListener("dblclick", (ev) => { if (tool().vertices && S.polygon.length >= 3) { ev.preventDefault(); closePolygon(ev.shiftKey); } });

function abortEdit() {
  if (!S.edit) return;
  const step = S.edit.finish("aborted");
  S.edit = null;
  S.last = null;
  if (step) { C.applyStep(S.map, step, false); changed(step.box); }
}

function startPinch() {
  const [a, b] = [...S.touches.values()];
  S.pinch = { d: Math.hypot(a.sx - b.sx, a.sy - b.sy), cx: (a.sx + b.sx) / 2, cy: (a.sy + b.sy) / 2, view: { ...S.view } };
}

function movePinch() {
  const [a, b] = [...S.touches.values()];
  const d = Math.hypot(a.sx - b.sx, a.sy - b.sy), cx = (a.sx + b.sx) / 2, cy = (a.sy + b.sy) / 2;
  const v = C.zoomAt(S.pinch.view, d / Math.max(S.pinch.d, 1), S.pinch.cx, S.pinch.cy);
  S.view = { s: v.s, ox: v.ox + cx - S.pinch.cx, oy: v.oy + cy - S.pinch.cy };
  S.fitted = false;
  requestRender();
}

view.addEventListener("wheel", (ev) => {
  if (!S.map) return;
  ev.preventDefault();
  const p = imagePoint(ev);
  const dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
  S.view = C.zoomAt(S.view, Math.exp(-dy * 0.0015), p.sx, p.sy);
  S.fitted = false;
  S.cursor = p;
  requestRender();
}, { passive: false });

// ------------------------------------------------------------------ tools and options

function setTool(t) {
  if (t !== S.tool) commitShapes();   // another tool commits a pending object or polygon (objects.js)
  if (!T.tools[t].vertices) cancelPolygon();
  S.tool = t;
  for (const b of $$("[data-tool]")) b.classList.toggle("is-on", b.dataset.tool === t);
  root.dataset.tool = t;
  view.style.cursor = tool().ring ? "none" : "crosshair";
  if (t === "object") warmObject();   // (objects.js)
  requestRender();
}

function setSize(n) {
  S.size = Math.max(1, Math.min(400, Math.round(n)));
  $(".seg-size").value = S.size;
  $(".seg-size-val").textContent = `${S.size} px`;
  requestRender();
}

function setOpacity(pct) {
  S.opacity = Math.max(0, Math.min(100, pct)) / 100;
  $(".seg-opacity").value = Math.round(S.opacity * 100);
  $(".seg-opacity-val").textContent = `${Math.round(S.opacity * 100)} %`;
  requestRender();
}

function toggleMask(show = !S.maskVisible) {
  S.maskVisible = show;
  $(".seg-hide").classList.toggle("is-on", !show);
  $(".seg-hide").textContent = show ? "Hide mask" : "Show mask";
  root.dataset.mask = show ? "shown" : "hidden";
  requestRender();
}

function updateButtons() {
  $(".seg-undo").disabled = !S.history.canUndo;
  $(".seg-redo").disabled = !S.history.canRedo;
  const dirty = S.map ? S.history.isDirty() : false;
  root.dataset.dirty = dirty ? "1" : "0";
  $(".seg-save").classList.toggle("is-dirty", dirty);
  $(".seg-unsaved").textContent = dirty ? "● unsaved" : "";
  root.dataset.pending = S.pending.size;
}

for (const b of $$("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
$(".seg-size").addEventListener("input", (e) => setSize(+e.target.value));
$(".seg-opacity").addEventListener("input", (e) => setOpacity(+e.target.value));
$(".seg-protect").addEventListener("change", (e) => { S.protect = e.target.value; });
$(".seg-hide").addEventListener("click", () => toggleMask());
$(".seg-review-accept").addEventListener("click", () => decide("accepted"));
$(".seg-review-reject").addEventListener("click", () => decide("rejected"));
$(".seg-disagree").addEventListener("change", (e) => toggleDisagreement(e.target.checked));
$(".seg-undo").addEventListener("click", undo);
$(".seg-redo").addEventListener("click", redo);
$(".seg-fit").addEventListener("click", fit);
$(".seg-reset").addEventListener("click", resetToPrediction);
$(".seg-clear").addEventListener("click", clearAll);
$(".seg-help").addEventListener("click", () => toggleHelp());
$(".seg-help-dlg").addEventListener("click", () => toggleHelp(false));
$(".seg-save").addEventListener("click", save);
$(".seg-submit").addEventListener("click", submitNext);
$(".seg-next").addEventListener("click", () => goNext());
$(".seg-prev").addEventListener("click", () => goBack());
$(".seg-split").addEventListener("change", (e) => {
  if (!S.img) return;
  request("set_split", { split: e.target.value }, "Setting the split…");
});
// The words of a queue as the select beside Next shows them.
function queueWords(filter) {
  const o = [...$(".seg-queue").options].find((x) => x.value === filter);
  return o ? o.textContent : filter;
}

function chooseQueue(filter) {
  S.filter = filter;
  $(".seg-queue").value = filter;
  clearStatus("filter");   // "No more images with status …" was about the queue before
  if (S.img) schedulePeek();
}

$(".seg-queue").addEventListener("change", (e) => {
  chooseQueue(e.target.value);
  // choosing a queue opens nothing by itself: say what Next does now
  setStatus(`Next (N) now opens: ${queueWords(S.filter)}.`, "info", "filter");
});
$(".seg-legend").addEventListener("click", (e) => {
  const b = e.target.closest(".seg-legend-go");
  if (!b || !S.img) return;
  view.focus({ preventScroll: true });   // (a focused button would take the next Space or Enter as a click)
  chooseQueue(b.dataset.filter);
  goNext();
});
$(".seg-review-comment").addEventListener("input", () => clearStatus("comment"));
$(".seg-phrase").addEventListener("input", () => clearStatus("phrase"));
$(".seg-accept-name").addEventListener("input", () => clearStatus("name"));
$(".seg-heat-phrase").addEventListener("input", () => clearStatus("heat-phrase"));
$(".seg-filter").addEventListener("input", renderClassList);
$(".seg-filter").addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    const first = C.filterClasses(S.classes, e.target.value)[0];
    if (first) selectClass(first.index);
    e.target.value = "";
    renderClassList();
    e.target.blur();
  } else if (e.key === "Escape") { e.target.value = ""; renderClassList(); e.target.blur(); }
});
$(".seg-classes").addEventListener("click", (e) => {
  const eye = e.target.closest("[data-eye]");
  if (eye) {
    const idx = +eye.dataset.eye;
    if (S.hidden.has(idx)) S.hidden.delete(idx); else S.hidden.add(idx);   // (a hidden class is also locked: input.js newEdit)
    S.lut = C.colorTable(S.classes, S.ignore, S.hidden);
    recolor(null);
    renderClassList();
    requestRender();
    if (!S.hidden.size) clearStatus("hidden");   // "Hidden classes are protected" no longer applies
    return;
  }
  const row = e.target.closest("[data-class]");
  if (row) selectClass(+row.dataset.class);
});
$(".seg-keep").addEventListener("change", (e) => {
  const idx = +e.target.dataset.keep;
  if (e.target.checked) S.keepSet.add(idx); else S.keepSet.delete(idx);
  renderKeep();
});
$(".seg-outbox").addEventListener("click", () => { $(".seg-outbox-list").hidden = !$(".seg-outbox-list").hidden; updateOutbox(); });
$(".seg-outbox-list").addEventListener("click", (e) => {
  const o = e.target.closest("[data-outbox-open]");
  if (o) openImage(+o.dataset.outboxOpen);
  else if (e.target.closest(".seg-outbox-retry")) { journal.retryAll(); flushOutbox(); }
});
$(".seg-strip").addEventListener("click", (e) => {
  const b = e.target.closest("[data-open]");
  if (b) openImage(+b.dataset.open);
});
$(".seg-page-prev").addEventListener("click", () => stripPage(-1));
$(".seg-page-next").addEventListener("click", () => stripPage(1));
$(".seg-drawer-btn").addEventListener("click", () => toggleDrawer());
$(".seg-films-btn").addEventListener("click", () => {
  const hide = root.dataset.films !== "hidden";
  root.dataset.films = hide ? "hidden" : "";
  $(".seg-films-btn").textContent = hide ? "Show images" : "Hide images";
  requestRender();   // the stage changed size (the ResizeObserver refits it)
});
$(".seg-snap").addEventListener("click", () => serverTool("run_snap", {}, "Snapping your strokes to superpixels…"));
$(".seg-cleanup").addEventListener("click", () => serverTool("run_cleanup",
  { min_size: +$(".seg-minsize").value, keep: [...S.keepSet] }, "Cleaning up small regions…"));
$(".seg-prompt").addEventListener("click", runPrompt);
$(".seg-phrase").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); runPrompt(); } });
$(".seg-accept").addEventListener("click", acceptPrompt);
$(".seg-discard").addEventListener("click", discardPrompt);
$(".seg-confirm-yes").addEventListener("click", () => { const f = S.onConfirm; closeConfirm(); if (f) f(); });
$(".seg-confirm-no").addEventListener("click", () => { closeConfirm(); setStatus("Not accepted; the label set is unchanged."); });

function serverTool(event, args, busy) {
  if (!S.img) { setStatus("Open an image first.", "error", "image"); return; }
  request(event, args, busy);
}

function runPrompt() {
  const phrase = $(".seg-phrase").value.trim();
  if (!phrase) { setStatus("Type a phrase to segment, e.g. “white van”.", "error", "phrase"); return; }
  serverTool("run_prompt", { phrase }, `Segmenting “${phrase}”…`);
}

function acceptPrompt() {
  const name = $(".seg-accept-name").value.trim();
  if (!name) { setStatus("Give the class a name.", "error", "name"); return; }
  const known = S.classes.some((c) => c.name.toLowerCase() === name.toLowerCase());
  const go = (add) => serverTool("accept_prompt", { name, add_class: add }, "Labelling the phrase's pixels…");
  if (known) { go(false); return; }
  askConfirm(`“${name}” is not a class of project “${S.project}”. Accepting adds it to the project's label set ` +
    `(for every image; the model reads the new name) and labels the ${fmtCount(S.prompt ? S.prompt.pixels : 0)} white pixels with it.`,
  `Add class “${name}” and label`, () => go(true));
}

// the text prompt's white mask goes, and its "Accept it to label those pixels" with it
function discardPrompt() {
  S.prompt = null;
  $(".seg-promptbar").hidden = true;
  clearStatus("prompt");
  requestRender();
}

function askConfirm(text, yes, onYes) {
  $(".seg-confirm-text").textContent = text;
  $(".seg-confirm-yes").textContent = yes;
  S.onConfirm = onYes;
  $(".seg-confirm").hidden = false;
  $(".seg-confirm-yes").focus();
}

function closeConfirm() { $(".seg-confirm").hidden = true; S.onConfirm = null; }

function toggleHelp(show = $(".seg-help-dlg").hidden) { $(".seg-help-dlg").hidden = !show; }

function save() {
  if (!S.img) { setStatus("Nothing to save: open an image first.", "error", "image"); return; }
  request("save_draft", {}, "Saving a draft…");
}

// N pressed while the next image is still being prepared: wait a little for it rather
// than ask the server a second time while it is busy preparing that very image
async function awaitPeek() {
  if (!Nav.shouldAwaitPeek(S)) return;
  setStatus("Opening the next image…", "busy");
  await Promise.race([S.peeking.promise, new Promise((r) => setTimeout(r, 1000))]);
}

async function submitNext() {
  if (!S.img) { setStatus("Nothing to submit: open an image first.", "error", "image"); return; }
  await awaitPeek();
  const ready = Nav.aheadReady(S);
  const rid = request("submit_next", { filter: S.filter }, "Submitting…", ready);
  if (rid && ready) showAhead(rid);
}

async function goNext() {
  await awaitPeek();
  const ready = Nav.aheadReady(S);
  const rid = request("go_next", { filter: S.filter }, "Opening the next image…", ready);
  if (rid && ready) showAhead(rid);
}

function openImage(id) {
  if (S.img && id === S.img.id) return;
  request("open_image", { open: id, filter: S.filter }, "Opening…");
}

function goBack() {
  const prev = Nav.previous(S);
  if (prev === undefined) { setStatus("No earlier image in this session."); return; }
  request("open_image", { open: prev, back: true, filter: S.filter }, "Opening the previous image…");
}

// ------------------------------------------------------------------ keyboard

function isTyping(t) {
  return t && (t.tagName === "INPUT" && !["range", "checkbox", "button"].includes(t.type) || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
}

// What the key map's actions (input.js) do; false: the key was not handled after all.
const KEY_ACTIONS = {
  undo: () => undo(),
  redo: () => redo(),
  save: () => save(),
  submitNext: () => { submitNext(); },
  help: () => toggleHelp(),
  escape: () => {
    if (!$(".seg-help-dlg").hidden) toggleHelp(false);
    else if (discardShapes()) setStatus("Dropped the pending shape; nothing was painted.");
    else if (S.polygon.length) { cancelPolygon(); setStatus("Polygon cancelled."); }
    else if (S.prompt) discardPrompt();
    else if (S.heat && S.heat.shown) hideHeat();
    else if ($(".seg-drawer-btn").classList.contains("is-on")) toggleDrawer(false);
  },
  closePolygon: (ev) => closePolygon(ev.shiftKey),
  commitShape: (ev) => { if (S.vpoly) commitPolygon(ev.shiftKey); else commitObject(); },
  deleteVertex: () => deleteVertex(),
  dropClick: () => dropObjectClick(),
  objectOutline: () => objectToPolygon(),
  shapeUndo: () => shapeUndo(),
  shapeRedo: () => shapeRedo(),
  dropVertex: () => { S.polygon.pop(); requestRender(); },
  pan: () => { S.space = true; view.style.cursor = "grab"; },
  tool: (ev, t) => setTool(t),
  smaller: () => setSize(S.size / 1.25),
  larger: () => setSize(S.size * 1.25 + 0.5),
  toggleMask: () => toggleMask(),
  heatmap: () => toggleHeat(),
  uncertainty: () => toggleUncertainty(),
  changes: () => toggleChanges(),
  toggleDisagreement: () => toggleDisagreement(),
  fit: () => fit(),
  reset: () => resetToPrediction(),
  back: () => goBack(),
  next: () => { goNext(); },
  filter: () => { const f = $(".seg-filter"); f.hidden = false; f.focus(); },
  void: () => selectClass(S.ignore),
  classKey: (ev, pos) => { const c = S.classes[pos]; if (!c) return false; selectClass(c.index); },
};

document.addEventListener("keydown", (ev) => {
  if (!root.isConnected || root.offsetParent === null) return;   // another tab is showing
  if (isTyping(ev.target)) return;
  if (!$(".seg-confirm").hidden) {
    if (ev.key === "Escape") { closeConfirm(); ev.preventDefault(); }
    return;
  }
  if (!$(".seg-compare").hidden) {   // the compare view of a conflict (conflict.js): its buttons, Esc
    if (ev.key === "Escape") { chooseVersion("later"); ev.preventDefault(); }
    return;
  }
  const a = SegInput.keyAction(ev, { vertices: tool().vertices, points: S.polygon.length, disagreement: !!S.reviewMask, shape: pendingShape() });
  if (a && KEY_ACTIONS[a.action](ev, a.arg) !== false) ev.preventDefault();
});

document.addEventListener("keyup", (ev) => {
  if (ev.key === " ") { S.space = false; setTool(S.tool); }
});

window.addEventListener("beforeunload", (ev) => {
  // the journal keeps unsaved edits across a reload; ask only if it could not write them yet
  if (S.map && S.history.isDirty() && (journal.unwritten || journal.broken || S.volatile)) { ev.preventDefault(); ev.returnValue = ""; }
});

// ------------------------------------------------------------------ start

setTool("brush");
setSize(S.size);
setOpacity(S.opacity * 100);
toggleMask(true);
updateButtons();
requestRender();
if (props.value && props.value.kind) onValue();
