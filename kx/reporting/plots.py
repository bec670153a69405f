"""Training-curve and confusion-matrix PNGs (matplotlib, no display needed)."""

from pathlib import Path
from typing import Dict, List

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: Dict[str, List[float]], best_epoch: int, path: Path) -> Path:
    """Loss and accuracy per epoch, training and validation, with the best epoch marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "acc")):
        for name, style in ((metric, "-"), (f"val_{metric}", "--")):
            if name in history:
                epochs = range(1, len(history[name]) + 1)
                ax.plot(epochs, history[name], style, marker="o", label=name)
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, class_names: List[str], path: Path) -> Path:
    """Counts of true (rows) against predicted (columns) classes on the validation set."""
    plt = _pyplot()
    n = len(class_names)
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    size = max(5.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"validation confusion matrix (accuracy {accuracy:.4f})")
    for i in range(n):
        for j in range(n):
            color = "white" if counts[i, j] > counts.max() / 2 else "black"
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def prediction_grid(
    images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, class_names: List[str], path: Path
) -> Path:
    """A row of images (the dataset's own, channels last) titled true / predicted (red when wrong)."""
    plt = _pyplot()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.4), squeeze=False)
    for ax, image, true, pred in zip(axes[0], images, y_true, y_pred):
        image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(
            f"{class_names[true]}\n-> {class_names[pred]}",
            fontsize=8,
            color="black" if true == pred else "red",
        )
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
