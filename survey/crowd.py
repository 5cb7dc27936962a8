"""The checks of a crowd study (ITU-T P.808's crowdsourcing method, adapted to images): which a study runs
(:class:`CrowdChecks`, :data:`CROWD` for ``survey create --crowd``), the images its trapping and training items show,
and the qualification a rater's browser must pass to start.

- **Trapping items** (P.808's "trapping questions"): a photo of the study with a visible instruction drawn across it,
  "Quality check: please answer 2 (Poor)" (ACR, :func:`trap_version`), or, for pair comparison, a pair of one photo
  and a visibly damaged version of it (:func:`broken_version`). They are mixed into every rater's order like any
  stimulus, look like one until read, and are left out of the analysis; a rater who answers one otherwise fails it.
- **Training round** (P.808's training section): versions of a photo outside the study across the scale (the
  original, the study's methods, nearest-neighbour ×4; PC: pairs of them), answered before the study and never
  analysed; shown again when the rater comes back after a pause longer than ``training_pause_s``.
- **Qualification** (P.808's environment check, :func:`qualification_problem`): the browser window must hold the
  largest photo at 1:1 in device pixels; a rater whose window is smaller is told so and cannot start.
- **Completion code only for passing raters** (``withhold_code``): a rater whose own answers fail a check that needs
  no other rater (trap, gold, too fast, straight-lining: :func:`survey.screening.own_answer_reasons`) is told why
  and gets no code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sr_app.resize import magnify
from survey.db import ACR_LABELS
from survey.errors import SurveyError

#: The scores ACR trapping items ask for, in turn: both ends and both sides of the middle, never the middle itself
#: (which a careless rater gives most).
TRAP_SCORES = (2, 4, 1, 5)
#: Side of the blocks and strength of the noise that damage the broken version of a PC trapping pair.
BROKEN_BLOCK, BROKEN_NOISE_SD = 8, 40.0


@dataclass(frozen=True)
class CrowdChecks:
    """Which crowd checks a study runs (all off by default): ``traps`` trapping items per rater, ``training_items``
    training stimuli (ACR) or pairs (PC) before the study, shown again after a pause of more than
    ``training_pause_s`` seconds (0: never), the ``qualification`` of the rater's window, and ``withhold_code``: the
    completion code only for raters who pass their own checks."""

    traps: int = 0
    training_items: int = 0
    training_pause_s: int = 0
    qualification: bool = False
    withhold_code: bool = False

    def __post_init__(self) -> None:
        for name in ("traps", "training_items", "training_pause_s"):
            if getattr(self, name) < 0:
                raise SurveyError(f"The {name.replace('_', ' ')} cannot be negative; got {getattr(self, name)}.")


#: No crowd checks: the default of a study.
NO_CROWD_CHECKS = CrowdChecks()
#: ``survey create --crowd``: 2 trapping items, a training round of 4 that comes back after an hour away (P.808's
#: toolkit renews training after 60 minutes), the window check, and the code only for raters who pass. The command
#: also turns gold items on (ACR) and keeps the minimum viewing time at least its default.
CROWD = CrowdChecks(traps=2, training_items=4, training_pause_s=3600, qualification=True, withhold_code=True)


def trap_version(rgb: np.ndarray, score: int) -> np.ndarray:
    """``rgb`` with "Quality check: please answer <score> (<label>)" in black on a white band across its middle, in
    the largest default-font size that fits its width."""
    text = f"Quality check:\nplease answer\n{score} ({ACR_LABELS[score]})"
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    width, height = image.size
    size = max(4, height // 8)
    font = ImageFont.load_default(size=size)
    while size > 4 and draw.multiline_textbbox((0, 0), text, font=font)[2] > 0.9 * width:
        size -= 1
        font = ImageFont.load_default(size=size)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, align="center")
    x, y = (width - (right - left)) // 2, (height - (bottom - top)) // 2
    draw.rectangle((0, y - size // 2, width, y + bottom - top + size // 2), fill="white")
    draw.multiline_text((x - left, y - top), text, font=font, fill="black", align="center")
    return np.asarray(image)


def broken_version(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """``rgb`` visibly damaged: averaged over :data:`BROKEN_BLOCK`-pixel blocks (Pillow's box reduction), magnified
    back by nearest neighbour and covered in strong colour noise."""
    height, width = rgb.shape[:2]
    blocks = np.asarray(Image.fromarray(rgb).reduce(BROKEN_BLOCK))
    blocky = magnify(blocks, BROKEN_BLOCK)[:height, :width].astype(float)
    noise = np.random.default_rng(seed).normal(0, BROKEN_NOISE_SD, blocky.shape)
    return np.clip(blocky + noise, 0, 255).round().astype(np.uint8)


def qualification_problem(
    largest: tuple[int, int], viewport: tuple[int | None, int | None], device_pixel_ratio: float | None
) -> str:
    """Why a browser window of ``viewport`` CSS pixels (width, height) at ``device_pixel_ratio`` cannot show the
    ``largest`` photo (width, height) at 1:1 in device pixels, in words for the rater; "" when it can."""
    width, height = viewport
    if width is None or height is None or device_pixel_ratio is None:
        return (
            "Your browser did not say how large its window is, which this survey needs to know. Please open the link "
            "in an up-to-date browser."
        )
    device = (round(width * device_pixel_ratio), round(height * device_pixel_ratio))
    if device[0] >= largest[0] and device[1] >= largest[1]:
        return ""
    return (
        f"This survey shows photos of {largest[0]}×{largest[1]} pixels, which need a browser window of at least that "
        f"many screen pixels; yours has {device[0]}×{device[1]}. Please use a larger screen, or enlarge the window, "
        "and open the link again."
    )
