"""Pictures are drawn headless and show what they claim."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from visualize import plot_loss_and_acc  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_loss_and_acc_draws_one_line_per_run_on_two_figures():
    runs = {"a": [[1.0, 0.5, 0.4, 0.3, 0.2], [0.5, 0.8, 0.9, 0.92, 0.95]],
            "b": [[0.9, 0.4, 0.3, 0.25, 0.21], [0.6, 0.85, 0.9, 0.93, 0.94]]}
    loss_fig, acc_fig = plot_loss_and_acc(runs)
    for fig, ylabel, index in ((loss_fig, "Loss", 0), (acc_fig, "Accuracy", 1)):
        ax = fig.axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("Epoch", ylabel)
        assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
        assert all(line.get_marker() == "s" and line.get_linestyle() == "-" for line in ax.get_lines())
        np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), runs["b"][index])
        assert list(ax.get_xticks()) == [0, 2, 4]
        values = np.concatenate([run[index] for run in runs.values()])
        assert ax.get_ylim() == (values.min(), values.max()) and ax.get_xlim() == (0, 4)
        assert ax.get_legend() is not None
