// node --test tests/js : the canvas's pure logic (segui/canvas/core.js)
const test = require("node:test");
const assert = require("node:assert/strict");
const C = require("../../segui/canvas/core.js");

const VOID = 255;

function mapOf(w, h, fill = VOID) {
  return new C.LabelMap(w, h, new Uint8Array(w * h).fill(fill));
}

function indicesOf(map, v) {
  const out = [];
  map.data.forEach((x, i) => { if (x === v) out.push(i); });
  return out;
}

test("brush paints pixels whose centres lie within the radius, undo and redo restore exactly", () => {
  const m = mapOf(20, 10);
  const h = new C.History();
  const e = new C.Edit(m, 3, C.allowTable("all", VOID, VOID));
  const n = C.paintSegment(e, 5, 5, 5, 5, 2);
  // centres within 2 of (5, 5): (x+.5-5)^2 + (y+.5-5)^2 <= 4
  let expect = 0;
  for (let y = 0; y < 10; y++) for (let x = 0; x < 20; x++) if ((x + 0.5 - 5) ** 2 + (y + 0.5 - 5) ** 2 <= 4) expect++;
  assert.equal(n, expect);
  assert.equal(m.counts[3], expect);
  h.push(e.finish("brush"));
  const after = m.data.slice();
  h.undo(m);
  assert.deepEqual(m.data, new Uint8Array(200).fill(VOID));
  assert.equal(m.counts[3], 0);
  assert.equal(m.counts[VOID], 200);
  h.redo(m);
  assert.deepEqual(m.data, after);
});

test("a dragged brush covers the whole capsule between the points", () => {
  const m = mapOf(40, 10);
  const e = new C.Edit(m, 1);
  C.paintSegment(e, 2, 5, 37, 5, 1.5);
  for (let x = 2; x < 37; x++) assert.equal(m.data[5 * 40 + x], 1, `x=${x}`);
  assert.equal(m.data[0], VOID);
});

test("protection modes: only void, only the class under the first click", () => {
  const m = mapOf(10, 1);
  m.data.set([0, 0, VOID, VOID, 1, 1, VOID, 0, 1, VOID]);
  m.counts = C.countValues(m.data);
  const e = new C.Edit(m, 2, C.allowTable("void", VOID, m.data[0]));
  for (let i = 0; i < 10; i++) e.paint(i);
  assert.deepEqual([...m.data], [0, 0, 2, 2, 1, 1, 2, 0, 1, 2]);
  const e2 = new C.Edit(m, 5, C.allowTable("same", VOID, 1));
  for (let i = 0; i < 10; i++) e2.paint(i);
  assert.deepEqual([...m.data], [0, 0, 2, 2, 5, 5, 2, 0, 5, 2]);
});

test("history keeps at least 100 steps and knows the saved position", () => {
  const m = mapOf(200, 1);
  const h = new C.History(150);
  assert.equal(h.isDirty(), false);
  for (let k = 0; k < 120; k++) {
    const e = new C.Edit(m, k % 7);
    e.paint(k);
    h.push(e.finish("brush"));
  }
  assert.equal(h.isDirty(), true);
  h.mark();
  assert.equal(h.isDirty(), false);
  for (let k = 0; k < 120; k++) assert.ok(h.undo(m));
  assert.equal(h.undo(m), null);
  assert.deepEqual(m.data, new Uint8Array(200).fill(VOID));
  assert.equal(h.isDirty(), true);
  for (let k = 0; k < 120; k++) h.redo(m);
  assert.equal(h.isDirty(), false);
  // a new step after undo drops the redo tail
  h.undo(m);
  const e = new C.Edit(m, 9);
  e.paint(199);
  h.push(e.finish("brush"));
  assert.equal(h.canRedo, false);
  assert.equal(h.isDirty(), true);
});

test("history over its limit drops the oldest steps and stays dirty", () => {
  const m = mapOf(10, 1);
  const h = new C.History(3);
  for (let k = 0; k < 5; k++) { const e = new C.Edit(m, 1 + k); e.paint(k); h.push(e.finish("b")); }
  assert.equal(h.steps.length, 3);
  while (h.undo(m)) { /* undo all */ }
  assert.deepEqual([...m.data.slice(0, 5)], [1, 2, VOID, VOID, VOID]);
  assert.equal(h.isDirty(), true, "the saved (empty) state is no longer reachable");
});

test("an edit that changes nothing is not a step", () => {
  const m = mapOf(4, 4, 2);
  const e = new C.Edit(m, 2);
  C.paintSegment(e, 1, 1, 3, 3, 3);
  assert.equal(e.finish("brush"), null);
  const h = new C.History();
  assert.equal(h.push(null), false);
  assert.equal(h.canUndo, false);
});

test("polygon: pixel centres inside, even-odd, matches a brute-force point-in-polygon", () => {
  const pts = [[2.2, 1.7], [17.9, 3.1], [12.4, 14.8], [8, 6], [3.3, 12.2]];
  const w = 20, h = 16;
  const got = new Set();
  C.rasterizePolygon(pts, w, h, (y, a, b) => { for (let x = a; x < b; x++) got.add(y * w + x); });
  const inside = (px, py) => {
    let c = false;
    for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
      const [xi, yi] = pts[i], [xj, yj] = pts[j];
      if ((yi <= py && py < yj) || (yj <= py && py < yi)) {
        if (px < xi + ((py - yi) * (xj - xi)) / (yj - yi)) c = !c;
      }
    }
    return c;
  };
  const want = new Set();
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (inside(x + 0.5, y + 0.5)) want.add(y * w + x);
  assert.ok(want.size > 50);
  assert.deepEqual([...got].sort((a, b) => a - b), [...want].sort((a, b) => a - b));
});

test("polygon: an axis-aligned rectangle fills exactly its pixels and clips to the image", () => {
  const m = mapOf(10, 10);
  const e = new C.Edit(m, 4);
  const n = C.fillPolygon(e, [[2, 3], [6, 3], [6, 8], [2, 8]]);
  assert.equal(n, 4 * 5);
  for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) {
    assert.equal(m.data[y * 10 + x] === 4, x >= 2 && x < 6 && y >= 3 && y < 8, `${x},${y}`);
  }
  const e2 = new C.Edit(m, 1);
  assert.equal(C.fillPolygon(e2, [[-5, -5], [50, -5], [50, 50], [-5, 50]]), 100);
});

test("superpixel fill gives a whole segment the class; a drag collects the segments it crosses", () => {
  const w = 6, h = 2;
  const seg = new Uint16Array([0, 0, 1, 1, 2, 2, 0, 3, 3, 1, 2, 2]);
  const idx = C.indexSegments(seg);
  assert.equal(idx.count, 4);
  const m = mapOf(w, h);
  const e = new C.Edit(m, 7);
  assert.equal(C.fillSegment(e, idx, 1), 3);
  assert.deepEqual(indicesOf(m, 7), [2, 3, 9]);
  assert.deepEqual([...C.segmentsAlong(idx, w, h, 0.5, 0.5, 5.5, 0.5)].sort(), [0, 1, 2]);
  assert.equal(C.fillSegment(e, idx, 99), 0);
});

test("region fill follows the 4-connected region of the prediction", () => {
  const w = 5, h = 3;
  const pred = new Uint8Array([
    1, 1, 0, 1, 1,
    0, 1, 0, 1, 0,
    1, 0, 0, 0, 1]);
  const r = [...C.connectedRegion(pred, w, h, 0, 0)].sort((a, b) => a - b);
  assert.deepEqual(r, [0, 1, 6]);
  assert.equal(C.connectedRegion(pred, w, h, 2, 0).length, 5);  // (4, 1) is a separate 0
  assert.equal(C.connectedRegion(pred, w, h, 9, 9).length, 0);
});

test("a tool's result is merged without undoing strokes made while it ran", () => {
  const m = mapOf(6, 1, 0);
  const snapshot = m.data.slice();
  // while the tool runs the labeller paints pixel 1 and 4
  const s = new C.Edit(m, 9); s.paint(1); s.paint(4);
  const h = new C.History();
  h.push(s.finish("brush"));
  const result = new Uint8Array([0, 3, 3, 3, 0, 0]);   // the tool changed pixels 1..3
  const e = new C.Edit(m, null);
  const r = C.mergeResult(e, snapshot, result);
  assert.deepEqual(r, { changed: 2, kept: 1 });
  h.push(e.finish("snap"));
  assert.deepEqual([...m.data], [0, 9, 3, 3, 9, 0]);
  h.undo(m);  // undo the tool only
  assert.deepEqual([...m.data], [0, 9, 0, 0, 9, 0]);
  h.undo(m);
  assert.deepEqual([...m.data], [0, 0, 0, 0, 0, 0]);
});

test("replaceAll (clear, reset to prediction) is one undoable step", () => {
  const m = mapOf(4, 2, 0);
  m.data.set([0, 1, 2, 3, 0, 1, 2, 3]);
  m.counts = C.countValues(m.data);
  const before = m.data.slice();
  const h = new C.History();
  const e = new C.Edit(m, null);
  C.replaceAll(e, new Uint8Array(8).fill(VOID));
  h.push(e.finish("clear"));
  assert.equal(m.counts[VOID], 8);
  h.undo(m);
  assert.deepEqual(m.data, before);
  assert.equal(m.counts[3], 2);
});

test("class filtering", () => {
  const classes = Array.from({ length: 12 }, (_, i) => ({ index: i, name: `class ${i}`, rgb: [i, 0, 0] }));
  classes[3].name = "Traffic light";
  assert.deepEqual(C.filterClasses(classes, "traff LIGHT").map((c) => c.index), [3]);
  assert.equal(C.filterClasses(classes, "").length, 12);
});

test("colour table: void and hidden classes transparent", () => {
  const classes = [{ index: 0, name: "a", rgb: [10, 20, 30] }, { index: 1, name: "b", rgb: [1, 2, 3] }];
  const lut = C.colorTable(classes, VOID, new Set([1]));
  assert.equal(lut[0], ((255 << 24) | (30 << 16) | (20 << 8) | 10) >>> 0);
  assert.equal(lut[1], 0);
  assert.equal(lut[VOID], 0);
});

test("zoom keeps the point under the cursor, fit centres the image", () => {
  const v = C.fitView(480, 360, 1000, 800, 0);
  assert.ok(Math.abs(v.s - 1000 / 480) < 1e-9);
  assert.ok(Math.abs(v.oy - (800 - 360 * v.s) / 2) < 1e-9);
  const z = C.zoomAt(v, 2, 300, 200);
  const before = [(300 - v.ox) / v.s, (200 - v.oy) / v.s];
  const after = [(300 - z.ox) / z.s, (200 - z.oy) / z.s];
  assert.ok(Math.abs(before[0] - after[0]) < 1e-9 && Math.abs(before[1] - after[1]) < 1e-9);
});

// ------------------------------------------------------------------ bucket fill

function mapFrom(w, rows) {
  const m = new C.LabelMap(w, rows.length / w, Uint8Array.from(rows));
  return m;
}

test("bucket fill: only the 4-connected region under the click, stopping at other classes", () => {
  const m = mapFrom(5, [
    1, 1, 0, 1, 1,
    0, 1, 0, 1, 0,
    1, 0, 0, 0, 1,
    1, 1, 1, 0, 1]);
  const e = new C.Edit(m, 7, C.allowTable("all", VOID, 0));
  assert.equal(C.floodFill(e, 2, 0), 6);
  assert.deepEqual([...m.data], [
    1, 1, 7, 1, 1,
    0, 1, 7, 1, 0,
    1, 7, 7, 7, 1,
    1, 1, 1, 7, 1]);   // (0, 1) and (4, 1) touch the region only diagonally
  assert.equal(m.counts[7], 6);
  assert.equal(m.counts[0], 2);
  assert.equal(C.floodFill(new C.Edit(m, 7), -1, 0), 0);
  assert.equal(C.floodFill(new C.Edit(m, 7), 5, 0), 0);
});

test("bucket fill matches connectedRegion on random maps, and is one undo step", () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % 3;
  for (let k = 0; k < 30; k++) {
    const w = 23, h = 17, data = Uint8Array.from({ length: w * h }, rnd);
    const m = new C.LabelMap(w, h, data.slice());
    const x = k % w, y = (k * 5) % h;
    const region = new Set(C.connectedRegion(data, w, h, x, y));
    const hist = new C.History();
    const e = new C.Edit(m, 9);
    C.floodFill(e, x + 0.7, y + 0.2);
    assert.ok(hist.push(e.finish("fill")));
    for (let i = 0; i < w * h; i++) assert.equal(m.data[i], region.has(i) ? 9 : data[i]);
    hist.undo(m);
    assert.deepEqual([...m.data], [...data]);
    hist.redo(m);
    assert.equal(m.counts[9], region.size);
  }
});

test("bucket fill respects the protect modes and is a no-op with the same class", () => {
  const rows = [
    1, 1, VOID, VOID,
    1, 2, VOID, 2];
  let m = mapFrom(4, rows);
  assert.equal(C.floodFill(new C.Edit(m, 3, C.allowTable("void", VOID, 1)), 0, 0), 0);   // not void
  assert.equal(C.floodFill(new C.Edit(m, 3, C.allowTable("void", VOID, VOID)), 2, 0), 3);
  assert.deepEqual([...m.data], [1, 1, 3, 3, 1, 2, 3, 2]);
  m = mapFrom(4, rows);
  assert.equal(C.floodFill(new C.Edit(m, 3, C.allowTable("same", VOID, 1)), 0, 1), 3);
  assert.deepEqual([...m.data], [3, 3, VOID, VOID, 3, 2, VOID, 2]);
  const e = new C.Edit(m, 3, C.allowTable("all", VOID, 3));
  assert.equal(C.floodFill(e, 0, 0), 0);
  assert.equal(e.finish("fill"), null);   // nothing changed: no step
});

test("bucket fill of a 480x360 map takes a few milliseconds", () => {
  const w = 480, h = 360, m = new C.LabelMap(w, h, new Uint8Array(w * h));
  for (let x = 0; x < w; x += 7) for (let y = 0; y < h - 1; y++) m.data[y * w + x] = 1;   // a comb
  m.counts = C.countValues(m.data);
  const t0 = process.hrtime.bigint();
  const n = C.floodFill(new C.Edit(m, 2), 3, 3);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.equal(n, w * h - m.counts[1]);
  assert.ok(ms < 100, `${ms} ms`);
});

// ------------------------------------------------------------------ hidden classes are locked

test("hidden classes are locked: no paint, fill or polygon changes them, and the edit says it met them", () => {
  assert.equal(C.lockTable(new Set(), VOID), null);
  assert.equal(C.lockTable(null, VOID), null);
  const lock = C.lockTable(new Set([1, VOID]), VOID);
  assert.equal(lock[1], 1);
  assert.equal(lock[VOID], 0);   // void is never locked
  const m = mapFrom(4, [
    1, 1, 0, 0,
    1, 2, 0, VOID]);
  const e = new C.Edit(m, 3, C.allowTable("all", VOID, 0), lock);
  for (let i = 0; i < 8; i++) e.paint(i);
  assert.deepEqual([...m.data], [1, 1, 3, 3, 1, 3, 3, 3]);
  assert.ok(e.lockedHits > 0);
  assert.match(C.lockedNote(e), /Hidden classes are protected/);
  const e2 = new C.Edit(m, 5, null, lock);
  assert.equal(C.floodFill(e2, 0, 0), 0);    // the hidden region: nothing
  assert.ok(e2.lockedHits > 0);
  assert.equal(e2.finish("fill"), null);
  const e3 = new C.Edit(m, 5, null, lock);
  C.fillPolygon(e3, [[0, 0], [4, 0], [4, 2], [0, 2]]);
  assert.deepEqual([...m.data], [1, 1, 5, 5, 1, 5, 5, 5]);
  const e4 = new C.Edit(m, 6, null, lock);
  C.paintSegment(e4, 2, 1, 2, 1, 0.5);       // a brush dab on a visible class says nothing
  assert.equal(C.lockedNote(e4), "");
});

test("countDiffering: the pixels two maps of one image differ in; -1 for maps of other sizes", () => {
  const a = new Uint8Array([1, 2, 3, 4]);
  assert.equal(C.countDiffering(a, new Uint8Array([1, 2, 3, 4])), 0);
  assert.equal(C.countDiffering(a, new Uint8Array([1, 9, 3, 9])), 2);
  assert.equal(C.countDiffering(a, new Uint8Array([1, 2, 3])), -1);
  assert.equal(C.countDiffering(a, null), -1);
});
