// Pure logic of the canvas's pending shapes (no DOM; node's test runner tests it in
// tests/js/shapes.test.js; the page gets it concatenated after input.js):
//
// - an editable polygon: after it closes it stays a vector until committed (Enter,
//   another tool, a save or Next): hit-testing vertices and edges, moving,
//   inserting and removing vertices, with its own undo history of vertex edits;
// - a click-to-object selection: the positive and negative clicks sent to the
//   server, which answers are still wanted, and painting its mask as one edit.
//
// Points are [x, y] in image coordinates; distances for hit-testing are in screen
// pixels (image distance * view scale), so handles keep their size when zoomed.

/* eslint-disable no-var */
var SegShapes = (function () {
  "use strict";

  const HANDLE_PX = 7;     // a vertex is hit within this many screen pixels
  const EDGE_PX = 5;       // an edge is hit within this many screen pixels (off its vertices)
  const MIN_VERTICES = 3;

  // ------------------------------------------------------------------ polygon geometry

  // Index of the vertex nearest to p within `radius` image units, else -1.
  function hitVertex(points, p, radius) {
    let best = -1, bestD = radius;
    for (let k = 0; k < points.length; k++) {
      const d = Math.hypot(points[k][0] - p.x, points[k][1] - p.y);
      if (d <= bestD) { best = k; bestD = d; }
    }
    return best;
  }

  // Distance from p to the segment a-b and the point on it.
  function toSegment(a, b, p) {
    const dx = b[0] - a[0], dy = b[1] - a[1], len2 = dx * dx + dy * dy;
    let t = len2 > 0 ? ((p.x - a[0]) * dx + (p.y - a[1]) * dy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    const x = a[0] + t * dx, y = a[1] + t * dy;
    return { d: Math.hypot(p.x - x, p.y - y), x, y, t };
  }

  // The closed polygon's edge nearest to p within `radius` image units:
  // {edge (the index of its first vertex; edge k joins k and k+1 mod n), x, y (the
  // nearest point on it)}, or null.
  function hitEdge(points, p, radius) {
    let best = null;
    const n = points.length;
    for (let k = 0; k < n; k++) {
      const s = toSegment(points[k], points[(k + 1) % n], p);
      if (s.d <= radius && (!best || s.d < best.d)) best = { edge: k, x: s.x, y: s.y, d: s.d };
    }
    return best && { edge: best.edge, x: best.x, y: best.y };
  }

  // What a press at p grabs: {kind: "vertex", index} | {kind: "edge", edge, x, y} |
  // {kind: "inside"} | null. Vertices win over edges. `scale`: the view's scale.
  function hitTest(points, p, scale) {
    const v = hitVertex(points, p, HANDLE_PX / scale);
    if (v >= 0) return { kind: "vertex", index: v };
    const e = hitEdge(points, p, EDGE_PX / scale);
    if (e) return { kind: "edge", ...e };
    return pointInPolygon(points, p.x, p.y) ? { kind: "inside" } : null;
  }

  // Even-odd rule, as rasterizePolygon fills.
  function pointInPolygon(points, x, y) {
    let inside = false;
    for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
      const [xi, yi] = points[i], [xj, yj] = points[j];
      if ((yi <= y && y < yj) || (yj <= y && y < yi)) {
        if (x < xi + ((y - yi) * (xj - xi)) / (yj - yi)) inside = !inside;
      }
    }
    return inside;
  }

  // New arrays (the old ones stay as history entries).
  function moveVertex(points, k, x, y) {
    const out = points.map((q) => q.slice());
    out[k] = [x, y];
    return out;
  }

  function insertVertex(points, edge, x, y) {
    const out = points.map((q) => q.slice());
    out.splice(edge + 1, 0, [x, y]);
    return out;
  }

  // null when the polygon would have fewer than 3 vertices.
  function removeVertex(points, k) {
    if (points.length <= MIN_VERTICES || k < 0 || k >= points.length) return null;
    const out = points.map((q) => q.slice());
    out.splice(k, 1);
    return out;
  }

  function clampPoint(x, y, width, height) {
    return [Math.min(Math.max(x, 0), width), Math.min(Math.max(y, 0), height)];
  }

  // ------------------------------------------------------------------ editable polygon

  // A closed polygon waiting to be committed. Every edit (a vertex moved, inserted or
  // removed) is one entry of its own history: undo / redo walk it; undo from the
  // polygon as it was closed returns false (the caller then discards the polygon).
  class EditablePolygon {
    constructor(points, erase = false) {
      if (!points || points.length < MIN_VERTICES) throw new Error("a polygon needs at least 3 points");
      this.states = [points.map((q) => q.slice())];
      this.pos = 0;
      this.erase = !!erase;
      this.selected = -1;      // the vertex Delete removes (the last one grabbed)
    }

    get points() { return this.states[this.pos]; }
    get edits() { return this.pos; }

    push(points) {
      this.states.length = this.pos + 1;
      this.states.push(points);
      this.pos++;
      return true;
    }

    move(k, x, y) { return this.push(moveVertex(this.points, k, x, y)); }

    insert(edge, x, y) {
      this.push(insertVertex(this.points, edge, x, y));
      this.selected = edge + 1;
      return edge + 1;
    }

    remove(k = this.selected) {
      const out = removeVertex(this.points, k);
      if (!out) return false;
      this.push(out);
      this.selected = -1;
      return true;
    }

    undo() {
      if (this.pos === 0) return false;
      this.pos--;
      this.selected = -1;
      return true;
    }

    redo() {
      if (this.pos >= this.states.length - 1) return false;
      this.pos++;
      return true;
    }
  }

  // A drag in progress on an editable polygon: the first move makes one history
  // entry, later moves replace it, so a whole drag is one undo step.
  class VertexDrag {
    constructor(poly, index) {
      this.poly = poly;
      this.index = index;
      this.moved = false;
    }

    to(x, y) {
      const pts = moveVertex(this.poly.points, this.index, x, y);
      if (!this.moved) { this.poly.push(pts); this.moved = true; } else this.poly.states[this.poly.pos] = pts;
      this.poly.selected = this.index;
    }
  }

  // ------------------------------------------------------------------ click-to-object

  // The clicks of one object selection on one image. Each change makes a new request
  // number; only the answer to the latest is shown (answers can come back out of order).
  class ObjectClicks {
    constructor(imageId) {
      this.imageId = imageId;
      this.positive = [];
      this.negative = [];
      this.order = [];         // true / false per click, in click order (for "drop the last")
      this.seq = 0;
      this.shown = 0;          // the request whose mask is shown
      this.mask = null;        // Uint8Array (1 = in) of the shown answer
      this.pixels = 0;
    }

    get clicks() { return this.order.length; }

    add(x, y, positive) {
      (positive ? this.positive : this.negative).push([Math.floor(x), Math.floor(y)]);
      this.order.push(!!positive);
      return ++this.seq;
    }

    // drop the last click; -> the new request number, or 0 when no click is left
    dropLast() {
      const positive = this.order.pop();
      if (positive === undefined) return 0;
      (positive ? this.positive : this.negative).pop();
      if (!this.positive.length) { this.mask = null; this.pixels = 0; this.shown = ++this.seq; return 0; }
      return ++this.seq;
    }

    request() { return { image_id: this.imageId, positive: this.positive.slice(), negative: this.negative.slice() }; }

    // an answer to request `seq` for image `imageId`: shown only when it is the latest
    wants(seq, imageId) { return imageId === this.imageId && seq === this.seq; }

    show(seq, mask) {
      this.shown = seq;
      this.mask = mask;
      let n = 0;
      for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
      this.pixels = n;
    }

    get ready() { return !!this.mask && this.shown === this.seq; }
  }

  // Paint the mask's pixels with the edit's value (as its allow and lock tables
  // permit): one edit, so one undo step. -> pixels changed.
  function paintMask(edit, mask) {
    let n = 0;
    for (let i = 0; i < mask.length; i++) if (mask[i] && edit.paint(i)) n++;
    return n;
  }

  // The mask's outline pixels (in, with a 4-neighbour out or on the frame), for drawing.
  function outline(mask, width, height) {
    const out = new Uint8Array(mask.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (!mask[i]) continue;
        if (x === 0 || y === 0 || x === width - 1 || y === height - 1 || !mask[i - 1] || !mask[i + 1] ||
          !mask[i - width] || !mask[i + width]) out[i] = 1;
      }
    }
    return out;
  }

  return {
    HANDLE_PX, EDGE_PX, hitVertex, hitEdge, hitTest, pointInPolygon, moveVertex, insertVertex, removeVertex,
    clampPoint, EditablePolygon, VertexDrag, ObjectClicks, paintMask, outline,
  };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegShapes;
