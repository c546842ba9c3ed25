"""The notebooks: every one runs top to bottom with the `tiny` preset (papermill, the venv's python3
kernel) and checks in its last cell what it produced; the committed files carry no outputs, start with
a `parameters` cell, and are linked from the README.

They share one lab directory: 00_quickstart runs a whole iteration from scratch on a run of its own,
then 01 to 07 run in order on another (each continues the run of the one before)."""
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = ["00_quickstart", "01_problems_and_sandbox", "02_generate_candidates", "03_reward_model", "04_ppo",
            "05_hard_negatives", "06_evaluate", "07_iterate"]
TINY = {"preset": "tiny", "run_name": "notebooks", "max_train_problems": 3, "max_eval_problems": 2, "num_samples": 3}


@pytest.fixture(scope="module")
def shared_dirs(tmp_path_factory):
    """One lab directory for all the notebooks (later ones continue the run of earlier ones), and a model cache."""
    root = tmp_path_factory.mktemp("notebooks")
    return root / "lab", root / "cache"


def test_the_set_of_notebooks_is_complete():
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


def test_the_kernel_is_this_virtual_environment():
    from jupyter_client import KernelManager

    assert KernelManager(kernel_name="python3").format_kernel_cmd()[0] == sys.executable, \
        "the python3 kernelspec does not start this venv's python: run scripts/setup.sh test"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_has_no_outputs_and_starts_with_a_parameters_cell(notebook):
    import papermill

    content = nbformat.read(notebook, as_version=4)
    nbformat.validate(content)
    code = [cell for cell in content.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert set(TINY) | {"lab_dir", "overrides"} <= set(papermill.inspect_notebook(str(notebook)))
    assert content.cells[0].cell_type == "markdown" and content.cells[0].source.startswith("# ")


def test_the_readme_links_every_notebook():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert all(f"](notebooks/{path.name})" in readme for path in NOTEBOOKS)


@pytest.mark.integration
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_with_the_tiny_preset(notebook, shared_dirs, tmp_path):
    import papermill

    lab_dir, cache_dir = shared_dirs
    parameters = {**TINY, "lab_dir": str(lab_dir), "overrides": {"model.cache_dir": str(cache_dir)}}
    if notebook.stem == "00_quickstart":
        parameters["run_name"] = "quickstart"
    papermill.execute_notebook(str(notebook), str(tmp_path / notebook.name), parameters=parameters,
                               kernel_name="python3", cwd=str(notebook.parent), progress_bar=False)
