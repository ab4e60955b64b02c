"""Pictures of training runs, sweeps and models, drawn with matplotlib (headless works too).

    plot_loss_and_acc(runs, title='batch 100, lr 0.01')   # the assignment's curves (shown at once)
    plot_histories({'lr 0.01': df.loc[0, 'history'], ...})  # small multiples of per-epoch curves
    plot_sweep(df, 'learning_rate')                # a validation metric against a swept value
    plot_heatmap(df, 'learning_rate', 'batch_size')  # df = sweeps.sweep(...)
    labels, predictions = runner.predict(runner.test_loader)
    plot_confusion_matrix(labels, predictions)
    plot_weight_templates(runner.model.W)          # what softmax regression learned per class
    plot_misclassified(runner.test_loader.dataset.images, labels, predictions)

Every figure is meant to go into a report as it is: a title that says what is shown and under
which fixed settings (`title=`, or read from a sweep's base cfg), axis labels with units,
epochs counted from 1 (as History.epochs_to_reach counts them) on whole-number ticks, room
around the data so that no marker is cut, and legends beside the axes, not over the curves.

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
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from .fileio import atomic_write
from .sweeps import LOWER_IS_BETTER, METRICS, MODEL_COLUMN

# ---- words for cfg keys and measures, shared by titles, axis labels and legends ----

LOSS_LABEL = "Loss (cross-entropy, nats)"
ACCURACY_LABEL = "Accuracy (fraction correct)"

# What a sweep's measures are, for axis labels and titles.
METRIC_LABELS = {
    "final_val_acc": "Validation accuracy at the last epoch",
    "best_val_acc": "Validation accuracy at the best epoch",
    "best_epoch": "Best epoch (from 0)",
    "test_acc": "Test accuracy",
    "test_loss": "Test loss (cross-entropy, nats)",
    "final_train_loss": "Training loss at the last epoch (nats)",
    "train_time": "Training time (s)",
    "epochs_to_threshold": "Epochs to reach the threshold",
    "time_to_threshold": "Time to reach the threshold (s)",
}
# The per-epoch records of a History, for panel titles and axis labels.
CURVE_LABELS = {"train_loss": "Training loss", "val_loss": "Validation loss",
                "train_acc": "Training accuracy", "val_acc": "Validation accuracy",
                "epoch_time": "Epoch time", "learning_rate": "Learning rate",
                "l2_penalty": "L2 penalty"}
CURVE_UNITS = {"train_loss": LOSS_LABEL, "val_loss": LOSS_LABEL, "train_acc": ACCURACY_LABEL,
               "val_acc": ACCURACY_LABEL, "epoch_time": "Seconds per epoch",
               "learning_rate": "Learning rate", "l2_penalty": "Penalty (nats)"}
# cfg keys as axis labels, and as words for one value ("{}" is the value).
PARAM_LABELS = {"learning_rate": "Learning rate", "batch_size": "Batch size (images)",
                "momentum": "Momentum", "max_epoch": "Epochs", "optimizer": "Update rule",
                "model": "Model", "weight_decay": "Weight decay", "seed": "Seed",
                "dtype": "Float type", "lr_schedule": "Learning-rate schedule"}
_VALUE_WORDS = {"model": "{}", "optimizer": "{}", "momentum": "momentum {}",
                "learning_rate": "lr {}", "lr_schedule": "{} schedule", "batch_size": "batch {}",
                "max_epoch": "{} epochs", "dtype": "{}", "weight_decay": "weight decay {}",
                "seed": "seed {}"}
_NAMES = {"softmax": "softmax regression", "mlp": "MLP", "mlp_bn": "MLP with BatchNorm",
          "cnn": "CNN", "sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad",
          "rmsprop": "RMSProp", "adamax": "Adamax"}
# Keys that change how a run is carried out, not what it computes: never in a description.
_UNDESCRIBED = {"data_root", "display_freq", "prefetch", "progress", "blas_threads",
                "checkpoint_dir"}


def describe_value(key, value):
    """One cfg value in words: ('batch_size', 200) -> 'batch 200', ('max_epoch', 30) ->
    '30 epochs', ('optimizer', 'adam') -> 'Adam', ('nesterov', True) -> 'Nesterov'."""
    if key == "nesterov":
        return "Nesterov" if value else "no Nesterov"
    if key == "max_epoch" and value == 1:
        return "1 epoch"
    shown = _NAMES.get(value, value) if isinstance(value, str) else (
        f"{value:g}" if isinstance(value, float) else value)
    return _VALUE_WORDS.get(key, key.replace("_", " ") + " {}").format(shown)


def describe_settings(cfg, skip=()):
    """The settings of a cfg in words, e.g. 'SGD, momentum 0.9, lr 0.01, batch 100, 10 epochs,
    seed 0': the keys it sets (not None), but those in `skip` and those that do not change
    the numbers (data_root, display_freq, prefetch, ...), in a fixed readable order. A
    'patience' of at least 'max_epoch' epochs, which can stop no run, is left out too."""
    order = [*_VALUE_WORDS, "nesterov"]
    skip = set(skip)
    patience, epochs = cfg.get("patience"), cfg.get("max_epoch")
    if patience is not None and epochs is not None and patience >= epochs:
        skip.add("patience")
    keys = sorted((key for key, value in cfg.items()
                   if value is not None and key not in skip and key not in _UNDESCRIBED),
                  key=lambda key: (order.index(key) if key in order else len(order),))
    first = ["model", "optimizer", "nesterov"]
    keys = [key for key in first if key in keys] + [key for key in keys if key not in first]
    return ", ".join(describe_value(key, cfg[key]) for key in keys)


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


def _title(what, settings):
    """A figure title: what is shown, then the fixed settings on a second line."""
    return f"{what}\n{settings}" if settings else what


def _legend_beside(ax, **kwargs):
    """The axes' legend to the right of it, outside the data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     **kwargs)


# ---- training curves ----

def epoch_ticks(num_epochs):
    """Whole-number x ticks for epochs 1..num_epochs: every epoch up to 6 epochs, every 2
    (2, 4, ...) up to 40, and at most about 10 round ticks beyond."""
    if num_epochs <= 6:
        return list(range(1, num_epochs + 1))
    if num_epochs <= 40:
        return list(range(2, num_epochs + 1, 2))
    ticks = MaxNLocator(nbins=10, integer=True, min_n_ticks=3).tick_values(1, num_epochs)
    return [int(t) for t in ticks if 1 <= t <= num_epochs]


def _epoch_axis(ax, num_epochs):
    """x from epoch 1 to num_epochs with half an epoch (at least 3% of the span) of room on
    either side, so that the first and last markers are whole; whole-number ticks."""
    pad = max(0.5, 0.03 * num_epochs)
    ax.set_xlim(1 - pad, num_epochs + pad)
    ax.xaxis.set_major_locator(FixedLocator(epoch_ticks(num_epochs)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("Epoch")


def _fit_y(ax, values, margin=0.06):
    """y limits around the data's min and max with `margin` of their span on either side
    (a small band around a single value), so that no marker is cut."""
    values = np.concatenate([np.ravel(v) for v in values])
    values = values[np.isfinite(values)]
    if not values.size:
        return
    low, high = float(values.min()), float(values.max())
    pad = margin * (high - low) if high > low else max(0.02 * abs(high), 1e-3)
    ax.set_ylim(low - pad, high + pad)


def _plot_curves(runs, what, index, val, title):
    """One figure: a '-s' line per run of run[index] against epoch (from 1), a dashed line
    of the same colour with hollow markers for its validation values when `val` has the
    run, a legend beside the axes, whole-number epoch ticks, axes fitted with a margin."""
    fig, ax = plt.subplots(figsize=(8.0, 4.6), layout="constrained")
    values = []
    for name, run in runs.items():
        ys = np.asarray(run[index], dtype=float)
        (line,) = ax.plot(np.arange(1, len(ys) + 1), ys, "-s", label=name)
        values.append(ys)
        if name in val:
            vs = np.asarray(val[name][index], dtype=float)
            ax.plot(np.arange(1, len(vs) + 1), vs, "--s", color=line.get_color(),
                    markerfacecolor="none", label=f"{name} (val)")
            values.append(vs)
    _epoch_axis(ax, max(len(ys) for ys in values))
    _fit_y(ax, values)
    ax.set_ylabel(LOSS_LABEL if index == 0 else ACCURACY_LABEL)
    shown = "Loss" if index == 0 else "Accuracy"
    ax.set_title(_title(f"{'Training (solid) and validation (dashed)' if val else 'Training'} "
                        f"{shown.lower()} per epoch", title))
    ax.grid(True, alpha=0.3)
    _legend_beside(ax)
    return fig


def plot_loss_and_acc(loss_and_acc_dict, save_path=None, val=None, title=None):
    """Plot training loss and accuracy against epoch for several runs, and show them.

    Args:
        loss_and_acc_dict: {run name: [loss_list, acc_list]}, one value per epoch.
        save_path: if given, the figures are written to `<stem>_loss<ext>` and
            `<stem>_acc<ext>` (e.g. 'figs/momentum.png' -> figs/momentum_loss.png and
            figs/momentum_acc.png).
        val: optional {run name: [val_loss_list, val_acc_list]}: validation curves, drawn
            dashed in the colour of the run of the same name.
        title: the runs' fixed settings, e.g. 'batch 100, lr 0.01, 10 epochs, seed 0',
            shown under what the figure shows.

    Epochs are counted from 1 on the x axis, as History.epochs_to_reach counts them (the
    Solver's log lines count from 0, as the assignment's did).

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
    loss_fig = _plot_curves(loss_and_acc_dict, "Loss", 0, val, title)
    acc_fig = _plot_curves(loss_and_acc_dict, "Accuracy", 1, val, title)
    if save_path:
        stem, ext = os.path.splitext(save_path)
        save_figure(loss_fig, f"{stem}_loss{ext or '.png'}")
        save_figure(acc_fig, f"{stem}_acc{ext or '.png'}")
    plt.show()
    return loss_fig, acc_fig


MARKERS = ("s", "o", "^", "D", "v", "P", "X", "*")


def _as_records(history):
    """A run's per-epoch records as {field: list}: a History, or its as_dict()."""
    return history.as_dict() if hasattr(history, "as_dict") else dict(history)


def _overlaps(ys, others, span):
    """Names of the curves in `others` ({name: ys}) that `ys` covers on the figure: the same
    length, and nowhere further apart than 3% of the panel's y span (less than half a
    marker on a panel of usual height)."""
    return [name for name, other in others.items()
            if len(other) == len(ys) and np.all(np.abs(other - ys) <= 0.03 * span)]


def plot_histories(histories, metrics=("train_loss", "val_acc"), groups=None, title=None,
                   max_lines=6, sharey=False, save_path=None):
    """Per-epoch curves of several runs as small multiples: a row of panels per group of
    runs, a column per record (e.g. training loss, validation accuracy).

    Each run keeps its colour and marker (hollow, so that curves lying on top of each other
    still show both markers) in every panel, and may appear in several groups (e.g. a
    reference run in each); a run whose curves cover those of an earlier run of its group in
    every panel says so in the legend ("on top of ...").

    Args:
        histories: {run name: history}, a History or its as_dict() (a sweep row's
            'history'). Runs may have different numbers of epochs.
        metrics: the History fields to draw, one column each: 'train_loss', 'val_loss',
            'train_acc', 'val_acc', 'epoch_time', 'learning_rate'.
        groups: {group title: [run names]}: one row of panels each (e.g. one per family of
            update rules). None: every run in one row, or rows of at most `max_lines` runs.
        title: what the runs have in common (their fixed settings), under the figure's
            title.
        max_lines: most runs in a row when `groups` is None (more lines than about 6 on one
            axes cannot be told apart).
        sharey: the same y range in every row of a column. Off by default: each row is
            fitted to its own runs, so that close curves stay apart; put a reference run in
            every group to compare rows.
        save_path: optional file to write.

    Returns:
        The Figure.
    """
    records = {name: _as_records(history) for name, history in histories.items()}
    if not records:
        raise ValueError("histories is empty: give {run name: history}")
    for name, record in records.items():
        missing = [metric for metric in metrics if metric not in record]
        if missing:
            raise ValueError(f"the history of {name!r} has no {missing}; it records "
                             f"{sorted(record)}")
    if groups is None:
        names = list(records)
        size = -(-len(names) // -(-len(names) // max_lines))  # rows of equal size
        groups = {None: names} if len(names) <= max_lines else {
            f"runs {i + 1}-{min(i + size, len(names))}": names[i:i + size]
            for i in range(0, len(names), size)}
    unknown = [name for members in groups.values() for name in members if name not in records]
    if unknown:
        raise ValueError(f"groups name runs {unknown} that histories does not have")

    rows, cols = len(groups), len(metrics)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols + 2.4, 3.3 * rows + 0.9),
                             squeeze=False, sharey="col" if sharey else False,
                             layout="constrained")
    longest = max(len(records[name][metrics[0]]) for members in groups.values()
                  for name in members)
    style = {}  # run name -> (colour, marker), by order of first appearance
    for members in groups.values():
        for name in members:
            if name not in style:
                style[name] = (f"C{len(style) % 10}", MARKERS[len(style) % len(MARKERS)])
    for row, (group, members) in enumerate(groups.items()):
        covered = {name: True for name in members}
        on_top_of = {name: None for name in members}
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            panel_values = [np.asarray(records[name][metric], dtype=float)
                            for members_ in (groups.values() if sharey else [members])
                            for name in members_]  # what this panel's y range holds
            flat = np.concatenate(panel_values)
            flat = flat[np.isfinite(flat)]
            span = float(np.ptp(flat)) if flat.size else 0.0
            drawn = {}
            for i, name in enumerate(members):
                ys = np.asarray(records[name][metric], dtype=float)
                overlaps = _overlaps(ys, drawn, span)
                if overlaps:
                    on_top_of[name] = on_top_of[name] or overlaps[0]
                else:
                    covered[name] = False
                colour, marker = style[name]
                ax.plot(np.arange(1, len(ys) + 1), ys, "-", marker=marker,
                        markerfacecolor="none", markersize=7, color=colour, label=name,
                        zorder=2 + i)
                drawn[name] = ys
            _epoch_axis(ax, longest)
            _fit_y(ax, panel_values)
            ax.set_title(CURVE_LABELS.get(metric, metric) + (f": {group}" if group else ""))
            ax.set_ylabel(CURVE_UNITS.get(metric, metric))
            if row < rows - 1:
                ax.set_xlabel("")
            ax.grid(True, alpha=0.3)
        handles, labels = axes[row, -1].get_legend_handles_labels()
        labels = [f"{label}\n(on top of {on_top_of[label]})"
                  if covered[label] and on_top_of[label] else label for label in labels]
        _legend_beside(axes[row, -1], handles=handles, labels=labels)
    shown = " and ".join(CURVE_LABELS.get(metric, metric).lower() for metric in metrics)
    fig.suptitle(_title(f"{shown[0].upper()}{shown[1:]} per epoch", title))
    return _finish(fig, save_path)


# ---- sweeps ----

def _metric_values(df, metric):
    """A sweep's `metric` per run as floats (NaN where a run has none)."""
    return df[metric].to_numpy(dtype=float, na_value=np.nan)


def _swept_keys(df, *params):
    """The swept keys of a sweep's DataFrame (df.attrs['params'], which sweep() sets; else
    every column but METRICS, 'history' and 'trained_model'), after checking that `params`
    are among them."""
    swept = list(df.attrs["params"]) if "params" in df.attrs else [
        name for name in df.columns if name not in (*METRICS, "history", MODEL_COLUMN)]
    for param in params:
        if param not in swept:
            raise ValueError(f"{param!r} is not a swept key of this sweep; it swept "
                             f"{', '.join(map(repr, swept)) or 'nothing'}")
    return swept


def _fixed_settings(df, swept):
    """The sweep's base cfg in words, without the swept keys ('' when unknown)."""
    base = df.attrs.get("base_cfg") or {}
    return describe_settings(base, skip=swept)


def _wants_log_axis(param, xs, numeric):
    """Log scale for learning rates, and for positive values spanning more than 2 decades."""
    if not numeric or xs.min() <= 0:
        return False
    return param == "learning_rate" or xs.max() / xs.min() > 100


def _spaced_labels(values, log_x, min_gap=0.07):
    """Tick labels for sorted `values`; a label that would touch the one before (closer than
    `min_gap` of the values' span, on the axis' scale: 100 and 128 on a log axis from 1 to
    200, say) goes one line lower, so that both stay readable."""
    where = np.log10(values) if log_x else np.asarray(values, dtype=float)
    span = where[-1] - where[0] if len(where) > 1 else 1.0
    labels, last_top = [], None
    for value, at in zip(values, where):
        if last_top is None or at - last_top >= min_gap * span or labels[-1].startswith("\n"):
            labels.append(f"{value:g}")
            last_top = at
        else:
            labels.append(f"\n{value:g}")
    return labels


def _best_position(ys, metric):
    """Index of the best finite value of ys for `metric` (lower is better for losses, times
    and counts), or None."""
    finite = np.flatnonzero(np.isfinite(ys))
    if not finite.size:
        return None
    pick = np.argmin if metric in LOWER_IS_BETTER else np.argmax
    return int(finite[pick(ys[finite])])


def plot_sweep(df, param, metric="best_val_acc", log_x=None, title=None, mark_best=True,
               save_path=None):
    """`metric` against the swept value `param`: one line per combination of the other
    swept values, ticks at the swept values.

    The default metric is a validation one, best_val_acc, the validation accuracy of the
    run's best epoch (the weights that early stopping and best.npz keep), and the one
    sweeps.best_run chooses by: hyper-parameters are chosen on validation data, and the test
    set is kept for one final measure of the chosen run. Plot test_acc only to report.

    Args:
        df: a sweep's DataFrame (sweeps.sweep), or some of its rows, e.g. df[df.momentum == 0.9].
        param: a swept cfg key, e.g. 'learning_rate'.
        metric: a column of df, e.g. 'best_val_acc', 'final_val_acc', 'train_time'.
        log_x: log-scale x axis; None chooses it for 'learning_rate' and for positive values
            spanning more than 2 decades. Non-numeric values (e.g. optimizer names) are
            placed in order of appearance.
        title: the fixed settings under the figure's title; None reads them from the sweep's
            base cfg (df.attrs['base_cfg']).
        mark_best: ring the best point of each line (highest, or lowest for losses, times
            and counts).
        save_path: optional file to write.

    Returns:
        The Figure.
    """
    swept = _swept_keys(df, param)
    others = [p for p in swept if p != param]
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

    fig, ax = plt.subplots(figsize=(7.5, 4.4), layout="constrained")
    bests = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        members = group.index.to_numpy()
        members = members[np.argsort(positions[members], kind="stable")]
        label = ", ".join(describe_value(p, v) for p, v in zip(others, key)) or None
        (line,) = ax.plot(positions[members], ys[members], "-o", label=label)
        best = _best_position(ys[members], metric) if mark_best else None
        if best is not None:
            bests.append((positions[members][best], ys[members][best], line.get_color()))
    for i, (x, y, colour) in enumerate(bests):  # after the lines: last in the legend
        ax.plot(x, y, "o", markersize=15, markerfacecolor="none", markeredgewidth=1.5,
                color=colour, label=None if i else
                ("best of each line" if len(bests) > 1 else "best"))
    if log_x:
        ax.set_xscale("log")
    if numeric:
        values = np.unique(positions[np.isfinite(positions)])
        ax.xaxis.set_major_locator(FixedLocator(values))
        ax.xaxis.set_minor_locator(NullLocator())
        if len(values) > 1:
            ax.margins(x=0.06)
        ax.set_xticklabels(_spaced_labels(values, log_x))
    else:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
        ax.set_xlim(-0.5, len(categories) - 0.5)
    _fit_y(ax, [ys], margin=0.1)
    ax.set_xlabel(PARAM_LABELS.get(param, param))
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    settings = _fixed_settings(df, swept) if title is None else title
    ax.set_title(_title(f"{METRIC_LABELS.get(metric, metric)} by "
                        f"{PARAM_LABELS.get(param, param).split(' (')[0].lower()}", settings))
    if others or bests:
        _legend_beside(ax)
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


def plot_heatmap(df, row_param, col_param, metric="best_val_acc", title=None, save_path=None):
    """`metric` for every pair of values of two swept keys, as annotated coloured cells.

    Each cell needs a single run: when the sweep varies other keys too, pick one slice first,
    e.g. `plot_heatmap(df[df.momentum == 0.9], 'learning_rate', 'batch_size')`. Pairs the
    sweep did not train are left blank. The default metric is a validation one, as for
    plot_sweep; `title` gives the fixed settings (None: from the sweep's base cfg).

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

    fig, ax = plt.subplots(figsize=(7.0, 5.0), layout="constrained")
    image = _matrix_image(ax, matrix, table.index.tolist(), table.columns.tolist(), ".4g",
                          "viridis")
    label = METRIC_LABELS.get(metric, metric)
    fig.colorbar(image, ax=ax, label=label)
    ax.set_xlabel(PARAM_LABELS.get(col_param, col_param))
    ax.set_ylabel(PARAM_LABELS.get(row_param, row_param))
    settings = _fixed_settings(df, swept) if title is None else title
    ax.set_title(_title(label, settings))
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


def plot_confusion_matrix(labels, predictions, num_classes=10, title=None, save_path=None):
    """The confusion matrix as annotated counts: rows the true class, columns the predicted.

    Args:
        title: which model and which images, e.g. 'momentum 0.9 run, test set', under the
            figure's title.

    Returns:
        The Figure; its image holds the matrix of `confusion_matrix`.
    """
    matrix = confusion_matrix(labels, predictions, num_classes)
    classes = range(num_classes)
    fig, ax = plt.subplots(figsize=(7, 6), layout="constrained")
    image = _matrix_image(ax, matrix, classes, classes, "d", "Blues")
    ax.set_aspect("equal")
    fig.colorbar(image, ax=ax, label="Images (count)")
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(_title(f"Confusion matrix of {matrix.sum()} images (accuracy {accuracy:.4f})",
                        title))
    return _finish(fig, save_path)


def _image_grid(count, max_cols):
    """A figure of `count` image axes in rows of at most `max_cols`; spare cells removed."""
    cols = max(1, min(count, max_cols))
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.5), squeeze=False,
                             layout="constrained")
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


def plot_weight_templates(W, image_shape=(28, 28), title=None, save_path=None):
    """The weights of softmax regression as one image per class.

    Column c of W holds the weights of class c's score z_c = x . W[:, c] + b_c, one per
    pixel: drawn as an image, red pixels raise the score, blue ones lower it. The colour
    scale is symmetric about 0 and shared by every class, so images compare directly.

    Args:
        W: (D, C) weights, D = rows * cols of image_shape (the model's `W`).
        title: which model the weights are of, under the figure's title.

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
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="Weight (red: for, blue: against)")
    fig.suptitle(_title("Weights of each class as a 28x28 image" if tuple(image_shape) == (28, 28)
                        else "Weights of each class as an image", title))
    return _finish(fig, save_path)


def plot_misclassified(images, labels, predictions, image_shape=(28, 28), max_images=25,
                       title=None, save_path=None):
    """The first `max_images` wrongly classified images, each titled "true t / pred p".

    Args:
        images: (N, D) images, raw uint8 pixels (drawn on a 0-255 scale) or preprocessed
            floats (drawn in gray, each scaled to its own range).
        labels, predictions: (N,) true and predicted classes.
        title: which model and which images, under the figure's title.

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
    total = int(np.sum(labels != predictions))
    fig.suptitle(_title(f"The first {len(wrong)} of {total} misclassified images", title))
    return _finish(fig, save_path)
