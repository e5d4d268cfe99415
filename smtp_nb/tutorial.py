"""``python -m smtp_nb.tutorial``: run the quickstart notebook without a browser and say where the result is.

It executes ``notebooks/01-quickstart.ipynb`` of the source tree in a fresh kernel of this Python
(nbclient), writes the executed copy to a folder (a new temporary one unless ``--output``) and prints
what happened: the server's answer to the message the notebook sent, and the inbox. The notebook in
the source tree is left as it is. Needs the ``notebook`` extra.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from typing import Any

__all__ = ["QUICKSTART", "execute", "main"]

#: The quickstart notebook, where a source checkout (or an editable install) has it.
QUICKSTART = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "01-quickstart.ipynb"


def _this_python_kernel() -> Any:
    """A kernel manager class whose kernel is this interpreter, whatever kernels Jupyter knows about.

    A ``python3`` kernel spec installed for another Python would lack smtp_nb.
    """
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class ThisPythonSpecs(KernelSpecManager):  # type: ignore[misc]
        def get_kernel_spec(self, kernel_name: str) -> Any:
            return self.kernel_spec_class(
                resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict()
            )

    class ThisPythonKernel(AsyncKernelManager):  # type: ignore[misc]
        @default("kernel_spec_manager")
        def _specs(self) -> KernelSpecManager:
            return ThisPythonSpecs(data_dir=self.data_dir)

    return ThisPythonKernel


def execute(notebook: pathlib.Path, output_dir: pathlib.Path, *, timeout: float = 120) -> tuple[pathlib.Path, Any]:
    """Run every cell of ``notebook`` with ``output_dir`` as the kernel's folder; write the executed copy there.

    Returns the copy's path and the executed notebook. A cell that fails (and is not tagged
    ``raises-exception``) raises nbclient's ``CellExecutionError``; the copy up to that cell is written first.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    copy = output_dir / notebook.name
    client = NotebookClient(
        nb,
        kernel_manager_class=_this_python_kernel(),
        timeout=timeout,
        startup_timeout=60,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not the warning that the kernel's loopback is plain TCP
        resources={"metadata": {"path": str(output_dir)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, copy)
    return copy, nb


def _shown(nb: Any, starts: str) -> str:
    """The plain-text output of the first code cell whose source starts with ``starts``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith(starts):
            texts = [output.get("text", "") or output.get("data", {}).get("text/plain", "") for output in cell.outputs]
            return "".join(texts).rstrip()
    return ""


def _shortest(path: pathlib.Path) -> str:
    """``path`` relative to the current folder if it is inside it, else absolute."""
    relative = os.path.relpath(path.resolve())
    return str(path.resolve()) if relative.startswith("..") else relative


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smtp_nb.tutorial", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", metavar="DIR", help="write the executed copy here (default: a new temporary folder)"
    )
    parser.add_argument("--notebook", metavar="PATH", default=str(QUICKSTART), help="the notebook to run")
    parser.add_argument("--timeout", type=float, default=120, help="seconds each cell may take (default 120)")
    args = parser.parse_args(argv)

    notebook = pathlib.Path(args.notebook)
    if not notebook.is_file():
        print(
            f"{notebook} not found: the tutorial notebooks come with the source repository "
            "(git clone, then pip install -e '.[notebook]'); or pass --notebook PATH",
            file=sys.stderr,
        )
        return 2
    try:
        import nbclient  # noqa: F401
    except ImportError:
        print("running a notebook needs the notebook extra: pip install 'smtp_nb[notebook]'", file=sys.stderr)
        return 2
    from nbclient.exceptions import CellExecutionError

    output_dir = (
        pathlib.Path(args.output) if args.output else pathlib.Path(tempfile.mkdtemp(prefix="smtp_nb-tutorial-"))
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        copy, nb = execute(notebook, output_dir.resolve(), timeout=args.timeout)
    except CellExecutionError as exc:
        print(f"{notebook} failed in a cell:\n{exc}", file=sys.stderr)
        print(f"the executed copy, up to that cell: {output_dir.resolve() / notebook.name}", file=sys.stderr)
        return 1
    cells = sum(1 for cell in nb.cells if cell.cell_type == "code")
    print(f"ran {notebook.name}: {cells} code cells in {time.monotonic() - started:.1f} s, without a browser")
    print(f"executed copy: {copy}")
    for title, starts in (("the message, as the server answered it", "%%smtp_send"), ("the inbox", "%smtp_inbox")):
        shown = _shown(nb, starts)
        if shown:
            print(f"\n{title}:\n{_indent(shown)}")
    tools = _shortest(pathlib.Path(sys.executable).parent)  # this interpreter's venv: the same one, not PATH's
    print(
        f"\nto run it yourself in JupyterLab: {tools}/pip install -q -e '.[tutorials]' && "
        f"{tools}/jupyter lab {_shortest(notebook)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
