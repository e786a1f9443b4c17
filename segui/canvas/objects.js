// Pending shapes on the canvas (DOM side; the rules are in shapes.js):
//
// - click-to-object (O): a left click is part of the object, a right click or a
//   Shift+click is not; each click asks the server function `click_object` for the
//   object's mask ({image_id, data: 0/1 PNG, pixels, clicks, ms}), shown as a preview
//   (the active class's colour with a white outline). Enter, or picking a class, paints
//   it as ONE undo step; Backspace or Ctrl+Z drops the last click; Esc drops the object;
//   P turns its outline into an editable polygon (below; SegShapes.maskPolygon).
// - editable polygons (P): a closed polygon stays a vector with handles: drag a vertex,
//   click an edge to insert one, Delete (or Backspace) removes the selected one, Ctrl+Z
//   / Ctrl+Shift+Z walk its edits; Enter, another tool, a save or Next commits it
//   (rasterised by core.js's fillPolygon) as one undo step; Esc drops it.
//
// Concatenated after canvas.js (same scope: S, C, $, view, vctx, server, setStatus,
// className, paintValue, newEdit, commit, requestRender, decodeIndexPng, toScreen);
// canvas.js calls shapesDown / shapesMove / shapesUp from its pointer handlers,
// drawShapes() while rendering, shapesImageChanged() when another image is shown and
// commitShapes() before a request leaves the page. Module state lives in S.obj and
// S.vpoly and in `var`s (canvas.js may call these before this file's top level runs).

/* eslint-disable no-var */
var objCanvas = null, objCtx = null;

function pendingShape() {
  if (S.vpoly) return "polygon";
  if (S.obj && S.obj.clicks) return "object";
  return null;
}

// ------------------------------------------------------------------ click-to-object

function objectDown(p, ev) {
  if (!inImage(p) || !S.img) return false;
  const positive = !(ev.button === 2 || ev.shiftKey);
  if (!S.obj || S.obj.imageId !== S.img.id) S.obj = new SegShapes.ObjectClicks(S.img.id);
  if (!positive && !S.obj.positive.length) {
    setStatus("Click on the object first (left click); then right-click or Shift+click what is not part of it.");
    return false;
  }
  const seq = S.obj.add(p.x, p.y, positive);
  askObject(seq);
  requestRender();
  return false;
}

async function askObject(seq) {
  const o = S.obj;
  if (!o || !o.positive.length) return;
  const t0 = performance.now();
  const order = [];
  let ip = 0, ineg = 0;
  for (const pos of o.order) order.push(pos ? [...o.positive[ip++], 1] : [...o.negative[ineg++], 0]);
  setStatus("Finding the object…", "busy", "object");
  let r;
  try {
    r = await server.click_object({ image_id: o.imageId, clicks: order });
  } catch (err) {
    if (S.obj === o && o.seq === seq) setStatus(`The object could not be found: ${err.message || err}`, "error", "object");
    return;
  }
  if (S.obj !== o || !r || !o.wants(seq, r.image_id) || !S.img || S.img.id !== r.image_id) return;   // a newer click or another image
  const mask = await decodeIndexPng(r.data, S.img.width, S.img.height);
  if (S.obj !== o || !o.wants(seq, r.image_id)) return;
  o.show(seq, mask);
  paintObjectPreview();
  const ms = performance.now() - t0;
  S.objTimes = (S.objTimes || []).concat([[ms, r.ms]]).slice(-200);   // per click: page and server ms (benchmarks)
  root.dataset.object = `${seq}:${o.pixels}`;
  // short enough for the status box's three lines at 1440x900 (it scrolls past that)
  setStatus(`Object: ${o.pixels} px, ${o.clicks} click${o.clicks > 1 ? "s" : ""}${modelReads(o.mask)}. ` +
    `Enter or a class: paint ${className(paintValue())}. Right-click: cut a part. ` +
    "P: outline. Backspace: undo click. Esc: drop.", "info", "object");
}

// "; model: car (9)": the prediction's class under most of the object and its
// key, so that the labeller can commit it with one key; "" when that is the class
// Enter paints already, or there is no prediction.
function modelReads(mask) {
  if (!S.pred || S.pred.length !== mask.length) return "";
  const m = SegShapes.majorityValue(mask, S.pred);
  if (!m || m.value === paintValue()) return "";
  const pos = S.classes.findIndex((c) => c.index === m.value);
  if (pos < 0) return "";
  const key = SegInput.classKeyLabel(pos);
  return `; model: ${className(m.value)}${key ? ` (${key})` : ""}`;
}

function paintObjectPreview() {
  const o = S.obj, w = S.img.width, h = S.img.height;
  if (!objCanvas) { objCanvas = document.createElement("canvas"); objCtx = objCanvas.getContext("2d"); }
  objCanvas.width = w;
  objCanvas.height = h;
  const img = objCtx.createImageData(w, h);
  const u32 = new Uint32Array(img.data.buffer);
  const c = S.byIndex.get(paintValue());
  const [r, g, b] = c ? c.rgb : [255, 255, 255];
  const fill = ((150 << 24) | (b << 16) | (g << 8) | r) >>> 0;
  const edge = SegShapes.outline(o.mask, w, h);
  for (let i = 0; i < u32.length; i++) u32[i] = edge[i] ? 0xffffffff : o.mask[i] ? fill : 0;
  objCtx.putImageData(img, 0, 0);
  requestRender();
}

// Paint the previewed object with the active class: one undo step.
function commitObject() {
  const o = S.obj;
  if (!o || !o.clicks) return false;
  S.obj = null;
  root.dataset.object = "";
  if (!o.ready) {
    setStatus("The object was still being computed: nothing painted. Click again and wait for the preview.", "warning", "object");
    requestRender();
    return true;
  }
  const value = paintValue();
  const [x, y] = o.positive[0];
  const e = newEdit(value, S.map.data[y * S.map.width + x]);
  SegShapes.paintMask(e, o.mask);
  const step = commit(e, "object");
  const note = C.lockedNote(e);
  if (step) setStatus(`Object: ${step.idx.length} px → ${className(value)}.${note && " " + note}`, note ? "warning" : "info");
  else setStatus(note || `The object already has ${className(value)}: nothing changed.`, note ? "warning" : "info");
  requestRender();
  return true;
}

// P while an object is previewed: its outline becomes an editable polygon (the polygon
// tool's handles, Enter fills it); the outline of its largest part, holes filled.
function objectToPolygon() {
  const o = S.obj;
  if (!o || !o.clicks) return false;
  if (!o.ready) { setStatus("The object is still being computed: wait for its preview, then press P.", "warning", "object"); return false; }
  const r = SegShapes.maskPolygon(o.mask, S.img.width, S.img.height);
  if (!r || r.points.length < 3) { setStatus("The object has no outline to edit.", "warning", "object"); return false; }
  S.obj = null;            // not committed: the polygon replaces the preview
  root.dataset.object = "";
  clearStatus("object");
  setTool("polygon");
  S.vpoly = new SegShapes.EditablePolygon(r.points, false);
  root.dataset.vpoly = S.vpoly.points.length;
  const dropped = r.droppedPixels ? ` (largest part; ${r.droppedPixels} px elsewhere left out)` : "";
  setStatus(`Outline → polygon, ${r.points.length} vertices${dropped}: drag one, click an edge to add, ` +
    "Delete removes; Enter fills, Esc drops.");
  requestRender();
  return true;
}

function dropObjectClick() {
  const o = S.obj;
  if (!o) return;
  const seq = o.dropLast();
  if (seq) { askObject(seq); setStatus("Dropped the last click.", "busy", "object"); }
  else { S.obj = null; root.dataset.object = ""; setStatus("Object dropped."); }
  requestRender();
}

function drawObject() {
  const o = S.obj;
  if (!o || !S.img || o.imageId !== S.img.id) return;
  const { s, ox, oy } = S.view;
  if (o.mask && objCanvas) {
    vctx.imageSmoothingEnabled = false;
    vctx.drawImage(objCanvas, ox, oy, S.img.width * s, S.img.height * s);
  }
  const dot = (pt, color) => {
    const [x, y] = toScreen(pt[0] + 0.5, pt[1] + 0.5);
    vctx.beginPath();
    vctx.arc(x, y, 5, 0, Math.PI * 2);
    vctx.fillStyle = color;
    vctx.fill();
    vctx.lineWidth = 1.5;
    vctx.strokeStyle = "#fff";
    vctx.stroke();
  };
  for (const pt of o.positive) dot(pt, "#16a34a");
  for (const pt of o.negative) dot(pt, "#dc2626");
}

// ------------------------------------------------------------------ editable polygons

function vpolyDown(p) {
  const poly = S.vpoly;
  if (!poly) return false;
  const hit = SegShapes.hitTest(poly.points, p, S.view.s);
  if (hit && hit.kind === "vertex") {
    S.vdrag = new SegShapes.VertexDrag(poly, hit.index);
    poly.selected = hit.index;
    requestRender();
    return true;
  }
  if (hit && hit.kind === "edge") {
    const k = poly.insert(hit.edge, hit.x, hit.y);
    S.vdrag = new SegShapes.VertexDrag(poly, k);
    S.vdrag.moved = true;   // the insertion is this gesture's undo step; a drag moves it within it
    setStatus(`Vertex added (${poly.points.length}). Drag it, Delete removes it, Enter fills.`);
    requestRender();
    return true;
  }
  if (hit && hit.kind === "inside") { poly.selected = -1; requestRender(); return true; }
  // a press outside: this polygon is done; the press starts the next one
  commitPolygon();
  return false;
}

function shapesDown(p, ev) {
  if (S.tool === "object" && (ev.button === 0 || ev.button === 2) && !ev.altKey) {
    objectDown(p, ev);
    return "handled";
  }
  if (S.tool === "polygon" && ev.button === 0 && S.vpoly) return vpolyDown(p) ? "drag" : false;
  return false;
}

function shapesMove(p) {
  if (!S.vdrag) return false;
  const [x, y] = SegShapes.clampPoint(p.x, p.y, S.map.width, S.map.height);
  S.vdrag.to(x, y);
  requestRender();
  return true;
}

function shapesUp() {
  if (!S.vdrag) return false;
  S.vdrag = null;
  updateShapeButtons();
  return true;
}

// The polygon tool's close (Enter, double-click): the polygon becomes editable.
function openPolygon(erase) {
  if (S.polygon.length < 3) { setStatus("A polygon needs at least 3 points."); return; }
  S.vpoly = new SegShapes.EditablePolygon(S.polygon, erase);
  S.polygon = [];
  root.dataset.vpoly = S.vpoly.points.length;
  setStatus(`Polygon closed (${S.vpoly.points.length} vertices): drag a vertex, click an edge to add one, ` +
    "Delete removes the selected one; Enter fills it" + (erase ? " with void" : "") + ", Esc drops it.");
  requestRender();
}

function commitPolygon(erase) {
  const poly = S.vpoly;
  if (!poly) return false;
  S.vpoly = null;
  S.vdrag = null;
  root.dataset.vpoly = "";
  const pts = poly.points;
  const er = erase || poly.erase;
  const value = er ? S.ignore : paintValue();
  const [fx, fy] = pts[0];
  const e = newEdit(value, S.map.data[Math.min(S.map.height - 1, Math.floor(fy)) * S.map.width + Math.min(S.map.width - 1, Math.floor(fx))]);
  C.fillPolygon(e, pts);
  const step = commit(e, er ? "polygon erase" : "polygon");
  const note = C.lockedNote(e);
  if (step) setStatus(`Polygon: ${step.idx.length} px ${er ? "erased" : "→ " + className(value)}.${note && " " + note}`, note ? "warning" : "info");
  else setStatus(note || "Polygon changed nothing.", note ? "warning" : "info");
  requestRender();
  return true;
}

function deleteVertex() {
  const poly = S.vpoly;
  if (!poly) return;
  if (poly.selected < 0) { setStatus("Click a vertex first; Delete then removes it."); return; }
  if (!poly.remove()) { setStatus("A polygon keeps at least 3 vertices (Esc drops it)."); return; }
  root.dataset.vpoly = poly.points.length;
  setStatus(`Vertex removed (${poly.points.length} left).`);
  requestRender();
}

function drawEditablePolygon() {
  const poly = S.vpoly;
  if (!poly) return;
  const pts = poly.points.map(([x, y]) => toScreen(x, y));
  const c = S.byIndex.get(poly.erase ? S.ignore : paintValue());
  vctx.lineWidth = 2;
  vctx.strokeStyle = c ? c.color : "#ffffff";
  vctx.fillStyle = c ? c.color + "66" : "#ffffff33";
  vctx.beginPath();
  pts.forEach(([x, y], k) => (k ? vctx.lineTo(x, y) : vctx.moveTo(x, y)));
  vctx.closePath();
  vctx.fill("evenodd");
  vctx.stroke();
  pts.forEach(([x, y], k) => {
    const r = k === poly.selected ? 6 : 4.5;
    vctx.fillStyle = k === poly.selected ? "#facc15" : "#fff";
    vctx.strokeStyle = "#111";
    vctx.lineWidth = 1.5;
    vctx.fillRect(x - r, y - r, 2 * r, 2 * r);
    vctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
  });
}

// ------------------------------------------------------------------ shared

function drawShapes() {
  drawObject();
  drawEditablePolygon();
}

// Commit whatever is pending (another tool, a save, Next): true when something was.
function commitShapes() {
  let done = false;
  if (S.vpoly) done = commitPolygon() || done;
  if (S.obj && S.obj.clicks) done = commitObject() || done;
  return done;
}

function discardShapes() {
  const had = !!(S.vpoly || (S.obj && S.obj.clicks));
  S.vpoly = null;
  S.vdrag = null;
  S.obj = null;
  root.dataset.vpoly = "";
  root.dataset.object = "";
  if (had) requestRender();
  return had;
}

function shapesImageChanged() {
  // another image: its pending shapes go with the old one (a Next commits them first)
  discardShapes();
  clearStatus("object");
  warmObject();
}

// Ctrl+Z / Ctrl+Shift+Z while a shape is pending: its own steps.
function shapeUndo() {
  if (S.vpoly) {
    if (!S.vpoly.undo()) { discardShapes(); setStatus("Polygon dropped."); return; }
    root.dataset.vpoly = S.vpoly.points.length;
    setStatus(`Undid a vertex edit (${S.vpoly.edits} left).`);
    requestRender();
  } else if (S.obj) dropObjectClick();
}

function shapeRedo() {
  if (S.vpoly && S.vpoly.redo()) { root.dataset.vpoly = S.vpoly.points.length; setStatus("Redid a vertex edit."); requestRender(); }
}

function updateShapeButtons() { root.dataset.vpoly = S.vpoly ? S.vpoly.points.length : ""; }

// The O tool was picked (or an image opened with it): have the server make the image's
// features ready, so that the first click is as quick as the next ones.
function warmObject() {
  if (S.tool !== "object" || !S.img || S.objWarm === S.img.id) return;
  S.objWarm = S.img.id;
  server.click_object({ image_id: S.img.id, warm: true }).catch(() => { S.objWarm = null; });
}
