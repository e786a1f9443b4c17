// node --test tests/js : durable edits (segui/canvas/journal.js): the journal, its
// confirmations, the outbox's backoff, undo kept per image and restore on open.
const test = require("node:test");
const assert = require("node:assert/strict");
const C = require("../../segui/canvas/core.js");
const J = require("../../segui/canvas/journal.js");

function clock(t = 1000) { const c = { t, now: () => c.t }; return c; }

function edit(j, image, fill, extra = {}) {
  return j.record({ user: "ann", project: "P", image, name: `im${image}.png`, base: 2, width: 2, height: 2,
    data: new Uint8Array(4).fill(fill), ...extra });
}

test("entries are keyed per user, project and image and survive a new page", async () => {
  const store = new J.MemoryStore();
  const c = clock();
  const j = await new J.Journal(store, { now: c.now }).open();
  edit(j, 7, 1);
  edit(j, 7, 3);                                   // the same image again: one entry, the newest map
  edit(j, 8, 2, { user: "bob" });
  edit(j, 7, 4, { project: "Q" });
  await Promise.all([...j.entries.values()].map((e) => e.written));
  assert.equal(j.entries.size, 3);
  assert.deepEqual([...j.get("ann", "P", 7).data], [3, 3, 3, 3]);
  assert.equal(j.get("bob", "P", 7), null);
  const again = await new J.Journal(store, { now: c.now }).open();     // a reload, a crash
  assert.equal(again.entries.size, 3);
  assert.deepEqual([...again.get("ann", "P", 7).data], [3, 3, 3, 3]);
  assert.equal(again.restored.length, 3);
  assert.equal(again.pending("ann").length, 2);
  assert.ok(again.stamp() > j.get("ann", "P", 7).stamp, "stamps keep increasing after a reload");
});

test("stamps increase even when the clock stands still or goes back", async () => {
  const c = clock(5000);
  const j = await new J.Journal(new J.MemoryStore(), { now: c.now }).open();
  const a = j.stamp(), b = j.stamp();
  c.t = 10;
  const d = j.stamp();
  assert.ok(a < b && b < d);
});

test("a confirmation removes the entry only if nothing newer was journaled", async () => {
  const store = new J.MemoryStore();
  const j = await new J.Journal(store).open();
  const first = edit(j, 7, 1);
  const second = edit(j, 7, 2);
  assert.equal(j.confirm("ann", "P", 7, first.stamp, 5), "newer");   // the save of the first state came back
  assert.equal(j.get("ann", "P", 7).base, 5, "the newer edit now builds on the stored revision");
  assert.deepEqual([...j.get("ann", "P", 7).data], [2, 2, 2, 2]);
  assert.equal(j.get("ann", null, 7), j.get("ann", "P", 7), "found by image in any project");
  assert.equal(j.confirm("ann", null, 7, second.stamp, 6), "done");
  assert.equal(j.get("ann", "P", 7), null);
  assert.equal(j.confirm("ann", "P", 7, second.stamp, 6), null);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(store.rows.size, 0, "removed from storage too");
});

test("the outbox: not the open image, not one in flight, oldest first, with doubling backoff", async () => {
  const c = clock(0);
  const j = await new J.Journal(new J.MemoryStore(), { now: c.now, base: 1000, max: 8000 }).open();
  c.t = 100; edit(j, 1, 1);
  c.t = 200; edit(j, 2, 2);
  c.t = 300; edit(j, 3, 3);
  assert.deepEqual(j.due("ann", 3).map((e) => e.image), [1, 2]);
  assert.deepEqual(j.due("ann", 3, new Set([1])).map((e) => e.image), [2]);
  assert.deepEqual(j.due("bob", null), []);
  const e = j.get("ann", "P", 1);
  const waits = [];
  for (let k = 0; k < 6; k++) waits.push(j.failed(e, "offline") - c.t);
  assert.deepEqual(waits, [1000, 2000, 4000, 8000, 8000, 8000]);
  assert.deepEqual(j.due("ann", 3).map((x) => x.image), [2]);
  c.t += 8000;
  assert.deepEqual(j.due("ann", 3).map((x) => x.image), [1, 2]);
  j.failed(e, "offline");
  j.retryAll();                                     // back online: everything is due now
  assert.deepEqual(j.due("ann", 3).map((x) => x.image), [1, 2]);
  e.sending = true;
  assert.deepEqual(j.due("ann", 3).map((x) => x.image), [2]);
  assert.match(J.summary(j.pending("ann")), /^3 edits not yet saved \(1 retrying\)$/);
  assert.equal(J.summary([]), "");
  assert.match(J.describe(e, c.t), /im1\.png \(image 1, project P\).*sending/);
});

test("a storage that fails keeps the edits in memory and says so", async () => {
  const store = new J.MemoryStore();
  const j = await new J.Journal(store).open();
  store.fail = true;
  const e = edit(j, 4, 9);
  assert.ok(j.unwritten);
  await e.written;
  assert.ok(!j.unwritten);
  assert.match(j.broken, /storage down/);
  assert.deepEqual([...j.get("ann", "P", 4).data], [9, 9, 9, 9]);
});

test("the document cache keeps the most recent images", () => {
  const d = new J.DocCache(2);
  d.put(1, "a"); d.put(2, "b"); d.put(1, "a2"); d.put(3, "c");
  assert.equal(d.get(2), null);
  assert.equal(d.get(1), "a2");
  assert.equal(d.size, 2);
});

test("reconcile: undo kept, journaled edits restored, stale entries dropped", () => {
  const server = new Uint8Array([0, 0, 1, 1]);
  const edited = new Uint8Array([2, 0, 1, 1]);
  const h = new C.History();
  // no journal entry: the cached history fits the server's map -> undo kept, clean
  assert.deepEqual(J.reconcile(server, { data: server.slice(), history: h }, null),
    { map: "server", history: "cached", restore: null, dirty: false, drop: false });
  // someone else saved meanwhile: the cached history does not fit -> a new one
  assert.equal(J.reconcile(server, { data: edited, history: h }, null).history, "new");
  // the edit was never confirmed and the page still has it: as it was left, unsaved
  assert.deepEqual(J.reconcile(server, { data: edited.slice(), history: h }, { data: edited }),
    { map: "cached", history: "cached", restore: null, dirty: true, drop: false });
  // after a reload (no cache): the journal's map is restored on top of the server's
  const r = J.reconcile(server, null, { data: edited });
  assert.equal(r.restore, edited);
  assert.ok(r.dirty && r.history === "new");
  // the server already has exactly the journaled map (its answer was lost): drop it
  assert.deepEqual(J.reconcile(server, null, { data: server.slice() }),
    { map: "server", history: "new", restore: null, dirty: false, drop: true });
});

test("a restored map applied as one step undoes to the server's map", () => {
  const map = new C.LabelMap(2, 2, new Uint8Array([0, 0, 1, 1]));
  const h = new C.History();
  const e = new C.Edit(map, null);
  C.replaceAll(e, new Uint8Array([2, 0, 1, 3]));
  h.push(e.finish("restored edits"));
  assert.ok(h.isDirty());
  h.undo(map);
  assert.deepEqual([...map.data], [0, 0, 1, 1]);
  h.redo(map);
  assert.deepEqual([...map.data], [2, 0, 1, 3]);
});

// ---------------------------------------------------------------- tabs (one storage, several tabs)

// A claim over a set of living tabs with one adopter at a time per tab (what Web Locks do in the page).
function claims(alive) {
  const held = new Set();
  return async (tab, fn) => {
    if (alive.has(tab) || held.has(tab)) return false;
    held.add(tab);
    try { await fn(); } finally { held.delete(tab); }
    return true;
  };
}

test("two tabs on one storage keep their own entries, even of the same image", async () => {
  const store = new J.MemoryStore();
  const a = await new J.Journal(store, { tab: "A" }).open();
  const b = await new J.Journal(store, { tab: "B" }).open();
  const ea = edit(a, 7, 1), eb = edit(b, 7, 2);
  await Promise.all([ea.written, eb.written]);
  assert.equal(store.rows.size, 2, "two rows: one per tab");
  assert.deepEqual([...a.get("ann", null, 7).data], [1, 1, 1, 1]);
  assert.deepEqual([...b.get("ann", null, 7).data], [2, 2, 2, 2]);
  assert.equal(a.confirm("ann", "P", 7, ea.stamp, 3), "done");   // A's save confirms A's entry only
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(b.get("ann", "P", 7).base, 2, "B's entry untouched");
  assert.deepEqual([...store.rows.values()].map((e) => e.tab), ["B"]);
  // a reload of tab B (same id from sessionStorage) restores B's own, nothing of A's
  const b2 = await new J.Journal(store, { tab: "B" }).open();
  assert.deepEqual(b2.restored.length, 1);
  const c = await new J.Journal(store, { tab: "C" }).open();
  assert.equal(c.entries.size, 0, "a new tab does not take a living tab's entries at open");
  assert.deepEqual(c.due("ann", null), []);
});

test("a living tab adopts the entries of a tab that is gone, once, beside its own", async () => {
  const store = new J.MemoryStore();
  const a = await new J.Journal(store, { tab: "A" }).open();
  const b = await new J.Journal(store, { tab: "B" }).open();
  await edit(a, 7, 1).written;
  await edit(a, 8, 1).written;
  await edit(b, 7, 2).written;
  // A is alive: nothing to adopt
  assert.deepEqual(await b.adopt(claims(new Set(["A", "B"]))), []);
  // A closed: B and a new tab C race to adopt; one gets each entry, nobody twice
  const c = await new J.Journal(store, { tab: "C" }).open();
  const claim = claims(new Set(["B", "C"]));
  const [gb, gc] = await Promise.all([b.adopt(claim), c.adopt(claim)]);
  assert.equal(gb.length + gc.length, 2, "each of A's entries adopted exactly once");
  const rows = [...store.rows.values()];
  assert.equal(rows.length, 3);
  assert.ok(rows.every((e) => e.tab === "B" || e.tab === "C"));
  assert.equal(gb.length, 2, "B asked first and holds A's claim while C asks");
  {
    // B had its own entry of image 7: A's stays beside it (both are sent), B's own is still B's
    assert.deepEqual([...b.get("ann", null, 7).data], [2, 2, 2, 2]);
    const adopted = [...b.entries.values()].filter((e) => e.image === 7 && !b.own(e));
    assert.equal(adopted.length, 1);
    assert.deepEqual([...adopted[0].data], [1, 1, 1, 1]);
    assert.equal(b.due("ann", null).length, 3);
    assert.equal(b.confirmKey(adopted[0].key, adopted[0].stamp, 4), "done");
    assert.deepEqual([...b.get("ann", null, 7).data], [2, 2, 2, 2], "confirming the adopted one keeps B's own");
    assert.ok(b.own(b.get("ann", null, 8)), "image 8: adopted as B's own (B had none)");
  }
  // an entry of the image open in the adopting tab stays beside: the tab's next edit of it must not replace it
  const d = await new J.Journal(store, { tab: "D" }).open();
  const e = await new J.Journal(store, { tab: "E" }).open();
  await edit(e, 5, 6).written;
  const [side, ...more] = await d.adopt(claims(new Set(["B", "C", "D"])), 5);
  assert.deepEqual(more, []);
  assert.ok(!d.own(side));
  assert.deepEqual(d.due("ann", 5).map((x) => x.key), [side.key], "sent though its image is open: not the canvas's");
  edit(d, 5, 7);
  assert.deepEqual([...d.entries.values()].map((x) => x.data[0]).sort(), [6, 7]);
  // entries of a journal from before tabs (no tab) are adopted too
  store.rows.set("old", { key: "old", user: "ann", project: "P", image: 9, data: new Uint8Array(4), stamp: 1 });
  const got = await c.adopt(claims(new Set(["B", "C", "D"])));
  assert.deepEqual(got.map((x) => x.image), [9]);
  assert.ok(c.own(got[0]));
});

// ---------------------------------------------------------------- conflicts

test("mine where I drew, theirs elsewhere", () => {
  const base = new Uint8Array([0, 0, 0, 0, 1, 1]);
  const mine = new Uint8Array([2, 2, 0, 0, 1, 1]);     // drew 2 on pixels 0, 1
  const theirs = new Uint8Array([0, 3, 3, 0, 1, 4]);   // drew 3 on 1, 2 and 4 on 5
  const m = J.mergeMine(base, mine, theirs);
  assert.deepEqual([...m.data], [2, 2, 3, 0, 1, 4]);
  assert.equal(m.drawn, 2);
  assert.equal(m.taken, 2);
  assert.equal(m.clash, 1, "pixel 1: both changed it, mine wins");
  assert.deepEqual([...theirs], [0, 3, 3, 0, 1, 4], "the inputs are not changed");
  assert.throws(() => J.mergeMine(base, mine, new Uint8Array(3)));
  assert.equal(J.differing(mine, theirs), 4);
  const ch = J.conflictChoices(base, mine, theirs);
  assert.deepEqual(ch.map((c) => c.action), ["mine", "theirs", "merge"]);
  assert.match(ch[2].label, /2 px.*1 px both changed/);
  // when the merge is just one of the two (they did not touch anything else), it is not offered
  assert.deepEqual(J.conflictChoices(base, mine, base).map((c) => c.action), ["mine", "theirs"]);
});
