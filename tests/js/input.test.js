// node --test tests/js : the canvas's key map and tools (segui/canvas/input.js)
const test = require("node:test");
const assert = require("node:assert/strict");
const C = require("../../segui/canvas/core.js");
const I = require("../../segui/canvas/input.js");

const VOID = 255;

function key(k, mods = {}, ctx = {}) {
  const a = I.keyAction({ key: k, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods }, ctx);
  return a && (a.arg === undefined ? a.action : `${a.action}:${a.arg}`);
}

// ------------------------------------------------------------------ keys

test("Ctrl/Cmd keys: undo, redo, save, submit; any other stays the browser's", () => {
  assert.equal(key("z", { ctrlKey: true }), "undo");
  assert.equal(key("Z", { ctrlKey: true, shiftKey: true }), "redo");
  assert.equal(key("z", { metaKey: true }), "undo");
  assert.equal(key("y", { ctrlKey: true }), "redo");
  assert.equal(key("s", { ctrlKey: true }), "save");
  assert.equal(key("Enter", { ctrlKey: true }), "submitNext");
  assert.equal(key("n", { ctrlKey: true }), null);   // not Next: the browser's new window
  assert.equal(key("b", { metaKey: true }), null);
  assert.equal(key("1", { ctrlKey: true }), null);
});

test("tool keys, with or without Shift, not with Alt", () => {
  for (const [k, t] of Object.entries({ b: "brush", e: "eraser", p: "polygon", s: "superpixel", g: "region", k: "fill" })) {
    assert.equal(key(k), `tool:${t}`);
    assert.equal(key(k.toUpperCase(), { shiftKey: true }), `tool:${t}`);
    assert.equal(key(k, { altKey: true }), null);
  }
});

test("the single keys", () => {
  assert.equal(key("?"), "help");
  assert.equal(key("Escape"), "escape");
  assert.equal(key(" "), "pan");
  assert.equal(key("["), "smaller");
  assert.equal(key("]"), "larger");
  assert.equal(key("h"), "toggleMask");
  assert.equal(key("H", { shiftKey: true }), "toggleMask");
  assert.equal(key("f"), "fit");
  assert.equal(key("r"), "reset");
  assert.equal(key("n"), "next");
  assert.equal(key("N", { shiftKey: true }), "back");
  assert.equal(key("/"), "filter");
  assert.equal(key("x"), null);
  assert.equal(key("ArrowLeft"), null);
});

test("keys that depend on the canvas: Enter and Backspace with the polygon tool, D with a disagreement mask", () => {
  assert.equal(key("Enter"), null);
  assert.equal(key("Enter", {}, { vertices: true, points: 0 }), "closePolygon");
  assert.equal(key("Enter", { shiftKey: true }, { vertices: true, points: 4 }), "closePolygon");
  assert.equal(key("Backspace", {}, { vertices: true, points: 2 }), "dropVertex");
  assert.equal(key("Backspace", {}, { vertices: true, points: 0 }), null);
  assert.equal(key("Backspace", {}, { vertices: false, points: 2 }), null);
  assert.equal(key("d"), null);
  assert.equal(key("d", {}, { disagreement: true }), "toggleDisagreement");
});

test("W shows or hides the word heatmap", () => { assert.equal(key("w"), "heatmap"); assert.equal(key("W", { shiftKey: true }), "heatmap"); });
test("U shows or hides the uncertainty map", () => { assert.equal(key("u"), "uncertainty"); assert.equal(key("U", { shiftKey: true }), "uncertainty"); });
test("C shows what changed since the previous model; Ctrl+C stays the browser's", () => {
  assert.equal(key("c"), "changes"); assert.equal(key("c", { ctrlKey: true }), null);
});

test("digits: 0 is void, 1-9 the first nine classes, Shift+1-9 the 10th-18th, Shift+0 the 19th", () => {
  assert.equal(key("0"), "void");
  for (const d of "123456789") assert.equal(key(d, { code: `Digit${d}` }), `classKey:${+d - 1}`);
  const shifted = "!@#$%^&*(";   // what Shift+1..9 types on a US layout
  for (let k = 0; k < 9; k++) assert.equal(key(shifted[k], { shiftKey: true, code: `Digit${k + 1}` }), `classKey:${9 + k}`);
  assert.equal(key(")", { shiftKey: true, code: "Digit0" }), "classKey:18");
  assert.equal(key(")", { shiftKey: true }), null);                         // no code: not a class key
  assert.equal(key("1", { shiftKey: true, code: "Digit1" }), "classKey:0");  // AZERTY: Shift types the digit
  assert.equal(key("&", { code: "Digit1" }), null);                          // AZERTY without Shift: not ours
  assert.equal(key("1", { ctrlKey: true, shiftKey: true, code: "Digit1" }), null);
  // the other shifted keys keep their meaning
  assert.equal(key("?", { shiftKey: true, code: "Slash" }), "help");
  assert.equal(key("N", { shiftKey: true, code: "KeyN" }), "back");
});

test("class key labels and positions agree for every class that has a key", () => {
  assert.equal(I.CLASS_KEYS, 19);
  const labels = Array.from({ length: 21 }, (_, p) => I.classKeyLabel(p));
  assert.deepEqual(labels, ["1", "2", "3", "4", "5", "6", "7", "8", "9",
    "⇧1", "⇧2", "⇧3", "⇧4", "⇧5", "⇧6", "⇧7", "⇧8", "⇧9", "⇧0", "", ""]);
  assert.equal(new Set(labels.filter(Boolean)).size, 19);
  for (let p = 0; p < 19; p++) {
    const l = labels[p], shift = l.startsWith("⇧"), d = shift ? l.slice(1) : l;
    const ev = { key: shift ? ")!@#$%^&*("[+d] : d, code: `Digit${d}`, shiftKey: shift };
    assert.equal(I.classKeyPosition(ev), p, l);
  }
  assert.equal(I.classKeyLabel(-1), "");
  assert.equal(I.classKeyPosition({ key: "0", code: "Digit0", shiftKey: false }), null);   // void, not a class
  assert.equal(I.classKeyPosition({ key: "a", code: "KeyA", shiftKey: true }), null);
});

test("every action of the key map is one canvas.js binds", () => {
  const bound = ["undo", "redo", "save", "submitNext", "help", "escape", "closePolygon", "dropVertex", "pan", "tool",
    "smaller", "larger", "toggleMask", "toggleDisagreement", "fit", "reset", "back", "next", "filter", "void", "classKey", "heatmap", "uncertainty", "changes",
    "commitShape", "deleteVertex", "dropClick", "shapeUndo", "shapeRedo", "objectOutline"];
  for (const r of I.KEYS) if (r.action !== null) assert.ok(bound.includes(r.action), r.action);
});

// ------------------------------------------------------------------ tools

// A 20x10 canvas state on a map of void, class 3 active, and the ui calls recorded.
function canvas(extra = {}) {
  const S = {
    map: new C.LabelMap(20, 10, new Uint8Array(200).fill(VOID)), pred: null, seg: null, segQueue: [],
    tool: "brush", active: 3, ignore: VOID, protect: "all", size: 4, view: { s: 1, ox: 0, oy: 0 },
    polygon: [], edit: null, last: null, editLabel: null, spQueued: null, lastClick: null, ...extra,
  };
  const calls = [];
  const history = new C.History();
  let clock = 1000;
  const ui = {
    commit(e, label) { const step = e.finish(label); calls.push(["commit", label, step && step.idx.length]); if (step) history.push(step); return step; },
    changed() { calls.push(["changed"]); },
    setStatus(text, level) { calls.push(["status", text, level]); },
    className: (i) => (i === VOID ? "void" : `c${i}`),
    requestRender() { calls.push(["render"]); },
    closePolygon(erase) { calls.push(["close", erase]); },
    now: () => clock,
  };
  const T = I.makeTools(S, C, ui);
  // what canvas.js does with the pointer: down, moves (S.last follows), up
  const drag = (points, ev = {}) => {
    const t = () => T.tools[S.tool];
    const [p, ...rest] = points.map(([x, y]) => ({ x, y }));
    const captured = t().down(p, { shiftKey: false, ...ev });
    for (const q of rest) if (S.edit && S.last) { t().move(q); S.last = q; }
    t().up();
    return captured;
  };
  return { S, T, calls, history, drag, tick: (ms) => { clock += ms; } };
}

const count = (S, v) => S.map.data.filter((x) => x === v).length;

test("the tool table: every tool has down, move and up", () => {
  const { T } = canvas();
  assert.deepEqual(Object.keys(T.tools).sort(), ["brush", "eraser", "fill", "object", "polygon", "region", "superpixel"]);
  for (const t of Object.values(T.tools)) for (const f of ["down", "move", "up"]) assert.equal(typeof t[f], "function");
  assert.deepEqual(Object.values(I.TOOL_KEYS).sort(), Object.keys(T.tools).sort());
  assert.ok(T.tools.brush.ring && T.tools.eraser.ring && !T.tools.polygon.ring);
  assert.ok(T.tools.eraser.erases && !T.tools.brush.erases);
  assert.ok(T.tools.polygon.vertices && !T.tools.brush.vertices);
});

test("brush: a drag paints the active class and ends as one step", () => {
  const { S, calls, history, drag } = canvas();
  assert.equal(drag([[2, 5], [10, 5], [17, 5]]), true);
  assert.ok(count(S, 3) > 0);
  for (let x = 2; x < 17; x++) assert.equal(S.map.data[5 * 20 + x], 3);
  assert.equal(S.edit, null);
  assert.equal(history.steps.length, 1);
  assert.deepEqual(calls.filter((c) => c[0] === "commit").map((c) => c[1]), ["brush"]);
});

test("eraser paints void; a click outside the image does nothing", () => {
  const { S, T, drag, history } = canvas({ map: new C.LabelMap(20, 10, new Uint8Array(200).fill(1)), tool: "eraser" });
  assert.equal(T.paintValue(), VOID);
  drag([[5, 5]]);
  assert.ok(count(S, VOID) > 0);
  assert.equal(history.steps[0].label, "eraser");
  assert.equal(drag([[-3, 5], [5, 5]]), false);
  assert.equal(history.steps.length, 1);
});

test("polygon: clicks place vertices (no capture); a quick second click on the last one closes it", () => {
  const { S, calls, drag, tick } = canvas({ tool: "polygon" });
  assert.equal(drag([[1, 1]]), false);
  tick(1000);
  drag([[10, 1]]);
  tick(1000);
  drag([[10, 8]]);
  assert.deepEqual(S.polygon, [[1, 1], [10, 1], [10, 8]]);
  assert.equal(calls.some((c) => c[0] === "close"), false);
  tick(100);
  drag([[10.5, 8]], { shiftKey: true });
  assert.deepEqual(calls.filter((c) => c[0] === "close"), [["close", true]]);
  assert.equal(count(S, 3), 0);   // closing is the page's closePolygon
});

test("region: a click fills the prediction's connected region; without a prediction it says so", () => {
  const pred = new Uint8Array(200).fill(0);
  for (let y = 0; y < 10; y++) for (let x = 0; x < 5; x++) pred[y * 20 + x] = 7;
  const { S, calls, drag } = canvas({ tool: "region", pred });
  assert.equal(drag([[2, 2]]), false);
  assert.equal(count(S, 3), 50);
  assert.deepEqual(calls.find((c) => c[0] === "commit"), ["commit", "region fill", 50]);
  assert.match(calls.find((c) => c[0] === "status")[1], /Filled 50 px of the predicted c7 region with c3/);
  const none = canvas({ tool: "region" });
  none.drag([[2, 2]]);
  assert.deepEqual(none.calls.find((c) => c[0] === "status"), ["status", "No prediction to fill from for this image.", "error"]);
});

test("superpixel: a drag fills the segments it passes; before they load the clicks queue", () => {
  const segments = new Uint16Array(200);
  for (let i = 0; i < 200; i++) segments[i] = Math.floor((i % 20) / 5);   // four 5-wide columns
  const { S, drag, history } = canvas({ tool: "superpixel", seg: C.indexSegments(segments) });
  assert.equal(drag([[1, 1], [7, 1]]), true);
  assert.equal(count(S, 3), 100);
  assert.equal(history.steps[0].label, "superpixel fill");
  const q = canvas({ tool: "superpixel" });
  assert.equal(q.drag([[1, 1]]), true);
  assert.equal(q.S.segQueue.length, 1);
  assert.deepEqual(q.S.segQueue[0].points, [[1, 1]]);
  assert.equal(q.S.spQueued, null);   // the pointer is up
  assert.equal(count(q.S, 3), 0);
});

test("a stroke begun before a tool key goes on and is committed under its own label", () => {
  const { S, T, history } = canvas();
  T.tools.brush.down({ x: 2, y: 2 }, {});
  S.tool = "polygon";
  T.tools[S.tool].move({ x: 12, y: 2 });
  T.tools[S.tool].up();
  assert.equal(history.steps.length, 1);
  assert.equal(history.steps[0].label, "brush");
  assert.equal(S.map.data[2 * 20 + 10], 3);
});

test("protection applies to the tools: void only keeps painted pixels", () => {
  const { S, drag } = canvas({ protect: "void" });
  S.map.data[5 * 20 + 5] = 1;
  S.map.counts = C.countValues(S.map.data);
  drag([[5, 5]]);
  assert.equal(S.map.data[5 * 20 + 5], 1);
  assert.equal(S.map.data[5 * 20 + 6], 3);
});

test("fill (K): a click fills the current labels' region under it, one step, status says how much", () => {
  const { S, calls, history, drag } = canvas({ tool: "fill" });
  for (let x = 0; x < 20; x++) S.map.data[4 * 20 + x] = 1;   // a wall of class 1 across row 4
  S.map.counts = C.countValues(S.map.data);
  assert.equal(drag([[3, 8], [15, 8]]), false);   // a click, not a stroke
  for (let i = 0; i < 200; i++) assert.equal(S.map.data[i], i >= 100 ? 3 : i >= 80 ? 1 : VOID, `i=${i}`);
  assert.equal(history.steps.length, 1);
  assert.equal(history.steps[0].label, "fill");
  assert.ok(calls.some((c) => c[0] === "status" && /Filled 100 px of void with c3/.test(c[1])));
  drag([[3, 8]]);   // the same class again: nothing, no step
  assert.equal(history.steps.length, 1);
  assert.ok(calls.some((c) => c[0] === "status" && /already has this class/.test(c[1])));
  S.protect = "void"; S.active = 5;
  drag([[3, 4]]);   // class 1 is not void: protected
  assert.equal(history.steps.length, 1);
  assert.equal(count(S, 5), 0);
  drag([[3, 1]]);
  assert.equal(count(S, 5), 80);
  assert.equal(history.steps.length, 2);
});

test("hidden classes: brush, fill and region leave them as they are and the status says so", () => {
  const { S, calls, history, drag } = canvas({ hidden: new Set([1]) });
  for (let x = 0; x < 20; x++) S.map.data[4 * 20 + x] = 1;
  S.map.counts = C.countValues(S.map.data);
  drag([[0, 4.5], [19, 4.5]]);   // a brush stroke along the hidden row and the void next to it
  for (let x = 0; x < 20; x++) assert.equal(S.map.data[4 * 20 + x], 1);
  assert.ok(count(S, 3) > 0);
  assert.equal(history.steps.length, 1);
  S.tool = "fill";
  drag([[5, 4]]);
  assert.equal(history.steps.length, 1);
  assert.match(calls.filter((c) => c[0] === "status").pop()[1], /Hidden classes are protected/);
  S.tool = "region"; S.pred = new Uint8Array(200);   // the prediction: one region over everything
  drag([[5, 8]]);
  for (let x = 0; x < 20; x++) assert.equal(S.map.data[4 * 20 + x], 1);
  const last = calls.filter((c) => c[0] === "status").pop();
  assert.match(last[1], /Filled .* Hidden classes are protected/);
  assert.equal(last[2], "warning");
  S.hidden = new Set();            // shown again: paintable
  S.tool = "fill"; S.active = 4;
  drag([[5, 4]]);
  assert.equal(count(S, 4), 20);
});
