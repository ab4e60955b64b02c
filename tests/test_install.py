"""Installed from a wheel, the project puts one package into site-packages, and that package
imports and trains from a folder whose own modules share names with the framework's.

The wheel is built from a copy of what packaging reads (pyproject.toml, README.md, the package),
so the build writes nothing into the checkout. The virtual environment borrows this test
run's dependencies through a .pth file of plain paths, which installs nothing else.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile

import pytest

from conftest import MNIST_ROOT, ROOT

# A student's notebook folder often holds modules of these names; none may shadow the framework.
STUDENT_MODULES = ("config", "model", "loss", "optimizer", "checks", "history", "solver",
                   "layers", "dataloader", "visualize")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    shutil.copytree(os.path.join(ROOT, "mnistlab"), source / "mnistlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
                    str(source)], check=True, capture_output=True, cwd=out)
    (path,) = out.glob("mnistlab-*.whl")
    return path


@pytest.fixture(scope="module")
def installed_python(wheel, tmp_path_factory):
    """The python of a fresh virtual environment holding the wheel, not editable."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    with open(os.path.join(site_packages, "borrowed_dependencies.pth"), "w") as f:
        f.write("\n".join(sorted(ours)) + "\n")
    # --ignore-installed: the borrowed folders may hold an installed mnistlab of their own
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    "--ignore-installed", str(wheel)], check=True, capture_output=True)
    return python, site_packages


def test_the_wheel_holds_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
        entry_points = archive.read(next(n for n in archive.namelist()
                                         if n.endswith("entry_points.txt"))).decode()
    version = wheel.name.split("-")[1]
    assert top_level == {"mnistlab", f"mnistlab-{version}.dist-info"}
    assert "mnistlab = mnistlab.cli:main" in entry_points


def test_site_packages_gains_only_the_package(installed_python):
    _, site_packages = installed_python
    added = {name for name in os.listdir(site_packages)
             if not name.startswith(("pip", "_distutils_hack", "setuptools", "distutils-precedence",
                                     "borrowed_dependencies.pth", "pkg_resources", "__pycache__"))}
    assert {name.split("-")[0] for name in added} == {"mnistlab"}, added


def test_it_trains_from_a_folder_whose_modules_share_the_framework_names(installed_python,
                                                                         tmp_path):
    python, site_packages = installed_python
    notebook_folder = tmp_path / "course"
    notebook_folder.mkdir()
    for name in STUDENT_MODULES:
        (notebook_folder / f"{name}.py").write_text(
            f"raise ImportError('the student\\'s own {name}.py was imported')\n")
    cache = tmp_path / "cache"
    shutil.copytree(MNIST_ROOT, cache / "mnist")
    script = ("import mnistlab; print(mnistlab.__file__); "
              "from mnistlab import Solver; "
              "runner = Solver({'max_epoch': 1, 'display_freq': 1000, 'seed': 0}); "
              "runner.train(); print('data', runner.cfg['data_root']); "
              "print('test', runner.test()[1])")
    result = subprocess.run([str(python), "-c", script], cwd=notebook_folder, text=True,
                            capture_output=True, timeout=300,
                            env={**os.environ, "MNISTLAB_DATA": str(cache)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(site_packages)
    assert f"data {cache / 'mnist'}" in lines
    assert float(lines[-1].split()[1]) > 0.8   # one epoch of plain SGD: about 0.84
