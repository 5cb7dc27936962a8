"""Per-rater random orders: :func:`playlist` (every stimulus of an ACR study) and :func:`pair_schedule` (every pair of
conditions on every image of a PC study), never showing one image twice in a row. Pure functions of their inputs and a
random generator; :mod:`survey.raters` stores their result for each new rater."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Hashable, Sequence
from operator import itemgetter


def playlist(image_of: Sequence[Hashable], rng: random.Random) -> list[int]:
    """A random order of ``range(len(image_of))`` in which no two consecutive items share an image.

    ``image_of[i]`` is the image of stimulus ``i``. Each step picks uniformly among the stimuli that keep the
    rest arrangeable (after an item of image ``c``, the ``r`` items left need every image to hold at most
    ``ceil(r / 2)`` of them and ``c`` at most ``floor(r / 2)``), so the result is always valid when one exists:
    no image holds more than half the stimuli (rounded up). Raises :class:`ValueError` otherwise. O(n × images).
    """
    pools: dict[Hashable, list[int]] = {}
    for index, image in enumerate(image_of):
        pools.setdefault(image, []).append(index)
    order: list[int] = []
    previous: Hashable = None
    for rest in range(len(image_of) - 1, -1, -1):
        (top, top_count), *runner_up = heapq.nlargest(2, ((i, len(p)) for i, p in pools.items()), key=itemgetter(1))
        second_count = runner_up[0][1] if runner_up else 0

        images = [
            image
            for image, pool in pools.items()
            if image != previous
            and len(pool) - 1 <= rest // 2  # this image again, every other place from the second
            and (second_count if image == top else top_count) <= (rest + 1) // 2  # any other image
        ]
        if not images:
            raise ValueError("No order avoids showing one image twice in a row: one image has too many versions.")
        previous = rng.choices(images, weights=[len(pools[image]) for image in images])[0]
        pool = pools[previous]
        order.append(pool.pop(rng.randrange(len(pool))))
        if not pool:
            del pools[previous]
    return order


def pair_schedule(
    stimuli: Sequence[tuple[Hashable, Hashable]], rater_number: int, rng: random.Random
) -> list[tuple[Hashable, Hashable]]:
    """A pair comparison rater's trials as (version A, version B): every pair of versions of every image once, in a
    random order that never shows one image twice in a row (:func:`playlist`).

    ``stimuli`` are (stimulus, image) with the conditions in the same order for every image. ``rater_number``
    (0, 1, 2... in the order raters start) balances the sides: each trial shows its two versions in the opposite
    order to the next rater, and the orders alternate over the pairs and images of one rater, so every condition is
    version A about half of the time.
    """
    versions: dict[Hashable, list[Hashable]] = {}
    for stimulus, image in stimuli:
        versions.setdefault(image, []).append(stimulus)
    trials, image_of = [], []
    for j, (image, image_versions) in enumerate(versions.items()):
        for k, (a, b) in enumerate(itertools.combinations(image_versions, 2)):
            trials.append((b, a) if (j + k + rater_number) % 2 else (a, b))
            image_of.append(image)
    return [trials[i] for i in playlist(image_of, rng)]
