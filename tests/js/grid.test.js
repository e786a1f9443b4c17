// node --test tests/js : the Explore grid's pure logic (segui/grid/gridcore.js)
const test = require("node:test");
const assert = require("node:assert/strict");
const G = require("../../segui/grid/gridcore.js");

test("columns fit the width, at least one", () => {
  assert.equal(G.columns(800, 168, 8), 4);
  assert.equal(G.columns(1000, 168, 8), 5);
  assert.equal(G.columns(50, 168, 8), 1);
});

test("only the rows on screen (and the overscan) are visible", () => {
  // 10,000 items, 5 columns, rows of 178 px, a 600 px view scrolled to row 100
  const w = G.visible(100 * 178, 600, 178, 5, 10000, 2);
  assert.equal(w.first, 98 * 5);
  assert.equal(w.last, (100 + Math.ceil(600 / 178) + 2) * 5);
  assert.ok(w.last - w.first < 60);
  // at the end it stops at the last item; an empty grid shows nothing
  const end = G.visible(1e9, 600, 178, 5, 10003, 2);
  assert.equal(end.last, 10003);
  assert.ok(end.first < end.last);
  assert.deepEqual(G.visible(0, 600, 178, 5, 0), { first: 0, last: 0 });
  assert.equal(G.contentHeight(10001, 5, 178), 2001 * 178);
});

test("the pages holding a window", () => {
  assert.deepEqual(G.pagesFor(0, 48, 48), [0]);
  assert.deepEqual(G.pagesFor(40, 100, 48), [0, 1, 2]);
  assert.deepEqual(G.pagesFor(5, 5, 48), []);
});

test("pages are asked for once, kept up to a bound, asked again after a failure", () => {
  const P = new G.Pages(10, 3);
  P.reset("k", 100);
  assert.deepEqual(P.missing([0, 1]), [0, 1]);
  assert.deepEqual(P.missing([0, 1, 2]), [2]);        // 0 and 1 are on their way
  P.put(0, Array.from({ length: 10 }, (_, i) => ({ id: i })));
  assert.equal(P.row(7).id, 7);
  assert.equal(P.row(17), undefined);
  P.failed(1);
  assert.deepEqual(P.missing([1]), [1]);
  for (const p of [1, 2, 3]) P.put(p, [{ id: p * 10 }]);
  assert.equal(P.pages.size, 3);                      // page 0, the least recently used, dropped
  assert.equal(P.row(0), undefined);
  assert.deepEqual(P.missing([0]), [0]);
});

test("a query's key does not depend on the order of its fields", () => {
  assert.equal(G.queryKey("p", { sort: "iou", split: "val" }), G.queryKey("p", { split: "val", sort: "iou" }));
  assert.notEqual(G.queryKey("p", { sort: "iou" }), G.queryKey("q", { sort: "iou" }));
  assert.notEqual(G.queryKey("p", { sort: "iou" }), G.queryKey("p", { sort: "iou", descending: true }));
});

test("a caption says what the image is and its figures", () => {
  const c = G.caption({ id: 3, name: "a.jpg", status: "submitted", split: "val", review: "pending", iou: 0.734,
    uncertainty: 0.05, accuracy: 0.9, disagreement: null, pixels: 1234, stale: true, mask: "annotation" });
  assert.equal(c.title, "a.jpg");
  assert.match(c.line, /^submitted · val · review pending · 1,234 px · IoU 73% · unc\. 0\.05$/);
  assert.match(c.tip, /older model/);
  assert.equal(G.caption({ id: 1, name: "b", status: "unlabelled", split: "none", iou: null, uncertainty: null }).line,
    "unlabelled · IoU – · unc. –");
});
