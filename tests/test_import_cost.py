"""``import smtp_nb`` stays cheap: structural checks in a fresh interpreter, never a timing.

The client's modules, asyncio and email load when a name needs them (``smtp_nb.SMTP``); the
merge's, the notebook's and the HTML mail's heavy dependencies only with their features.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import smtp_nb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ["jinja2", "nh3", "css_inline", "IPython", "ipywidgets", "pandas", "aiosmtpd", "sqlite3"]


def loaded_after(code: str) -> set[str]:
    """Top-level modules imported by ``code`` in a fresh interpreter."""
    probe = f"import sys; {code}; print(__import__('json').dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_smtp_nb_imports_no_heavy_module_and_not_the_client_yet() -> None:
    loaded = loaded_after("import smtp_nb")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    # (ssl is: the certificate error subclasses ssl's, and an exception must be there to be caught)
    assert not loaded & {"asyncio", "email"}, "the client is imported when first used, not by import smtp_nb"


def test_the_client_loads_on_first_use_still_without_the_heavy_modules() -> None:
    loaded = loaded_after("import smtp_nb; smtp_nb.SMTP; smtp_nb.send; smtp_nb.Delivery")
    assert {"asyncio", "ssl", "email"} <= loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_every_public_name_resolves_and_star_import_gives_them_all() -> None:
    namespace: dict[str, object] = {}
    exec("from smtp_nb import *", namespace)
    assert set(smtp_nb.__all__) <= set(namespace)
    assert namespace["SMTP"] is smtp_nb.client.SMTP is smtp_nb.client.smtp.SMTP
    assert set(smtp_nb.__all__) <= set(dir(smtp_nb))
