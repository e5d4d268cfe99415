"""The capability explorer: pick an extension the server offers and read what it means.

Imported only when a widget is shown (it needs ipywidgets). Its ``text/plain``
form is the report's full text, so nbval compares something stable and
meaningful instead of a widget id.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets

if TYPE_CHECKING:
    from .views import CapabilityReport

__all__ = ["CapabilityExplorer"]


class CapabilityExplorer(ipywidgets.VBox):  # type: ignore[misc]
    """Summary (server, TLS, login) above a list of extensions; selecting one shows its meaning and parameters."""

    def __init__(self, report: CapabilityReport, **kwargs: Any) -> None:
        self.report = report
        extensions = report.capabilities.extensions
        lines = [report.heading(), *report.tls_lines(), report.login_line()]
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
        extension = self.report.capabilities.extension(self.extensions.value or "")
        if extension is None:
            self.detail.value = "<i>the server offers no extensions</i>"
            return
        e = html.escape
        params = f"<div>parameters: <code>{e(extension.params)}</code></div>" if extension.params else ""
        known = "" if extension.known else " <i>(unknown to smtp_nb)</i>"
        self.detail.value = f"<div><b>{e(extension.keyword)}</b>{known}</div><div>{e(extension.meaning)}</div>{params}"

    def __repr__(self) -> str:
        return repr(self.report)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = repr(self.report)  # ipywidgets cuts text/plain at 110 characters
        return bundle
