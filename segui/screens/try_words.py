"""The *Try words* view: drop an image, type words, see each word's heatmap and the
segmentation they make together. No project needed; made to be read on a projector
(large type, a thick high-contrast colour bar, a legend with each word's share).

The view is one ``gr.HTML`` built here from what :meth:`Studio.try_words_file`
returns: the segmentation (the photo with the mask over it, the mask alone on hover)
with its legend, one tile per word (its probability as viridis over the photo in
grey), and the colour bar. Each picture is an ``<img>`` of its own (a data URL), so
the page can read its pixels. A JSON summary goes out alongside it for scripts.
"""
from __future__ import annotations

import base64
import html
import io

import gradio as gr
import numpy as np
from PIL import Image

from ..guard import user_errors
from ..handlers import Studio
from ..imageops import VIRIDIS_STOPS, grey, heat_rgba, paint

TRY_CSS = """
.tw-root { font-size: 22px; line-height: 1.3; color: var(--body-text-color); }
.tw-status { font-size: 18px; margin: 0 0 10px; }
.tw-top { display: flex; gap: 28px; align-items: flex-start; flex-wrap: wrap; }
.tw-side { display: flex; flex-direction: column; gap: 12px; flex: 1 1 360px; }
.tw-stack { position: relative; display: block; line-height: 0; }
.tw-stack img { display: block; width: 100%; height: auto; }
.tw-stack img + img { position: absolute; inset: 0; }
.tw-seg { margin: 0; flex: 0 1 500px; min-width: 300px; }
.tw-seg .tw-mask { opacity: 0.6; transition: opacity .15s; }
.tw-seg:hover .tw-mask { opacity: 1; }
.tw-side-title { font-size: 24px; font-weight: 700; }
.tw-legend { list-style: none; margin: 0; padding: 0; font-size: 30px; }
.tw-legend li { display: flex; align-items: center; gap: 12px; margin: 0 0 8px; }
.tw-legend b { font-weight: 700; }
.tw-pct { font-size: 24px; font-weight: 600; }
.tw-swatch { display: inline-block; width: 30px; height: 30px; border: 2px solid #000; border-radius: 4px; flex: none; }
.tw-grid { display: grid; gap: 16px; margin-top: 18px; }
.tw-tile { margin: 0; }
.tw-tile figcaption { font-size: 28px; font-weight: 700; margin-top: 4px; display: flex; align-items: center;
  gap: 10px; flex-wrap: wrap; }
.tw-tile figcaption small { font-size: 19px; font-weight: 600; }
.tw-bar { font-size: 20px; font-weight: 700; }
.tw-gradient { height: 32px; border: 2px solid #000; border-radius: 3px; margin-top: 4px; }
.tw-ticks { display: flex; justify-content: space-between; font-size: 24px; font-weight: 700; }
.tw-empty { font-size: 24px; padding: 30px 0; }
#segui-try-words textarea, #segui-try-words input { font-size: 26px !important; }
#segui-try-show, #segui-try-demo { font-size: 22px; }
#segui-try-view[data-busy="1"] .tw-root { opacity: 0.35; transition: opacity .2s; }
#segui-try-view[data-busy="1"]::before { content: "Working: the model reads the words..."; display: block;
  font-size: 24px; font-weight: 700; padding: 6px 0; }
"""

BUSY_JS = "() => { const v = document.querySelector('#segui-try-view'); if (v) v.dataset.busy = '1'; return []; }"
IDLE_JS = "() => { const v = document.querySelector('#segui-try-view'); if (v) v.dataset.busy = ''; return []; }"

EMPTY = ('<div class="tw-root"><p class="tw-empty">Drop an image, type words separated by commas '
         '(e.g. <b>sky, road, tree, car</b>) and press <b>Show</b>; or press <b>Demo street image</b>.</p></div>')


def _data_url(arr: np.ndarray, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 88} if fmt == "JPEG" else {"compress_level": 1}))
    mime = "jpeg" if fmt == "JPEG" else "png"
    return f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def gradient_css() -> str:
    stops = ", ".join(f"rgb{c}" for c in VIRIDIS_STOPS)
    return f"background: linear-gradient(to right, {stops});"


def columns(n: int) -> int:
    """Tiles per row: all in one row up to 5 words, else two rows."""
    return n if n <= 5 else -(-n // 2)


def view_html(r: dict) -> str:
    """The view for one result of :meth:`Studio.try_words` (names escaped)."""
    image = r["image"]
    photo = _data_url(image, "JPEG")
    under = _data_url(grey(image), "JPEG")
    rest_out = bool(r["hidden"])
    rgb = paint(r["class_map"], r["colors"])
    if rest_out:     # what none of the words won: no colour over the photo
        rgb = np.dstack([rgb, np.where(r["class_map"] < len(r["words"]), 255, 0).astype(np.uint8)])
    mask = _data_url(rgb)
    h, w = r["size"]
    legend = "".join(
        f'<li data-word="{html.escape(n)}"><span class="tw-swatch" style="background:{c}"></span>'
        f'<b>{html.escape(n)}</b> <span class="tw-pct">{100 * s:.0f}%</span></li>'
        for n, c, s in zip(r["words"], r["colors"], r["shares"]))
    if rest_out:
        legend += ('<li data-word=""><span class="tw-swatch" style="background:transparent"></span>'
                   f'none of them <span class="tw-pct">{100 * r["none"]:.0f}%</span></li>')
    tiles = "".join(
        f'<figure class="tw-tile" data-word="{html.escape(n)}"><div class="tw-stack">'
        f'<img class="tw-under" alt="" src="{under}"><img class="tw-heat" alt="heatmap of {html.escape(n)}" '
        f'src="{_data_url(heat_rgba(m))}"></div><figcaption><span class="tw-swatch" style="background:{c}"></span>'
        f'{html.escape(n)} <small>wins {100 * s:.0f}% · peak {p:.2f}</small></figcaption></figure>'
        for n, c, m, s, p in zip(r["words"], r["colors"], r["maps"], r["shares"], r["peaks"]))
    how = "embeddings cached" if r["cached"] else "one forward pass"
    if rest_out:
        status = (f'{len(r["words"])} words on a {w}×{h} image in {r["ms"] / 1000:.2f} s ({how}). The model also '
                  f'weighed {len(r["hidden"])} common scene words ({html.escape(", ".join(r["hidden"]))}); what '
                  'they win is none of the words and left uncoloured.')
    elif r.get("rest_out"):
        status = (f'{len(r["words"])} words on a {w}×{h} image in {r["ms"] / 1000:.2f} s ({how}). Every common '
                  'scene word sits too close to one of the words typed, so every pixel still goes to the word '
                  'most likely there.')
    else:
        status = (f'{len(r["words"])} words on a {w}×{h} image in {r["ms"] / 1000:.2f} s ({how}). Every pixel goes '
                  'to the word most likely there: add a catch-all word such as <i>background</i> for the rest, '
                  'or tick <i>leave the rest out</i>.')
    among = "the words typed and the scene words" if rest_out else "the words typed"
    bar = (f'<div class="tw-bar">Heatmaps: probability of the word, among {among}'
           f'<div class="tw-gradient" style="{gradient_css()}"></div>'
           '<div class="tw-ticks"><span>0</span><span>0.25</span><span>0.5</span><span>0.75</span><span>1</span>'
           '</div></div>')
    return (f'<div class="tw-root" data-words="{html.escape(",".join(r["words"]))}">'
            f'<p class="tw-status">{status}</p>'
            f'<div class="tw-top"><figure class="tw-seg"><div class="tw-stack">'
            f'<img class="tw-photo" alt="the image" src="{photo}">'
            f'<img class="tw-mask" alt="segmentation" src="{mask}"></div></figure>'
            '<div class="tw-side"><div class="tw-side-title">The segmentation the words make together '
            f'(hover it: the mask alone)</div><ul class="tw-legend">{legend}</ul>{bar}</div></div>'
            f'<div class="tw-grid" style="grid-template-columns: repeat({columns(len(r["words"]))}, minmax(0, 1fr))">'
            f'{tiles}</div></div>')


def summary(r: dict) -> dict:
    """What a script gets besides the view."""
    return {"words": r["words"], "colors": r["colors"], "shares": r["shares"], "peaks": r["peaks"],
            "none": r["none"], "hidden": r["hidden"],
            "size": list(r["size"]), "cached": r["cached"], "ms": r["ms"]}


def image_path_in(payload):
    """The image box's ``preprocess``: the uploaded file's path, not decoded here (the
    handler reads it within the limits, ``segui.try_words.read_try_image``); an image
    sent inline as a data URL is refused (Gradio would decode it before any check)."""
    if payload is None:
        return None
    url = getattr(payload, "url", None) or ""
    if url.startswith("data:"):
        raise gr.Error("send the image as a file upload, not inline")
    return getattr(payload, "path", None)


def try_words_screen(studio: Studio) -> gr.Blocks:
    with gr.Blocks() as blocks:
        gr.Markdown("### Try words: any image, any words, no project\n"
                    "The model reads the words: each one's map is the probability it gives that word at each "
                    "pixel, among the words typed (and, with the rest left out, some common scene words: what "
                    "those win is none of the words).", elem_id="segui-try-intro")
        with gr.Row(equal_height=False):
            image = gr.Image(label="Image (drop one here)", type="filepath", image_mode=None, format="png",
                             sources=["upload", "clipboard"], height=200, elem_id="segui-try-image", scale=1)
            image.preprocess = image_path_in
            with gr.Column(scale=2):
                words = gr.Textbox(label="Words, separated by commas", placeholder="sky, road, tree, car, person",
                                   lines=1, max_lines=3, elem_id="segui-try-words")
                with gr.Row():
                    show = gr.Button("Show", variant="primary", elem_id="segui-try-show")
                    demo = gr.Button("Demo street image", elem_id="segui-try-demo")
                    rest = gr.Checkbox(False, label="Leave the rest out (what is none of the words)",
                                       elem_id="segui-try-rest")
        view = gr.HTML(EMPTY, css_template=TRY_CSS, js_on_load=None, elem_id="segui-try-view")
        info = gr.JSON(visible=False)

        @user_errors
        def on_try(path, text, rest_out=False):
            r = studio.try_words_file(path, text, others_unlabelled=bool(rest_out))
            return view_html(r), summary(r)

        @user_errors
        def on_demo():
            img, text = studio.try_words_demo()
            return img, text

        # Gradio's own progress tracker would leave an "Error" badge over the last result
        # after a refused request (the toast says why): the page dims the view instead
        quiet = dict(show_progress="hidden")
        for i, (trigger, fn, outs, name) in enumerate([
                (show.click, on_try, [view, info], "try_words"),
                (words.submit, on_try, [view, info], "try_words_submit"),
                (demo.click, on_demo, [image, words], "try_words_demo")]):
            trigger(None, None, None, js=BUSY_JS, api_name=f"try_words_busy_{i}")
            ev = trigger(fn, [image, words, rest] if fn is on_try else None, outs, api_name=name, **quiet)
            if fn is on_demo:
                ev = ev.success(on_try, [image, words, rest], [view, info], api_name="try_words_after_demo", **quiet)
            ev.then(None, None, None, js=IDLE_JS, api_name=f"try_words_idle_{i}")
    return blocks

