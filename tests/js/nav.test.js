// node --test tests/js : the canvas's requests and moves between images (segui/canvas/nav.js)
const test = require("node:test");
const assert = require("node:assert/strict");
const C = require("../../segui/canvas/core.js");
const N = require("../../segui/canvas/nav.js");

// The nav part of the page's state S, on image `id` (a doc of its own).
function state(id = 1, extra = {}) {
  const st = {
    rid: 0, pending: new Map(), navPending: null, lastSeq: null, optimistic: null, ahead: null,
    peeking: null, visited: [], filter: "unlabelled",
  };
  Object.assign(st, doc(id), extra);
  return st;
}

function doc(id, revision = 3, source = "model A") {
  return {
    img: id === null ? null : { id, revision, source, url: `/img/${id}` }, photo: `photo ${id}`, map: `map ${id}`,
    pred: null, seg: null, segQueue: [], history: new C.History(), encoded: {}, review: null, reviewMask: null,
  };
}

// S.ahead as peek leaves it: image `next` prepared on the current image
function prepare(st, next, source = "model A") {
  st.ahead = { current: st.img.id, filter: st.filter, v: { kind: "load", image: { id: next } }, doc: doc(next, 0, source) };
}

// what canvas.js's enter() does to the nav fields when it shows `d`
function enter(st, v, d) {
  N.visit(st, v, d.img.id);
  st.ahead = null;
  for (const k of N.DOC) st[k] = d[k];
}

// showAhead: request Next, anticipate it, show the prepared image
function optimisticNext(st) {
  assert.ok(N.aheadReady(st));
  const rid = N.begin(st, "go_next", { snapshot: null, step: null, image: st.img.id });
  const a = N.anticipate(st, rid);
  enter(st, a.v, a.doc);
  return rid;
}

function dirty(st) {
  const e = new C.Edit(new C.LabelMap(2, 1), 4);
  e.paint(0);
  st.history.push(e.finish("brush"));
}

test("a request waits for its answer; a move to another image blocks the rest until answered", () => {
  const st = state();
  const save = N.begin(st, "save_draft", { snapshot: null, step: null, image: 1 });
  assert.deepEqual([...st.pending.keys()], [save]);
  assert.deepEqual(st.pending.get(save), { event: "save_draft", snapshot: null, step: null, image: 1 });
  assert.equal(N.navigating(st), false);
  const next = N.begin(st, "go_next", {});
  assert.equal(next, save + 1);
  assert.equal(st.navPending, next);
  assert.ok(N.navigating(st));
  assert.ok(N.isNav("open_image") && N.isNav("review_image") && N.isNav("submit_next") && !N.isNav("run_snap"));
  N.answered(st, { kind: "saved", request: save });
  assert.equal(st.navPending, next);
  N.answered(st, { kind: "load", request: next });
  assert.equal(st.navPending, null);
  assert.equal(st.pending.size, 0);
});

test("a move never answered (its server died) is seen with how long it has waited; failing it frees the page", () => {
  const st = state();
  assert.equal(N.pendingMove(st, 1000), null);
  const save = N.begin(st, "save_draft", { image: 1, t: 100 });
  assert.equal(N.pendingMove(st, 1000), null);   // a save is not a move
  prepare(st, 2);
  const rid = N.begin(st, "go_next", { image: 1, t: 400 });
  const a = N.anticipate(st, rid);
  enter(st, a.v, a.doc);                          // the prepared image is on screen already
  assert.deepEqual(N.pendingMove(st, 10400), { event: "go_next", waited: 10000 });
  const undo = N.fail(st, "go_next");             // what the page does with a lost move
  assert.equal(undo.id, 2);
  assert.equal(undo.leaving.img.id, 1);           // back to the image it left
  assert.equal(N.navigating(st), false);
  assert.equal(N.pendingMove(st, 20000), null);
  assert.ok(st.pending.has(save));                // other requests keep waiting for their own answers
  N.begin(st, "open_image", { image: 1 });        // a record without a time: waited 0
  assert.deepEqual(N.pendingMove(st, 5), { event: "open_image", waited: 0 });
});

test("any load ends a move; another answer leaves it waiting", () => {
  const st = state();
  const next = N.begin(st, "go_next", {});
  N.answered(st, { kind: "info", request: null });
  assert.equal(st.navPending, next);
  N.answered(st, { kind: "load" });   // e.g. the project changed under it
  assert.equal(st.navPending, null);
  assert.equal(st.pending.size, 1);
});

test("each server value is taken once (by seq)", () => {
  const st = state();
  assert.equal(N.fresh(st, null), false);
  assert.equal(N.fresh(st, { seq: 1 }), false);   // no kind
  assert.equal(N.fresh(st, { kind: "info", seq: 1 }), true);
  assert.equal(N.fresh(st, { kind: "info", seq: 1 }), false);
  assert.equal(N.fresh(st, { kind: "load", seq: 2 }), true);
});

test("answers are routed by kind; the answer to an optimistic Next settles it", () => {
  const st = state();
  assert.equal(N.route(st, { kind: "load" }), "load");
  assert.equal(N.route(st, { kind: "saved" }), "saved");
  assert.equal(N.route(st, { kind: "result" }), "result");
  assert.equal(N.route(st, { kind: "prompt" }), "prompt");
  assert.equal(N.route(st, { kind: "split", image_id: 1 }), "split");
  assert.equal(N.route(st, { kind: "split", image_id: 2 }), null);
  assert.equal(N.route(st, { kind: "info" }), null);
  // a view of the open image (revision 3) older than the page holds is stale; newer, or
  // another image, or a restored revision, is shown
  assert.equal(N.route(st, { kind: "load", image: { id: 1, revision: 2 } }), null);
  assert.equal(N.route(st, { kind: "load", image: { id: 1, revision: 3 } }), "load");
  assert.equal(N.route(st, { kind: "load", image: { id: 2, revision: 0 } }), "load");
  assert.equal(N.route(st, { kind: "load", image: { id: 1, revision: 2 }, restore: { revision: 1 } }), "load");
  prepare(st, 2);
  const rid = optimisticNext(st);
  assert.equal(N.route(st, { kind: "saved", request: rid }), "settle");
  assert.equal(N.route(st, { kind: "saved", request: rid + 1 }), "saved");
});

test("a view routed while the page had no image of that revision yet is stale once the page's save lands", () => {
  const st = state();
  st.img = null;                                          // the page is still opening the image
  const v = { kind: "load", image: { id: 1, revision: 0 } };
  assert.equal(N.route(st, v), "load");
  assert.equal(N.staleLoad(st, v), false);
  st.img = { id: 1, revision: 1 };                        // meanwhile: opened, restored, saved
  assert.equal(N.staleLoad(st, v), true);                 // asked again before it is shown
  assert.equal(N.staleLoad(st, { kind: "load", image: { id: 1, revision: 1 } }), false);
});

test("the prepared image is ready only for the image and queue it was peeked on, and not during a move", () => {
  const st = state();
  assert.equal(N.aheadReady(st), false);
  prepare(st, 2);
  assert.equal(N.aheadReady(st), true);
  st.filter = "draft";
  assert.equal(N.aheadReady(st), false);
  assert.equal(N.aheadWanted(st, 1, "unlabelled"), false);
  st.filter = "unlabelled";
  assert.equal(N.aheadWanted(st, 1, "unlabelled"), true);
  assert.equal(N.aheadWanted(st, 7, "unlabelled"), false);
  N.begin(st, "open_image", {});
  assert.equal(N.aheadReady(st), false);
});

test("Next waits for a peek in flight on this image only", () => {
  const st = state();
  assert.equal(N.shouldAwaitPeek(st), false);
  st.peeking = { id: 1, promise: null };
  assert.equal(N.shouldAwaitPeek(st), true);
  st.peeking = { id: 5, promise: null };
  assert.equal(N.shouldAwaitPeek(st), false);
  st.peeking = { id: 1, promise: null };
  prepare(st, 2);
  assert.equal(N.shouldAwaitPeek(st), false);   // already prepared
  st.ahead = null;
  N.begin(st, "go_next", {});
  assert.equal(N.shouldAwaitPeek(st), false);
});

test("optimistic Next shows the prepared image and remembers the one it left", () => {
  const st = state(1);
  const leaving = st.history;
  prepare(st, 2);
  const rid = optimisticNext(st);
  assert.equal(st.img.id, 2);
  assert.deepEqual(st.visited, [1]);
  assert.equal(st.optimistic.rid, rid);
  assert.equal(st.optimistic.id, 2);
  assert.equal(st.optimistic.leaving.img.id, 1);
  assert.equal(st.optimistic.leaving.history, leaving);
  assert.deepEqual(st.optimistic.visited, []);
  assert.deepEqual(N.DOC.filter((k) => !(k in st.optimistic.leaving)), []);
});

test("settle: the same image, revision and mask source is kept", () => {
  const st = state(1);
  prepare(st, 2);
  const rid = optimisticNext(st);
  const { action, o } = N.settle(st, { kind: "load", request: rid, image: { id: 2, revision: 0, source: "model A" } });
  assert.equal(action, "keep");
  assert.equal(o.id, 2);
  assert.equal(st.optimistic, null);
  assert.deepEqual(st.visited, [1]);   // stays on the image Next opened
});

test("settle: another mask source (a model change) keeps the prepared image, then replaces it when the server's decodes", () => {
  // the case the demo round's browser test caught: no flash back to the image before
  const st = state(1);
  prepare(st, 2, "model A");
  const rid = optimisticNext(st);
  const v = { kind: "load", request: rid, image: { id: 2, revision: 0, source: "model B" } };
  const { action, o } = N.settle(st, v);
  assert.equal(action, "replace");
  // while the server's mask decodes, the prepared image stays: nothing rolled back
  assert.equal(st.img.id, 2);
  assert.equal(st.img.source, "model A");
  assert.deepEqual(st.visited, [1]);
  assert.equal(st.optimistic, null);
  // decoded, nothing edited, the move still open (answered() runs after the settle): replace
  assert.equal(st.navPending, rid);
  assert.equal(N.replaceWanted(st, o, v), true);
  enter(st, v, doc(2, 0, "model B"));
  assert.equal(st.img.source, "model B");
  assert.deepEqual(st.visited, [1]);   // the same image again: no new Back entry
  N.answered(st, v);
  assert.equal(st.navPending, null);
  assert.equal(N.replaceWanted(st, o, v), true);
});

test("settle: another mask source on an image already edited keeps the labeller's work, the newer mask merged under it", () => {
  const st = state(1);
  prepare(st, 2, "model A");
  const rid = optimisticNext(st);
  dirty(st);
  const v = { kind: "load", request: rid, image: { id: 2, revision: 0, source: "model B" } };
  const { action, o } = N.settle(st, v);
  assert.equal(action, "replace");
  assert.equal(st.img.id, 2);
  assert.equal(N.replaceWanted(st, o, v), false);   // not shown over the labeller's strokes...
  st.pred = new Uint8Array(4);
  assert.equal(N.mergeWanted(st, o, v), true);      // ...merged under them
  st.img.revision = 3;                              // a revision's map is not a prediction
  assert.equal(N.mergeWanted(st, o, v), false);
});

test("settle: the server's mask is not shown once the labeller started editing or moved on while it decoded", () => {
  const st = state(1);
  prepare(st, 2, "model A");
  const rid = optimisticNext(st);
  const v = { kind: "load", request: rid, image: { id: 2, revision: 0, source: "model B" } };
  const { action, o } = N.settle(st, v);
  assert.equal(action, "replace");
  dirty(st);                                     // a stroke while it decoded
  assert.equal(N.replaceWanted(st, o, v), false);
  st.pred = new Uint8Array(4);
  assert.equal(N.mergeWanted(st, o, v), true);   // merged under it instead
  const st2 = state(1);
  prepare(st2, 2, "model A");
  const rid2 = optimisticNext(st2);
  const v2 = { kind: "load", request: rid2, image: { id: 2, revision: 0, source: "model B" } };
  const s2 = N.settle(st2, v2);
  N.answered(st2, v2);
  N.begin(st2, "go_next", {});                   // Next again while it decoded
  assert.equal(N.replaceWanted(st2, s2.o, v2), false);
  enter(st2, { kind: "load" }, doc(3));          // ...and the next image is shown
  assert.equal(N.replaceWanted(st2, s2.o, v2), false);
  st2.pred = new Uint8Array(4);
  dirty(st2);
  assert.equal(N.mergeWanted(st2, s2.o, v2), false);   // another image: nothing merged
});

test("settle: another image than the prepared one rolls back, then loads it", () => {
  const st = state(1);
  st.visited = [9];
  prepare(st, 2);
  const rid = optimisticNext(st);
  assert.deepEqual(st.visited, [9, 1]);
  const { action, o } = N.settle(st, { kind: "load", request: rid, image: { id: 4, revision: 0, source: "model A" } });
  assert.equal(action, "other");
  assert.deepEqual(st.visited, [9]);   // restored; showing o.leaving then loading 4 adds 1 again
  assert.equal(o.leaving.img.id, 1);
  for (const k of N.DOC) st[k] = o.leaving[k];   // showDoc: no Back entry
  enter(st, { kind: "load" }, doc(4));
  assert.deepEqual(st.visited, [9, 1]);
});

test("settle: a newer revision of the same image is another image", () => {
  const st = state(1);
  prepare(st, 2);
  const rid = optimisticNext(st);
  const { action } = N.settle(st, { kind: "load", request: rid, image: { id: 2, revision: 1, source: "model A" } });
  assert.equal(action, "other");
});

test("settle: the server stayed on the image (a save conflict, nothing next): back to it", () => {
  const st = state(1);
  prepare(st, 2);
  const rid = optimisticNext(st);
  const { action, o } = N.settle(st, { kind: "saved", request: rid, conflict: true });
  assert.equal(action, "back");
  assert.deepEqual(st.visited, []);
  assert.equal(o.leaving.img.id, 1);
  assert.equal(st.optimistic, null);
});

test("a failed Next rolls back the optimistic image; a failed other event does not", () => {
  const st = state(1);
  const save = N.begin(st, "save_draft", {});
  prepare(st, 2);
  const rid = optimisticNext(st);
  assert.equal(N.fail(st, "run_snap"), null);
  assert.equal(st.pending.size, 2);
  assert.equal(st.navPending, rid);
  const undo = N.fail(st, "go_next");
  assert.equal(undo.leaving.img.id, 1);
  assert.deepEqual(st.visited, []);
  assert.equal(st.optimistic, null);
  assert.equal(st.navPending, null);
  assert.deepEqual([...st.pending.keys()], [save]);
  assert.equal(N.fail(st, "save_draft"), null);
  assert.equal(st.pending.size, 0);
});

test("a failed move without an optimistic image just unblocks", () => {
  const st = state(1);
  N.begin(st, "open_image", {});
  assert.equal(N.fail(st, "open_image"), null);
  assert.equal(st.navPending, null);
  assert.equal(st.img.id, 1);
});

test("visited images: the one leaving joins the list (at most 200); Back to the last one takes it off", () => {
  const st = state(0);
  for (let id = 1; id <= 205; id++) enter(st, {}, doc(id));
  assert.equal(st.visited.length, 200);
  assert.equal(st.visited[0], 5);
  assert.equal(N.previous(st), 204);
  enter(st, {}, doc(205));                    // the same image again: no entry
  assert.equal(st.visited.length, 200);
  const fresh = state(null, { visited: [3, 4] });
  enter(fresh, { back: true }, doc(4));      // nothing shown, back to the last visited
  assert.deepEqual(fresh.visited, [3]);
  enter(fresh, { back: true }, doc(7));      // back to one that is not the last: kept
  assert.deepEqual(fresh.visited, [3, 4]);
  assert.equal(N.previous(state(1)), undefined);
});

test("Back twice goes two images back, not back and forth between the last two", () => {
  const st = state(1);
  for (const id of [2, 3]) enter(st, { kind: "load" }, doc(id));     // 1 -> 2 -> 3 with Next
  assert.deepEqual(st.visited, [1, 2]);
  assert.equal(N.previous(st), 2);
  enter(st, { kind: "load", back: true }, doc(2));                     // Shift+N: back to 2
  assert.deepEqual(st.visited, [1]);
  assert.equal(N.previous(st), 1);                                     // Shift+N again: 1, not 3
  enter(st, { kind: "load", back: true }, doc(1));
  assert.deepEqual(st.visited, []);
  enter(st, { kind: "load" }, doc(4));                                 // Next after going back
  assert.deepEqual(st.visited, [1]);
});

// ------------------------------------------------------------------ another model made active

function onPrediction(st, version, project = "P") {
  st.project = project;
  st.img.revision = 0;
  st.img.version = version;
}

test("newerModel: an unedited predicted image is opened again with the newly active version", () => {
  const st = state(1);
  onPrediction(st, 1);
  const v1 = { id: 1, name: "v1", project: "P" };
  const v2 = { id: 2, name: "v2", project: "P" };
  assert.equal(N.newerModel(st, v1), null);          // what is shown: nothing new
  assert.equal(N.newerModel(st, v1), null);
  assert.equal(N.newerModel(st, v2), "reopen");      // a job was promoted
  assert.equal(N.newerModel(st, v2), null);          // once
  st.img.version = 2;                                // (the reopened image)
  assert.equal(N.newerModel(st, v1), "reopen");      // someone activated v1 again
});

test("newerModel: edits, a shape under way or an annotated image are told, not replaced", () => {
  const v2 = { id: 2, name: "v2", project: "P" };
  const st = state(1);
  onPrediction(st, 1);
  dirty(st);
  assert.equal(N.newerModel(st, v2), "tell");
  const poly = state(1, { polygon: [[1, 2]] });
  onPrediction(poly, 1);
  assert.equal(N.newerModel(poly, v2), "tell");
  const annotated = state(1);
  onPrediction(annotated, 1);
  annotated.img.revision = 4;
  assert.equal(N.newerModel(annotated, v2), "tell");
});

test("newerModel: not while an answer is on its way; not for another project; an image already of the version", () => {
  const v2 = { id: 2, name: "v2", project: "P" };
  const st = state(1);
  onPrediction(st, 1);
  N.begin(st, "save_draft", { snapshot: null, step: null, image: 1 });
  assert.equal(N.newerModel(st, v2), null);          // the next beat asks again...
  st.pending.clear();
  assert.equal(N.newerModel(st, v2), "reopen");      // ...and then it is done
  const other = state(1);
  onPrediction(other, 1);
  assert.equal(N.newerModel(other, { id: 7, name: "v7", project: "Q" }), null);   // the page moved to P meanwhile
  const fresh = state(1);
  onPrediction(fresh, 2);                            // opened after the change: its prediction is v2's
  assert.equal(N.newerModel(fresh, v2), null);
  assert.equal(N.newerModel(fresh, v2), null);
  const rebuilding = state(1);
  onPrediction(rebuilding, 1);
  assert.equal(N.newerModel(rebuilding, { ...v2, ready: false }), null);   // the instant layer is rebuilt on it first
  assert.equal(N.newerModel(rebuilding, { ...v2, ready: true }), "reopen");
  const none = state(1);
  onPrediction(none, null);                          // no version known: only remembered
  assert.equal(N.newerModel(none, v2), null);
  assert.equal(N.newerModel(none, { id: 3, name: "v3", project: "P" }), "tell");   // (whose prediction: unknown)
});

test("newerFit: an unedited prediction from an older adapter is opened again, once per adapter", () => {
  const st = state(1);
  onPrediction(st, 1);
  st.img.fit = 5;
  const at = (fit, extra = {}) => ({ id: 1, name: "v1", project: "P", ready: true, fit, ...extra });
  assert.equal(N.newerFit(st, at(5)), false);            // predicted by the current adapter
  assert.equal(N.newerFit(st, at(null)), false);         // the layer has learnt nothing (or is off)
  assert.equal(N.newerFit(st, at(6, { ready: false })), false);   // being rebuilt
  assert.equal(N.newerFit(st, at(6, { project: "Q" })), false);   // another project's
  assert.equal(N.newerFit(st, at(6, { id: 2 })), false);  // another version: newerModel's business
  assert.equal(N.newerFit(st, at(6)), true);             // a submit learnt since
  assert.equal(N.newerFit(st, at(6)), false);            // once: the answer may keep fit 5
  assert.equal(N.newerFit(st, at(7)), true);             // the next submit learnt
  const restarted = state(1);                             // predicted before a restart
  onPrediction(restarted, 1);
  restarted.img.fit = -1;
  assert.equal(N.newerFit(restarted, at(3)), true);
});

test("newerFit: not for edits, a shape under way, an annotation or while an answer is on its way", () => {
  const at = { id: 1, name: "v1", project: "P", ready: true, fit: 6 };
  const mk = (extra = {}) => { const st = state(1, extra); onPrediction(st, 1); st.img.fit = 5; return st; };
  const edited = mk();
  dirty(edited);
  assert.equal(N.newerFit(edited, at), false);
  assert.equal(N.newerFit(mk({ polygon: [[1, 2]] }), at), false);
  const annotated = mk();
  annotated.img.revision = 2;
  assert.equal(N.newerFit(annotated, at), false);
  const busy = mk();
  N.begin(busy, "save_draft", { snapshot: null, step: null, image: 1 });
  assert.equal(N.newerFit(busy, at), false);
  busy.pending.clear();
  assert.equal(N.newerFit(busy, at), true);              // asked again on the next beat
});

test("modelLabel: said while a newly active version is prepared, not for the version shown or another project", () => {
  const st = state(1);
  onPrediction(st, 1);
  const v2 = { id: 2, name: "v2", project: "P" };
  assert.equal(N.modelLabel(st, { ...v2, ready: false }), "v2 made active: adapting it to the corrections…");
  assert.equal(N.modelLabel(st, { ...v2, ready: true }), "");           // ready: newerModel reopens or tells
  assert.equal(N.modelLabel(st, { id: 1, name: "v1", project: "P", ready: false }), "");   // the version shown (a restart's rebuild)
  assert.equal(N.modelLabel(st, { ...v2, project: "Q", ready: false }), "");
  assert.equal(N.newerModel(st, { ...v2, ready: true }), "reopen");
  assert.equal(N.modelLabel(st, { ...v2, ready: false }), "");          // already taken in
});

test("jobNews / jobLabel: a job under way is labelled; its end is told unless its model was promoted", () => {
  const st = state(1);
  assert.equal(N.jobNews(st, null, "v1"), null);
  assert.equal(N.jobLabel(st.job), "");
  assert.equal(N.jobNews(st, { id: 3, status: "queued", progress: 0 }, "v1"), null);
  assert.equal(N.jobLabel(st.job), "fine-tuning job 3 queued");
  assert.equal(N.jobNews(st, { id: 3, status: "running", progress: 0.404 }, "v1"), null);
  assert.equal(N.jobLabel(st.job), "fine-tuning job 3: 40 %");
  const news = N.jobNews(st, { id: 3, status: "succeeded", progress: 1, promoted: false, why: "val mIoU dropped" }, "v1");
  assert.match(news, /job 3 finished, but its model was not made active \(val mIoU dropped\)\. The model stays v1\./);
  assert.equal(N.jobLabel(st.job), "");
  assert.equal(N.jobNews(st, { id: 3, status: "succeeded", progress: 1, promoted: false }, "v1"), null);   // told once
  N.jobNews(st, { id: 4, status: "running", progress: 0.5 }, "v1");
  assert.equal(N.jobNews(st, { id: 4, status: "succeeded", progress: 1, promoted: true }, "v1"), null);   // newerModel tells
  N.jobNews(st, { id: 5, status: "running", progress: 0.1 }, "v2");
  assert.match(N.jobNews(st, { id: 5, status: "failed", progress: 0.1 }, "v2"), /job 5 failed\. The model stays v2\./);
  N.jobNews(st, { id: 6, status: "queued", progress: 0 }, "v2");
  assert.match(N.jobNews(st, { id: 6, status: "cancelled", progress: 0 }, "v2"), /job 6 was cancelled/);
  // a job that ended before the page heard of it running: nothing to tell
  const fresh = state(1);
  assert.equal(N.jobNews(fresh, { id: 7, status: "failed", progress: 0.3 }, "v2"), null);
});
