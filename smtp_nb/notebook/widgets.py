"""The capability explorer: pick an extension the server offers and read what it means (a live ipywidgets view).

Made only on request (``CapabilityReport.widget()``), never as a cell's output: a saved notebook holds
the report's HTML instead. It reads ``Capabilities`` alone, so views and widgets do not import each other.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets

from .capabilities import Capabilities

__all__ = ["CapabilityExplorer"]


class CapabilityExplorer(ipywidgets.VBox):  # type: ignore[misc]
    """Summary (server, TLS, login) above a list of extensions; selecting one shows its meaning and parameters."""

    def __init__(self, capabilities: Capabilities, *, text: str = "", **kwargs: Any) -> None:
        self.capabilities = capabilities
        self.text = text or capabilities.heading()
        extensions = capabilities.extensions
        lines = [capabilities.heading(), *capabilities.tls_lines(), capabilities.login_line()]
        self.summary = ipywidgets.HTML(
            value="".join(
                f'<div style="color:#a40000;font-weight:bold">{html.escape(line)}</div>'
                if line.startswith("WARNING")
                else f"<div>{html.escape(line)}</div>"
                for line in lines
            )
        )
        self.extensions = ipywidgets.Select(
            options=[(e.label, e.keyword) for e in extensions],
            value=extensions[0].keyword if extensions else None,
            rows=min(max(len(extensions), 2), 12),
            description="Extension",
            layout=ipywidgets.Layout(width="max-content"),
        )
        self.detail = ipywidgets.HTML()
        self.extensions.observe(self._show, names="value")
        self._show()
        super().__init__(children=[self.summary, ipywidgets.HBox([self.extensions, self.detail])], **kwargs)

    def _show(self, change: Any = None) -> None:
        extension = self.capabilities.extension(self.extensions.value or "")
        if extension is None:
            self.detail.value = "<i>the server offers no extensions</i>"
            return
        e = html.escape
        params = f"<div>parameters: <code>{e(extension.params)}</code></div>" if extension.params else ""
        known = "" if extension.known else " <i>(unknown to smtp_nb)</i>"
        self.detail.value = f"<div><b>{e(extension.keyword)}</b>{known}</div><div>{e(extension.meaning)}</div>{params}"

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text  # real text, not the widget's repr (which ipywidgets cuts at 110 characters)
        return bundle
