"""The figure every super-resolution paper has: the whole image with a box drawn on it, and the box of every image
magnified by nearest neighbour side by side, each labelled with its display title and, in ground-truth mode, its
PSNR/SSIM on the whole image.

:func:`compose_figure` lays the figure out from arrays (a pure function) and says where each part lies
(:class:`Figure`); :func:`write_figure` writes it as PNG and PDF. The Compare tab's **Export figure** button and its
``/export_figure`` endpoint (:mod:`sr_app.ui.compare`) use them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sr_app.comparison import Box, draw_box
from sr_app.resize import magnify

#: A part of the figure: left, top, width, height in figure pixels.
Rect = tuple[int, int, int, int]
#: At most this many crops in a row; more wrap into rows of equal length (5 crops: 3 + 2).
MAX_COLUMNS = 4
#: The captions' smallest font size in pixels; larger crops get a font of 1/12 of their side.
MIN_FONT_SIZE = 18
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
#: The PDF's resolution: how many figure pixels make an inch of its page.
PDF_DPI = 300


@dataclass(frozen=True)
class Panel:
    """One image's crop in the figure.

    Attributes:
        region: the box of the image at the output size, uint8 HWC RGB.
        title: the image's display name (:func:`sr_app.comparison.title`, "EDSR-SRGAN", "Original").
        score: (PSNR in dB, SSIM) of the whole image against the original, or ``None`` (upscale mode, the input, the
            original itself).
    """

    region: np.ndarray
    title: str
    score: tuple[float, float] | None = None

    @property
    def caption(self) -> list[str]:
        """The lines under the crop: the title, and with a score 'PSNR 30.12 dB · SSIM 0.8765' (the results table's
        rounding)."""
        if self.score is None:
            return [self.title]
        psnr, ssim = self.score
        return [self.title, f"PSNR {psnr:.2f} dB · SSIM {ssim:.4f}"]


@dataclass(frozen=True)
class Figure:
    """A composed figure and where its parts lie in it.

    Attributes:
        image: the figure, RGB on white.
        overview: where the whole image (with the box) lies.
        crops: where each panel's magnified crop lies, in the order of the panels.
        captions: each panel's caption lines (:attr:`Panel.caption`), written centred under its crop.
    """

    image: Image.Image
    overview: Rect
    crops: list[Rect]
    captions: list[list[str]]


def compose_figure(
    overview: np.ndarray, scale: int, box: Box, panels: Sequence[Panel], zoom: int, max_columns: int = MAX_COLUMNS
) -> Figure:
    """The figure of ``box`` (output pixels): ``overview`` (uint8 HWC RGB, one of its pixels spanning ``scale``
    output pixels) with the box drawn on the left, magnified by nearest neighbour to about the height of the crops;
    every panel's region magnified ``zoom`` times on its right, in rows of at most ``max_columns``, captioned."""
    crop_width, crop_height = box[3] * zoom, box[2] * zoom
    font_size = max(MIN_FONT_SIZE, round(crop_width / 12))
    font = ImageFont.load_default(size=font_size)
    margin, line_height = font_size, round(font_size * 1.3)
    captions = [panel.caption for panel in panels]
    widest = max(font.getlength(line) for caption in captions for line in caption)
    cell_width = max(crop_width, math.ceil(widest))
    cell_height = crop_height + margin // 2 + line_height * max(len(caption) for caption in captions)
    rows = math.ceil(len(panels) / max_columns)
    columns = math.ceil(len(panels) / rows)
    grid_height = rows * (cell_height + margin) - margin
    whole = draw_box(overview, box, scale)
    whole = magnify(whole, max(1, grid_height // whole.shape[0]))
    grid_left = margin + whole.shape[1] + margin
    width = grid_left + columns * (cell_width + margin)
    height = margin + max(whole.shape[0], grid_height) + margin

    image = Image.new("RGB", (width, height), WHITE)
    image.paste(Image.fromarray(whole), (margin, margin))
    draw = ImageDraw.Draw(image)
    crops = []
    for i, (panel, caption) in enumerate(zip(panels, captions, strict=True)):
        cell_left = grid_left + (i % columns) * (cell_width + margin)
        top = margin + (i // columns) * (cell_height + margin)
        left = cell_left + (cell_width - crop_width) // 2
        image.paste(Image.fromarray(magnify(panel.region, zoom)), (left, top))
        crops.append((left, top, crop_width, crop_height))
        for j, line in enumerate(caption):
            y = top + crop_height + margin // 2 + j * line_height
            draw.text((cell_left + cell_width / 2, y), line, fill=BLACK, font=font, anchor="ma")
    return Figure(image, (margin, margin, whole.shape[1], whole.shape[0]), crops, captions)


def write_figure(image: Image.Image, folder: Path, stem: str) -> tuple[Path, Path]:
    """Write ``image`` into ``folder`` as ``<stem>_figure.png`` (lossless) and ``<stem>_figure.pdf`` (one page of
    ``PDF_DPI``, the image as JPEG at the highest quality without chroma subsampling: Pillow's PDF writer stores RGB
    images as JPEG); returns their paths."""
    png, pdf = folder / f"{stem}_figure.png", folder / f"{stem}_figure.pdf"
    image.save(png)
    image.save(pdf, "PDF", resolution=PDF_DPI, quality=100, subsampling=0)
    return png, pdf
