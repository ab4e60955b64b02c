"""The two study notebooks execute top to bottom in their quick mode (parameters injected with
papermill), and their committed outputs come from full runs with comparison tables; the
seed-spread script counts its runs right and runs end to end."""
import importlib.util
import os

import nbformat
import pandas as pd
import papermill
import pytest

from conftest import ROOT

STUDIES = os.path.join(ROOT, "studies")


@pytest.mark.notebook
@pytest.mark.parametrize("name", ["fc_nets.ipynb", "cnn.ipynb"])
def test_study_notebook_executes_in_quick_mode(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / name
    papermill.execute_notebook(os.path.join(STUDIES, name), str(out),
                               parameters={"QUICK": True, "N_JOBS": 1},
                               cwd=STUDIES, kernel_name="python3", progress_bar=False)
    executed = nbformat.read(str(out), as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def outputs_text(notebook):
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            texts.append(output.get("text", ""))
            data = output.get("data", {})
            texts += [data.get("text/plain", ""), data.get("text/markdown", ""),
                      data.get("text/html", "")]
    return "\n".join(texts)


@pytest.mark.parametrize("name, expected, figures", [
    ("fc_nets.ipynb", ["Net_1 (linear)", "this framework", "study", "rprop", "margin rule",
                       "mean of 5 seeds", "features normalised across the batch"], 3),
    ("cnn.ipynb", ["test accuracy of", "stopped by"], 2),
])
def test_committed_studies_are_full_runs_with_their_tables(name, expected, figures):
    notebook = nbformat.read(os.path.join(STUDIES, name), as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert "QUICK = False" in parameters.source
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in notebook.cells)
    text = outputs_text(notebook)
    for phrase in expected:
        assert phrase in text, phrase
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors and all(c.get("execution_count") for c in notebook.cells
                              if c.cell_type == "code")
    drawn = sum("image/png" in output.get("data", {}) for cell in notebook.cells
                if cell.cell_type == "code" for output in cell.get("outputs", []))
    assert drawn == figures, "every figure is in the outputs (not run with a non-GUI backend)"


@pytest.fixture
def seed_spread(monkeypatch):
    monkeypatch.syspath_prepend(STUDIES)   # it imports study_a, its neighbour
    spec = importlib.util.spec_from_file_location("seed_spread",
                                                  os.path.join(STUDIES, "seed_spread.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_spread_counts_the_runs_reaching_the_target_and_the_study(seed_spread):
    runs = pd.DataFrame({"model": ["mlp_linear"] * 3 + ["mlp"] * 2,
                         "test_acc": [0.9190, 0.9200, 0.9230, 0.9714, 0.9699]})
    linear, relu = seed_spread.spread(runs)
    assert linear["runs"] == 3 and linear["median"] == 0.9200
    assert linear["reach the target"] == "2 (>= 0.92)"
    assert linear["reach the study"] == "1 (>= 0.9225)"
    assert relu["reach the target"] == "1 (>= 0.97)" and relu["reach the study"] == "1 (>= 0.9714)"


def test_seed_spread_runs_end_to_end_in_a_quick_mode(seed_spread, capsys):
    table = seed_spread.main(["--seeds", "2", "--epochs", "1", "--val-size", "55000",
                              "--n-jobs", "1"])
    assert list(table["net"]) == ["Net_1 (linear)", "Net_2 (ReLU)"]
    assert list(table["runs"]) == [2, 2] and (table["mean"] > 0.5).all()
    assert "2 seeds, 1 epochs" in capsys.readouterr().out


def test_the_grid_spread_places_the_studys_cell_among_our_runs(seed_spread):
    # batch 128, lr 0.03: the study has 0.9012 after 3 epochs and 0.9225 after 15
    runs = pd.DataFrame({"batch_size": 128, "learning_rate": 0.03,
                         "epoch": [3, 3, 3, 3, 15, 15, 15, 15],
                         "test_acc": [0.8990, 0.9000, 0.9020, 0.9030,
                                      0.9150, 0.9180, 0.9200, 0.9230]})
    after_3, after_15 = seed_spread.grid_spread(runs)
    assert (after_3["epochs"], after_3["runs"], after_3["study"]) == (3, 4, 0.9012)
    assert after_3["ours below the study"] == 0.5 and after_3["median"] == 0.9010
    assert (after_15["epochs"], after_15["study"]) == (15, 0.9225)
    assert after_15["ours below the study"] == 0.75 and after_15["max"] == 0.9230


def test_the_grid_spread_runs_end_to_end_in_a_quick_mode(seed_spread):
    table = seed_spread.main(["--grid", "--seeds", "1", "--epochs", "3", "--val-size", "55000",
                              "--n-jobs", "1"])
    assert list(zip(table["batch"], table["lr"])) == [(128, 0.01), (128, 0.02), (128, 0.03),
                                                      (256, 0.01)]
    assert (table["epochs"] == 3).all() and (table["runs"] == 1).all()
    assert (table["median"] > 0.5).all()


def test_the_grid_spread_needs_the_studys_first_epoch_count(seed_spread, capsys):
    with pytest.raises(SystemExit):
        seed_spread.main(["--grid", "--epochs", "2"])
    assert "give --epochs 3 or more" in capsys.readouterr().err
