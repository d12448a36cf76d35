"""Draws the FocusStudio icon (a stack of frames and a sharp focus ring) in PNG, ICO and ICNS.

Usage: python resources/make_icons.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent / "icons"
SIZE = 512


def draw_icon(size: int = SIZE) -> Image.Image:
    scale = size / 512
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((16 * scale, 16 * scale, 496 * scale, 496 * scale), radius=96 * scale,
                           fill=(28, 34, 48, 255))
    # Three frames of the stack, back to front, increasingly sharp.
    for step, (blur, colour) in enumerate(((10, (70, 110, 170)), (5, (90, 150, 210)), (0, (120, 200, 255)))):
        layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        offset = (2 - step) * 34 * scale
        box = (110 * scale + offset, 150 * scale - offset, 330 * scale + offset, 370 * scale - offset)
        ImageDraw.Draw(layer).rounded_rectangle(box, radius=24 * scale, outline=(*colour, 255),
                                                width=max(int(14 * scale), 1))
        if blur:
            layer = layer.filter(ImageFilter.GaussianBlur(blur * scale))
        image.alpha_composite(layer)
    # The focus ring and cross hair.
    centre, radius = 300 * scale, 96 * scale
    draw = ImageDraw.Draw(image)
    draw.ellipse((centre - radius, centre - radius, centre + radius, centre + radius),
                 outline=(255, 196, 64, 255), width=max(int(16 * scale), 1))
    for dx, dy in ((1, 0), (0, 1)):
        draw.line((centre - dx * 40 * scale, centre - dy * 40 * scale, centre + dx * 40 * scale,
                   centre + dy * 40 * scale), fill=(255, 196, 64, 255), width=max(int(10 * scale), 1))
    return image


def main() -> None:
    HERE.mkdir(exist_ok=True)
    icon = draw_icon()
    icon.resize((256, 256), Image.LANCZOS).save(HERE / "focusstudio.png")
    icon.save(HERE / "focusstudio.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    icon.save(HERE / "focusstudio.icns")
    print(f"wrote icons to {HERE}")


if __name__ == "__main__":
    main()
