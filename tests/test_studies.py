"""The two study notebooks execute top to bottom in their quick mode (parameters injected with
papermill), and their committed outputs come from full runs with comparison tables."""
import os

import nbformat
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
