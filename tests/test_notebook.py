"""runner.ipynb executes top to bottom, every cell within a time limit."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

CELL_TIMEOUT = 600


@pytest.mark.notebook
def test_runner_notebook_executes_top_to_bottom(tmp_path, monkeypatch):
    notebook = nbformat.read(os.path.join(ROOT, "runner.ipynb"), as_version=4)
    monkeypatch.setenv("RUNNER_QUICK", "1")  # the notebook's long experiments run shortened
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}})
    client.execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells
                      if cell.cell_type == "code" for output in cell.get("outputs", []))
    assert outputs.count("Final test accuracy") == 2
    assert "Epoch [0]\t Average validation loss" in outputs
    for section_output in ("epochs to 0.90 val", "Adamax", "mlp_bn", "cnn"):
        assert section_output in outputs, section_output
    figures = sum("image/png" in output.get("data", {}) for cell in notebook.cells
                  if cell.cell_type == "code" for output in cell.get("outputs", []))
    assert figures >= 12
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
