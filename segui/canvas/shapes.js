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

  // The value most of the mask's pixels have in `map` (the model's prediction, say):
  // -> { value, share } (share of the mask's pixels), or null for an empty mask.
  function majorityValue(mask, map) {
    const counts = new Map();
    let n = 0;
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      counts.set(map[i], (counts.get(map[i]) || 0) + 1);
      n++;
    }
    if (!n) return null;
    let best = null, most = 0;
    for (const [v, c] of counts) if (c > most) { best = v; most = c; }
    return { value: best, share: most / n };
  }

  // ------------------------------------------------------------------ an object's outline as a polygon

  // The mask's largest 8-connected part (Uint8Array, 1 = in), or null when it is empty.
  function largestPart(mask, width, height) {
    const label = new Int32Array(mask.length);
    const stack = new Int32Array(mask.length);
    let best = 0, bestSize = 0, next = 0;
    for (let i0 = 0; i0 < mask.length; i0++) {
      if (!mask[i0] || label[i0]) continue;
      next++;
      let top = 0, size = 0;
      stack[top++] = i0;
      label[i0] = next;
      while (top) {
        const i = stack[--top];
        size++;
        const x = i % width, y = (i - x) / width;
        for (let dy = -1; dy <= 1; dy++) {
          const yy = y + dy;
          if (yy < 0 || yy >= height) continue;
          for (let dx = -1; dx <= 1; dx++) {
            const xx = x + dx;
            if (xx < 0 || xx >= width) continue;
            const j = yy * width + xx;
            if (mask[j] && !label[j]) { label[j] = next; stack[top++] = j; }
          }
        }
      }
      if (size > bestSize) { best = next; bestSize = size; }
    }
    if (!best) return null;
    const part = new Uint8Array(mask.length);
    for (let i = 0; i < mask.length; i++) part[i] = label[i] === best ? 1 : 0;
    return part;
  }

  // The outer boundary of an 8-connected part, along the pixels' edges: corners at
  // integer coordinates, clockwise on the screen (the part on the right), one vertex
  // where the direction changes. Filled by core.js's rasterizePolygon (pixel centres),
  // it gives back the part with its holes filled.
  const STEP = [[1, 0], [0, 1], [-1, 0], [0, -1]];     // right, down, left, up (y down)
  function traceBoundary(part, width, height) {
    let start = -1;
    for (let i = 0; i < part.length; i++) if (part[i]) { start = i; break; }
    if (start < 0) return null;
    const inside = (x, y) => x >= 0 && y >= 0 && x < width && y < height && part[y * width + x] === 1;
    // the pixels in front of corner (x, y) going in direction d: [front-left, front-right]
    const ahead = (x, y, d) => d === 0 ? [inside(x, y - 1), inside(x, y)] : d === 1 ? [inside(x, y), inside(x - 1, y)]
      : d === 2 ? [inside(x - 1, y), inside(x - 1, y - 1)] : [inside(x - 1, y - 1), inside(x, y - 1)];
    const x0 = start % width, y0 = (start - x0) / width;
    let x = x0, y = y0, d = 0, moved = false;
    const out = [];
    for (let guard = 4 * (part.length + width + height) + 8; guard > 0; guard--) {
      const [left, right] = ahead(x, y, d);
      const nd = left ? (d + 3) % 4 : right ? d : (d + 1) % 4;   // a diagonal neighbour counts as joined
      if (moved && x === x0 && y === y0 && nd === 0) break;
      if (nd !== d || !moved) out.push([x, y]);
      d = nd;
      x += STEP[d][0];
      y += STEP[d][1];
      moved = true;
    }
    // the start corner is pushed once as the first vertex; drop it when it is not a turn
    if (out.length > 3) {
      const [ax, ay] = out[out.length - 1], [bx, by] = out[0], [cx, cy] = out[1];
      if ((bx - ax) * (cy - by) - (by - ay) * (cx - bx) === 0) out.shift();
    }
    return out;
  }

  function segmentDistance(p, a, b) {
    const dx = b[0] - a[0], dy = b[1] - a[1];
    const len2 = dx * dx + dy * dy;
    const t = len2 ? Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2)) : 0;
    return Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy);
  }

  // Douglas-Peucker on an open chain: the points kept (first and last always).
  function simplifyChain(points, tolerance) {
    const keep = new Uint8Array(points.length);
    keep[0] = keep[points.length - 1] = 1;
    const todo = [[0, points.length - 1]];
    while (todo.length) {
      const [a, b] = todo.pop();
      let far = -1, dist = tolerance;
      for (let k = a + 1; k < b; k++) {
        const dk = segmentDistance(points[k], points[a], points[b]);
        if (dk > dist) { dist = dk; far = k; }
      }
      if (far >= 0) { keep[far] = 1; todo.push([a, far], [far, b]); }
    }
    return points.filter((_, k) => keep[k]);
  }

  // A closed polygon simplified so that no dropped vertex is farther than `tolerance`
  // from the new outline: split at the vertex farthest from the first, then each half.
  function simplifyPolygon(points, tolerance) {
    if (points.length <= 4) return points.map((q) => q.slice());
    let far = 1, best = -1;
    for (let k = 1; k < points.length; k++) {
      const dk = Math.hypot(points[k][0] - points[0][0], points[k][1] - points[0][1]);
      if (dk > best) { best = dk; far = k; }
    }
    const a = simplifyChain(points.slice(0, far + 1), tolerance);
    const b = simplifyChain(points.slice(far).concat([points[0]]), tolerance);
    const out = a.concat(b.slice(1, -1)).map((q) => q.slice());
    return out.length >= MIN_VERTICES ? out : points.map((q) => q.slice());
  }

  // The object's outline as an editable polygon: its largest part's boundary,
  // simplified (tolerance in px, raised until at most maxVertices are left).
  // -> {points, tolerance (the one used), droppedPixels (the mask's pixels in its other parts)} or null.
  function maskPolygon(mask, width, height, tolerance = 0.75, maxVertices = 150) {
    const part = largestPart(mask, width, height);
    if (!part) return null;
    const boundary = traceBoundary(part, width, height);
    let tol = tolerance, points = simplifyPolygon(boundary, tol);
    while (points.length > maxVertices && tol < 64) { tol *= 1.5; points = simplifyPolygon(boundary, tol); }
    let inPart = 0, inMask = 0;
    for (let i = 0; i < mask.length; i++) { inPart += part[i]; inMask += mask[i] ? 1 : 0; }
    return { points, tolerance: tol, droppedPixels: inMask - inPart };
  }

  return {
    HANDLE_PX, EDGE_PX, hitVertex, hitEdge, hitTest, pointInPolygon, moveVertex, insertVertex, removeVertex,
    clampPoint, EditablePolygon, VertexDrag, ObjectClicks, paintMask, outline, majorityValue,
    largestPart, traceBoundary, simplifyPolygon, maskPolygon,
  };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegShapes;
