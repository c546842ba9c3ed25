"""`lab` is an installed package (pyproject.toml, `pip install -e .` in scripts/setup.sh): it imports from
any working directory without path hacks, and a built wheel carries every module of every subpackage
and the files run inside the sandbox."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_lab_imports_from_another_directory_as_this_checkout(tmp_path):
    child = subprocess.run([sys.executable, "-c", "import lab; print(lab.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert child.returncode == 0, f"run scripts/setup.sh (pip install -e .): {child.stderr}"
    assert Path(child.stdout.strip()) == REPO / "lab" / "__init__.py"


def test_no_notebook_or_script_edits_sys_path():
    files = sorted(REPO.glob("notebooks/*.ipynb")) + sorted(REPO.glob("scripts/*.py")) + [REPO / "app.py"]
    assert [f.name for f in files if "sys.path.insert" in f.read_text(encoding="utf-8")] == []


@pytest.mark.integration
def test_the_wheel_carries_the_sandbox_helpers_and_the_apps_static_files(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO / "lab", source / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True)
    [wheel] = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    helpers = {f"lab/exec_helpers/{p.name}" for p in (REPO / "lab" / "exec_helpers").iterdir() if p.is_file()}
    assert helpers and helpers <= names and "lab/console.py" in names and "lab/sandbox/runner.py" in names
    assert {"lab/app/static/app.css", "lab/app/static/app.js"} <= names, "the app page's static files"
    modules = {str(p.relative_to(source)) for p in (source / "lab").rglob("*.py")}
    assert modules - names == set(), "add their packages to pyproject.toml's packages"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: torch==2.13.0" in metadata  # the pins of requirements.txt
