"""notebooks/analysis.ipynb runs headless, top to bottom, on the stored fixture run.

Executed with nbclient in a real ipykernel (the venv's ``python3`` kernel),
with ``PUSHBENCH_RUN`` pointing at a copy of ``tests/fixtures/report-run``.
A cell that raises fails the test; the plots must come out as images and the
loaded data must be the fixture's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"
RUN = ROOT / "tests" / "fixtures" / "report-run"


def test_analysis_notebook_executes_on_the_fixture_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    run = shutil.copytree(RUN, tmp_path / "run")
    monkeypatch.setenv("PUSHBENCH_RUN", str(run))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # percentiles (2 points), rate sweep, throughput, bytes, CPU, memory, latency over time
    assert len(images) >= 8, f"only {len(images)} plots"
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/html", "")) for o in outputs
    )
    assert "scenario report-fixture, status complete" in text
    assert "ws · raw" in text and "shortpoll · aiohttp" in text  # the summary table
    assert "no series/" not in text and "no rate sweep" not in text
    assert not [o for o in outputs if o.get("output_type") == "error"]
