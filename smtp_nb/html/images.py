"""Inline images: a file or a matplotlib figure attached as a related part and referred to by ``cid:``.

``InlineImages`` collects the images of one message; called (or used as the Jinja filter ``inline_image``)
it returns the ``cid:`` URL to put in ``<img src>``. Paths are relative to a base folder and must stay in it,
because templates may come from someone else: no absolute paths, no ``..``, no symlink out, regular files only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import mimetypes
import os
import pathlib
import stat
from typing import Any

from .errors import HTMLMailError

__all__ = ["InlineImage", "InlineImages", "inline_image"]

#: Image types mail programs show inline.
_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "image/bmp"}
#: The largest image file read: base64 makes it a third larger, over what mail servers take (25 MB is common).
MAX_INLINE_IMAGE = 25 * 2**20


@dataclasses.dataclass(frozen=True)
class InlineImage:
    """One related part: its bytes, type and the Content-ID the HTML refers to (``cid:`` + ``cid``)."""

    data: bytes
    subtype: str  # image/<subtype>
    filename: str
    cid: str  # without angle brackets

    @property
    def url(self) -> str:
        return f"cid:{self.cid}"


def _image(data: bytes, subtype: str, filename: str) -> InlineImage:
    # The Content-ID comes from the bytes: the same message renders the same every time (stable previews,
    # journal fingerprints, notebook outputs), and the same image used twice is attached once.
    digest = hashlib.sha256(data).hexdigest()[:20]
    return InlineImage(data, subtype, filename, f"{digest}@smtp-nb")


class InlineImages:
    """The inline images of one message, with paths taken relative to ``base`` (default: the current folder).

    ``images("chart.png")`` or ``images(figure)`` returns ``"cid:..."``; ``images.install(env)`` makes it the
    Jinja filter ``inline_image``, so a template writes ``<img src="{{ 'chart.png' | inline_image }}">``.
    ``images.parts`` is what ``build()`` attaches.
    """

    def __init__(self, base: str | os.PathLike[str] = ".", *, dpi: int = 100) -> None:
        self.base = pathlib.Path(base)
        self.dpi = dpi
        self._parts: dict[str, InlineImage] = {}

    @property
    def parts(self) -> list[InlineImage]:
        return list(self._parts.values())

    def __call__(self, source: Any) -> str:
        image = self.image(source)
        self._parts.setdefault(image.cid, image)
        return image.url

    def image(self, source: Any) -> InlineImage:
        """The image of ``source`` (a path in the base folder or a matplotlib figure), not collected."""
        return self.figure(source) if hasattr(source, "savefig") else self.file(source)

    def install(self, environment: Any) -> Any:
        """Register this collector as the Jinja filter ``inline_image`` of ``environment``; returns it."""
        environment.filters["inline_image"] = self
        return environment

    def figure(self, figure: Any) -> InlineImage:
        """A matplotlib figure as PNG (no metadata, so the same figure gives the same bytes)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=self.dpi, bbox_inches="tight", metadata={"Software": None})
        data = buffer.getvalue()
        return _image(data, "png", f"figure-{hashlib.sha256(data).hexdigest()[:8]}.png")

    def file(self, path: Any) -> InlineImage:
        """An image file inside the base folder; anything else raises ``HTMLMailError`` saying why."""
        if not isinstance(path, (str, os.PathLike)):
            raise HTMLMailError(f"inline_image takes a file path or a matplotlib figure, not {type(path).__name__}")
        relative = pathlib.PurePath(path)
        shown = str(path)
        root = self.base.resolve()
        if relative.is_absolute() or shown.startswith(("/", "\\", "~")):
            raise HTMLMailError(f"inline image {shown!r}: give a path relative to the base folder {root}")
        if ".." in relative.parts:
            raise HTMLMailError(f"inline image {shown!r}: '..' is not allowed, the image must be in {root}")
        try:
            full = (root / relative).resolve(strict=True)
        except (OSError, RuntimeError):
            raise HTMLMailError(f"inline image {shown!r} not found in {root}") from None
        if full != root and root not in full.parents:
            raise HTMLMailError(f"inline image {shown!r} is a link to a file outside {root}; copy the file there")
        found = full.stat()
        if not stat.S_ISREG(found.st_mode):
            raise HTMLMailError(f"inline image {shown!r} is not a regular file")
        if found.st_size > MAX_INLINE_IMAGE:  # said before reading it into memory
            raise HTMLMailError(
                f"inline image {shown!r} is {found.st_size:,} bytes, over {MAX_INLINE_IMAGE:,} "
                "(25 MiB, before base64): no mail server takes it; make it smaller, or link to it"
            )
        kind, encoding = mimetypes.guess_type(full.name)
        if kind not in _TYPES or encoding is not None:
            raise HTMLMailError(
                f"inline image {shown!r} is not an image mail programs show (.png, .jpg, .gif, .webp, .svg, .bmp)"
            )
        try:
            data = full.read_bytes()
        except OSError as exc:
            raise HTMLMailError(f"inline image {shown!r} cannot be read: {exc.strerror}") from None
        return _image(data, kind.split("/", 1)[1], relative.name)


def inline_image(source: Any, *, base: str | os.PathLike[str] = ".", dpi: int = 100) -> InlineImage:
    """One inline image from a path relative to ``base`` or a matplotlib figure; put ``.url`` in ``<img src>``."""
    return InlineImages(base, dpi=dpi).image(source)
