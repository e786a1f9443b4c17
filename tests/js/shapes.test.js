// node --test tests/js : pending shapes (segui/canvas/shapes.js) and their keys (input.js)
const test = require("node:test");
const assert = require("node:assert/strict");
const C = require("../../segui/canvas/core.js");
const I = require("../../segui/canvas/input.js");
const Sh = require("../../segui/canvas/shapes.js");

const SQUARE = [[10, 10], [50, 10], [50, 50], [10, 50]];

function key(k, mods = {}, ctx = {}) {
  const a = I.keyAction({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods }, ctx);
  return a && (a.arg === undefined ? a.action : `${a.action}:${a.arg}`);
}

test("hit-testing: vertices win over edges, edges within their radius, inside by even-odd", () => {
  // at scale 1 a vertex is hit within 7 px, an edge within 5 px
  assert.deepEqual(Sh.hitTest(SQUARE, { x: 12, y: 14 }, 1), { kind: "vertex", index: 0 });
  assert.deepEqual(Sh.hitTest(SQUARE, { x: 30, y: 13 }, 1), { kind: "edge", edge: 0, x: 30, y: 10 });
  assert.deepEqual(Sh.hitTest(SQUARE, { x: 52, y: 30 }, 1), { kind: "edge", edge: 1, x: 50, y: 30 });
  assert.deepEqual(Sh.hitTest(SQUARE, { x: 30, y: 30 }, 1), { kind: "inside" });
  assert.equal(Sh.hitTest(SQUARE, { x: 70, y: 30 }, 1), null);
  // zoomed in 4x the same screen radius is a quarter of the image distance
  assert.deepEqual(Sh.hitTest(SQUARE, { x: 30, y: 13 }, 4), { kind: "inside" });
  assert.deepEqual(Sh.hitTest(SQUARE, { x: 30, y: 11 }, 4), { kind: "edge", edge: 0, x: 30, y: 10 });
  // the closing edge (last vertex back to the first)
  assert.equal(Sh.hitEdge(SQUARE, { x: 9, y: 30 }, 3).edge, 3);
  // the nearest vertex wins when two are in reach
  assert.equal(Sh.hitVertex([[0, 0], [3, 0], [3, 3]], { x: 2.4, y: 0 }, 7), 1);
});

test("pointInPolygon agrees with the rasteriser (pixel centres)", () => {
  const pts = [[3.2, 2.1], [20.7, 4.4], [15.1, 18.9], [5.5, 12.2]];
  const inside = new Set();
  C.rasterizePolygon(pts, 24, 24, (y, a, b) => { for (let x = a; x < b; x++) inside.add(y * 24 + x); });
  for (let y = 0; y < 24; y++) for (let x = 0; x < 24; x++) {
    assert.equal(Sh.pointInPolygon(pts, x + 0.5, y + 0.5), inside.has(y * 24 + x), `pixel ${x},${y}`);
  }
});

test("insert, move and remove vertices; the old arrays are untouched; at least 3 vertices", () => {
  const ins = Sh.insertVertex(SQUARE, 1, 50, 30);
  assert.deepEqual(ins, [[10, 10], [50, 10], [50, 30], [50, 50], [10, 50]]);
  assert.equal(SQUARE.length, 4);
  assert.deepEqual(Sh.moveVertex(SQUARE, 2, 60, 70)[2], [60, 70]);
  assert.deepEqual(SQUARE[2], [50, 50]);
  assert.deepEqual(Sh.removeVertex(ins, 2), SQUARE);
  assert.equal(Sh.removeVertex(SQUARE.slice(0, 3), 0), null);
  assert.equal(Sh.removeVertex(SQUARE, 9), null);
  assert.deepEqual(Sh.clampPoint(-3, 500, 100, 80), [0, 80]);
});

test("an editable polygon: each edit one step, a whole drag one step, undo back to the closed polygon", () => {
  const p = new Sh.EditablePolygon(SQUARE);
  assert.equal(p.edits, 0);
  const d = new Sh.VertexDrag(p, 2);
  d.to(55, 55); d.to(60, 58); d.to(62, 60);
  assert.equal(p.edits, 1);                 // three moves, one step
  assert.deepEqual(p.points[2], [62, 60]);
  assert.equal(p.insert(0, 30, 10), 1);     // the new vertex is selected
  assert.equal(p.selected, 1);
  assert.equal(p.points.length, 5);
  assert.ok(p.remove());                   // Delete removes the selected vertex
  assert.equal(p.points.length, 4);
  assert.equal(p.edits, 3);
  assert.ok(!p.remove());                  // nothing selected any more
  assert.ok(p.undo());
  assert.equal(p.points.length, 5);
  assert.ok(p.undo() && p.undo());
  assert.deepEqual(p.points, SQUARE);
  assert.ok(!p.undo());                    // back at the closed polygon: the caller drops it
  assert.ok(p.redo());
  assert.deepEqual(p.points[2], [62, 60]);
  // an edit after an undo drops the redo branch
  p.move(0, 0, 0);
  assert.ok(!p.redo());
  assert.throws(() => new Sh.EditablePolygon([[0, 0], [1, 1]]));
});

test("object clicks: request order, only the latest answer is shown, drop the last click", () => {
  const o = new Sh.ObjectClicks(7);
  const s1 = o.add(10.7, 20.2, true);
  const s2 = o.add(30, 40, false);
  assert.deepEqual(o.request(), { image_id: 7, positive: [[10, 20]], negative: [[30, 40]] });
  assert.ok(!o.wants(s1, 7));              // an older answer arriving late
  assert.ok(!o.wants(s2, 8));              // another image
  assert.ok(o.wants(s2, 7));
  o.show(s2, Uint8Array.from([0, 1, 1, 0]));
  assert.ok(o.ready);
  assert.equal(o.pixels, 2);
  const s3 = o.dropLast();
  assert.ok(s3 > s2 && !o.ready);          // the shown mask no longer matches the clicks
  assert.deepEqual(o.negative, []);
  assert.equal(o.dropLast(), 0);           // no positive click left: nothing to show
  assert.equal(o.mask, null);
  assert.equal(o.clicks, 0);
});

test("paintMask is one edit under the protect and lock rules; outline marks the border", () => {
  const VOID = 255;
  const map = new C.LabelMap(4, 3, Uint8Array.from([0, 0, 1, 1, 0, 2, 2, 1, VOID, VOID, 1, 1]));
  const mask = Uint8Array.from([1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0]);
  const e = new C.Edit(map, 3, C.allowTable("all", VOID, 0), C.lockTable(new Set([2]), VOID));
  assert.equal(Sh.paintMask(e, mask), 5);  // class 2 is hidden (locked): its two pixels stay
  assert.equal(e.lockedHits, 2);
  const step = e.finish("object");
  assert.deepEqual(Array.from(step.idx), [0, 1, 2, 4, 8]);
  assert.deepEqual(Array.from(map.data), [3, 3, 3, 1, 3, 2, 2, 1, 3, VOID, 1, 1]);
  C.applyStep(map, step, false);           // one undo restores all of it
  assert.deepEqual(Array.from(map.data), [0, 0, 1, 1, 0, 2, 2, 1, VOID, VOID, 1, 1]);
  const full = new Uint8Array(25).fill(1);
  const edge = Sh.outline(full, 5, 5);
  assert.equal(edge.reduce((a, b) => a + b, 0), 16);   // the frame ring; the 3x3 centre is inside
  assert.equal(edge[12], 0);
});

test("keys while a shape is pending: Enter commits, Delete/Backspace, Ctrl+Z walks the shape; O is the object tool", () => {
  assert.equal(key("o"), "tool:object");
  assert.equal(key("O", { shiftKey: true }), "tool:object");
  assert.equal(key("Enter", {}, { shape: "polygon", vertices: true }), "commitShape");
  assert.equal(key("Enter", { shiftKey: true }, { shape: "polygon", vertices: true }), "commitShape");
  assert.equal(key("Enter", {}, { shape: "object" }), "commitShape");
  assert.equal(key("Delete", {}, { shape: "polygon" }), "deleteVertex");
  assert.equal(key("Backspace", {}, { shape: "polygon", vertices: true, points: 0 }), "deleteVertex");
  assert.equal(key("Backspace", {}, { shape: "object" }), "dropClick");
  assert.equal(key("Delete", {}, { shape: "object" }), null);
  assert.equal(key("p", {}, { shape: "object" }), "objectOutline");     // the object's outline, editable
  assert.equal(key("p", {}, { shape: "polygon" }), "tool:polygon");
  assert.equal(key("p", {}, { shape: null }), "tool:polygon");
  assert.equal(key("z", { ctrlKey: true }, { shape: "object" }), "shapeUndo");
  assert.equal(key("Z", { ctrlKey: true, shiftKey: true }, { shape: "polygon" }), "shapeRedo");
  assert.equal(key("y", { ctrlKey: true }, { shape: "polygon" }), "shapeRedo");
  // without a pending shape, the map's own undo and the polygon's close
  assert.equal(key("z", { ctrlKey: true }, { shape: null }), "undo");
  assert.equal(key("Enter", {}, { shape: null, vertices: true }), "closePolygon");
  assert.equal(key("Enter", { ctrlKey: true }, { shape: "object" }), "submitNext");
});

test("majorityValue: the prediction's class under most of an object's pixels", () => {
  const mask = Uint8Array.from([1, 1, 1, 0, 1, 0]);
  const pred = Uint8Array.from([3, 8, 8, 8, 8, 0]);
  assert.deepEqual(Sh.majorityValue(mask, pred), { value: 8, share: 0.75 });   // 3 of the 4 mask pixels
  assert.equal(Sh.majorityValue(new Uint8Array(6), pred), null);
});

// ------------------------------------------------------------------ an object's outline as a polygon

function fill(points, w, h) {
  const out = new Uint8Array(w * h);
  C.rasterizePolygon(points, w, h, (y, a, b) => { for (let x = a; x < b; x++) out[y * w + x] = 1; });
  return out;
}

function maskOf(rows) {
  const h = rows.length, w = rows[0].length;
  const m = new Uint8Array(w * h);
  rows.forEach((r, y) => [...r].forEach((c, x) => { m[y * w + x] = c === "#" ? 1 : 0; }));
  return { m, w, h };
}

test("an outline traced along pixel edges fills back to its part exactly: one pixel, a square, an L, the frame", () => {
  const one = maskOf(["...", ".#.", "..."]);
  assert.deepEqual(Sh.traceBoundary(one.m, one.w, one.h), [[1, 1], [2, 1], [2, 2], [1, 2]]);
  for (const rows of [
    ["......", ".####.", ".####.", ".####.", "......"],
    ["#.....", "#.....", "#.....", "####..", "####.."],      // an L on the frame
    ["######", "######", "######"],                          // the whole image
    ["..#...", ".###..", "#####.", ".###..", "..#..."],      // a diamond (stairs)
  ]) {
    const { m, w, h } = maskOf(rows);
    const pts = Sh.traceBoundary(m, w, h);
    assert.deepEqual([...fill(pts, w, h)], [...m], rows.join("/"));
    for (let k = 0; k < pts.length; k++) {     // axis-parallel edges between integer corners, each a turn
      const [a, b, c] = [pts[k], pts[(k + 1) % pts.length], pts[(k + 2) % pts.length]];
      assert.ok(a[0] === b[0] || a[1] === b[1]);
      assert.notEqual((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]), 0);
    }
  }
});

test("diagonal neighbours are one part (8-connected) and the outline goes round both; holes are filled", () => {
  const diag = maskOf(["#...", ".#..", "..#.", "...."]);
  assert.deepEqual([...fill(Sh.traceBoundary(diag.m, diag.w, diag.h), diag.w, diag.h)], [...diag.m]);
  const ring = maskOf(["#####", "#...#", "#...#", "#####"]);
  const filled = fill(Sh.traceBoundary(ring.m, ring.w, ring.h), ring.w, ring.h);
  assert.equal(filled.reduce((a, b) => a + b, 0), 20);   // the hole is inside the polygon
});

test("the largest part is the one outlined; the others are counted as dropped", () => {
  const two = maskOf(["##.....", "##.....", ".......", "...####", "...####", "...####"]);
  const r = Sh.maskPolygon(two.m, two.w, two.h, 0.5);
  assert.equal(r.droppedPixels, 4);
  const f = fill(r.points, two.w, two.h);
  assert.equal(f.reduce((a, b) => a + b, 0), 12);
  assert.equal(f[0], 0);
  assert.equal(Sh.maskPolygon(new Uint8Array(12), 4, 3), null);
});

test("a round object's outline is simplified to few vertices within the tolerance, and capped", () => {
  const w = 120, h = 100, m = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m[y * w + x] = (x + 0.5 - 60) ** 2 + (y + 0.5 - 50) ** 2 < 40 ** 2 ? 1 : 0;
  const raw = Sh.traceBoundary(m, w, h);
  const r = Sh.maskPolygon(m, w, h, 0.75, 150);
  assert.ok(raw.length > 150 && r.points.length < raw.length / 2 && r.points.length >= 8, `${raw.length} -> ${r.points.length}`);
  const f = fill(r.points, w, h);
  let diff = 0, area = 0;
  for (let i = 0; i < m.length; i++) { diff += f[i] !== m[i] ? 1 : 0; area += m[i]; }
  assert.ok(diff / area < 0.03, `${diff} of ${area} pixels differ`);
  const capped = Sh.maskPolygon(m, w, h, 0.1, 20);
  assert.ok(capped.points.length <= 20 && capped.tolerance > 0.1);
});
