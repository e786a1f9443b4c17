// The canvas's requests to the server and its moves between images, as a state
// machine without DOM: which requests wait for an answer, the move to another image
// that blocks the rest, the optimistic Next (the image prepared ahead shown before
// the server confirms) and how the server's answer settles or rolls it back. node's
// test runner tests it (tests/js/nav.test.js); the page gets it concatenated after
// core.js and canvas.js calls it with its state object S, whose fields it reads and
// writes: rid, pending, navPending, lastSeq, optimistic, ahead, peeking, visited,
// img, filter, history (a SegCore.History).

/* eslint-disable no-var */
var SegNav = (function () {
  "use strict";

  // The events that move to another image: until the server answers one, it still
  // holds the old image, so nothing else may be sent.
  const NAV_EVENTS = new Set(["go_next", "submit_next", "open_image", "review_image"]);

  // The per-image part of the state: what Next swaps and a failed Next restores.
  const DOC = ["img", "photo", "map", "pred", "seg", "segQueue", "history", "encoded", "review", "reviewMask"];

  function takeDoc(st) { const d = {}; for (const k of DOC) d[k] = st[k]; return d; }

  function isNav(event) { return NAV_EVENTS.has(event); }

  // A move to another image is on its way: edits and other requests wait.
  function navigating(st) { return st.navPending !== null; }

  // ------------------------------------------------------------------ requests

  // Record a request for `event` (record: what the answer needs, e.g. the map's
  // snapshot); -> its id. The caller checks navigating() first.
  function begin(st, event, record) {
    const rid = ++st.rid;
    st.pending.set(rid, { event, ...record });
    if (NAV_EVENTS.has(event)) st.navPending = rid;
    return rid;
  }

  // `event` raised an error: its requests wait no more. -> the optimistic Next to
  // undo (show its `leaving` doc again; `visited` is already restored), or null.
  function fail(st, event) {
    const failed = [...st.pending].filter(([, p]) => p.event === event).map(([rid]) => rid);
    let undo = null;
    if (st.optimistic && failed.includes(st.optimistic.rid)) {
      undo = st.optimistic;
      st.visited = undo.visited;
      st.optimistic = null;
    }
    for (const rid of failed) st.pending.delete(rid);
    if (failed.includes(st.navPending)) st.navPending = null;
    return undo;
  }

  // The move to another image still waiting for its answer: {event, waited} (ms since
  // it was sent, `now` from the same clock as the record's `t`), or null. A move whose
  // server died before answering is never answered: the page asks this to let it go.
  function pendingMove(st, now) {
    if (st.navPending === null) return null;
    const p = st.pending.get(st.navPending);
    if (!p) return null;
    return { event: p.event, waited: typeof p.t === "number" ? now - p.t : 0 };
  }

  // ------------------------------------------------------------------ answers

  // A server value not seen yet (each carries a fresh seq)? Marks it seen.
  function fresh(st, v) {
    if (!v || !v.kind || v.seq === st.lastSeq) return false;
    st.lastSeq = v.seq;
    return true;
  }

  // What the answer `v` is to the page: "settle" (the answer to an optimistic Next),
  // "load", "saved", "result", "prompt", "split" (of the image shown) or null.
  function route(st, v) {
    if (st.optimistic && v.request === st.optimistic.rid) return "settle";
    if (v.kind === "load" && staleLoad(st, v)) return null;
    if (["load", "saved", "result", "prompt"].includes(v.kind)) return v.kind;
    if (v.kind === "split" && st.img && v.image_id === st.img.id) return "split";
    return null;
  }

  // A view of the open image older than the revision the page already holds is stale: an
  // answer computed before the page's own save landed (one of Gradio's first answers after a
  // reload, arriving after the journal's restored edit was saved); showing it would put the
  // old map on screen over the stored one. ("Load revision N" views carry `restore`: wanted.)
  // Asked again just before the view is shown: one routed while the page was still opening
  // the image may have become stale while it decoded.
  function staleLoad(st, v) {
    const im = v.image;
    return !!(im && st.img && im.id === st.img.id && !v.restore && im.revision != null &&
      st.img.revision != null && im.revision < st.img.revision);
  }

  // The answer `v` is on screen: its request waits no more; a load ends any move.
  function answered(st, v) {
    if (v.request != null) st.pending.delete(v.request);
    if (st.navPending !== null && (v.request === st.navPending || v.kind === "load")) st.navPending = null;
  }

  // ------------------------------------------------------------------ the next image, ahead of time

  // The image prepared ahead (st.ahead = {current, filter, v, doc}) is what Next
  // would open now.
  function aheadReady(st) {
    const a = st.ahead;
    return !!(a && st.img && a.current === st.img.id && a.filter === st.filter && st.navPending === null);
  }

  // A peek asked on image `id` with queue `filter` still applies when it arrives.
  function aheadWanted(st, id, filter) {
    return !!(st.img && st.img.id === id && st.filter === filter);
  }

  // Next pressed while the next image is still being prepared: wait for it rather
  // than ask the server a second time while it prepares that very image.
  function shouldAwaitPeek(st) {
    return !(aheadReady(st) || !st.peeking || !st.img || st.peeking.id !== st.img.id || st.navPending !== null);
  }

  // Next (request `rid`) shows the prepared image at once: remember what to go back
  // to. -> the prepared {v, doc} to enter.
  function anticipate(st, rid) {
    const a = st.ahead;
    st.optimistic = { rid, id: a.doc.img.id, leaving: takeDoc(st), visited: st.visited.slice() };
    return a;
  }

  // The server answered the Next that anticipate() showed. -> {action, o}:
  //   "keep":    the same image and revision: keep what is on screen (take v.image's fields)
  //   "replace": the same image, but its mask was prepared ahead by a model that has
  //              since changed (another version, or the instant layer learnt the last
  //              submit): decode the server's (the prepared one stays on screen
  //              meanwhile), show it if replaceWanted(), or merge it under the
  //              labeller's strokes if mergeWanted()
  //   "other":   the server opened another image: back to o.leaving, then load v
  //   "back":    the server stayed on the image (a save conflict, nothing next, an
  //              error): back to o.leaving
  // For "other" and "back" the visited list is already restored.
  function settle(st, v) {
    const o = st.optimistic;
    st.optimistic = null;
    if (v.kind === "load" && v.image && v.image.id === o.id && st.img && st.img.id === o.id &&
        v.image.revision === st.img.revision) {
      const action = v.image.source !== st.img.source ? "replace" : "keep";
      return { action, o };
    }
    st.visited = o.visited;
    return { action: v.kind === "load" ? "other" : "back", o };
  }

  // The server's mask for a "replace" has decoded: show it unless the labeller has
  // started editing the image or moved on meanwhile.
  function replaceWanted(st, o, v) {
    return !!(st.img && st.img.id === o.id && !st.history.isDirty() && (st.navPending === null || st.navPending === v.request));
  }

  // ... and when they have started editing it (still open, not moving on, the map it opened
  // with the prediction: revision 0): the newer prediction comes in under their strokes
  // (mergeResult: the pixels they painted are kept), one step they can undo.
  function mergeWanted(st, o, v) {
    return !!(st.img && st.img.id === o.id && st.history.isDirty() && st.pred && st.img.revision === 0 &&
      v.image && v.image.revision === 0 && (st.navPending === null || st.navPending === v.request));
  }

  // ------------------------------------------------------------------ another model made active

  // The version the page last knew active in its project, else the open image's.
  function seenModel(st) {
    return st.modelSeen && st.modelSeen.project === st.project ? st.modelSeen.id : st.img.version;
  }

  // The heartbeat says `active` ({id, name, project, ready}) is the project's model version
  // now (ready: the server's predictions are its, the instant layer rebuilt on it).
  // -> what the page does: null (nothing new, or not now: the next beat asks again),
  // "reopen" (the open image is unedited and shows another version's prediction: open it
  // again, with the active version's) or "tell" (report it only: the labeller is editing,
  // or the image is annotated; the next images are the new version's). What the page knew
  // before: the version last heard of in this project, else the open image's.
  function newerModel(st, active) {
    if (!active || active.id == null || !st.img || active.project !== st.project || active.ready === false) return null;
    const seen = seenModel(st);
    const remember = () => { st.modelSeen = { project: st.project, id: active.id }; };
    if (seen == null || seen === active.id || st.img.version === active.id) { remember(); return null; }
    if (st.navPending !== null || st.pending.size || st.optimistic) return null;   // an answer on its way
    remember();
    if (st.img.revision === 0 && st.img.version != null && !(st.history && st.history.isDirty()) &&
        !st.edit && !(st.polygon && st.polygon.length)) return "reopen";
    return "tell";
  }

  // The heartbeat says the instant layer's current adapter is `active.fit` (a number; null
  // when it has learnt nothing or is not ready) and the open image's prediction came from
  // adapter `st.img.fit` (-1: none, or one from before a restart). They differ when a
  // submit was learnt after the image was predicted: another labeller's, a restart's
  // rebuild, or this labeller's last one learnt after Submit & next stopped waiting for it.
  // -> true (once per image and adapter): open it again, predicted with the current one.
  // Only an unedited prediction of the active version, with no answer on its way.
  function newerFit(st, active) {
    if (!active || active.fit == null || !st.img || active.project !== st.project || active.ready === false) return false;
    if (st.img.fit === active.fit || st.img.revision !== 0 || st.img.version !== active.id) return false;
    if (st.navPending !== null || st.pending.size || st.optimistic) return false;   // the next beat asks again
    if ((st.history && st.history.isDirty()) || st.edit || (st.polygon && st.polygon.length)) return false;
    const key = `${st.img.id}:${active.fit}`;
    if (st.fitAsked === key) return false;       // (the answer's prediction may not be the adapter's)
    st.fitAsked = key;
    return true;
  }

  // What the header says while another version is active but not ready (the server
  // rebuilds the instant layer on it, seconds): without it the line went quiet between
  // the job's last percent and the new model's mask. "" when nothing is being prepared.
  function modelLabel(st, active) {
    if (!active || active.id == null || !st.img || active.project !== st.project || active.ready !== false) return "";
    const seen = seenModel(st);
    if (seen == null || seen === active.id) return "";
    return `${active.name} made active: adapting it to the corrections…`;
  }

  // The project's newest fine-tuning job as the heartbeat gives it ({id, status, progress,
  // promoted, why}, or null). Kept in st.job (the header shows one under way). -> a line for
  // the status when a job this page saw queued or running ended without its model being made
  // active (a promoted one is told by newerModel, once the model reaches the page), else null.
  const LIVE = ["queued", "running"];
  function jobNews(st, job, model) {
    const prev = st.job;
    st.job = job || null;
    if (!job || !prev || prev.id !== job.id || !LIVE.includes(prev.status) || LIVE.includes(job.status)) return null;
    if (job.status === "succeeded" && job.promoted) return null;
    const keep = model ? ` The model stays ${model}.` : "";
    if (job.status === "succeeded") {
      return `Fine-tuning job ${job.id} finished, but its model was not made active (${job.why || "not promoted"}).${keep} ` +
        "The Model screen can switch to it.";
    }
    if (job.status === "failed") return `Fine-tuning job ${job.id} failed.${keep} The Model screen shows its log.`;
    return `Fine-tuning job ${job.id} was ${job.status}.${keep}`;
  }

  // What the header says of a job under way ("" when none).
  function jobLabel(job) {
    if (!job || !LIVE.includes(job.status)) return "";
    return job.status === "queued" ? `fine-tuning job ${job.id} queued` :
      `fine-tuning job ${job.id}: ${Math.round(100 * (job.progress || 0))} %`;
  }

  // ------------------------------------------------------------------ visited images (Back)

  // Image `id` (of load payload v) is about to be shown: the one leaving joins the
  // visited list (at most 200); going back to the last one takes it off instead, so
  // Back pressed again goes further back (as a browser's Back), not to where it came from.
  function visit(st, v, id) {
    if (v.back && st.visited.length && st.visited[st.visited.length - 1] === id) {
      st.visited.pop();
      return;
    }
    if (st.img && st.img.id !== id) {
      st.visited.push(st.img.id);
      if (st.visited.length > 200) st.visited.shift();
    }
  }

  function previous(st) { return st.visited[st.visited.length - 1]; }

  return {
    NAV_EVENTS, DOC, takeDoc, isNav, navigating, pendingMove, begin, fail, fresh, route, staleLoad, answered,
    aheadReady, aheadWanted, shouldAwaitPeek, anticipate, settle, replaceWanted, mergeWanted, newerModel, newerFit, modelLabel, jobNews, jobLabel, visit, previous,
  };
})();

if (typeof module !== "undefined" && module.exports) module.exports = SegNav;
