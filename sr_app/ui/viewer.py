"""The comparison viewer: N images of one size on one camera, in the browser.

A main view shows one image at a time (keys 1–9 or a click on the strip flip it in place); a strip below shows every
image. All views pan (drag) and zoom (wheel, pinch, + and -) together, continuously from fit-to-screen up to 16
device pixels per image pixel, nearest neighbour when magnified; 1:1 shows one image pixel per device pixel
(``devicePixelRatio`` accounted for, positions snapped to whole device pixels); F or the button toggles full screen;
every view is labelled, and an image with a :class:`Scale` (a difference image, an SSIM map) shows it as a grey bar
in the main view. **Split** (or S) shows two images in the main view, left and right of a divider that the pointer or
the arrow keys move, picked in two selects (the left one is the main view's image: keys and strip pick it too); both
halves are one view on one camera, so they always show the same region. The box the main view shows is kept on the
viewer's element (``data-cx``, ``data-cy``, ``data-side``, ``data-magnification``) for the Compare tab's Export figure
button.

Python writes the markup (:func:`viewer_html`), ``viewer.js`` (run by ``gr.HTML``'s ``js_on_load``) moves the
images, ``viewer.css`` lays the views out. The images are PNG files the server already holds, served as static files
(see :func:`file_url`), so the browser gets the lossless bytes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import gradio as gr

HERE = Path(__file__).resolve().parent
VIEWER_JS = (HERE / "viewer.js").read_text()
VIEWER_HEAD = f"<style>{(HERE / 'viewer.css').read_text()}</style>"
#: Keys that show an image in the main view: 1–9, so at most nine images have a key.
MAX_KEYED = 9
HINT = (
    "Drag to pan · wheel or pinch to zoom · double-click: 1:1 · keys 1–9 flip the main view · 0 fit · F full screen · "
    "S split"
)


@dataclass(frozen=True)
class Scale:
    """What an image's grey levels stand for: its black (``low``), its white (``high``), and a ``note``."""

    low: str
    high: str
    note: str = ""


@dataclass(frozen=True)
class View:
    """One image of the viewer: its label, its PNG file (all of a viewer's images have one size), and its scale when
    its grey levels are a measure."""

    label: str
    path: Path
    scale: Scale | None = None


def file_url(path: Path) -> str:
    """The address, relative to the app's page, at which Gradio serves ``path`` (inside a static path)."""
    return "gradio_api/file=" + quote(str(Path(path).resolve()))


def viewer_html(views: Sequence[View], size: tuple[int, int], main: int = 0) -> str:
    """The viewer's markup for ``views`` of ``size`` (height, width) in pixels, showing ``views[main]`` first."""
    height, width = size
    style = f"width:{width}px;height:{height}px"

    def label(index: int, view: View) -> str:
        key = f"<b>{index + 1}</b> " if index < MAX_KEYED else ""
        return f'<span class="srv-label" data-index="{index}">{key}{html.escape(view.label)}</span>'

    def image(index: int, view: View) -> str:
        alt = html.escape(view.label, quote=True)
        return f'<img src="{file_url(view.path)}" alt="{alt}" style="{style}" data-index="{index}" draggable="false">'

    def scale(index: int, view: View) -> str:
        if view.scale is None:
            return ""
        low, high, note = (html.escape(text) for text in (view.scale.low, view.scale.high, view.scale.note))
        note = f" <small>{note}</small>" if note else ""
        return f'<span class="srv-scale" data-index="{index}">{low} <i></i> {high}{note}</span>'

    def pick(side: str) -> str:
        options = "".join(f'<option value="{i}">{html.escape(view.label)}</option>' for i, view in enumerate(views))
        return f'<label class="srv-pick">{side.title()} <select data-side="{side}">{options}</select></label>'

    main_view = "".join(image(i, view) + label(i, view) + scale(i, view) for i, view in enumerate(views))
    divider = (
        '<div class="srv-divider" role="separator" tabindex="0" aria-orientation="vertical" '
        'aria-label="Split position (arrow keys move it)" aria-valuemin="0" aria-valuemax="100"></div>'
    )
    strip = "".join(
        f'<div class="srv-view" data-index="{i}">{image(i, view)}{label(i, view)}</div>' for i, view in enumerate(views)
    )
    return (
        f'<div class="srv" data-width="{width}" data-height="{height}" data-main="{main}">'
        '<div class="srv-bar"><button type="button" data-act="fit">Fit</button>'
        '<button type="button" data-act="one">1:1</button><button type="button" data-act="out">−</button>'
        '<span class="srv-zoom"></span><button type="button" data-act="in">+</button>'
        '<button type="button" data-act="full">Full screen</button>'
        f'<button type="button" data-act="split">Split</button>{pick("left")}{pick("right")}'
        f'<span class="srv-hint">{HINT}</span></div>'
        f'<div class="srv-view srv-main">{main_view}{divider}</div><div class="srv-strip">{strip}</div></div>'
    )


def empty_html(text: str) -> str:
    """What the viewer shows before there is anything to compare."""
    return f'<div class="srv-empty">{html.escape(text)}</div>'


def viewer_component(value: str, elem_id: str = "viewer") -> gr.HTML:
    """The viewer as a Gradio component, showing ``value`` (from :func:`viewer_html` or :func:`empty_html`)."""
    return gr.HTML(
        value, js_on_load=VIEWER_JS, head=VIEWER_HEAD, apply_default_css=False, elem_id=elem_id, min_height=120
    )
