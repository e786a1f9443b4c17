"""The image strip's thumbnails (segui/thumbnails.py): small, made once per revision,
kept in the cache folder, the annotation drawn over the photo, refused across
projects and to annotators for someone else's work; the strip's review colours."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from segui.access import Forbidden, Principal
from segui.errors import UserError
from segui.handlers import DEMO_DIR, DEMO_PROJECT
from segui.thumbnails import MAX_THUMBNAILS_PER_CALL, THUMB_SIDE, strip_status


def decode(url: str) -> np.ndarray:
    head, b64 = url.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_thumbnails_are_small_cached_and_follow_the_revision(bare_demo_studio):
    st = bare_demo_studio
    ids = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")]
    made = []
    real = st._make_thumbnail
    st._make_thumbnail = lambda info, p: made.append(info.id) or real(info, p)
    (t,) = st.thumbnails(DEMO_PROJECT, [ids[0]])
    info = st.store.get_image(ids[0])
    px = decode(t["url"])
    assert px.shape == (round(info.height * THUMB_SIDE / info.width), THUMB_SIDE, 3)   # 480x360 -> 112x84
    assert len(base64.b64decode(t["url"].split(",", 1)[1])) < 8000
    assert t["key"] == st.strip(DEMO_PROJECT, ids[0])["items"][0]["thumb"]
    # once per image: memory, then the cache folder (a fresh studio on the same data)
    st.thumbnails(DEMO_PROJECT, [ids[0]])
    assert made == [ids[0]]
    st._thumb_cache()[1].clear()
    assert st.thumbnails(DEMO_PROJECT, [ids[0]])[0]["url"] == t["url"] and made == [ids[0]]
    files = list(st.thumb_dir().rglob(f"{ids[0]}-*.jpg"))
    assert len(files) == 1
    # a saved revision draws the annotation over the photo: the whole map "sky" -> blue-ish
    p = st.project(DEMO_PROJECT)
    sky = next(c for c in p.classes if c.name == "sky")
    cm = np.full((info.height, info.width), sky.index, np.uint8)
    st.save(ids[0], cm, "alice", "draft", 0)
    (t2,) = st.thumbnails(DEMO_PROJECT, [ids[0]])
    assert t2["key"] != t["key"] and made == [ids[0], ids[0]]
    assert t2["key"] == st.strip(DEMO_PROJECT, ids[0])["items"][0]["thumb"]
    before, after = decode(t["url"]).astype(float), decode(t2["url"]).astype(float)
    expect = before * 0.5 + np.array(sky.color) * 0.5
    assert np.abs(after - expect).mean() < 6 < np.abs(after - before).mean()
    # the old revision's file is gone: one file per image
    assert [f.name for f in st.thumb_dir().rglob(f"{ids[0]}-*.jpg")] == [f"{ids[0]}-{t2['key']}.jpg"]


def test_thumbnails_are_refused_across_projects_and_to_annotators(bare_demo_studio):
    st = bare_demo_studio
    ids = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")]
    st.create_project("other", "sky\nroad")
    other = st.upload("other", [sorted(DEMO_DIR.glob("*.jpg"))[0]]).to_open
    with pytest.raises(UserError, match="no image"):
        st.thumbnails(DEMO_PROJECT, [other])
    with pytest.raises(UserError, match="no image"):
        st.thumbnails(DEMO_PROJECT, [10 ** 9])
    with pytest.raises(UserError, match="at most"):
        st.thumbnails(DEMO_PROJECT, ids * (MAX_THUMBNAILS_PER_CALL // 4 + 1))
    st.save(ids[1], st.open_image(ids[1]).class_map, "bob", "draft", 0)
    ann = Principal("ann", "annotator")
    with pytest.raises(Forbidden, match="someone else"):
        st.thumbnails(DEMO_PROJECT, [ids[1]], who=ann)
    assert [t["id"] for t in st.thumbnails(DEMO_PROJECT, [ids[0]], who=ann)] == [ids[0]]
    # an annotator's strip holds the images they see; the counts are the project's
    s = st.strip(DEMO_PROJECT, None, who=ann)
    assert ids[1] not in [it["id"] for it in s["items"]] and s["total"] == 3 and s["draft"] == 1
    # ...and the legend's, of the images their strip lists: bob's draft is not one of them
    assert s["listed"]["draft"] == 0 and s["listed"]["unlabelled"] == 3
    assert st.strip(DEMO_PROJECT, None)["listed"]["draft"] == 1      # (one who sees every image)


def test_the_strip_shows_review_outcomes(bare_demo_studio):
    st = bare_demo_studio
    ids = [im.id for im in st.store.list_images(DEMO_PROJECT, order="id")]
    for iid in ids[:3]:
        st.save(iid, st.open_image(iid).class_map, "ann", "submitted", 0)
    st.store.review(ids[0], 1, "accepted", reviewer="rex")
    st.store.review(ids[1], 1, "rejected", "the car is a van", reviewer="rex")
    s = st.strip(DEMO_PROJECT, None)
    assert [it["status"] for it in s["items"]] == ["accepted", "rejected", "submitted", "unlabelled"]
    assert (s["accepted"], s["rejected"], s["submitted"], s["labelled"]) == (1, 1, 1, 3)
    # a rejected image the annotator is fixing is a draft again
    st.save(ids[1], st.open_image(ids[1]).class_map, "ann", "draft", 1)
    assert st.strip(DEMO_PROJECT, None)["items"][1]["status"] == "draft"
    assert strip_status("submitted", "pending") == "submitted"
