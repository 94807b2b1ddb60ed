"""notebooks/walkthrough.ipynb: committed without outputs, and it runs from top to bottom.

The notebook is executed with nbclient in a kernel of this interpreter: a ``python3`` kernelspec
running ``sys.executable -m ipykernel_launcher`` is put first on ``JUPYTER_PATH``, so no
``python3`` kernelspec found elsewhere on the machine (the user's, the system's) is used and the
kernel imports the sendtopacs under test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "walkthrough.ipynb"
TIMEOUT_S = 120


def _read() -> nbformat.NotebookNode:
    text = NOTEBOOK.read_text(encoding="utf-8")
    notebook: nbformat.NotebookNode = nbformat.reads(  # type: ignore[no-untyped-call]
        text, as_version=nbformat.NO_CONVERT
    )
    return notebook


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _output_text(cell: nbformat.NotebookNode) -> str:
    parts: list[str] = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in {"execute_result", "display_data"}:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_committed_notebook_is_valid_and_stripped() -> None:
    notebook = _read()
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    cells = _code_cells(notebook)
    assert cells
    for cell in cells:
        assert cell.outputs == [], f"outputs committed in: {cell.source[:60]!r}"
        assert cell.execution_count is None, f"execution count in: {cell.source[:60]!r}"
        assert not cell.metadata.get("execution"), "execution timing metadata committed"


def _use_this_interpreter(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``python3`` the ipykernel of ``sys.executable`` whatever else is installed."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(folder))
    found = KernelSpecManager().get_kernel_spec("python3")
    assert found.argv[0] == sys.executable


@pytest.mark.slow
def test_walkthrough_runs_in_a_kernel_of_this_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_this_interpreter(monkeypatch, tmp_path / "jupyter")
    notebook = _read()
    run_in = tmp_path / "cwd"
    run_in.mkdir()
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(run_in)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    cells = _code_cells(notebook)
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = "\n".join(_output_text(cell) for cell in cells)
    for expected in (
        "sample-photo.jpg -> sample-photo.dcm: Secondary Capture Image Storage",
        "sample-report.pdf -> sample-report.dcm: Encapsulated PDF Storage",
        "Patient: Doe^Jane 12345",
        "SOP Class: Secondary Capture Image Storage",
        "3 of 3 sent; the PACS received 3",
        "worklist item: Doe^Jane 12345 A2001",
        "converted into the scheduled study: True",
        "sent: True",
        "stopped the test PACS and worklist",
    ):
        assert expected in text, f"{expected!r} not in the notebook's output:\n{text}"
    assert "Roe^Richard" not in text  # the query matched one patient only
