"""Hostile uploads through the live Compare API: every one answered clearly, the server keeps serving.

    python benchmarks/fuzz_images.py [--port 0] [--keep DIR]

Builds a fuzz corpus in a temporary folder (corrupt headers, truncated PNG and JPEG, 0 bytes, random bytes,
a text file named .png, an SVG, 1×1, 65535×1 and 1×65535, decompression bombs that declare a huge size in a
tiny file, 16-bit, CMYK, palette with transparency, animated GIF, 32-bit float TIFF), starts ``python app.py``
as a subprocess with a fresh data folder, and sends each file to ``/upscale`` with ``gradio_client``, each
followed by a good upload. A file passes when it is refused with the expected message (no traceback) or, if
it is a legitimately decodable image, upscaled to 4× its size, and the good upload after it still works.
Prints one line per file and the server's peak resident memory (``VmHWM``); exits 1 if any file fails.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.live_app import LiveApp  # noqa: E402
from sr_app.comparison import UPSCALE  # noqa: E402
from sr_app.images import load_rgb  # noqa: E402
from sr_app.upscalers import SCALE  # noqa: E402

#: The messages of the app's refusals, by kind (regular expressions matched against the client's exception).
NOT_AN_IMAGE = "not an image this app can read"
CORRUPT = "corrupt or truncated"
BOMB = "decompression bomb"
TOO_LARGE = r"this app accepts at most [\d,]+ pixels"
WRONG_TYPE = "Invalid file type"  # Gradio's own check of the upload's suffix, before our handler runs


@dataclass(frozen=True)
class Case:
    """One fuzz file: ``expect`` is a regular expression the error must match, or ``None`` when the file is a
    valid image of ``shape`` (height, width) that must be upscaled."""

    name: str
    path: Path
    expect: str | None
    shape: tuple[int, int] | None = None


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: Callable[[], bytes]) -> bytes:
    """A PNG built by hand: ``rows()`` gives the filtered scanlines, compressed here (level 9)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows(), 9))
        + png_chunk(b"IEND", b"")
    )


def zeros_png(width: int, height: int) -> bytes:
    """A black 8-bit grayscale PNG of ``width`` × ``height``: a few kB on disk per 10⁸ pixels."""
    return raw_png(width, height, 8, 0, lambda: bytes(height * (width + 1)))


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` with the size in its header replaced (and the header's checksum fixed)."""
    return png[:8] + png_chunk(b"IHDR", struct.pack(">II", width, height) + png[24:29]) + png[33:]


def rgb16_png(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG of a uint16 HWC array (Pillow cannot write one)."""
    height, width, _ = rgb16.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb16.astype(">u2").view(np.uint8).reshape(height, -1)], 1)
    return raw_png(width, height, 16, 2, rows.tobytes)


def build_corpus(folder: Path, seed: int = 0) -> list[Case]:
    """Write the fuzz files into ``folder`` and return them with what the app must answer."""
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    png = encode(Image.fromarray(photo), "PNG")
    jpeg = encode(Image.fromarray(photo), "JPEG", quality=90)
    bad_ihdr = bytearray(png)
    bad_ihdr[16:24] = b"\xff" * 8  # width and height 0xFFFFFFFF: the IHDR checksum no longer matches
    bad_sof = bytearray(jpeg)
    sof = jpeg.index(b"\xff\xc0")
    bad_sof[sof + 4 : sof + 9] = b"\x00" * 5  # precision 0, height 0, width 0
    corrupt_jpeg = bytearray(jpeg)
    corrupt_jpeg[len(jpeg) // 2 : len(jpeg) // 2 + 64] = bytes(64)
    palette = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    frames = [Image.fromarray(np.full((20, 30, 3), value, np.uint8)).convert("P") for value in (0, 128, 255)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>\n'
    files: dict[str, tuple[bytes, str | None, tuple[int, int] | None]] = {
        "empty.png": (b"", "empty", None),
        "random.png": (rng.bytes(4096), NOT_AN_IMAGE, None),
        "random.jpg": (b"\xff\xd8\xff\xe0" + rng.bytes(4096), f"{CORRUPT}|{NOT_AN_IMAGE}", None),
        "text.png": (b"This is a text file, not a picture.\n", NOT_AN_IMAGE, None),
        "drawing.svg": (svg, WRONG_TYPE, None),
        "bad_ihdr.png": (bytes(bad_ihdr), f"{CORRUPT}|{NOT_AN_IMAGE}", None),
        "bad_sof.jpg": (bytes(bad_sof), f"{CORRUPT}|{NOT_AN_IMAGE}", None),
        "truncated.png": (png[: len(png) // 2], CORRUPT, None),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], CORRUPT, None),
        "corrupt_scan.jpg": (bytes(corrupt_jpeg), None, photo.shape[:2]),  # libjpeg conceals damaged blocks
        "header_bomb.png": (with_png_size(zeros_png(1, 1), 65_535, 65_535), BOMB, None),  # 4.3 × 10⁹ px claimed
        "zlib_bomb.png": (zeros_png(10_000, 10_000), BOMB, None),  # 10⁸ px in ~100 kB
        "too_large.png": (zeros_png(4_000, 1_001), TOO_LARGE, None),
        "one_pixel.png": (encode(Image.new("RGB", (1, 1), (200, 30, 60)), "PNG"), None, (1, 1)),
        "wide_65535x1.png": (zeros_png(65_535, 1), None, (1, 65_535)),
        "tall_1x65535.png": (zeros_png(1, 65_535), None, (65_535, 1)),
        "gray16.png": (encode(Image.fromarray(photo[..., 0].astype(np.uint16) * 257), "PNG"), None, (24, 32)),
        "rgb16.png": (rgb16_png(photo.astype(np.uint16) * 257), None, (24, 32)),
        "cmyk.jpg": (encode(Image.fromarray(photo).convert("CMYK"), "JPEG"), None, (24, 32)),
        "palette_transparent.png": (encode(palette, "PNG", transparency=3), None, (24, 32)),
        "animated.gif": (animated.getvalue(), None, (20, 30)),
        "float32.tif": (encode(Image.fromarray(photo[..., 0].astype(np.float32)), "TIFF"), "floating-point", None),
    }
    cases = []
    for name, (data, expect, shape) in files.items():
        (folder / name).write_bytes(data)
        cases.append(Case(name, folder / name, expect, shape))
    return cases


def good_image(folder: Path) -> Path:
    """A valid 20×16 PNG to send after every fuzz file."""
    path = folder / "good.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(path)
    return path


def check(client: Client, case: Case, good: Path) -> str:
    """Send ``case`` then the good image; return what the app answered, or raise ``AssertionError`` saying how
    it failed (wrong or unclear message, wrong output size, the good image failing after it)."""
    try:
        files, _ = client.predict(handle_file(str(case.path)), UPSCALE, api_name="/upscale")
    except Exception as error:  # gradio_client raises AppError for gr.Error, ValueError for its own checks
        message = str(error)
        if case.expect is None:
            raise AssertionError(f"{case.name}: refused a valid image: {message}") from error
        if not re.search(case.expect, message) or "Traceback" in message:
            raise AssertionError(f"{case.name}: unclear error {message!r}, expected /{case.expect}/") from error
        answer = f"refused: {message.splitlines()[0][:110]}"
    else:
        if case.expect is not None:
            raise AssertionError(f"{case.name}: accepted, expected an error /{case.expect}/")
        assert case.shape is not None
        height, width = case.shape
        upscaled = load_rgb(files[1]).shape[:2]  # the bicubic result (files[0] is the input, magnified)
        if upscaled != (height * SCALE, width * SCALE):
            raise AssertionError(f"{case.name}: output {upscaled}, expected {height * SCALE}×{width * SCALE}")
        answer = f"upscaled to {upscaled[1]}×{upscaled[0]}"
    good_files, _ = client.predict(handle_file(str(good)), UPSCALE, api_name="/upscale")
    good_shape = load_rgb(good_files[1]).shape[:2]
    if good_shape != (20 * SCALE, 16 * SCALE):
        raise AssertionError(f"{case.name}: the good image after it came back {good_shape}")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="write the corpus here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus_dir = args.keep or Path(tmp) / "corpus"
        corpus_dir.mkdir(parents=True, exist_ok=True)
        cases = build_corpus(corpus_dir)
        good = good_image(corpus_dir)
        app = LiveApp(Path(tmp) / "data")
        app.data_dir.mkdir()
        app.start()
        failures = []
        try:
            client = Client(app.url, verbose=False, download_files=str(Path(tmp) / "downloads"))
            start_rss = app.peak_rss_mib()
            for case in cases:
                try:
                    answer = check(client, case, good)
                except AssertionError as failure:
                    failures.append(str(failure))
                    answer = f"FAIL {failure}"
                alive = "serving" if app.alive() else "SERVER DIED"
                print(f"{case.name:<22} {case.path.stat().st_size:>9,} B  {alive:<8} {answer}", flush=True)
                if not app.alive():
                    failures.append(f"{case.name}: the server died")
                    break
            print(f"server peak RSS (VmHWM): {start_rss:.0f} MiB after start-up, {app.peak_rss_mib():.0f} MiB after "
                  f"{len(cases)} fuzz files + {len(cases)} good uploads")  # fmt: skip
        finally:
            app.stop()
    print(f"{len(cases) - len(failures)} of {len(cases)} files answered correctly")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
