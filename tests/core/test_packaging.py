"""The distribution holds every package: each folder of Python files is listed in
pyproject.toml's ``packages``, and every module imports — in this environment and from a wheel
built from the checkout and installed into a fresh virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORT_ALL = Path(__file__).with_name("import_all.py")


def setuptools_table() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_dirs() -> dict[str, str]:
    return setuptools_table()["package-dir"]


def folder_of(package: str) -> Path:
    """Where setuptools finds ``package``: its own package-dir entry, else its nearest
    mapped parent's folder plus the rest of the name."""
    mapping = package_dirs()
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in mapping:
            return ROOT / mapping[head] / Path(*parts[cut:])
    raise AssertionError(f"{package} is under no package-dir root")


def package_of(folder: Path) -> str:
    """The package name a folder under one of the package-dir roots has."""
    best = None
    for name, rel in package_dirs().items():
        root = ROOT / rel
        if folder == root or root in folder.parents:
            if best is None or len(str(root)) > len(str(ROOT / package_dirs()[best])):
                best = name
    assert best is not None, f"{folder} is under no package-dir root"
    rest = folder.relative_to(ROOT / package_dirs()[best]).parts
    return ".".join([best, *rest])


def source_folders() -> list[Path]:
    """Every folder of Python files under the package-dir roots."""
    folders = []
    for rel in sorted(set(package_dirs().values())):
        for folder in [ROOT / rel, *(ROOT / rel).rglob("*")]:
            if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
                folders.append(folder)
    return folders


def source_modules() -> set[str]:
    """Module names of every .py file of the checkout (whatever pyproject.toml lists)."""
    modules = set()
    for folder in source_folders():
        package = package_of(folder)
        modules.add(package)
        modules |= {f"{package}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    return modules


def test_every_folder_of_python_files_is_a_listed_package() -> None:
    listed = set(setuptools_table()["packages"])
    for folder in source_folders():
        name = package_of(folder)
        assert name in listed, f"{folder.relative_to(ROOT)} holds Python files but {name} " \
                               "is not in pyproject.toml's packages"
        assert (folder / "__init__.py").is_file(), f"{folder.relative_to(ROOT)} has no " \
                                                   "__init__.py"


def test_every_listed_package_is_a_folder_with_an_init() -> None:
    for package in setuptools_table()["packages"]:
        assert (folder_of(package) / "__init__.py").is_file(), package


def run_import_all(python: str, roots: list[str], env: dict[str, str] | None = None,
                   ) -> tuple[Path, set[str]]:
    done = subprocess.run([python, str(IMPORT_ALL), *roots], capture_output=True, text=True,
                          env=env, cwd="/", timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    first, *names = done.stdout.splitlines()
    return Path(first.removeprefix("from ")), set(names)


def test_every_module_imports() -> None:
    where, imported = run_import_all(sys.executable, list(package_dirs()))
    assert not source_modules() - imported


@pytest.mark.slow
def test_a_wheel_installed_into_a_fresh_venv_imports_every_module(tmp_path: Path) -> None:
    """``pip wheel .`` then a virtual environment with only that wheel (dependencies come
    from this environment's site-packages on PYTHONPATH, where the editable install's .pth
    is not processed, so the checkout cannot leak in)."""
    pip = [sys.executable, "-m", "pip"]
    # Build from a copy of the checkout's files: setuptools reuses an old build/ folder,
    # which could still hold a package that pyproject.toml no longer lists.
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True, text=True, cwd=ROOT).stdout
    source = tmp_path / "source"
    for rel in files.splitlines():
        if (ROOT / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, source / rel)
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True,
                   cwd=source, timeout=300)
    wheel = next((tmp_path / "dist").glob("tastelens-*.whl"))
    with zipfile.ZipFile(wheel) as archive:  # the web page ships as package data
        names = set(archive.namelist())
    for asset in ("index.html", "app.js", "style.css", "favicon.svg"):
        assert f"tastelens/api/web/{asset}" in names, f"the wheel lacks web/{asset}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([*pip, "--python", python, "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    where, imported = run_import_all(python, ["tastelens"], env)
    assert venv in where.parents, f"tastelens was imported from {where}, not the wheel"
    assert not source_modules() - imported, "modules missing from the wheel"
