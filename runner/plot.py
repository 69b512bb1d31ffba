"""loss.png without a plotting library: training loss (blue) and validation loss (orange) against the step,
with the axis ranges written in a small built-in digit font. Plain Python (zlib + PNG chunks)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

__all__ = ["write_loss_png"]

WIDTH, HEIGHT, MARGIN = 640, 360, 40
BLUE, ORANGE, GREY, BLACK, WHITE = (31, 119, 180), (255, 127, 14), (200, 200, 200), (40, 40, 40), (255, 255, 255)
# 3x5 digits and a few signs, one string of 15 bits a glyph (rows top to bottom)
GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
    "e": "000111101110011", "+": "000010111010000",
}


class Canvas:
    def __init__(self) -> None:
        self.pixels = bytearray(WHITE * (WIDTH * HEIGHT))

    def dot(self, x: int, y: int, colour: tuple[int, int, int], size: int = 1) -> None:
        for dx in range(size):
            for dy in range(size):
                px, py = x + dx, y + dy
                if 0 <= px < WIDTH and 0 <= py < HEIGHT:
                    i = 3 * (py * WIDTH + px)
                    self.pixels[i: i + 3] = bytes(colour)

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int], width: int = 1) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for s in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * s / steps), round(y0 + (y1 - y0) * s / steps), colour, width)

    def text(self, x: int, y: int, value: str, colour: tuple[int, int, int] = BLACK, scale: int = 2) -> None:
        for ch in value:
            glyph = GLYPHS.get(ch)
            if glyph:
                for i, bit in enumerate(glyph):
                    if bit == "1":
                        self.dot(x + (i % 3) * scale, y + (i // 3) * scale, colour, scale)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[3 * WIDTH * y: 3 * WIDTH * (y + 1)]) for y in range(HEIGHT))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + \
            chunk(b"IEND", b"")


def _fmt(value: float) -> str:
    return f"{value:.3g}".replace("e-0", "e-").replace("e+0", "e+")


def write_loss_png(path: str | Path, train: list[tuple[int, float]], validation: list[tuple[int, float]]) -> Path:
    """Draw the curves; non-finite losses are left out (a NaN run shows where it stopped)."""
    import math

    train = [(s, v) for s, v in train if math.isfinite(v)]
    validation = [(s, v) for s, v in validation if math.isfinite(v)]
    canvas = Canvas()
    points = train + validation
    if points:
        x_max = max(s for s, _ in points) or 1
        y_min, y_max = min(v for _, v in points), max(v for _, v in points)
        if y_max - y_min < 1e-9:
            y_min, y_max = y_min - 0.5, y_max + 0.5
        left, right, top, bottom = MARGIN + 30, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN

        def xy(step: int, value: float) -> tuple[int, int]:
            return (round(left + (right - left) * step / x_max),
                    round(bottom - (bottom - top) * (value - y_min) / (y_max - y_min)))

        for frac in (0.25, 0.5, 0.75):
            y = round(bottom - (bottom - top) * frac)
            canvas.line(left, y, right, y, GREY)
        canvas.line(left, top, left, bottom, BLACK)
        canvas.line(left, bottom, right, bottom, BLACK)
        for series, colour in ((train, BLUE), (validation, ORANGE)):
            for (s0, v0), (s1, v1) in zip(series, series[1:], strict=False):
                canvas.line(*xy(s0, v0), *xy(s1, v1), colour, 2)
            for s, v in series if len(series) == 1 else []:
                canvas.dot(*xy(s, v), colour, 4)
        canvas.text(4, top - 4, _fmt(y_max))
        canvas.text(4, bottom - 8, _fmt(y_min))
        canvas.text(left - 4, bottom + 10, "0")
        canvas.text(right - 8 * len(str(x_max)), bottom + 10, str(x_max))
        canvas.dot(right - 60, 10, BLUE, 10)
        canvas.dot(right - 30, 10, ORANGE, 10)
    out = Path(path)
    out.write_bytes(canvas.png())
    return out
