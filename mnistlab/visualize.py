"""Pictures of training runs, sweeps and models, drawn with matplotlib (headless works too).

    plot_loss_and_acc(runs)                        # the assignment's curves (shown at once)
    plot_sweep(df, 'learning_rate')                # a metric against a swept value
    plot_heatmap(df, 'learning_rate', 'batch_size')  # df = sweeps.sweep(...)
    labels, predictions = runner.predict(runner.test_loader)
    plot_confusion_matrix(labels, predictions)
    plot_weight_templates(runner.model.W)          # what softmax regression learned per class
    plot_misclassified(runner.test_loader.dataset.images, labels, predictions)

Every function returns its Figure and, given `save_path`, writes it there (PNG unless the
name ends in another format matplotlib knows, such as .pdf or .svg). Apart from
plot_loss_and_acc, which shows its figures as the assignment's did, the figures are not left
open in pyplot: a notebook shows a figure when it is a cell's value, exactly once, and a
script saves it with `save_path` or `fig.savefig(...)`.
"""
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .fileio import atomic_write
from .sweeps import METRICS


def save_figure(fig, path):
    """Write `fig` to `path` atomically, in the format its extension names (PNG if none)."""
    file_format = os.path.splitext(path)[1][1:].lower() or "png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=file_format, dpi=120, bbox_inches="tight")


def _finish(fig, save_path):
    """Save `fig` if asked, detach it from pyplot (so a notebook does not draw it twice and
    figures do not pile up), and return it."""
    if save_path:
        save_figure(fig, save_path)
    plt.close(fig)
    return fig


# ---- training curves ----

def _plot_curves(runs, ylabel, index, val):
    """One figure: a '-s' line per run of run[index] against epoch, a dashed line of the
    same colour for its validation values when `val` has the run, legend, ticks every 2."""
    fig = plt.figure()
    values = []
    for name, run in runs.items():
        ys = np.asarray(run[index], dtype=float)
        (line,) = plt.plot(np.arange(len(ys)), ys, "-s", label=name)
        values.append(ys)
        if name in val:
            vs = np.asarray(val[name][index], dtype=float)
            plt.plot(np.arange(len(vs)), vs, "--s", color=line.get_color(),
                     markerfacecolor="none", label=f"{name} (val)")
            values.append(vs)
    longest = max(len(ys) for ys in values)
    low = min(ys.min() for ys in values)
    high = max(ys.max() for ys in values)
    plt.xlabel("Epoch")
    plt.ylabel(ylabel)
    plt.legend()
    plt.xticks(range(0, longest, 2))
    plt.axis([0, max(longest - 1, 1), low, high if high > low else low + 1e-9])
    return fig


def plot_loss_and_acc(loss_and_acc_dict, save_path=None, val=None):
    """Plot training loss and accuracy against epoch for several runs, and show them.

    Args:
        loss_and_acc_dict: {run name: [loss_list, acc_list]}, one value per epoch.
        save_path: if given, the figures are written to `<stem>_loss<ext>` and
            `<stem>_acc<ext>` (e.g. 'figs/momentum.png' -> figs/momentum_loss.png and
            figs/momentum_acc.png).
        val: optional {run name: [val_loss_list, val_acc_list]}: validation curves, drawn
            dashed in the colour of the run of the same name.

    Returns:
        (loss_figure, accuracy_figure)
    """
    val = val or {}
    if not loss_and_acc_dict:
        raise ValueError("loss_and_acc_dict is empty: give {run name: [loss_list, acc_list]}")
    unknown = [name for name in val if name not in loss_and_acc_dict]
    if unknown:
        raise ValueError(f"val has runs {unknown} that loss_and_acc_dict does not; its names "
                         f"must be among {list(loss_and_acc_dict)}")
    loss_fig = _plot_curves(loss_and_acc_dict, "Loss", 0, val)
    acc_fig = _plot_curves(loss_and_acc_dict, "Accuracy", 1, val)
    if save_path:
        stem, ext = os.path.splitext(save_path)
        save_figure(loss_fig, f"{stem}_loss{ext or '.png'}")
        save_figure(acc_fig, f"{stem}_acc{ext or '.png'}")
    plt.show()
    return loss_fig, acc_fig


# ---- sweeps ----

def _metric_values(df, metric):
    """A sweep's `metric` per run as floats (NaN where a run has none)."""
    return df[metric].to_numpy(dtype=float, na_value=np.nan)


def _swept_keys(df, *params):
    """The swept keys of a sweep's DataFrame (df.attrs['params'], which sweep() sets; else
    every column but METRICS and 'history'), after checking that `params` are among them."""
    swept = list(df.attrs["params"]) if "params" in df.attrs else [
        name for name in df.columns if name not in METRICS and name != "history"]
    for param in params:
        if param not in swept:
            raise ValueError(f"{param!r} is not a swept key of this sweep; it swept "
                             f"{', '.join(map(repr, swept)) or 'nothing'}")
    return swept


def _wants_log_axis(param, xs, numeric):
    """Log scale for learning rates, and for positive values spanning more than 2 decades."""
    if not numeric or xs.min() <= 0:
        return False
    return param == "learning_rate" or xs.max() / xs.min() > 100


def plot_sweep(df, param, metric="test_acc", log_x=None, save_path=None):
    """`metric` against the swept value `param`: one line per combination of the other
    swept values.

    Args:
        df: a sweep's DataFrame (sweeps.sweep), or some of its rows, e.g. df[df.momentum == 0.9].
        param: a swept cfg key, e.g. 'learning_rate'.
        metric: a column of df, e.g. 'test_acc', 'best_val_acc', 'train_time'.
        log_x: log-scale x axis; None chooses it for 'learning_rate' and for positive values
            spanning more than 2 decades. Non-numeric values (e.g. optimizer names) are
            placed in order of appearance.
        save_path: optional file to write.

    Returns:
        The Figure.
    """
    others = [p for p in _swept_keys(df, param) if p != param]
    df = df.reset_index(drop=True)  # group members by position
    ys = _metric_values(df, metric)
    xs = df[param]
    numeric = pd.api.types.is_numeric_dtype(xs) and not pd.api.types.is_bool_dtype(xs)
    if log_x is None:
        log_x = _wants_log_axis(param, xs, numeric)
    elif log_x and not (numeric and xs.min() > 0):
        raise ValueError(f"log_x=True needs positive numbers, but {param} takes {xs.tolist()}")
    codes, categories = pd.factorize(xs)  # categories in order of appearance
    positions = xs.to_numpy(dtype=float) if numeric else codes.astype(float)
    groups = df.groupby(others, sort=False, dropna=False) if others else [((), df)]

    fig, ax = plt.subplots()
    for key, group in groups:
        members = group.index.to_numpy()
        members = members[np.argsort(positions[members], kind="stable")]
        label = ", ".join(f"{p}={v}" for p, v in zip(others, key)) or None
        ax.plot(positions[members], ys[members], "-o", label=label)
    if log_x:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by {param}")
    if others:
        ax.legend()
    ax.grid(True, alpha=0.3)
    return _finish(fig, save_path)


def _annotate(ax, image, matrix, fmt):
    """Write every cell's value in the cell, white on dark cells and black on light ones."""
    red, green, blue, _ = np.moveaxis(image.cmap(image.norm(matrix)), -1, 0)
    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # perceived brightness (ITU-R 601)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(j, i, format(value, fmt), ha="center", va="center", fontsize=8,
                    color="white" if dark[i, j] else "black")


def _matrix_image(ax, matrix, row_labels, col_labels, fmt, cmap):
    """imshow of a (R, C) matrix with annotated cells and the given tick labels."""
    image = ax.imshow(matrix, cmap=cmap, aspect="auto")
    _annotate(ax, image, matrix, fmt)
    ax.set_xticks(range(len(col_labels)), [str(v) for v in col_labels])
    ax.set_yticks(range(len(row_labels)), [str(v) for v in row_labels])
    return image


def plot_heatmap(df, row_param, col_param, metric="test_acc", save_path=None):
    """`metric` for every pair of values of two swept keys, as annotated coloured cells.

    Each cell needs a single run: when the sweep varies other keys too, pick one slice first,
    e.g. `plot_heatmap(df[df.momentum == 0.9], 'learning_rate', 'batch_size')`. Pairs the
    sweep did not train are left blank.

    Returns:
        The Figure; its image holds the (rows, cols) matrix of metric values.
    """
    swept = _swept_keys(df, row_param, col_param)
    others = [p for p in swept if p not in (row_param, col_param)
              and df[p].nunique(dropna=False) > 1]
    if others:
        raise ValueError(f"the sweep also varies {others}: a cell would hold several runs. "
                         f"Choose one value each, e.g. df[df.{others[0]} == ...]")
    table = df.pivot(index=row_param, columns=col_param, values=metric)  # sorted values
    matrix = table.to_numpy(dtype=float, na_value=np.nan)

    fig, ax = plt.subplots()
    image = _matrix_image(ax, matrix, table.index.tolist(), table.columns.tolist(), ".4g",
                          "viridis")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xlabel(col_param)
    ax.set_ylabel(row_param)
    ax.set_title(metric)
    return _finish(fig, save_path)


# ---- predictions and models ----

def confusion_matrix(labels, predictions, num_classes):
    """Counts of (true class, predicted class) pairs.

    Args:
        labels: (N,) true classes in [0, num_classes).
        predictions: (N,) predicted classes in [0, num_classes).

    Returns:
        (num_classes, num_classes) int array M, M[t, p] = #{i : labels_i = t, predictions_i = p}
        (rows true, columns predicted), counted at once by np.bincount of t * C + p.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.ndim != 1 or labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be "
                         "1-D arrays of the same length")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (not np.issubdtype(values.dtype, np.integer)
                            or values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must be integers in [0, {num_classes}); they range over "
                             f"[{values.min()}, {values.max()}] ({values.dtype}). Raise "
                             "num_classes or pass class indices")
    pairs = labels.astype(np.int64) * num_classes + predictions
    return np.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def plot_confusion_matrix(labels, predictions, num_classes=10, save_path=None):
    """The confusion matrix as annotated counts: rows the true class, columns the predicted.

    Returns:
        The Figure; its image holds the matrix of `confusion_matrix`.
    """
    matrix = confusion_matrix(labels, predictions, num_classes)
    classes = range(num_classes)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = _matrix_image(ax, matrix, classes, classes, "d", "Blues")
    ax.set_aspect("equal")
    fig.colorbar(image, ax=ax, label="count")
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"Confusion matrix (accuracy {accuracy:.4f})")
    return _finish(fig, save_path)


def _image_grid(count, max_cols):
    """A figure of `count` image axes in rows of at most `max_cols`; spare cells removed."""
    cols = max(1, min(count, max_cols))
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[count:]:
        ax.remove()
    for ax in axes[:count]:
        ax.set_axis_off()
    return fig, axes[:count]


def _check_image_shape(length, image_shape, what):
    if length != int(np.prod(image_shape)):
        raise ValueError(f"{what} has {length} values per image, which image_shape="
                         f"{tuple(image_shape)} cannot hold; give the images' real shape")


def plot_weight_templates(W, image_shape=(28, 28), save_path=None):
    """The weights of softmax regression as one image per class.

    Column c of W holds the weights of class c's score z_c = x . W[:, c] + b_c, one per
    pixel: drawn as an image, red pixels raise the score, blue ones lower it. The colour
    scale is symmetric about 0 and shared by every class, so images compare directly.

    Args:
        W: (D, C) weights, D = rows * cols of image_shape (the model's `W`).

    Returns:
        The Figure, with one image axis per class.
    """
    W = np.asarray(W, dtype=float)
    if W.ndim != 2:
        raise ValueError(f"W must be a (pixels, classes) matrix; got shape {W.shape}")
    _check_image_shape(W.shape[0], image_shape, f"W of shape {W.shape}")
    limit = np.abs(W).max() or 1.0
    fig, axes = _image_grid(W.shape[1], 5)
    for c, ax in enumerate(axes):
        image = ax.imshow(W[:, c].reshape(image_shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"class {c}")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="weight")
    return _finish(fig, save_path)


def plot_misclassified(images, labels, predictions, image_shape=(28, 28), max_images=25,
                       save_path=None):
    """The first `max_images` wrongly classified images, each titled "true t / pred p".

    Args:
        images: (N, D) images, raw uint8 pixels (drawn on a 0-255 scale) or preprocessed
            floats (drawn in gray, each scaled to its own range).
        labels, predictions: (N,) true and predicted classes.

    Returns:
        The Figure, with one image axis per misclassified image shown.
    """
    images, labels, predictions = map(np.asarray, (images, labels, predictions))
    if not len(images) == len(labels) == len(predictions):
        raise ValueError(f"images ({len(images)}), labels ({len(labels)}) and predictions "
                         f"({len(predictions)}) must have one entry per sample")
    if len(images):
        _check_image_shape(images[0].size, image_shape, f"images of shape {images.shape}")
    wrong = np.flatnonzero(labels != predictions)[:max_images]
    if not wrong.size:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No misclassified images", ha="center", va="center")
        return _finish(fig, save_path)
    scale = {"vmin": 0, "vmax": 255} if images.dtype == np.uint8 else {}
    fig, axes = _image_grid(len(wrong), int(np.ceil(np.sqrt(len(wrong)))))
    for i, ax in zip(wrong, axes):
        ax.imshow(images[i].reshape(image_shape), cmap="gray", **scale)
        ax.set_title(f"true {labels[i]} / pred {predictions[i]}", fontsize=8)
    return _finish(fig, save_path)
