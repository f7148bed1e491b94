"""Draw the integration's brand images (custom_components/dsmr/brand/icon.png, logo.png).

Run: .venv/bin/python scripts/assets/make_brand.py — a meter face with a P1 lightning bolt.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

BRAND = Path(__file__).resolve().parents[2] / "custom_components" / "dsmr" / "brand"
BLUE, DARK, YELLOW, WHITE = (3, 169, 244), (33, 43, 54), (255, 193, 7), (255, 255, 255)


def icon(size: int) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size / 256
    d.rounded_rectangle((16 * s, 16 * s, 240 * s, 240 * s), radius=40 * s, fill=BLUE)
    d.rounded_rectangle((48 * s, 52 * s, 208 * s, 116 * s), radius=10 * s, fill=DARK)
    for i, x in enumerate(range(60, 200, 28)):
        d.rectangle((x * s, 66 * s, (x + 20) * s, 102 * s), fill=YELLOW if i == 4 else WHITE)
    bolt = [(140, 132), (96, 190), (124, 190), (112, 236), (164, 172), (134, 172), (150, 132)]
    d.polygon([(x * s, y * s) for x, y in bolt], fill=YELLOW)
    return img


def main() -> None:
    BRAND.mkdir(parents=True, exist_ok=True)
    icon(256).save(BRAND / "icon.png", optimize=True)
    icon(512).save(BRAND / "icon@2x.png", optimize=True)
    logo = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    logo.paste(icon(256), (0, 0))
    logo.save(BRAND / "logo.png", optimize=True)


if __name__ == "__main__":
    main()
