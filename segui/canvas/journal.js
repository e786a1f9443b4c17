// Durable edits (issue 17): every edit of an image is journaled in the browser until
// the server confirms that it stores it, so that a lost connection, a killed server,
// a reload or a crash loses nothing. Pure logic over a small storage interface:
//   store.all() -> Promise<entry[]>, store.put(entry) -> Promise, store.remove(key) -> Promise
// (MemoryStore here for node's tests, idbStore() over IndexedDB in the page). node's
// test runner tests it (tests/js/journal.test.js); the page gets it concatenated after
// nav.js and canvas.js wires it (journal writes, confirmations, the outbox, restore).
//
// An entry is one image's unconfirmed state: {key, user, project, image, name, base
// (the revision it was edited from), width, height, data (class indices), stamp (when,
// increasing), attempts, nextAt, error, sending}. Confirming a stamp removes the entry
// if nothing newer was journaled since; else the newer edit now builds on the
// confirmed revision. Entries of images not open form the outbox, sent with backoff.

/* eslint-disable no-var */
var SegJournal = (function () {
  "use strict";

  function keyOf(user, project, image) { return JSON.stringify([user || "", project || "", Number(image)]); }

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
          if (!e || !e.key || !e.data) continue;
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

    // `project` null: the entry of `user` for the image in whichever project (image ids are unique).
    get(user, project, image) {
      if (project == null) return [...this.entries.values()].find((e) => e.user === (user || "") && e.image === Number(image)) || null;
      return this.entries.get(keyOf(user, project, image)) || null;
    }

    // The open image's map changed: journal it (data: a copy the journal keeps). -> the entry.
    record({ user, project, image, name, base, width, height, data, stamp, author }) {
      const key = keyOf(user, project, image);
      const old = this.entries.get(key);
      const e = {
        key, user: user || "", project: project || "", image: Number(image), name: name || `image ${image}`,
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
      if (!e) return Promise.resolve();
      const key = e.key;
      this.entries.delete(key);
      return this._persist(key, null);
    }

    // The server stores the image's state of `stamp` as `revision`. -> "done" (the entry is
    // gone), "newer" (edits made after it remain, now on top of `revision`) or null (none).
    confirm(user, project, image, stamp, revision) {
      const e = this.get(user, project, image);
      if (!e) return null;
      const key = e.key;
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

    // The outbox: `user`'s entries to send now, oldest first: not the image open in the page
    // (its edits go with its own saves), not an image a request in flight carries (busy), not
    // being sent, and past their backoff.
    due(user, open, busy = new Set(), now = this.now()) {
      return this.pending(user).filter((e) => e.image !== open && !busy.has(e.image) && !e.sending && e.nextAt <= now);
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

  return { keyOf, MemoryStore, idbStore, backoff, Journal, DocCache, sameData, reconcile, summary, describe };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegJournal;
