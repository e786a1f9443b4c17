// The image strip's rules, without DOM (canvas.js draws the strip): what the page says
// about a page of the strip (Studio.strip's answer) and which thumbnails to ask the
// server for. node's test runner tests it (tests/js/strip.test.js); the page gets it
// concatenated before canvas.js.

/* eslint-disable no-var */
var SegStrip = (function () {
  "use strict";

  // the statuses the strip shows (segui/thumbnails.py STRIP_STATUSES) and their words
  const WORDS = { unlabelled: "unlabelled", draft: "draft", submitted: "submitted", accepted: "accepted ✓", rejected: "rejected" };
  const MAX_PER_CALL = 60;   // segui/thumbnails.py MAX_THUMBNAILS_PER_CALL
  // the queue beside Next that opens images of a status (accepted ones have none)
  const FILTER_OF = { unlabelled: "unlabelled", draft: "draft", submitted: "submitted", rejected: "rejected" };

  // The page's range ("21–40 of 3000": the images this person's strip lists), the
  // progress line ("12 / 3000 labelled · 3 draft", the whole project's: labelled =
  // submitted, reviewed ones included; an annotator's strip lists fewer images than the
  // project has), the legend ([status, count] for each status among the images this
  // person's strip lists: an annotator's counts are of their own submissions) and
  // whether there is a page before / after. A legend entry's third item is the queue that
  // opens images of its status (clicking it sets that queue and opens the next), else null.
  function summary(q) {
    const items = q.items || [];
    const first = items.length ? items[0].pos : 0, last = items.length ? items[items.length - 1].pos : 0;
    const labelled = q.labelled ?? q.submitted ?? 0;
    const seen = q.listed || q;   // the legend: the statuses of the images this strip lists
    return {
      range: q.total ? `${first}–${last} of ${q.total}` : "no images",
      progress: `${labelled} / ${q.project_total ?? q.total ?? 0} labelled` + (q.draft ? ` · ${q.draft} draft` : ""),
      legend: Object.keys(WORDS).filter((k) => seen[k] > 0).map((k) => [k, seen[k], FILTER_OF[k] || null]),
      canPrev: (q.page || 0) > 0,
      canNext: (q.page || 0) < (q.pages || 1) - 1,
    };
  }

  // The ids of `wanted` (items scrolled into view) whose thumbnail the page lacks: on
  // the page shown, and not cached under the item's current key (a saved revision
  // changes it); at most MAX_PER_CALL, in the page's order.
  function toFetch(wanted, items, cache) {
    const out = [];
    for (const it of items) {
      if (!wanted.has(it.id)) continue;
      const t = cache.get(it.id);
      if (t && t.key === it.thumb) continue;
      out.push(it.id);
      if (out.length === MAX_PER_CALL) break;
    }
    return out;
  }

  return { WORDS, FILTER_OF, MAX_PER_CALL, summary, toFetch };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegStrip;
