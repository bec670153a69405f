"""Write a tiny dataset of your own, in both formats kx reads, to try README "Bring your own data":

    python examples/make_data.py            # outputs/shapes.npz and outputs/pictures/<class>/*.png
    python examples/make_data.py --out DIR  # DIR/shapes.npz and DIR/pictures/

Three classes of 16x16 images (a square, a cross, a ring) with noise, 300 of each.
"""

import argparse
from pathlib import Path

import numpy as np

CLASSES = ("square", "cross", "ring")


def shapes(n: int, seed: int = 0):
    """``n`` uint8 images of each class and their labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    ring = np.abs(np.hypot(yy - 7.5, xx - 7.5) - 5) < 1.2
    masks = [(abs(yy - 7.5) < 5) & (abs(xx - 7.5) < 5), (abs(yy - 7.5) < 1.5) | (abs(xx - 7.5) < 1.5), ring]
    labels = np.repeat(np.arange(len(CLASSES)), n)
    images = rng.integers(0, 90, (len(labels), 16, 16))
    for label, mask in enumerate(masks):
        images[labels == label] += (mask * 150).astype(images.dtype)
    return images.astype(np.uint8), labels


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="the folder (default outputs)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    images, labels = shapes(300)
    np.savez(out / "shapes.npz", image=images, label=labels)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = out / "pictures" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    print(
        f"wrote {out / 'shapes.npz'} and {out / 'pictures'}/ ({len(labels)} images of {', '.join(CLASSES)})"
    )


if __name__ == "__main__":
    main()
