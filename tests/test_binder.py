"""binder/ has what mybinder.org needs to open the notebooks: requirements, and a postBuild that installs smtp_nb.

mybinder.org itself cannot be reached from here, so these tests check what it would run: that postBuild
is an executable script installing this checkout with extras that, together with requirements.txt,
provide every module the notebooks import, the magics and the mail merge.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import pathlib
import re
import shlex
import sys

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _resolve(extras: set[str]) -> tuple[set[str], set[str]]:
    """The extras reached from ``extras`` (smtp_nb[...] inside an extra included) and their distributions."""
    table, seen, names = _extras(), set(), set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in table[extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == "smtp-nb":
                todo.extend(requirement.extras)
            else:
                names.add(canonicalize_name(requirement.name))
    return seen, names


def _post_build_install() -> tuple[list[str], set[str]]:
    """The pip install line of postBuild, as arguments, and the extras it asks for on this checkout."""
    lines = [line for line in (BINDER / "postBuild").read_text().splitlines() if "pip install" in line]
    assert len(lines) == 1, "postBuild should install smtp_nb with one pip install line"
    argv = shlex.split(lines[0])
    targets = [arg for arg in argv if arg == "." or arg.startswith(".[")]
    assert targets, f"postBuild does not install this checkout: {lines[0]}"
    match = re.fullmatch(r"\.(?:\[(.*)\])?", targets[0])
    assert match is not None
    return argv, {extra.strip() for extra in (match.group(1) or "").split(",") if extra.strip()}


def _imports(notebook: pathlib.Path) -> set[str]:
    """Top-level modules imported by the notebook's code cells (magics turned into Python first)."""
    modules: set[str] = set()
    transform = TransformerManager().transform_cell
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(transform(cell.source))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules


def test_post_build_is_an_executable_script_that_stops_on_errors():
    script = BINDER / "postBuild"
    assert os.access(script, os.X_OK), "mybinder runs postBuild only if it is executable (chmod +x)"
    text = script.read_text()
    assert text.startswith("#!/bin/bash\n") or text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text  # a failed install must fail the build, not give a broken Binder


def test_post_build_installs_this_checkout_with_the_tutorials_extras():
    argv, extras = _post_build_install()
    assert argv[argv.index("install") - 1] == "pip"
    assert "-e" in argv  # editable: the notebooks run against this checkout
    assert extras <= set(_extras()), f"postBuild asks for extras pyproject.toml does not define: {extras}"
    reached, _ = _resolve(extras)
    assert {"notebook", "merge"} <= reached  # the magics and the mail merge


def test_requirements_are_valid_and_bring_jupyterlab():
    lines = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith("#")]
    assert "jupyterlab" in {canonicalize_name(r.name) for r in requirements}  # ?labpath= opens JupyterLab


def test_every_module_the_notebooks_import_is_installed_on_binder():
    _, extras = _post_build_install()
    _, installed = _resolve(extras)
    lines = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()]
    installed |= {canonicalize_name(Requirement(line).name) for line in lines if line and not line.startswith("#")}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for notebook in NOTEBOOKS:
        for module in sorted(_imports(notebook) - set(sys.stdlib_module_names) - {"smtp_nb"}):
            provided_by = {canonicalize_name(d) for d in distributions.get(module, [module])}
            if not provided_by & installed:
                missing[f"{notebook.name}: import {module}"] = sorted(provided_by)
    assert not missing, f"imported by the notebooks, not installed by binder/: {missing}"
