"""Decoding untrusted uploads with sr_app.images.decode_image."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.fuzz_images import encode, png_chunk
from sr_app.images import ImageError, decode_image


def png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG (gray, RGB or RGBA by the last axis) written by hand: Pillow cannot write 16-bit colour."""
    height, width, channels = values.shape
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` with the width and height in its header replaced (and the header CRC fixed)."""
    header = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png_chunk(b"IHDR", header) + png[33:]


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize(("fmt", "options"), [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True})])
def test_lossless_formats_round_trip(rgb: np.ndarray, fmt: str, options: dict[str, object]) -> None:
    decoded = decode_image(encode(Image.fromarray(rgb), fmt, **options))
    assert decoded.dtype == np.uint8 and decoded.shape == rgb.shape
    np.testing.assert_array_equal(decoded, rgb)


def test_path_and_bytes_agree(rgb: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(encode(Image.fromarray(rgb), "PNG"))
    np.testing.assert_array_equal(decode_image(path), decode_image(str(path)))
    np.testing.assert_array_equal(decode_image(path), rgb)


def test_jpeg_decodes_close_to_source() -> None:
    flat = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(flat), "JPEG", quality=95))
    assert np.abs(decoded.astype(int) - flat).max() <= 3


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    decoded = decode_image(encode(Image.fromarray(gray), "PNG"))
    assert decoded.shape == (3, 4, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], gray)


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 128, 129, 257, 32767, 65535]], dtype=np.uint16)
    decoded = decode_image(png16(values[:, :, None]))
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 0, 1, 1, 127, 255])
    decoded_tiff = decode_image(encode(Image.fromarray(values), "TIFF"))
    np.testing.assert_array_equal(decoded_tiff, decoded)


def test_16_bit_colour_keeps_its_high_byte() -> None:
    values = np.array([[[0, 65535, 32768], [1000, 40000, 256]]], dtype=np.uint16)
    decoded = decode_image(png16(values))
    np.testing.assert_array_equal(decoded, values >> 8)


def test_rgba_is_composited_on_white() -> None:
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 255, 128]]], dtype=np.uint8)
    decoded = decode_image(encode(Image.fromarray(rgba), "PNG"))
    np.testing.assert_array_equal(decoded[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(decoded[0, 1], [255, 255, 255])
    np.testing.assert_allclose(decoded[0, 2], [127, 127, 255], atol=1)


def test_palette_with_transparency() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 255, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    for fmt in ("PNG", "GIF"):
        decoded = decode_image(encode(image, fmt, transparency=0))
        np.testing.assert_array_equal(decoded[0], [[255, 255, 255], [10, 20, 30]])


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red ink
    decoded = decode_image(encode(cmyk, "JPEG", quality=95))
    assert decoded.shape == (16, 16, 3)
    assert decoded[..., 0].min() > 240 and decoded[..., 1:].max() < 15


def test_exif_orientation_is_applied(rgb: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display after rotating 90° clockwise
    decoded = decode_image(encode(Image.fromarray(rgb), "PNG", exif=exif))
    np.testing.assert_array_equal(decoded, np.rot90(rgb, k=-1))


def test_animated_gif_gives_its_first_frame() -> None:
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    decoded = decode_image(data)
    assert decoded.shape == (4, 4, 3)
    np.testing.assert_array_equal(decoded[0, 0], [255, 0, 0])


def test_one_pixel_image_is_accepted() -> None:
    decoded = decode_image(encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"))
    np.testing.assert_array_equal(decoded, [[[1, 2, 3]]])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text\n", "not an image"),
        (b"GIF89a" + b"\x00" * 3, "not an image"),
    ],
)
def test_non_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_truncated_and_corrupt_files_are_refused(rgb: np.ndarray) -> None:
    noisy = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        data = encode(Image.fromarray(noisy), fmt)
        with pytest.raises(ImageError, match="corrupt or truncated|not an image"):
            decode_image(data[: len(data) // 2])
    png = bytearray(encode(Image.fromarray(noisy), "PNG"))
    png[len(png) // 2] ^= 0xFF  # breaks the IDAT checksum
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_image(bytes(png))


def test_size_limit_is_checked_from_the_header() -> None:
    small = encode(Image.new("RGB", (10, 10)), "PNG")
    claims_big = with_png_size(small, 3000, 2000)  # header only: its pixel data would not decode
    with pytest.raises(ImageError, match=r"3000×2000 = 6,000,000 pixels.*at most 4,000,000 pixels \(about 2000×2000\)"):
        decode_image(claims_big, max_pixels=4_000_000)
    with pytest.raises(ImageError, match="at most 99 pixels"):
        decode_image(small, max_pixels=99)
    assert decode_image(small, max_pixels=100).shape == (10, 10, 3)


def test_decompression_bomb_is_refused() -> None:
    bomb = with_png_size(encode(Image.new("1", (8, 8)), "PNG"), 30_000, 30_000)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(bomb, max_pixels=None)


def test_float_images_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="floating-point"):
        decode_image(encode(Image.new("F", (4, 4), 0.5), "TIFF"))
    with pytest.raises(ImageError, match="Cannot read the file missing.png"):
        decode_image(tmp_path / "missing.png")
