// The labeller's input as tables, without DOM: the key map (key -> action name)
// and the tools ({down, move, up} per tool). node's test runner tests them
// (tests/js/input.test.js); the page gets this concatenated after core.js and
// nav.js, and canvas.js binds the action names to what they do and feeds the
// tools the pointer's image coordinates.

/* eslint-disable no-var */
var SegInput = (function () {
  "use strict";

  // ------------------------------------------------------------------ keys

  const TOOL_KEYS = { b: "brush", e: "eraser", p: "polygon", s: "superpixel", g: "region", k: "fill", o: "object" };

  // Class keys: every class in list order gets one. 1-9 the first nine, then
  // Shift+1 .. Shift+9 the 10th to 18th and Shift+0 the 19th (0 stays void). Shift
  // is read from ev.code (Digit1 ..), as Shift+1 types "!" on a US layout; a digit
  // typed with Shift (AZERTY) is still its plain digit.
  const SHIFTED_DIGITS = "1234567890";
  const CLASS_KEYS = 9 + SHIFTED_DIGITS.length;

  // position in the class list (0-based) -> the key's label ("" when it has none)
  function classKeyLabel(pos) {
    if (!(pos >= 0) || pos >= CLASS_KEYS || pos !== Math.floor(pos)) return "";
    return pos < 9 ? String(pos + 1) : `⇧${SHIFTED_DIGITS[pos - 9]}`;
  }

  // a keydown -> the class position it picks, or null
  function classKeyPosition(ev) {
    if (/^[1-9]$/.test(ev.key)) return +ev.key - 1;
    if (!ev.shiftKey || /^[0-9]$/.test(ev.key)) return null;
    const m = /^Digit([0-9])$/.exec(ev.code || "");
    return m ? 9 + SHIFTED_DIGITS.indexOf(m[1]) : null;
  }

  // In priority order; the first rule that matches wins (so Enter closes a polygon
  // with the polygon tool and does nothing otherwise).
  //   mod: Ctrl or Cmd held (a rule without it needs both released); key: ev.key
  //   exactly; lower: the key lower-cased (a letter with or without Shift); shift,
  //   alt: when given, must be so; classPos: a class key (classKeyPosition); when(ctx): a condition on the
  //   canvas (ctx: {vertices: the tool places polygon vertices, points: how many are
  //   placed, disagreement: a review disagreement mask is shown, shape: "polygon" (a
  //   closed polygon being edited) | "object" (an object being clicked) | null}).
  //   action: a name canvas.js binds (null: the key is not ours), arg: passed along.
  const KEYS = [
    // a pending shape (an object being clicked, a closed polygon being edited) has its own steps
    { mod: true, lower: "z", shift: true, when: (c) => c.shape, action: "shapeRedo" },
    { mod: true, lower: "z", when: (c) => c.shape, action: "shapeUndo" },
    { mod: true, lower: "y", when: (c) => c.shape, action: "shapeRedo" },
    { mod: true, lower: "z", shift: true, action: "redo" },
    { mod: true, lower: "z", action: "undo" },
    { mod: true, lower: "y", action: "redo" },
    { mod: true, lower: "s", action: "save" },
    { mod: true, key: "Enter", action: "submitNext" },
    { mod: true, action: null },   // any other Ctrl/Cmd key stays the browser's
    { key: "?", action: "help" },
    { key: "Escape", action: "escape" },
    { key: "Enter", when: (c) => c.shape, action: "commitShape" },
    { key: "Delete", when: (c) => c.shape === "polygon", action: "deleteVertex" },
    { key: "Backspace", when: (c) => c.shape === "polygon", action: "deleteVertex" },
    { key: "Backspace", when: (c) => c.shape === "object", action: "dropClick" },
    { lower: "p", alt: false, when: (c) => c.shape === "object", action: "objectOutline" },   // its outline, editable
    { key: "Enter", when: (c) => c.vertices, action: "closePolygon" },
    { key: "Backspace", when: (c) => c.vertices && c.points > 0, action: "dropVertex" },
    { key: " ", action: "pan" },
    ...Object.entries(TOOL_KEYS).map(([lower, tool]) => ({ lower, alt: false, action: "tool", arg: tool })),
    { lower: "[", action: "smaller" },
    { lower: "]", action: "larger" },
    { lower: "h", action: "toggleMask" },
    { lower: "w", action: "heatmap" },   // the word heatmap (heatmap.js)
    { lower: "u", action: "uncertainty" },   // the model's uncertainty (heatmap.js)
    { lower: "c", action: "changes" },   // what changed since the previous model version (heatmap.js)
    { lower: "d", when: (c) => c.disagreement, action: "toggleDisagreement" },
    { lower: "f", action: "fit" },
    { lower: "r", action: "reset" },
    { lower: "n", shift: true, action: "back" },
    { lower: "n", action: "next" },
    { lower: "/", action: "filter" },
    { key: "0", action: "void" },
    { classPos: true, action: "classKey" },   // 1-9, Shift+1-9, Shift+0: the classes in list order
  ];

  function matches(rule, ev, lower, mod, ctx) {
    if (!!rule.mod !== mod) return false;
    if (rule.key !== undefined && ev.key !== rule.key) return false;
    if (rule.lower !== undefined && lower !== rule.lower) return false;
    if (rule.classPos && classKeyPosition(ev) === null) return false;
    if (rule.shift !== undefined && !!ev.shiftKey !== rule.shift) return false;
    if (rule.alt !== undefined && !!ev.altKey !== rule.alt) return false;
    return !rule.when || !!rule.when(ctx);
  }

  // A keydown ({key, ctrlKey, metaKey, shiftKey, altKey}) -> {action, arg} or null
  // when the key is not the canvas's. A class key's arg is the class's position.
  function keyAction(ev, ctx = {}) {
    const k = ev.key, lower = k.length === 1 ? k.toLowerCase() : k, mod = !!(ev.ctrlKey || ev.metaKey);
    for (const rule of KEYS) {
      if (!matches(rule, ev, lower, mod, ctx)) continue;
      if (rule.action === null) return null;
      return { action: rule.action, arg: rule.classPos ? classKeyPosition(ev) : rule.arg };
    }
    return null;
  }

  // ------------------------------------------------------------------ tools

  // The tools over the canvas's state S (map, pred, seg, tool, active, ignore,
  // protect, size, view, polygon, edit, last, editLabel, segQueue, spQueued,
  // lastClick) and SegCore C. ui: what the tools have the page do:
  //   commit(edit, label) -> step or null, changed(box), setStatus(text, level, until),
  //   className(idx), requestRender(), closePolygon(erase), now() (milliseconds).
  // Each tool: down(p, ev) -> true when the stroke goes on (the page captures the
  // pointer), move(q) along the stroke to image point q (the page then sets
  // S.last = q), up() ends it; flags: ring (the cursor is a brush ring), erases
  // (paints void), vertices (places polygon vertices).
  function makeTools(S, C, ui) {
    function inImage(p) { return S.map && p.x >= 0 && p.y >= 0 && p.x < S.map.width && p.y < S.map.height; }

    function valueAt(p) { return S.map.data[Math.floor(p.y) * S.map.width + Math.floor(p.x)]; }

    function paintValue() { return tools[S.tool].erases ? S.ignore : S.active; }

    function newEdit(value, firstValue) {
      // hidden classes are locked: no tool paints over what the labeller cannot see
      return new C.Edit(S.map, value, C.allowTable(S.protect, S.ignore, firstValue), C.lockTable(S.hidden, S.ignore));
    }

    // a painting tool's click: {value, first (the class under it)}, or null when it paints nothing
    function target(p) {
      if (!inImage(p)) return null;
      const value = paintValue();
      if (value === null || value === undefined) return null;
      return { value, first: valueAt(p) };
    }

    function brushDown(p) {
      const t = target(p);
      if (!t) return false;
      S.edit = newEdit(t.value, t.first);
      S.editLabel = S.tool;
      C.paintSegment(S.edit, p.x, p.y, p.x, p.y, S.size / 2);
      S.last = p;
      ui.changed(S.edit.box);
      return true;
    }

    // (a stroke begun with another tool before a tool key goes on painting like this)
    function paintAlong(q) { C.paintSegment(S.edit, S.last.x, S.last.y, q.x, q.y, S.size / 2); }

    function polygonDown(p, ev) {
      if (!inImage(p) && !S.polygon.length) return false;
      const x = Math.min(Math.max(p.x, 0), S.map.width), y = Math.min(Math.max(p.y, 0), S.map.height);
      const now = ui.now();
      const lastPt = S.polygon[S.polygon.length - 1];
      if (S.lastClick && now - S.lastClick.t < 350 && lastPt && Math.hypot((x - lastPt[0]) * S.view.s, (y - lastPt[1]) * S.view.s) < 6) {
        S.lastClick = null;
        ui.closePolygon(ev.shiftKey);
        return false;
      }
      S.lastClick = { t: now };
      S.polygon.push([x, y]);
      ui.requestRender();
      return false;
    }

    function superpixelDown(p) {
      const t = target(p);
      if (!t) return false;
      const q = { value: t.value, first: t.first, points: [[p.x, p.y]], segments: [] };
      if (!S.seg) {
        S.segQueue.push(q);
        ui.setStatus("Superpixels are still loading; your clicks are kept and applied when they arrive.", "busy", "superpixels");
        S.edit = null;
        S.spQueued = q;
      } else {
        S.edit = newEdit(t.value, t.first);
        S.editLabel = "superpixel fill";
        C.fillSegment(S.edit, S.seg, S.seg.segments[Math.floor(p.y) * S.map.width + Math.floor(p.x)]);
        S.last = p;
        ui.changed(S.edit.box);
      }
      return true;
    }

    function superpixelAlong(q) {
      for (const s of C.segmentsAlong(S.seg, S.map.width, S.map.height, S.last.x, S.last.y, q.x, q.y)) C.fillSegment(S.edit, S.seg, s);
    }

    function regionDown(p) {
      const t = target(p);
      if (!t) return false;
      if (!S.pred) { ui.setStatus("No prediction to fill from for this image.", "error", "image"); return false; }
      const e = newEdit(t.value, t.first);
      const region = C.connectedRegion(S.pred, S.map.width, S.map.height, Math.floor(p.x), Math.floor(p.y));
      C.paintIndices(e, region);
      const step = ui.commit(e, "region fill");
      const note = C.lockedNote(e);
      if (step) ui.setStatus(`Filled ${step.idx.length} px of the predicted ${ui.className(S.pred[Math.floor(p.y) * S.map.width + Math.floor(p.x)])} region with ${ui.className(t.value)}.${note && " " + note}`, note ? "warning" : "info");
      else ui.setStatus(note || "That region already has this class.", note ? "warning" : "info");
      return false;
    }

    // bucket fill: the 4-connected region of the current labels under the click
    function fillDown(p) {
      const t = target(p);
      if (!t) return false;
      const e = newEdit(t.value, t.first);
      C.floodFill(e, p.x, p.y);
      const step = ui.commit(e, "fill");
      const note = C.lockedNote(e);
      if (step) ui.setStatus(`Filled ${step.idx.length} px of ${ui.className(t.first)} with ${ui.className(t.value)}.`);   // (one class: a hidden one fills nothing)
      else if (note) ui.setStatus(note, "warning");
      else if (t.first === t.value) ui.setStatus("That region already has this class.");
      else ui.setStatus(`"Over" protects ${ui.className(t.first)}: nothing filled.`);
      return false;
    }

    // the pointer is up: a stroke in progress becomes one step
    function endStroke() {
      S.spQueued = null;
      if (S.edit) {
        const e = S.edit;
        S.edit = null;
        S.last = null;
        ui.commit(e, S.editLabel || S.tool);
      }
    }

    const tools = {
      brush: { ring: true, down: brushDown, move: paintAlong, up: endStroke },
      eraser: { ring: true, erases: true, down: brushDown, move: paintAlong, up: endStroke },
      polygon: { vertices: true, down: polygonDown, move: paintAlong, up: endStroke },
      superpixel: { down: superpixelDown, move: superpixelAlong, up: endStroke },
      region: { down: regionDown, move: paintAlong, up: endStroke },
      fill: { down: fillDown, move: paintAlong, up: endStroke },
      // click-to-object: the page's objects.js takes its clicks before any tool does
      object: { object: true, down: () => false, move: paintAlong, up: endStroke },
    };
    return { tools, paintValue, newEdit, inImage, valueAt };
  }

  return { TOOL_KEYS, KEYS, CLASS_KEYS, keyAction, classKeyLabel, classKeyPosition, makeTools };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegInput;
