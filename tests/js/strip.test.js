// The image strip's rules (segui/canvas/strip.js): the page's summary and which
// thumbnails the page asks for.
const test = require("node:test");
const assert = require("node:assert");
const SegStrip = require("../../segui/canvas/strip.js");

const item = (id, pos, thumb = `k${id}`) => ({ id, pos, thumb, name: `${id}.jpg`, status: "unlabelled" });

test("summary: range, progress, legend and paging", () => {
  const q = { items: [item(5, 21), item(6, 22), item(9, 40)], total: 3000, page: 1, pages: 150,
    unlabelled: 2990, draft: 3, submitted: 4, accepted: 2, rejected: 1, labelled: 7 };
  const s = SegStrip.summary(q);
  assert.strictEqual(s.range, "21–40 of 3000");
  assert.strictEqual(s.progress, "7 / 3000 labelled · 3 draft");
  // each with the queue beside Next that opens its images (accepted ones have none)
  assert.deepStrictEqual(s.legend, [["unlabelled", 2990, "unlabelled"], ["draft", 3, "draft"], ["submitted", 4, "submitted"],
    ["accepted", 2, null], ["rejected", 1, "rejected"]]);
  assert.strictEqual(s.canPrev, true);
  assert.strictEqual(s.canNext, true);
  const last = SegStrip.summary({ ...q, page: 149 });
  assert.strictEqual(last.canNext, false);
  // no reviews, no drafts: neither in the legend nor in the line
  const plain = SegStrip.summary({ items: [item(1, 1)], total: 1, page: 0, pages: 1, unlabelled: 0, draft: 0, submitted: 1, accepted: 0, rejected: 0 });
  assert.strictEqual(plain.progress, "1 / 1 labelled");
  assert.deepStrictEqual(plain.legend, [["submitted", 1, "submitted"]]);
  assert.strictEqual(plain.canPrev, false);
  assert.strictEqual(plain.canNext, false);
  assert.strictEqual(SegStrip.summary({ items: [], total: 0, page: 0, pages: 1 }).range, "no images");
  // an annotator's strip lists 4 of the project's 14 images: the range says 4, the
  // progress the project's 14 (12 labelled of 4 would read as nonsense)
  const own = SegStrip.summary({ items: [item(1, 1), item(3, 4)], total: 4, project_total: 14, page: 0, pages: 1,
    unlabelled: 2, draft: 0, submitted: 11, accepted: 0, rejected: 1, labelled: 12 });
  assert.strictEqual(own.range, "1–4 of 4");
  assert.strictEqual(own.progress, "12 / 14 labelled");
  // ...and the legend counts what their strip lists: their own rejected submission, not the team's
  const mine = SegStrip.summary({ items: [item(1, 1), item(3, 4)], total: 4, project_total: 14, page: 0, pages: 1,
    unlabelled: 2, draft: 0, submitted: 11, accepted: 0, rejected: 3, labelled: 14,
    listed: { unlabelled: 2, draft: 0, submitted: 1, accepted: 0, rejected: 1 } });
  assert.strictEqual(mine.progress, "14 / 14 labelled");
  assert.deepStrictEqual(mine.legend, [["unlabelled", 2, "unlabelled"], ["submitted", 1, "submitted"], ["rejected", 1, "rejected"]]);
});

test("toFetch: only the wanted items of the page without a thumbnail of their current key", () => {
  const items = [item(1, 1), item(2, 2, "k2-rev2"), item(3, 3), item(4, 4)];
  const cache = new Map([[1, { key: "k1", url: "a" }], [2, { key: "k2-rev1", url: "b" }]]);
  // 1 is cached with its key; 2's cached thumbnail is of an older revision; 4 is not in view; 7 is not on the page
  assert.deepStrictEqual(SegStrip.toFetch(new Set([1, 2, 3, 7]), items, cache), [2, 3]);
  assert.deepStrictEqual(SegStrip.toFetch(new Set(), items, cache), []);
  const many = Array.from({ length: 100 }, (_, k) => item(k, k + 1));
  const got = SegStrip.toFetch(new Set(many.map((it) => it.id)), many, new Map());
  assert.strictEqual(got.length, SegStrip.MAX_PER_CALL);
  assert.deepStrictEqual(got.slice(0, 3), [0, 1, 2]);
});
