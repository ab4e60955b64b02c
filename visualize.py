"""Pictures of training runs, drawn with matplotlib (headless backends work too)."""
import matplotlib.pyplot as plt
import numpy as np


def _plot_curves(runs, ylabel, value_of):
    """One figure: a '-s' line per run of value_of(run) against epoch, legend, ticks every 2."""
    fig = plt.figure()
    values = [np.asarray(value_of(run), dtype=float) for run in runs.values()]
    for name, ys in zip(runs, values):
        plt.plot(np.arange(len(ys)), ys, "-s", label=name)
    longest = max(len(ys) for ys in values)
    low = min(ys.min() for ys in values)
    high = max(ys.max() for ys in values)
    plt.xlabel("Epoch")
    plt.ylabel(ylabel)
    plt.legend()
    plt.xticks(range(0, longest, 2))
    plt.axis([0, max(longest - 1, 1), low, high if high > low else low + 1e-9])
    return fig


def plot_loss_and_acc(loss_and_acc_dict):
    """Plot training loss and accuracy against epoch for several runs.

    Args:
        loss_and_acc_dict: {run name: [loss_list, acc_list]}, one value per epoch.

    Returns:
        (loss_figure, accuracy_figure)
    """
    loss_fig = _plot_curves(loss_and_acc_dict, "Loss", lambda run: run[0])
    acc_fig = _plot_curves(loss_and_acc_dict, "Accuracy", lambda run: run[1])
    plt.show()
    return loss_fig, acc_fig
