// The compare view of a save conflict (issue 17), in canvas.js's scope (concatenated after
// it): someone else stored a revision of the open image while the labeller edited it.
// The server kept both (segui/labelling.py Studio.save: theirs, then mine on top); this
// view shows the two class maps side by side over the photo, where they differ bright,
// and offers "keep mine", "keep theirs" and, when it is a third map, "mine where I drew,
// theirs elsewhere" (journal.js mergeMine: a three-way merge with the revision the
// labeller started from). The choice is applied as one undoable step and stored as a new
// revision (nothing to store when it already is the latest); the other stays a revision.
//
// c: {image, base (the revision the labeller's edit was made on; 0: the prediction),
//     theirs (the other person's revision), mine (my revision, or null: not stored yet),
//     author (who saved theirs)}.

// Open the compare view of conflict `c` on the open image (`note`: what the status says).
async function showConflict(c, note) {
  const id = S.img && S.img.id;
  if (!c || !id || c.image !== id) return;
  S.conflict = c;
  updateConflictBtn();
  setStatus(note || `${c.author || "Someone"} saved this image (revision ${c.theirs}) while you were editing it: compare the two versions and choose. Nothing is lost.`, "warning", "image");
  let r;
  try {
    r = await withTimeout(server.revision_maps({ image_id: id, revisions: [c.base, c.theirs] }), 30000);
  } catch (err) {
    setStatus(`Could not fetch the versions to compare (${(err && err.message) || err}); both stay in the revision list (Upload · Revisions).`, "error", "image");
    return;
  }
  if (!S.img || S.img.id !== id || S.conflict !== c || !r || !r.maps) return;
  const who = (r.authors && r.authors[String(c.theirs)]) || c.author || "";
  if (c.unlessMine && who && (who === S.user || who === author().trim())) {
    // the newer revision is this labeller's own (a save whose answer was lost): no conflict
    S.conflicts.delete(id);
    S.conflict = null;
    updateConflictBtn();
    return;
  }
  const w = S.img.width, h = S.img.height;
  const [base, theirs] = await Promise.all([decodeIndexPng(r.maps[String(c.base)], w, h), decodeIndexPng(r.maps[String(c.theirs)], w, h)]);
  if (!S.img || S.img.id !== id || S.conflict !== c) return;
  const mine = S.map.data.slice();
  // the map of the latest stored revision, when the page knows it: choosing it stores nothing new
  const latest = c.theirs === S.img.revision ? theirs : (c.mine != null && c.mine === S.img.revision && !S.history.isDirty() ? mine : null);
  S.compare = { c, base, theirs, mine, latest, choices: JN.conflictChoices(base, mine, theirs), author: who || "someone" };
  renderCompare();
  $(".seg-compare").hidden = false;
  root.dataset.compare = id;
  const first = $(".seg-compare-actions button");
  if (first) first.focus();
}

// One version over the photo: its classes, bright where it differs from `other`.
function drawVersion(cv, data, other) {
  const w = S.img.width, h = S.img.height;
  const scale = Math.min(1, 560 / w);
  cv.width = Math.max(1, Math.round(w * scale));
  cv.height = Math.max(1, Math.round(h * scale));
  const full = document.createElement("canvas");
  full.width = w;
  full.height = h;
  const fc = full.getContext("2d");
  const img = fc.createImageData(w, h);
  const u32 = new Uint32Array(img.data.buffer);
  for (let i = 0; i < data.length; i++) {
    const differs = data[i] !== other[i];
    const col = S.lut[data[i]];
    if (col) u32[i] = (((differs ? 235 : 70) << 24) | (col & 0xffffff)) >>> 0;
    else if (differs) u32[i] = 0xb4ffffff;   // void where the other has a class: white
  }
  fc.putImageData(img, 0, 0);
  const ctx = cv.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  if (S.photo) ctx.drawImage(S.photo, 0, 0, cv.width, cv.height);
  ctx.drawImage(full, 0, 0, cv.width, cv.height);
}

function renderCompare() {
  const k = S.compare;
  const { c } = k;
  const started = c.base ? `revision ${c.base}` : "the model's prediction";
  $(".seg-compare-head").textContent = `${k.author} saved this image as revision ${c.theirs} while you were editing it (you started from ${started}). ` +
    (c.mine != null ? `Yours is stored too, as revision ${c.mine}.` : "Yours is not stored yet: it is kept in this browser.");
  $(".seg-compare-mine-cap").textContent = c.mine != null ? `Mine (revision ${c.mine})` : "Mine (unsaved, in this browser)";
  $(".seg-compare-theirs-cap").textContent = `Theirs (revision ${c.theirs}, ${k.author})`;
  drawVersion($(".seg-compare-mine"), k.mine, k.theirs);
  drawVersion($(".seg-compare-theirs"), k.theirs, k.mine);
  const m = JN.mergeMine(k.base, k.mine, k.theirs);
  $(".seg-compare-diff").textContent = `They differ on ${fmtCount(JN.differing(k.mine, k.theirs))} px (bright); you changed ${fmtCount(m.drawn)} px of ${started}` +
    (m.clash ? `, ${fmtCount(m.clash)} of which they changed too.` : ".");
  $(".seg-compare-actions").innerHTML = k.choices.map((ch) =>
    `<button data-choice="${ch.action}" class="${ch.action === "merge" ? "primary" : ""}">${esc(ch.label)}</button>`).join("") +
    `<button data-choice="later" title="Close; the button “Two versions: compare” opens this again (Esc)">Decide later</button>`;
}

function closeCompare(done) {
  $(".seg-compare").hidden = true;
  root.dataset.compare = "";
  S.compare = null;
  if (done) { S.conflicts.delete(S.conflict && S.conflict.image); S.conflict = null; }
  updateConflictBtn();
}

// The labeller chose: the version becomes the canvas's map as one undoable step, then is
// stored (a save), unless it is the latest stored revision already.
function chooseVersion(action) {
  const k = S.compare;
  if (!k) return;
  if (action === "later") {
    closeCompare(false);
    setStatus("Both versions stay stored; “Two versions: compare” opens the comparison again.", "warning", "image");
    return;
  }
  const ch = k.choices.find((x) => x.action === action);
  if (!ch || !S.img || S.img.id !== k.c.image) return;
  closeCompare(true);
  const e = new C.Edit(S.map, null);
  C.replaceAll(e, ch.data);
  commit(e, action === "mine" ? "keep mine" : action === "theirs" ? `keep revision ${k.c.theirs}` : "mine where I drew, theirs elsewhere");
  const what = action === "mine" ? "Your version" : action === "theirs" ? `Revision ${k.c.theirs} (theirs)` : "Your strokes on their version";
  if (k.latest && JN.sameData(S.map.data, k.latest)) {
    S.history.mark(S.history.top());   // the server's latest already: nothing to store
    journalize();
    updateButtons();
    setStatus(`${what} stays: it is the latest stored revision (${S.img.revision}); the other stays in the revision list.`);
    return;
  }
  const rid = request("save_draft", {}, `Storing ${what.toLowerCase()} as a new revision…`);
  if (rid) {
    const others = [k.c.mine != null ? `yours (revision ${k.c.mine})` : null, `theirs (revision ${k.c.theirs})`].filter(Boolean).join(" and ");
    S.choiceNote = { rid, text: (rev) => `${what} is stored as revision ${rev}; ${others} stay in the revision list. Ctrl+Z takes the choice back.` };
  } else {
    setStatus(`${what} is on the canvas, not stored yet: save it (Ctrl+S).`, "warning");
  }
}

function updateConflictBtn() {
  const c = S.img ? S.conflicts.get(S.img.id) : null;
  $(".seg-compare-btn").hidden = !c || !$(".seg-compare").hidden;
}

$(".seg-compare-actions").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-choice]");
  if (b) chooseVersion(b.dataset.choice);
});
$(".seg-compare-btn").addEventListener("click", () => {
  const c = S.img && S.conflicts.get(S.img.id);
  if (c) showConflict(c);
});
