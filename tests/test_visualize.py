"""Pictures are drawn headless and show what they claim."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from matplotlib.figure import Figure  # noqa: E402

from mnistlab.visualize import (confusion_matrix, describe_settings, epoch_ticks,  # noqa: E402
                                plot_confusion_matrix, plot_heatmap, plot_histories,
                                plot_loss_and_acc, plot_misclassified, plot_sweep,
                                plot_weight_templates)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legend_is_beside(ax):
    """The legend is anchored to the right of the axes, outside the data."""
    legend = ax.get_legend()
    if legend is None:
        return False
    return legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted()).x0 >= 1.0


def has_margin(limits, values):
    """Limits that hold every value with room on both sides, but not much (at most 15% of
    the values' span on either side)."""
    low, high = limits
    span = max(values) - min(values)
    return (low < min(values) and high > max(values)
            and min(values) - low <= 0.15 * span and high - max(values) <= 0.15 * span)


def test_plot_loss_and_acc_draws_one_line_per_run_on_two_figures():
    runs = {"a": [[1.0, 0.5, 0.4, 0.3, 0.2], [0.5, 0.8, 0.9, 0.92, 0.95]],
            "b": [[0.9, 0.4, 0.3, 0.25, 0.21], [0.6, 0.85, 0.9, 0.93, 0.94]]}
    loss_fig, acc_fig = plot_loss_and_acc(runs, title="batch 100, lr 0.01")
    for fig, word, index in ((loss_fig, "Loss", 0), (acc_fig, "Accuracy", 1)):
        ax = fig.axes[0]
        assert ax.get_xlabel() == "Epoch" and word in ax.get_ylabel()
        assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
        assert all(line.get_marker() == "s" and line.get_linestyle() == "-" for line in ax.get_lines())
        np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), runs["b"][index])
        np.testing.assert_array_equal(ax.get_lines()[1].get_xdata(), [1, 2, 3, 4, 5])
        assert list(ax.get_xticks()) == [1, 2, 3, 4, 5]  # epochs from 1, every epoch when short
        values = np.concatenate([run[index] for run in runs.values()])
        assert has_margin(ax.get_ylim(), values) and has_margin(ax.get_xlim(), [1, 5])
        assert legend_is_beside(ax)
        assert word.lower() in ax.get_title() and "batch 100, lr 0.01" in ax.get_title()


@pytest.mark.parametrize("epochs, ticks", [(1, [1]), (2, [1, 2]), (6, [1, 2, 3, 4, 5, 6]),
                                           (10, [2, 4, 6, 8, 10]), (30, list(range(2, 31, 2)))])
def test_epoch_ticks_are_whole_numbers_from_1_every_2_epochs_beyond_6(epochs, ticks):
    assert epoch_ticks(epochs) == ticks
    ax = plot_loss_and_acc({"a": [list(np.linspace(1, 0.5, epochs)),
                                  list(np.linspace(0.5, 0.9, epochs))]})[0].axes[0]
    assert list(ax.get_xticks()) == ticks
    assert ax.get_xlim()[0] < 1 and ax.get_xlim()[1] > epochs


def test_epoch_ticks_stay_few_for_long_runs():
    ticks = epoch_ticks(200)
    assert 3 <= len(ticks) <= 12 and all(1 <= t <= 200 and t == int(t) for t in ticks)


def test_a_one_epoch_plot_shows_its_points_on_a_readable_axis():
    _, acc_fig = plot_loss_and_acc({"a": [[0.5], [0.9]]}, val={"a": [[0.4], [0.92]]})
    ax = acc_fig.axes[0]
    assert list(ax.get_xticks()) == [1]
    low, high = ax.get_ylim()
    assert low < 0.9 and high > 0.92 and high - low < 0.1  # room around the points, still zoomed
    low, high = plot_loss_and_acc({"a": [[0.5], [0.9]]})[1].axes[0].get_ylim()
    assert low < 0.9 < high  # a single value gets a band around it


# ---- training curves: saving and validation ----

def test_plot_loss_and_acc_saves_both_figures(tmp_path):
    runs = {"a": [[1.0, 0.5, 0.4], [0.5, 0.8, 0.9]]}
    plot_loss_and_acc(runs, save_path=str(tmp_path / "figs" / "momentum.png"))
    for name in ("momentum_loss.png", "momentum_acc.png"):
        assert is_png(tmp_path / "figs" / name)


def test_validation_curves_are_dashed_in_the_runs_colour():
    runs = {"a": [[1.0, 0.5, 0.4], [0.5, 0.8, 0.9]], "b": [[0.9, 0.6, 0.5], [0.6, 0.7, 0.8]]}
    val = {"b": [[0.8, 0.7, 0.2], [0.65, 0.75, 0.97]]}
    loss_fig, acc_fig = plot_loss_and_acc(runs, val=val)
    for fig, index in ((loss_fig, 0), (acc_fig, 1)):
        ax = fig.axes[0]
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == ["a", "b", "b (val)"]
        assert lines["b (val)"].get_linestyle() == "--"
        assert lines["b (val)"].get_color() == lines["b"].get_color() != lines["a"].get_color()
        np.testing.assert_array_equal(lines["b (val)"].get_ydata(), val["b"][index])
        values = np.concatenate([runs["a"][index], runs["b"][index], val["b"][index]])
        assert has_margin(ax.get_ylim(), values)
        assert "validation (dashed)" in ax.get_title()


def test_validation_runs_must_match_training_runs():
    with pytest.raises(ValueError, match=r"val has runs \['c'\]"):
        plot_loss_and_acc({"a": [[1.0], [0.5]]}, val={"c": [[1.0], [0.5]]})


# ---- small multiples of histories ----

def history(val_acc, train_loss=None):
    train_loss = train_loss or [1.0 - a for a in val_acc]
    return {"val_acc": list(val_acc), "train_loss": list(train_loss),
            "epoch_time": [0.1] * len(val_acc)}


def test_plot_histories_draws_a_panel_per_metric_and_group():
    runs = {"sgd": history([0.80, 0.85, 0.90]), "momentum": history([0.88, 0.90, 0.91]),
            "adam": history([0.89, 0.91, 0.92])}
    fig = plot_histories(runs, groups={"SGD": ["sgd", "momentum"], "adaptive": ["momentum", "adam"]},
                         title="batch 100, 3 epochs")
    axes = np.array(fig.axes).reshape(2, 2)
    assert [ax.get_title() for ax in axes.ravel()] == [
        "Training loss: SGD", "Validation accuracy: SGD",
        "Training loss: adaptive", "Validation accuracy: adaptive"]
    assert "batch 100, 3 epochs" in fig._suptitle.get_text()
    top, bottom = axes[0, 1].get_lines(), axes[1, 1].get_lines()
    np.testing.assert_array_equal(bottom[1].get_ydata(), runs["adam"]["val_acc"])
    np.testing.assert_array_equal(bottom[1].get_xdata(), [1, 2, 3])
    # a run keeps its colour and marker in every row
    assert (top[1].get_color(), top[1].get_marker()) == (bottom[0].get_color(), bottom[0].get_marker())
    assert top[0].get_color() != top[1].get_color() != bottom[1].get_color()
    assert legend_is_beside(axes[0, 1]) and legend_is_beside(axes[1, 1])
    assert axes[1, 0].get_xlabel() == "Epoch" and "Loss" in axes[1, 0].get_ylabel()


def test_plot_histories_keeps_at_most_max_lines_on_an_axes():
    runs = {f"run {i}": history([0.8 + i / 100] * 4) for i in range(8)}
    fig = plot_histories(runs, metrics=("val_acc",), max_lines=6)
    assert len(fig.axes) == 2 and [len(ax.get_lines()) for ax in fig.axes] == [4, 4]


def test_plot_histories_says_which_curve_hides_another():
    runs = {"momentum": history([0.90, 0.92, 0.93]), "nesterov": history([0.9001, 0.92, 0.93]),
            "sgd": history([0.80, 0.85, 0.90])}
    fig = plot_histories(runs)
    labels = [text.get_text() for text in fig.axes[-1].get_legend().get_texts()]
    assert labels == ["momentum", "nesterov\n(on top of momentum)", "sgd"]
    assert all(line.get_markerfacecolor() == "none" for line in fig.axes[0].get_lines())


def test_plot_histories_takes_history_objects_and_refuses_missing_records():
    from mnistlab.history import History
    h = History()
    for acc in (0.8, 0.9):
        h.append(train_loss=1 - acc, train_acc=acc, val_loss=1 - acc, val_acc=acc, epoch_time=0.1,
                 learning_rate=0.01, l2_penalty=0.0)
    fig = plot_histories({"a": h}, metrics=("train_acc", "val_loss"))
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_ydata(), [0.8, 0.9])
    with pytest.raises(ValueError, match=r"'b' has no \['val_acc'\]"):
        plot_histories({"b": {"train_loss": [1.0]}})


def test_describe_settings_names_what_changes_the_numbers():
    cfg = {"data_root": "data", "max_epoch": 10, "batch_size": 100, "optimizer": "sgd",
           "momentum": 0.9, "learning_rate": 0.01, "display_freq": 50, "seed": 0,
           "patience": 30, "nesterov": True}
    assert describe_settings(cfg) == "SGD, Nesterov, momentum 0.9, lr 0.01, batch 100, 10 epochs, seed 0"
    assert describe_settings(cfg, skip=["momentum", "nesterov"]) == \
        "SGD, lr 0.01, batch 100, 10 epochs, seed 0"
    assert describe_settings({"max_epoch": 10, "patience": 3}) == "10 epochs, patience 3"
    assert describe_settings({"model": "mlp_bn", "max_epoch": 1}) == "MLP with BatchNorm, 1 epoch"


# ---- sweeps ----

def is_png(path):
    data = open(path, "rb").read()
    return data.startswith(b"\x89PNG") and len(data) > 1000


def sweep_table(rows, params, base_cfg=None):
    """A DataFrame as sweeps.sweep returns it: one row per run, the swept keys in attrs."""
    df = pd.DataFrame(rows)
    df.attrs["params"] = params
    if base_cfg is not None:
        df.attrs["base_cfg"] = base_cfg
    return df


def made_up_sweep():
    """learning_rate x batch_size, best_val_acc = 0.9 + lr/10 + batch/10000 (hand-checkable)."""
    rows = [{"learning_rate": lr, "batch_size": bs, "best_val_acc": 0.9 + lr / 10 + bs / 10000,
             "test_acc": 0.5, "history": {}}
            for lr in (0.001, 0.01, 0.1) for bs in (32, 100)]
    return sweep_table(rows, ["learning_rate", "batch_size"],
                       base_cfg={"data_root": "data", "max_epoch": 10, "momentum": 0.9, "seed": 0})


def test_plot_sweep_draws_a_line_per_other_value_on_a_log_axis(tmp_path):
    fig = plot_sweep(made_up_sweep(), "learning_rate", save_path=str(tmp_path / "lr.png"))
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and ax.get_xscale() == "log"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Learning rate",
                                                  "Validation accuracy at the best epoch")
    lines = [line for line in ax.get_lines() if line.get_label() in ("batch 32", "batch 100")]
    assert [line.get_label() for line in lines] == ["batch 32", "batch 100"]
    np.testing.assert_array_equal(lines[1].get_xdata(), [0.001, 0.01, 0.1])
    np.testing.assert_allclose(lines[1].get_ydata(), 0.9 + np.array([0.001, 0.01, 0.1]) / 10 + 0.01)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.01", "0.1"]
    assert is_png(tmp_path / "lr.png")


def test_plot_sweep_shows_a_validation_metric_and_the_fixed_settings_by_default():
    ax = plot_sweep(made_up_sweep(), "learning_rate").axes[0]
    title = ax.get_title()
    assert title.startswith("Validation accuracy at the best epoch by learning rate")
    assert title.endswith("momentum 0.9, 10 epochs, seed 0")
    assert "test" not in title.lower() and "data" not in title
    ax = plot_sweep(made_up_sweep(), "learning_rate", metric="test_acc", title="mine").axes[0]
    assert ax.get_title() == "Test accuracy by learning rate\nmine"


def test_plot_sweep_rings_the_best_point_of_each_line():
    ax = plot_sweep(made_up_sweep(), "learning_rate").axes[0]
    rings = [line for line in ax.get_lines() if line.get_markersize() > 10]
    assert [(ring.get_xdata()[0], ring.get_ydata()[0]) for ring in rings] == [
        (0.1, pytest.approx(0.9 + 0.01 + 0.0032)), (0.1, pytest.approx(0.9 + 0.01 + 0.01))]
    assert legend_is_beside(ax)
    result = sweep_table([{"batch_size": b, "train_time": t} for b, t in ((16, 3.0), (64, 1.0))],
                         ["batch_size"])
    ring = [line for line in plot_sweep(result, "batch_size", metric="train_time").axes[0].get_lines()
            if line.get_markersize() > 10]
    assert ring[0].get_xdata()[0] == 64  # lower is better for times


def test_plot_sweep_moves_down_a_tick_label_that_would_touch_the_one_before():
    result = sweep_table([{"batch_size": b, "best_val_acc": 0.9} for b in (1, 20, 50, 100, 128, 200)],
                         ["batch_size"])
    ax = plot_sweep(result, "batch_size").axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "20", "50", "100", "\n128", "200"]


@pytest.mark.parametrize("values, log", [([16, 32, 64], False), ([1, 10, 1000], True)])
def test_plot_sweep_uses_a_log_axis_when_values_span_decades(values, log):
    result = sweep_table([{"batch_size": v, "best_val_acc": 0.9} for v in values], ["batch_size"])
    ax = plot_sweep(result, "batch_size", mark_best=False).axes[0]
    assert ax.get_xscale() == ("log" if log else "linear")
    assert ax.get_legend() is None


def test_plot_sweep_places_names_in_order():
    result = sweep_table([{"optimizer": name, "best_val_acc": acc}
                          for name, acc in (("sgd", 0.92), ("adam", 0.95))], ["optimizer"])
    ax = plot_sweep(result, "optimizer").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sgd", "adam"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [0.92, 0.95])


def test_plot_sweep_refuses_an_unswept_key():
    with pytest.raises(ValueError, match="'momentum' is not a swept key"):
        plot_sweep(made_up_sweep(), "momentum")
    with pytest.raises(ValueError, match="'test_acc' is not a swept key"):
        plot_sweep(made_up_sweep(), "test_acc")


def line_labels(ax):
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith(("_", "best"))]


def test_plot_sweep_takes_a_selection_and_a_table_without_attrs():
    df = made_up_sweep()
    ax = plot_sweep(df[df.batch_size == 100], "learning_rate").axes[0]
    assert line_labels(ax) == ["batch 100"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(),
                                  df.best_val_acc[df.batch_size == 100])
    plain = pd.DataFrame(df)  # no attrs: the swept keys are the columns but the measures
    plain.attrs = {}
    ax = plot_sweep(plain, "batch_size").axes[0]
    assert line_labels(ax) == ["lr 0.001", "lr 0.01", "lr 0.1"]
    np.testing.assert_array_equal(ax.get_lines()[2].get_xdata(), [32, 100])
    ax = plot_sweep(df.iloc[::-1], "learning_rate").axes[0]  # lines in order of appearance
    assert line_labels(ax) == ["batch 100", "batch 32"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0.001, 0.01, 0.1])


def test_plot_sweep_leaves_a_gap_for_a_run_without_a_value():
    result = sweep_table({"learning_rate": [0.01, 0.1, 1.0],
                          "best_val_acc": [0.9, 0.92, None]}, ["learning_rate"])
    ys = plot_sweep(result, "learning_rate").axes[0].get_lines()[0].get_ydata()
    np.testing.assert_array_equal(ys, [0.9, 0.92, np.nan])


def test_plot_heatmap_holds_the_metric_of_every_pair():
    fig = plot_heatmap(made_up_sweep(), "learning_rate", "batch_size")
    ax = fig.axes[0]
    expected = 0.9 + np.array([[0.001], [0.01], [0.1]]) / 10 + np.array([32, 100]) / 10000
    np.testing.assert_allclose(ax.images[0].get_array(), expected)
    assert [t.get_text() for t in ax.texts] == [f"{v:.4g}" for v in expected.ravel()]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.001", "0.01", "0.1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "100"]
    colours = [t.get_color() for t in ax.texts]  # readable on the lowest and highest cell
    assert (colours[0], colours[-1]) == ("white", "black")
    assert ax.get_title() == "Validation accuracy at the best epoch\nmomentum 0.9, 10 epochs, seed 0"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Batch size (images)", "Learning rate")


def test_plot_heatmap_needs_one_run_per_cell():
    rows = [{"learning_rate": 0.1, "batch_size": 32, "momentum": m, "best_val_acc": 0.9}
            for m in (0.0, 0.9)]
    result = sweep_table(rows, ["learning_rate", "batch_size", "momentum"])
    with pytest.raises(ValueError, match=r"also varies \['momentum'\]"):
        plot_heatmap(result, "learning_rate", "batch_size")
    ax = plot_heatmap(result[result.momentum == 0.9], "learning_rate", "batch_size").axes[0]
    assert ax.images[0].get_array().shape == (1, 1)


def test_plot_heatmap_leaves_blank_the_pairs_without_a_value():
    df = made_up_sweep().drop(index=5)  # lr 0.1 with batch 100 was not trained
    df["epochs_to_threshold"] = pd.array([1, 2, None, 4, 5], dtype="Int64")  # <NA>: never
    matrix = plot_heatmap(df, "learning_rate", "batch_size",
                          metric="epochs_to_threshold").axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(matrix, np.nan),
                                  [[1, 2], [np.nan, 4], [5, np.nan]])


# ---- predictions and models ----

LABELS = [0, 0, 1, 2, 2, 2, 1]
PREDICTIONS = [0, 1, 1, 2, 0, 2, 1]
EXPECTED = [[1, 1, 0],   # true 0: once right, once taken for 1
            [0, 2, 0],   # true 1: both right
            [1, 0, 2]]   # true 2: once taken for 0


def test_confusion_matrix_counts_true_against_predicted():
    matrix = confusion_matrix(LABELS, PREDICTIONS, 3)
    np.testing.assert_array_equal(matrix, EXPECTED)
    assert np.issubdtype(matrix.dtype, np.integer)


@pytest.mark.parametrize("labels, predictions, message", [
    ([0, 3], [0, 1], r"labels must be integers in \[0, 3\)"),
    ([0, 1], [0.5, 1.0], "predictions must be integers"),
    ([0, 1], [0], "same length")])
def test_confusion_matrix_refuses_bad_classes(labels, predictions, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(labels, predictions, 3)


def test_plot_confusion_matrix_shows_the_counts(tmp_path):
    fig = plot_confusion_matrix(LABELS, PREDICTIONS, num_classes=3,
                                save_path=str(tmp_path / "cm.png"))
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), EXPECTED)
    assert [t.get_text() for t in ax.texts] == [str(v) for v in np.ravel(EXPECTED)]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted class", "True class")
    assert is_png(tmp_path / "cm.png")
    title = plot_confusion_matrix(LABELS, PREDICTIONS, num_classes=3,
                                  title="run 1, test set").axes[0].get_title()
    assert title == "Confusion matrix of 7 images (accuracy 0.7143)\nrun 1, test set"


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def test_weight_templates_show_each_class_on_a_symmetric_scale(tmp_path):
    W = np.random.default_rng(0).normal(size=(784, 10))
    W[5, 3] = 9.0
    fig = plot_weight_templates(W, save_path=str(tmp_path / "w.png"))
    axes = image_axes(fig)
    assert len(axes) == 10 and [ax.get_title() for ax in axes] == [f"class {c}" for c in range(10)]
    image = axes[3].images[0]
    np.testing.assert_array_equal(image.get_array(), W[:, 3].reshape(28, 28))
    assert image.get_clim() == (-9.0, 9.0)
    assert is_png(tmp_path / "w.png")
    fig = plot_weight_templates(W, title="momentum run")
    assert fig._suptitle.get_text() == "Weights of each class as a 28x28 image\nmomentum run"


def test_weight_templates_refuse_a_wrong_image_shape():
    with pytest.raises(ValueError, match="784 values per image"):
        plot_weight_templates(np.zeros((784, 10)), image_shape=(20, 20))


def test_misclassified_shows_only_the_wrong_ones(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 784), dtype=np.uint8)
    labels = np.arange(40) % 10
    predictions = labels.copy()
    wrong = [3, 17, 21]
    predictions[wrong] = (labels[wrong] + 1) % 10
    fig = plot_misclassified(images, labels, predictions, save_path=str(tmp_path / "m.png"))
    axes = image_axes(fig)
    assert [ax.get_title() for ax in axes] == ["true 3 / pred 4", "true 7 / pred 8",
                                               "true 1 / pred 2"]
    np.testing.assert_array_equal(axes[1].images[0].get_array(), images[17].reshape(28, 28))
    assert axes[0].images[0].get_clim() == (0, 255)
    assert is_png(tmp_path / "m.png")
    assert fig._suptitle.get_text() == "The first 3 of 3 misclassified images"


def test_misclassified_stops_at_max_images_and_accepts_floats():
    images = np.random.default_rng(0).normal(size=(50, 784))
    labels, predictions = np.zeros(50, dtype=int), np.ones(50, dtype=int)
    fig = plot_misclassified(images, labels, predictions, max_images=12)
    assert len(image_axes(fig)) == 12


def test_misclassified_says_when_there_is_none():
    fig = plot_misclassified(np.zeros((3, 784), np.uint8), [1, 2, 3], [1, 2, 3])
    assert not image_axes(fig) and fig.axes[0].texts[0].get_text() == "No misclassified images"


def test_new_plots_leave_no_figure_open_in_pyplot():
    plot_sweep(made_up_sweep(), "learning_rate")
    plot_histories({"a": history([0.8, 0.9])})
    plot_confusion_matrix(LABELS, PREDICTIONS, num_classes=3)
    assert plt.get_fignums() == []
