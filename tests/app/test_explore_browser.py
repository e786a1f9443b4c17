"""The Explore screen in a real browser (Chromium, Playwright) against the launched demo
app: sorting by IoU orders the grid, a click on a confusion-matrix cell (the Plotly
heatmap) fills the grid with that cell's images, most pixels first, and a click on an
image opens it on the Label screen. Screenshots: test-artifacts/explore*.png."""
from __future__ import annotations

import time

import numpy as np
import pytest

from segui.handlers import DEMO_PROJECT

from .canvas_page import S, launch, open_page
from .conftest import make_studio, require_chromium, served

pytestmark = pytest.mark.slow   # a browser run (Chromium)

G = "document.querySelector('.exg-root').__exg.G"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    require_chromium()
    st = make_studio(tmp_path_factory.mktemp("explore-browser"), demo=True)
    st.refresh_explore_metrics(DEMO_PROJECT)
    with served(st) as url:
        yield st, url


def grid_rows(c) -> list[dict]:
    """The cells on screen, in grid order: image id and its row's figures."""
    return c.js(f"""() => {{ const G = {G}; const out = [];
        for (const i of [...G.cells.keys()].sort((a, b) => a - b)) {{ const r = G.pages.row(i);
            if (r) out.push({{ id: r.id, iou: r.iou, pixels: r.pixels, img: !!G.cells.get(i).querySelector('img').src }}); }}
        return out; }}""")


def wait_for(c, cond, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if c.js(cond):
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {cond}")


def test_sort_by_iou_a_confusion_cell_and_open_on_label(app, artifacts):
    from playwright.sync_api import sync_playwright
    st, url = app
    with sync_playwright() as pw:
        browser = launch(pw)
        c = open_page(browser, url)
        page = c.page
        c.wait_image()
        page.get_by_role("tab", name="Explore").click()
        wait_for(c, f"() => {G}.total === 14 && {G}.cells.size === 14")
        # sorted by IoU, lowest first (the screen's default): the cells in that order
        rows = grid_rows(c)
        ious = [r["iou"] for r in rows]
        assert [v for v in ious if v is not None] == sorted(v for v in ious if v is not None)
        assert ious[-4:] == [None] * 4 and all(r["img"] for r in rows)
        want = [im_id for im_id, _ in sorted(((i, st.store.image_metrics_of(i)["iou"]) for i in
                                              [r["id"] for r in rows] if st.store.image_metrics_of(i)["iou"] is not None),
                                             key=lambda t: (t[1], t[0]))]
        assert [r["id"] for r in rows][:10] == want
        # highest first
        page.get_by_label("highest first").check()
        wait_for(c, f"() => {{ const r = {G}.pages.row(0); return r && r.id === {want[-1]}; }}")
        page.screenshot(path=str(artifacts / "explore.png"))

        # the confusion matrix of all submitted images; click its largest off-diagonal cell
        page.get_by_label("all submitted images").check()
        conf = st.explore_confusion(DEMO_PROJECT, "annotated")
        m = np.array(conf["matrix"])
        np.fill_diagonal(m, 0)
        i, j = np.unravel_index(m.argmax(), m.shape)
        wait_for(c, "() => { const d = document.querySelector('#segui-explore-confusion .js-plotly-plot');"
                    " return d && d.__exgBound && d.layout && d.layout.title.text.includes('all submitted'); }")
        x, y = c.js("""([i, j]) => { const d = document.querySelector('#segui-explore-confusion .js-plotly-plot');
            const L = d._fullLayout, xa = L.xaxis, ya = L.yaxis, box = d.getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(j), box.top + ya._offset + ya.l2p(i)]; }""", [int(i), int(j)])
        page.mouse.click(x, y)
        wait_for(c, f"() => {{ const r = {G}.pages.row(0); return r && r.pixels !== null && r.pixels !== undefined; }}")
        wait_for(c, f"() => {G}.cells.size === {G}.total")
        cells = grid_rows(c)
        t, p = conf["indices"][i], conf["indices"][j]
        mv = st.model_version(DEMO_PROJECT)
        expect = {}
        for im in st.store.list_images(DEMO_PROJECT, status="submitted"):
            n = int(((st.store.get_annotation(im.id).class_map == t)
                     & (st.store.get_prediction(im.id, mv.id).class_map == p)).sum())
            if n:
                expect[im.id] = n
        assert [(r["id"], r["pixels"]) for r in cells] == sorted(expect.items(), key=lambda kv: (-kv[1], kv[0]))
        head = page.locator(".exg-head").inner_text()
        assert f"annotated {conf['names'][i]}, predicted {conf['names'][j]}" in head
        page.screenshot(path=str(artifacts / "explore-cell.png"), full_page=True)

        # a click on the first image opens it on the Label screen
        first = cells[0]["id"]
        page.locator(".exg-cell").first.click()
        wait_for(c, f"() => {{ const S = {S}; return S.img && S.img.id === {first}; }}")
        assert page.get_by_role("tab", name="Label").get_attribute("aria-selected") == "true"
        assert not c.errors, c.errors
        browser.close()
