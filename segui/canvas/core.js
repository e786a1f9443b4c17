// Pure logic of the mask canvas: class maps, edits, one undo history, brush,
// polygon, superpixel and region fills. No DOM here: node's test runner tests it
// (tests/js/core.test.js) and the page gets it concatenated in front of canvas.js.
//
// A class map is a Uint8Array of class indices, row-major, width * height; the
// project's ignore index means void. Every operation goes through an Edit, which
// records each pixel's value before its first change, and ends as one Step in the
// History: undo writes `before` back, redo writes `after` (or the single `value`).

/* eslint-disable no-var */
var SegCore = (function () {
  "use strict";

  // ------------------------------------------------------------------ class map

  class LabelMap {
    constructor(width, height, data) {
      if (!(width > 0 && height > 0)) throw new Error(`bad map size ${width}x${height}`);
      this.width = width;
      this.height = height;
      this.data = data || new Uint8Array(width * height);
      if (this.data.length !== width * height) {
        throw new Error(`map data has ${this.data.length} values, expected ${width}x${height}`);
      }
      this.counts = countValues(this.data);
    }
  }

  function countValues(data) {
    const counts = new Float64Array(256);
    for (let i = 0; i < data.length; i++) counts[data[i]]++;
    return counts;
  }

  // How many pixels two maps of one image differ in (-1: not the same size).
  function countDiffering(a, b) {
    if (!a || !b || a.length !== b.length) return -1;
    let n = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
    return n;
  }

  function emptyBox() { return { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity }; }

  function growBox(box, x, y) {
    if (x < box.x0) box.x0 = x;
    if (x > box.x1) box.x1 = x;
    if (y < box.y0) box.y0 = y;
    if (y > box.y1) box.y1 = y;
  }

  function unionBox(a, b) {
    return { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) };
  }

  function boxIsEmpty(box) { return !(box.x1 >= box.x0 && box.y1 >= box.y0); }

  // ------------------------------------------------------------------ protection

  // Which old values an operation may overwrite. mode: "all" (paint over
  // everything), "void" (only void pixels), "same" (only pixels of `firstValue`,
  // the class under the first click of the operation).
  function allowTable(mode, ignoreIndex, firstValue) {
    const t = new Uint8Array(256);
    if (mode === "void") t[ignoreIndex] = 1;
    else if (mode === "same") t[firstValue] = 1;
    else t.fill(1);
    return t;
  }

  // Hidden classes are locked: no tool paints over them while they are hidden (the
  // labeller cannot see what they would overwrite). -> a table for Edit, or null
  // when nothing is locked. Void is never locked.
  function lockTable(hidden, ignoreIndex) {
    if (!hidden || !hidden.size) return null;
    const t = new Uint8Array(256);
    for (const v of hidden) if (v !== ignoreIndex && v >= 0 && v < 256) t[v] = 1;
    return t;
  }

  // The status line's note for an edit that met locked (hidden) pixels, else "".
  function lockedNote(edit) {
    return edit && edit.lockedHits
      ? "Hidden classes are protected: their pixels were left as they are (show the class with its eye to paint over it)."
      : "";
  }

  // ------------------------------------------------------------------ edits

  // One operation in progress. paint(i) gives pixel i the edit's value (when the
  // allow table permits its old value and the lock table does not lock it;
  // lockedHits counts the paints a lock refused); setTo(i, v) gives it any value
  // (tool results, reset). Each pixel's value before its first change is recorded.
  class Edit {
    constructor(map, value = null, allow = null, locked = null) {
      this.map = map;
      this.value = value;
      this.allow = allow;
      this.locked = locked;
      this.lockedHits = 0;
      this.idx = [];
      this.before = [];
      this.after = value === null ? [] : null;
      this.seen = value === null ? new Set() : null;
      this.box = emptyBox();
    }

    paint(i) {
      const d = this.map.data, old = d[i];
      if (old === this.value || (this.allow && !this.allow[old])) return false;
      if (this.locked && this.locked[old]) { this.lockedHits++; return false; }
      this.idx.push(i);
      this.before.push(old);
      d[i] = this.value;
      this.map.counts[old]--;
      this.map.counts[this.value]++;
      growBox(this.box, i % this.map.width, (i / this.map.width) | 0);
      return true;
    }

    setTo(i, v) {
      const d = this.map.data, old = d[i];
      if (old === v) return false;
      if (this.after === null) throw new Error("setTo needs an Edit made without a single value");
      const k = this.seen.has(i);
      if (!k) {
        this.seen.add(i);
        this.idx.push(i);
        this.before.push(old);
        this.after.push(v);
      } else {
        // changed twice in one edit: keep the first `before`, update `after`
        this.after[this.idx.lastIndexOf(i)] = v;
      }
      d[i] = v;
      this.map.counts[old]--;
      this.map.counts[v]++;
      growBox(this.box, i % this.map.width, (i / this.map.width) | 0);
      return true;
    }

    get size() { return this.idx.length; }

    // -> a Step for the History, or null when nothing changed
    finish(label) {
      if (this.idx.length === 0) return null;
      const step = {
        label,
        idx: Uint32Array.from(this.idx),
        before: Uint8Array.from(this.before),
        value: this.value,
        after: this.after === null ? null : Uint8Array.from(this.after),
        box: this.box,
      };
      this.idx = this.before = this.after = null;
      return step;
    }
  }

  // Write a step into the map (forward = redo, else undo); returns its box.
  function applyStep(map, step, forward) {
    const d = map.data, c = map.counts, idx = step.idx, n = idx.length;
    if (forward) {
      if (step.after === null) {
        const v = step.value;
        for (let k = 0; k < n; k++) { const i = idx[k]; c[d[i]]--; d[i] = v; c[v]++; }
      } else {
        const a = step.after;
        for (let k = 0; k < n; k++) { const i = idx[k]; c[d[i]]--; d[i] = a[k]; c[a[k]]++; }
      }
    } else {
      const b = step.before;
      for (let k = n - 1; k >= 0; k--) { const i = idx[k]; c[d[i]]--; d[i] = b[k]; c[b[k]]++; }
    }
    return step.box;
  }

  // ------------------------------------------------------------------ history

  // Linear undo/redo over Steps. `limit` steps are kept (oldest dropped first).
  // `mark()` remembers the current position as saved; `isDirty()` says whether
  // the map differs from it through the history.
  class History {
    constructor(limit = 200) {
      this.limit = limit;
      this.steps = [];
      this.pos = 0;
      this.savedStep = null;     // the step at the top when last saved (null: the start)
      this.savedLost = false;    // the saved position fell off the end of the history
    }

    push(step) {
      if (!step) return false;
      if (this.pos < this.steps.length) {
        if (this.steps.slice(this.pos).includes(this.savedStep)) this.savedLost = true;
        this.steps.length = this.pos;
      }
      this.steps.push(step);
      if (this.steps.length > this.limit) {
        const dropped = this.steps.shift();
        if (dropped === this.savedStep) this.savedLost = true;
        if (this.savedStep === null) this.savedLost = true;
      }
      this.pos = this.steps.length;
      return true;
    }

    get canUndo() { return this.pos > 0; }
    get canRedo() { return this.pos < this.steps.length; }
    top() { return this.pos > 0 ? this.steps[this.pos - 1] : null; }

    undo(map) {
      if (!this.canUndo) return null;
      const step = this.steps[--this.pos];
      applyStep(map, step, false);
      return step;
    }

    redo(map) {
      if (!this.canRedo) return null;
      const step = this.steps[this.pos++];
      applyStep(map, step, true);
      return step;
    }

    mark(step = this.top()) { this.savedStep = step; this.savedLost = false; }

    isDirty() {
      if (this.savedLost) return true;
      return this.top() !== this.savedStep;
    }

    clear() { this.steps = []; this.pos = 0; this.savedStep = null; this.savedLost = false; }
  }

  // ------------------------------------------------------------------ brush

  // Paint every pixel whose centre lies within `r` of the segment (x0,y0)-(x1,y1)
  // (image coordinates, pixel (x, y) has its centre at (x + .5, y + .5)): a round
  // brush dragged along the segment. Returns the number of pixels changed.
  function paintSegment(edit, x0, y0, x1, y1, r) {
    const map = edit.map, w = map.width, h = map.height;
    const ra = Math.max(r, 0.5);
    const minX = Math.max(0, Math.floor(Math.min(x0, x1) - ra)), maxX = Math.min(w - 1, Math.ceil(Math.max(x0, x1) + ra));
    const minY = Math.max(0, Math.floor(Math.min(y0, y1) - ra)), maxY = Math.min(h - 1, Math.ceil(Math.max(y0, y1) + ra));
    const dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy, r2 = ra * ra;
    let n = 0;
    for (let y = minY; y <= maxY; y++) {
      const py = y + 0.5;
      for (let x = minX; x <= maxX; x++) {
        const px = x + 0.5;
        let t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const ex = x0 + t * dx - px, ey = y0 + t * dy - py;
        if (ex * ex + ey * ey <= r2 && edit.paint(y * w + x)) n++;
      }
    }
    return n;
  }

  // ------------------------------------------------------------------ polygon

  // Even-odd scanline fill at pixel centres: calls span(y, xStart, xEnd) for the
  // pixels x in [xStart, xEnd) of row y whose centre is inside the polygon.
  // points: [[x, y], ...] in image coordinates (at least 3).
  function rasterizePolygon(points, width, height, span) {
    const n = points.length;
    if (n < 3) return 0;
    let minY = Infinity, maxY = -Infinity;
    for (const [, y] of points) { minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
    const yStart = Math.max(0, Math.floor(minY - 0.5)), yEnd = Math.min(height - 1, Math.ceil(maxY));
    let total = 0;
    const xs = [];
    for (let y = yStart; y <= yEnd; y++) {
      const cy = y + 0.5;
      xs.length = 0;
      for (let i = 0, j = n - 1; i < n; j = i++) {
        const [xi, yi] = points[i], [xj, yj] = points[j];
        // half-open rule: an edge counts when cy is in [min(yi, yj), max(yi, yj))
        if ((yi <= cy && cy < yj) || (yj <= cy && cy < yi)) {
          xs.push(xi + ((cy - yi) * (xj - xi)) / (yj - yi));
        }
      }
      xs.sort((a, b) => a - b);
      for (let k = 0; k + 1 < xs.length; k += 2) {
        // pixel x is inside when its centre x + .5 lies in [xs[k], xs[k+1])
        const a = Math.max(0, Math.ceil(xs[k] - 0.5)), b = Math.min(width, Math.ceil(xs[k + 1] - 0.5));
        if (b > a) { span(y, a, b); total += b - a; }
      }
    }
    return total;
  }

  function fillPolygon(edit, points) {
    const w = edit.map.width;
    let n = 0;
    rasterizePolygon(points, w, edit.map.height, (y, a, b) => {
      for (let x = a; x < b; x++) if (edit.paint(y * w + x)) n++;
    });
    return n;
  }

  // ------------------------------------------------------------------ superpixels

  // Segment id map -> lists of pixel indices per segment (CSR: offsets, order).
  function indexSegments(segments) {
    let n = 0;
    for (let i = 0; i < segments.length; i++) if (segments[i] + 1 > n) n = segments[i] + 1;
    const offsets = new Uint32Array(n + 1);
    for (let i = 0; i < segments.length; i++) offsets[segments[i] + 1]++;
    for (let s = 0; s < n; s++) offsets[s + 1] += offsets[s];
    const fillPos = offsets.slice(0, n);
    const order = new Uint32Array(segments.length);
    for (let i = 0; i < segments.length; i++) order[fillPos[segments[i]]++] = i;
    return { segments, offsets, order, count: n };
  }

  // Give every pixel of segment `s` the edit's value (as the allow table permits).
  function fillSegment(edit, index, s) {
    if (s < 0 || s >= index.count) return 0;
    let n = 0;
    for (let k = index.offsets[s]; k < index.offsets[s + 1]; k++) if (edit.paint(index.order[k])) n++;
    return n;
  }

  // The segments a segment from (x0,y0) to (x1,y1) passes over (a superpixel drag).
  function segmentsAlong(index, width, height, x0, y0, x1, y1) {
    const out = new Set();
    const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
    for (let k = 0; k <= steps; k++) {
      const x = Math.floor(x0 + ((x1 - x0) * k) / steps), y = Math.floor(y0 + ((y1 - y0) * k) / steps);
      if (x >= 0 && y >= 0 && x < width && y < height) out.add(index.segments[y * width + x]);
    }
    return out;
  }

  // ------------------------------------------------------------------ region fill

  // Pixels 4-connected to (x, y) with the same value in `labels` (e.g. the model's
  // prediction): a Uint32Array of indices.
  function connectedRegion(labels, width, height, x, y) {
    if (x < 0 || y < 0 || x >= width || y >= height) return new Uint32Array(0);
    const start = y * width + x, v = labels[start];
    const seen = new Uint8Array(labels.length);
    const stack = [start];
    const out = [];
    seen[start] = 1;
    while (stack.length) {
      const i = stack.pop();
      out.push(i);
      const cx = i % width;
      if (cx > 0 && !seen[i - 1] && labels[i - 1] === v) { seen[i - 1] = 1; stack.push(i - 1); }
      if (cx < width - 1 && !seen[i + 1] && labels[i + 1] === v) { seen[i + 1] = 1; stack.push(i + 1); }
      if (i >= width && !seen[i - width] && labels[i - width] === v) { seen[i - width] = 1; stack.push(i - width); }
      if (i + width < labels.length && !seen[i + width] && labels[i + width] === v) { seen[i + width] = 1; stack.push(i + width); }
    }
    return Uint32Array.from(out);
  }

  // Bucket fill: give the 4-connected region of the edit's map under (x, y) (the
  // pixels of the same current value) the edit's value, as the allow and lock
  // tables permit (the region has one value, so all or nothing). Scanline fill on
  // the typed array. Returns the number of pixels changed.
  function floodFill(edit, x, y) {
    const map = edit.map, w = map.width, h = map.height, d = map.data;
    x = Math.floor(x); y = Math.floor(y);
    if (x < 0 || y < 0 || x >= w || y >= h) return 0;
    const v = d[y * w + x];
    if (v === edit.value || (edit.allow && !edit.allow[v])) return 0;
    if (edit.locked && edit.locked[v]) { edit.lockedHits++; return 0; }
    // the map changes while we go (painted pixels no longer match v), so no seen
    // set; a stack of (x, y) seeds, grown as needed
    let stack = new Int32Array(1024), sp = 0, n = 0;
    const push = (px, py) => {
      if (sp + 2 > stack.length) { const s2 = new Int32Array(stack.length * 2); s2.set(stack); stack = s2; }
      stack[sp++] = px; stack[sp++] = py;
    };
    push(x, y);
    while (sp > 0) {
      const sy = stack[--sp], sx0 = stack[--sp], row = sy * w;
      if (d[row + sx0] !== v) continue;
      let a = sx0, b = sx0;
      while (a > 0 && d[row + a - 1] === v) a--;
      while (b < w - 1 && d[row + b + 1] === v) b++;
      let painted = 0;
      for (let i = a; i <= b; i++) if (edit.paint(row + i)) painted++;
      if (!painted) continue;   // (cannot happen: the region's one value is allowed)
      n += painted;
      for (let ny = sy - 1; ny <= sy + 1; ny += 2) {
        if (ny < 0 || ny >= h) continue;
        const nrow = ny * w;
        let inRun = false;
        for (let i = a; i <= b; i++) {
          const match = d[nrow + i] === v;
          if (match && !inRun) push(i, ny);
          inRun = match;
        }
      }
    }
    return n;
  }

  function paintIndices(edit, indices) {
    let n = 0;
    for (let k = 0; k < indices.length; k++) if (edit.paint(indices[k])) n++;
    return n;
  }

  // ------------------------------------------------------------------ whole-map edits

  // Make the map equal `target` (reset to prediction, a revision): one step.
  function replaceAll(edit, target) {
    const d = edit.map.data;
    let n = 0;
    for (let i = 0; i < d.length; i++) if (d[i] !== target[i] && edit.setTo(i, target[i])) n++;
    return n;
  }

  // A server tool ran on `snapshot` (the map when it was asked) and returned
  // `result`. Apply its changes, except on pixels the labeller changed since the
  // snapshot: strokes made while the tool ran are kept.
  function mergeResult(edit, snapshot, result) {
    const d = edit.map.data;
    if (snapshot.length !== d.length || result.length !== d.length) throw new Error("tool result has another size");
    let n = 0, kept = 0;
    for (let i = 0; i < d.length; i++) {
      if (result[i] !== snapshot[i]) {
        if (d[i] === snapshot[i]) { if (edit.setTo(i, result[i])) n++; } else kept++;
      }
    }
    return { changed: n, kept };
  }

  // ------------------------------------------------------------------ classes

  // Classes whose name contains every word typed (case-insensitive).
  function filterClasses(classes, query) {
    const words = String(query || "").toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return classes.slice();
    return classes.filter((c) => words.every((w) => c.name.toLowerCase().includes(w)));
  }

  // RGBA (as one little-endian uint32 per value) for drawing: hidden classes and
  // void transparent; `colors` maps index -> [r, g, b].
  function colorTable(classes, ignoreIndex, hidden) {
    const lut = new Uint32Array(256);
    for (const c of classes) {
      if (c.index === ignoreIndex || (hidden && hidden.has(c.index))) continue;
      const [r, g, b] = c.rgb;
      lut[c.index] = ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
    }
    return lut;
  }

  // ------------------------------------------------------------------ view

  // Zoom by `factor` keeping image point under screen point (sx, sy) fixed.
  function zoomAt(view, factor, sx, sy, minScale = 0.02, maxScale = 64) {
    const s = Math.min(maxScale, Math.max(minScale, view.s * factor));
    const ix = (sx - view.ox) / view.s, iy = (sy - view.oy) / view.s;
    return { s, ox: sx - ix * s, oy: sy - iy * s };
  }

  function fitView(width, height, boxW, boxH, margin = 8) {
    const s = Math.max(0.01, Math.min((boxW - 2 * margin) / width, (boxH - 2 * margin) / height));
    return { s, ox: (boxW - width * s) / 2, oy: (boxH - height * s) / 2 };
  }

  return {
    LabelMap, Edit, History, applyStep, allowTable, lockTable, lockedNote, floodFill, paintSegment, rasterizePolygon, fillPolygon,
    indexSegments, fillSegment, segmentsAlong, connectedRegion, paintIndices, replaceAll, mergeResult,
    filterClasses, colorTable, zoomAt, fitView, countValues, countDiffering, emptyBox, growBox, unionBox, boxIsEmpty,
  };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegCore;
