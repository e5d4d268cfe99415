"""``%%smtp_merge`` as the extension registers it: the merge magic, with a progress bar that outlives the kernel.

While the merge sends, the progress bar is a live widget; when it ends, ``update_display`` replaces it
with the same counts as static HTML and text, so a saved notebook holds no widget view.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from IPython.display import display

from smtp_nb.mailmerge.merge import rate
from smtp_nb.rendering import View, escape

from .. import merge_magic
from .base import SMTPMagicsBase

__all__ = ["MergeMagics", "MergeProgress"]


class MergeProgress(View):
    """The counts of a merge, as the progress bar last showed them, in static form."""

    def __init__(self, text: str, *, done: bool) -> None:
        self.text = text
        self.done = done

    def _line(self) -> str:
        if not self.text:
            return "merge: nothing was sent"
        return f"merge: {self.text}" + (" — done" if self.done else " (ended before every row was answered)")

    def _text(self) -> str:
        return self._line()

    def _html(self) -> str:
        return f"<div>{escape(self._line())}</div>"


def _counts_text(counts: dict[str, int]) -> str:
    return (
        f"{counts['accepted']} accepted, {counts['refused'] + counts['failed']} refused, "
        f"{counts['retried']} retried, {rate(counts)}"
    )


class MergeMagics(merge_magic.MergeMagics):  # type: ignore[misc]
    """``%%smtp_merge``; its progress bar becomes static HTML when the merge ends.

    Not decorated with ``@magics_class``: it keeps its parent's table of magics, and overrides a method.
    """

    def _widgets_wanted(self) -> bool:
        configurables = getattr(self.shell, "configurables", [])
        config = next((c for c in configurables if isinstance(c, SMTPMagicsBase)), None)
        return config is None or bool(config.widgets)

    def _progress(self) -> tuple[Callable[[dict[str, int]], None] | None, Callable[[], None]]:
        """A live progress bar (main thread; moved from the session's loop thread), replaced when it ends."""
        if getattr(self.shell, "kernel", None) is None or os.environ.get("TQDM_DISABLE"):
            return None, lambda: None
        if not self._widgets_wanted():
            return None, lambda: None
        try:
            import ipywidgets
        except ImportError:
            return None, lambda: None
        bar = ipywidgets.IntProgress(value=0, min=0, max=1, description="merge")
        label = ipywidgets.Label("starting")
        box = ipywidgets.HBox([bar, label])
        handle = display(box, display_id=True)
        state = {"text": ""}

        def update(counts: dict[str, int]) -> None:
            done = counts["accepted"] + counts["refused"] + counts["failed"] + counts["unknown"]
            bar.max = max(bar.max, done + counts.get("in_flight", 0))
            bar.value = done
            label.value = state["text"] = _counts_text(counts)

        def finish() -> None:
            finished = bar.max > 0 and bar.value >= bar.max
            if handle is not None:
                handle.update(MergeProgress(state["text"], done=finished))
            box.close()
            bar.close()
            label.close()

        return update, finish
