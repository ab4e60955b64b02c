"""runner.ipynb executes top to bottom, every cell within a time limit; the committed notebook
is a full run whose prose quotes only numbers its outputs show, and which chooses nothing on
the test set."""
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

CELL_TIMEOUT = 600
NOTEBOOK = os.path.join(ROOT, "runner.ipynb")


@pytest.mark.notebook
def test_runner_notebook_executes_top_to_bottom(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("RUNNER_QUICK", "1")  # the notebook's long experiments run shortened
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": ROOT}})
    client.execute()
    outputs = output_text(notebook)
    assert outputs.count("Final test accuracy") == 2
    assert "Epoch [0]\t Average validation loss" in outputs
    for section_output in ("epochs to 0.90 val", "Adamax", "mlp_bn", "cnn", "Chosen on validation",
                           "What the confusion matrix shows", "This notebook ran top to bottom"):
        assert section_output in outputs, section_output
    figures = sum("image/png" in output.get("data", {}) for cell in notebook.cells
                  if cell.cell_type == "code" for output in cell.get("outputs", []))
    assert figures >= 14
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors


# ---- the committed notebook, read, not executed ----

def output_text(notebook):
    """Everything the code cells printed or displayed as text: streams, plain text, Markdown
    and HTML (tables)."""
    parts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.extend(data.get(kind, "") for kind in ("text/plain", "text/markdown", "text/html"))
    return "\n".join(part if isinstance(part, str) else "".join(part) for part in parts)


def numbers(text):
    """The numbers written in `text`, thousands separators dropped ('55,000' -> '55000'); not
    the digits inside names such as conv3x3 or idx3."""
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return re.findall(r"(?<![\w.])\d+(?:\.\d+)?", text)


def prose(cell):
    """A Markdown cell's text without its headings' section numbers ('### 4.1 Learning rate')."""
    return re.sub(r"(?m)^(#+\s*)[\d.]+\s", r"\1", cell.source)


@pytest.fixture(scope="module")
def committed():
    return nbformat.read(NOTEBOOK, as_version=4)


def headed_sections(notebook):
    """{section number: [code cells under its '## N.' heading]}."""
    sections, current = {}, 0
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            heading = re.match(r"##\s+(\d+)\.", cell.source)
            if heading:
                current = int(heading.group(1))
        elif cell.cell_type == "code":
            sections.setdefault(current, []).append(cell)
    return sections


def test_the_committed_notebook_is_a_full_run_without_errors(committed):
    code = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), "a cell was not executed"
    assert not any(output.get("output_type") == "error" for cell in code for output in cell.outputs)
    text = output_text(committed)
    assert "quick mode" not in text, "the committed outputs come from a RUNNER_QUICK run"
    assert re.search(r"Epoch \[9\]\t Average validation loss [\d.]+\t Average validation accuracy", text)


def test_every_number_in_the_prose_appears_in_the_outputs(committed):
    shown = set(numbers(output_text(committed)))
    missing = {}
    for index, cell in enumerate(committed.cells):
        if cell.cell_type == "markdown":
            absent = [number for number in numbers(prose(cell)) if number not in shown]
            if absent:
                missing[index] = absent
    assert not missing, f"numbers quoted in Markdown cells but shown by no output: {missing}"


def test_the_number_check_reads_numbers_as_written():
    assert numbers("55,000 images, 0.9205 and 0.92; conv3x3, idx3 and 28x28") == [
        "55000", "0.9205", "0.92", "28"]
    assert numbers("0.90") != numbers("0.9")


def test_nothing_is_chosen_on_the_test_set(committed):
    code = "\n".join(cell.source for cell in committed.cells if cell.cell_type == "code")
    for pattern in (r"metric\s*=\s*['\"]test", r"best_run\([^)]*['\"]test",
                    r"sort_values\([^)]*['\"]test", r"plot_(sweep|heatmap)\([^)]*['\"]test"):
        assert not re.search(pattern, code), pattern
    sections = headed_sections(committed)
    assert 7 in sections, "no '## 7.' section for the final evaluation"
    for number, cells in sections.items():
        if 3 <= number < 7:  # between the assignment's runs and the final evaluation
            for cell in cells:
                for word in ("test_acc", "test_loss", ".test(", "test_loader", "test=True"):
                    assert word not in cell.source, f"section {number} uses {word!r}"
                for call in re.findall(r"\bsweep\((?:[^()]|\([^()]*\))*\)", cell.source, re.DOTALL):
                    assert "test=False" in call, f"a sweep of section {number} reads the test set"
