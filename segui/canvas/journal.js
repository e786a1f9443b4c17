// Durable edits (issue 17): every edit of an image is journaled in the browser until
// the server confirms that it stores it, so that a lost connection, a killed server,
// a reload or a crash loses nothing. Pure logic over a small storage interface:
//   store.all() -> Promise<entry[]>, store.put(entry) -> Promise, store.remove(key) -> Promise
// (MemoryStore here for node's tests, idbStore() over IndexedDB in the page). node's
// test runner tests it (tests/js/journal.test.js); the page gets it concatenated after
// nav.js and canvas.js wires it (journal writes, confirmations, the outbox, restore).
//
// An entry is one image's unconfirmed state: {key, user, project, image, tab, name, base
// (the revision it was edited from), width, height, data (class indices), stamp (when,
// increasing), attempts, nextAt, error, sending}. Confirming a stamp removes the entry
// if nothing newer was journaled since; else the newer edit now builds on the
// confirmed revision. Entries of images not open form the outbox, sent with backoff.
//
// Tabs: one storage (IndexedDB is per browser profile and site) serves every tab. Each
// tab has an id (`tab`, kept in sessionStorage: a reload keeps it) and a journal sees
// only the entries its tab owns; two tabs on the same image keep two entries and never
// send, confirm or restore each other's. Entries of a tab that is gone (closed,
// crashed) are adopted by a living one (`adopt`, with a `claim` that tells a dead tab
// from a living one and lets one adopter at a time in: Web Locks in the page).

/* eslint-disable no-var */
var SegJournal = (function () {
  "use strict";

  // `slot`: the owning tab's id, or (for an entry adopted while the tab had its own
  // entry for the image) the tab's id and where the entry came from.
  function keyOf(user, project, image, slot = "") { return JSON.stringify([user || "", project || "", Number(image), slot || ""]); }

  // ------------------------------------------------------------------ storage backends

  class MemoryStore {
    constructor() { this.rows = new Map(); this.fail = false; }
    async all() { if (this.fail) throw new Error("storage down"); return [...this.rows.values()].map((r) => ({ ...r })); }
    async put(e) { if (this.fail) throw new Error("storage down"); this.rows.set(e.key, { ...e }); }
    async remove(key) { if (this.fail) throw new Error("storage down"); this.rows.delete(key); }
  }

  // IndexedDB (the page): database `name`, one object store "edits" keyed by entry.key.
  function idbStore(name = "segui-journal", idb = typeof indexedDB !== "undefined" ? indexedDB : null) {
    if (!idb) return null;
    let db = null;
    const open = () => db || (db = new Promise((resolve, reject) => {
      const req = idb.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("edits", { keyPath: "key" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    }));
    const tx = async (mode, fn) => {
      const d = await open();
      return new Promise((resolve, reject) => {
        const t = d.transaction("edits", mode);
        const r = fn(t.objectStore("edits"));
        t.oncomplete = () => resolve(r && r.result);
        t.onerror = () => reject(t.error);
        t.onabort = () => reject(t.error);
      });
    };
    return {
      all: () => tx("readonly", (s) => s.getAll()),
      put: (e) => tx("readwrite", (s) => s.put(e)),
      remove: (key) => tx("readwrite", (s) => s.delete(key)),
    };
  }

  // ------------------------------------------------------------------ the journal

  // Wait before the n-th retry of a send that failed: doubling from `base`, at most `max`.
  function backoff(attempts, base = 1000, max = 60000) {
    return Math.min(max, base * 2 ** Math.max(0, attempts - 1));
  }

  // What is persisted (no `sending`: a send in flight when the page died is not in flight after it).
  function row(e) { const { sending, ...r } = e; return r; }

  class Journal {
    constructor(store, opts = {}) {
      this.store = store;
      this.tab = opts.tab || "";   // the tab whose entries these are
      this.now = opts.now || (() => Date.now());
      this.base = opts.base || 1000;
      this.max = opts.max || 60000;
      this.entries = new Map();
      this.writing = 0;          // writes not yet in storage
      this.broken = null;        // the storage's last error (then only memory holds the edits)
      this.lastStamp = 0;
      this.restored = [];        // entries found in storage when opened (from an earlier page)
    }

    // Load what earlier pages left (call once, before using the journal).
    async open() {
      try {
        for (const e of (await this.store.all()) || []) {
          if (!e || !e.key || !e.data || (e.tab || "") !== this.tab) continue;   // another tab's
          this.entries.set(e.key, { ...e, sending: false, nextAt: 0 });
          this.lastStamp = Math.max(this.lastStamp, e.stamp || 0);
          this.restored.push(e.key);
        }
      } catch (err) { this.broken = String(err && err.message || err); }
      return this;
    }

    // An increasing stamp (time in ms, never twice the same, never going back).
    stamp() {
      this.lastStamp = Math.max(this.now(), this.lastStamp + 1);
      return this.lastStamp;
    }

    // Persist `e` (or remove its key when e is null); the returned promise settles when stored.
    _persist(key, e) {
      this.writing++;
      const p = e ? this.store.put(row(e)) : this.store.remove(key);
      return Promise.resolve(p).then(() => { this.broken = null; }, (err) => { this.broken = String(err && err.message || err); })
        .finally(() => { this.writing--; });
    }

    // Whether `e` is this tab's own entry for its image (not one adopted beside it).
    own(e) { return e.key === keyOf(e.user, e.project, e.image, this.tab); }

    // `project` null: the entry of `user` for the image in whichever project (image ids are
    // unique); this tab's own entry first, else one adopted from a closed tab.
    get(user, project, image) {
      const all = [...this.entries.values()].filter((e) => e.user === (user || "") && e.image === Number(image) &&
        (project == null || e.project === (project || "")));
      return all.find((e) => this.own(e)) || all[0] || null;
    }

    // The open image's map changed: journal it (data: a copy the journal keeps). -> the entry.
    record({ user, project, image, name, base, width, height, data, stamp, author }) {
      const key = keyOf(user, project, image, this.tab);
      const old = this.entries.get(key);
      const e = {
        key, user: user || "", project: project || "", image: Number(image), tab: this.tab, name: name || `image ${image}`,
        base: base || 0, width, height, data, stamp: stamp || this.stamp(), author: author || "",
        attempts: 0, nextAt: 0, error: "", sending: !!(old && old.sending),
      };
      this.entries.set(key, e);
      e.written = this._persist(key, e);
      return e;
    }

    // Nothing unsaved on the image any more (undone back to the saved state, or given up).
    discard(user, project, image) {
      const e = this.get(user, project, image);
      return e ? this.discardKey(e.key) : Promise.resolve();
    }

    // discard() of one entry (an adopted one, once the canvas holds its map).
    discardKey(key) {
      if (!this.entries.has(key)) return Promise.resolve();
      this.entries.delete(key);
      return this._persist(key, null);
    }

    // The server stores the image's state of `stamp` as `revision`. -> "done" (the entry is
    // gone), "newer" (edits made after it remain, now on top of `revision`) or null (none).
    confirm(user, project, image, stamp, revision) {
      const e = this.get(user, project, image);
      return e ? this.confirmKey(e.key, stamp, revision) : null;
    }

    // confirm() of one entry (the outbox sends entries by key: an adopted one beside the tab's own).
    confirmKey(key, stamp, revision) {
      const e = this.entries.get(key);
      if (!e) return null;
      if (stamp != null && e.stamp <= stamp) {
        this.entries.delete(key);
        this._persist(key, null);
        return "done";
      }
      if (revision != null) { e.base = revision; this._persist(key, e); }
      return "newer";
    }

    // The entries of `user`, oldest first.
    pending(user) {
      return [...this.entries.values()].filter((e) => e.user === (user || "")).sort((a, b) => a.stamp - b.stamp);
    }

    // The outbox: `user`'s entries to send now, oldest first: not this tab's own entry of the
    // image open in the page (its edits go with its own saves; one adopted from a closed tab
    // is sent: the page's next save then meets it as a conflict), not an image a request in
    // flight carries (busy), not being sent, and past their backoff.
    due(user, open, busy = new Set(), now = this.now()) {
      return this.pending(user).filter((e) => (e.image !== open || !this.own(e)) && !busy.has(e.image) && !e.sending && e.nextAt <= now);
    }

    // A send of `e` failed (`error`: what to show): retry after the backoff.
    failed(e, error) {
      e.sending = false;
      e.attempts++;
      e.error = String(error || "no answer");
      e.nextAt = this.now() + backoff(e.attempts, this.base, this.max);
      if (this.entries.get(e.key) === e) this._persist(e.key, e);
      return e.nextAt;
    }

    // The connection is back, or the labeller asked: every entry is due now.
    retryAll() { for (const e of this.entries.values()) e.nextAt = 0; }

    // Writes still on their way to storage (a reload now could lose the last edit).
    get unwritten() { return this.writing > 0; }

    // Adopt the entries of tabs that are gone. `claim(tab, fn)`: runs `fn` (and resolves
    // true) only if tab `tab` is gone, with no other adopter of `tab` at the same time
    // (the page: the tab's Web Lock, taken if free); else resolves false. The entries of
    // a claimed tab are read again inside `fn` (another adopter may have been first),
    // then stored as this tab's: beside its own entry of the same image, if it has one,
    // or if the image is open here (`open`; its next edit would replace its own entry):
    // never merged, both are sent. -> the adopted entries.
    async adopt(claim, open = null) {
      let rows;
      try { rows = (await this.store.all()) || []; } catch (err) { this.broken = String(err && err.message || err); return []; }
      const tabs = new Set(rows.filter((e) => e && e.key && e.data && (e.tab || "") !== this.tab).map((e) => e.tab || ""));
      const got = [];
      for (const t of tabs) {
        await claim(t, async () => {
          const now = ((await this.store.all()) || []).filter((e) => e && e.key && e.data && (e.tab || "") === t);
          for (const e of now) {
            const own = keyOf(e.user, e.project, e.image, this.tab);
            const key = this.entries.has(own) || e.image === open ? keyOf(e.user, e.project, e.image, `${this.tab} from ${e.key}`) : own;
            const a = { ...e, key, tab: this.tab, sending: false, nextAt: 0, attempts: 0, error: "" };
            await this.store.put(row(a));      // first the copy, then the original: a crash between
            await this.store.remove(e.key);    // leaves both (sent twice: store_edit is idempotent)
            this.entries.set(key, a);
            this.lastStamp = Math.max(this.lastStamp, a.stamp || 0);
            got.push(a);
          }
        });
      }
      return got;
    }
  }

  // ------------------------------------------------------------------ conflicts

  // Someone else saved the image while the labeller edited it. Three maps of the same
  // size (class indices): `base` (what the labeller started from), `mine`, `theirs`.
  // -> {data: theirs, with mine wherever the labeller changed base ("mine where I drew,
  // theirs elsewhere"), drawn: pixels the labeller changed, taken: of those, pixels that
  // differ from theirs (what the merge changes in theirs), clash: pixels both changed,
  // to different classes (mine wins there)}.
  function mergeMine(base, mine, theirs) {
    const n = mine.length;
    if (base.length !== n || theirs.length !== n) throw new Error("the three maps must have the same size");
    const data = new Uint8Array(theirs);
    let drawn = 0, taken = 0, clash = 0;
    for (let i = 0; i < n; i++) {
      const m = mine[i];
      if (m === base[i]) continue;
      drawn++;
      const t = theirs[i];
      if (t !== m) { taken++; data[i] = m; if (t !== base[i]) clash++; }
    }
    return { data, drawn, taken, clash };
  }

  // Pixels where two maps differ.
  function differing(a, b) {
    let n = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
    return n;
  }

  // The compare view's choices: [{action, label, data}] ("mine" | "theirs" | "merge"), the
  // merge only when it is a third map (the labeller's strokes and theirs both count).
  function conflictChoices(base, mine, theirs) {
    const m = mergeMine(base, mine, theirs);
    const out = [
      { action: "mine", label: "Keep mine", data: mine },
      { action: "theirs", label: "Keep theirs", data: theirs },
    ];
    if (!sameData(m.data, mine) && !sameData(m.data, theirs)) {
      out.push({ action: "merge", label: `Mine where I drew (${m.drawn} px), theirs elsewhere` +
        (m.clash ? ` (${m.clash} px both changed: mine)` : ""), data: m.data, merge: m });
    }
    return out;
  }

  // ------------------------------------------------------------------ images opened again

  // The per-image documents kept while the page is open (undo history per image), at
  // most `limit` (the least recently used go first).
  class DocCache {
    constructor(limit = 30) { this.limit = limit; this.docs = new Map(); }
    put(id, doc) {
      this.docs.delete(id);
      this.docs.set(id, doc);
      while (this.docs.size > this.limit) this.docs.delete(this.docs.keys().next().value);
    }
    get(id) { return this.docs.get(id) || null; }
    delete(id) { this.docs.delete(id); }
    get size() { return this.docs.size; }
  }

  function sameData(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  // Image opened with the server's map `server` (class indices); `cached`: {data, history}
  // the page kept from an earlier visit, or null; `entry`: its journal entry, or null.
  // -> {map: "server" | "cached", history: "new" | "cached", restore: data to apply as one
  //     undoable step or null, dirty: whether it is unsaved, drop: the entry is stale}
  //   cached map equals the journal: the earlier visit as it was left (undo kept), unsaved;
  //   else a journal entry the server lacks: restored on top of the server's map;
  //   a journal entry equal to the server's map: the server has it (drop the entry);
  //   no entry, cached map equals the server's: undo kept, saved.
  function reconcile(server, cached, entry) {
    const history = cached && sameData(cached.data, server) ? "cached" : "new";
    if (entry) {
      if (cached && sameData(cached.data, entry.data)) return { map: "cached", history: "cached", restore: null, dirty: !sameData(entry.data, server), drop: false };
      if (sameData(entry.data, server)) return { map: "server", history, restore: null, dirty: false, drop: true };
      return { map: "server", history, restore: entry.data, dirty: true, drop: false };
    }
    return { map: "server", history, restore: null, dirty: false, drop: false };
  }

  // ------------------------------------------------------------------ what the labeller sees

  function plural(n, one, many) { return `${n} ${n === 1 ? one : many}`; }

  // The outbox's line: "" when empty, else "2 edits not yet saved" (and how many failed).
  function summary(entries) {
    if (!entries.length) return "";
    const failed = entries.filter((e) => e.attempts > 0).length;
    return `${plural(entries.length, "edit", "edits")} not yet saved` + (failed ? ` (${failed} retrying)` : "");
  }

  // One line per entry for the outbox's list.
  function describe(e, now = Date.now()) {
    const age = Math.max(0, Math.round((now - e.stamp) / 1000));
    const when = age < 5 ? "just now" : age < 60 ? `${age} s ago` : age < 3600 ? `${Math.round(age / 60)} min ago` : `${Math.round(age / 3600)} h ago`;
    let state = e.sending ? "sending…" : e.attempts ? `not saved yet (${plural(e.attempts, "try", "tries")}; next in ${Math.max(0, Math.round((e.nextAt - now) / 1000))} s): ${e.error}` : "waiting to be sent";
    if (e.open) state = "open here: saved with this image (Ctrl+S)";
    return `${e.name} (image ${e.image}, project ${e.project}), edited ${when} on ${e.base ? `revision ${e.base}` : "the prediction"}: ${state}`;
  }

  return { keyOf, MemoryStore, idbStore, backoff, Journal, DocCache, sameData, reconcile, summary, describe,
    mergeMine, differing, conflictChoices };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegJournal;
