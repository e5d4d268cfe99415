"""Inline images: a file in the base folder or a matplotlib figure, referred to by cid:, and the path rules."""

from __future__ import annotations

import os
import pathlib

import jinja2
import pytest

from smtp_nb.html import HTMLMailError, InlineImages, build, inline_image
from smtp_nb.html.images import MAX_INLINE_IMAGE

from .conftest import parsed

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    base = tmp_path / "templates"
    (base / "img").mkdir(parents=True)
    (base / "img" / "logo.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(b"\x89PNG outside the base folder")
    return base


def test_the_jinja_filter_returns_a_cid_and_collects_the_part(folder):
    images = InlineImages(folder)
    env = images.install(jinja2.Environment(autoescape=True))
    html = env.from_string('<img src="{{ "img/logo.png" | inline_image }}" alt="logo">').render()
    [part] = images.parts
    assert html == f'<img src="cid:{part.cid}" alt="logo">'
    assert (part.data, part.subtype, part.filename) == (PNG, "png", "logo.png")


def test_the_same_image_twice_is_one_part_with_a_content_derived_id(folder):
    images = InlineImages(folder)
    first, second = images("img/logo.png"), images(pathlib.Path("img") / "logo.png")
    assert first == second and len(images.parts) == 1
    assert inline_image("img/logo.png", base=folder).url == first  # the same bytes give the same id anywhere


def test_a_matplotlib_figure_becomes_the_same_png_every_time(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1))
    figure.subplots().bar(["a", "b"], [1, 2])
    image, again = inline_image(figure), inline_image(figure)
    assert image.data.startswith(b"\x89PNG") and image.subtype == "png"
    assert image == again
    message = parsed(build(f'<img src="{image.url}" alt="bars">', images=[image]))
    [related] = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert related.get_content() == image.data
    assert related["Content-ID"] == f"<{image.cid}>"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/passwd", "relative to the base folder"),
        ("~/x.png", "relative to the base folder"),
        ("../secret.png", "'..' is not allowed"),
        ("img/../../secret.png", "'..' is not allowed"),
        ("img/missing.png", "not found"),
        ("img", "not a regular file"),
    ],
)
def test_paths_outside_the_base_folder_or_not_files_are_refused(folder, path, reason):
    with pytest.raises(HTMLMailError, match=reason):
        InlineImages(folder)(path)


def test_a_symlink_out_of_the_base_folder_is_refused_and_one_inside_is_followed(folder):
    (folder / "escape.png").symlink_to(folder.parent / "secret.png")
    (folder / "alias.png").symlink_to(folder / "img" / "logo.png")
    with pytest.raises(HTMLMailError, match="link to a file outside"):
        inline_image("escape.png", base=folder)
    assert inline_image("alias.png", base=folder).data == PNG


def test_the_refusals_name_the_folder_in_full(folder, monkeypatch):
    monkeypatch.chdir(folder)
    with pytest.raises(HTMLMailError, match=f"the image must be in {folder.resolve()}$"):
        InlineImages(".")("../secret.png")  # it said "must be in ." (found by a review)


def test_a_huge_image_is_refused_before_it_is_read(folder, monkeypatch):
    huge = folder / "huge.png"
    with huge.open("wb") as file:  # sparse: no disk, and reading it would take 26 MiB of memory
        file.truncate(MAX_INLINE_IMAGE + 1)
    monkeypatch.setattr(pathlib.Path, "read_bytes", lambda self: pytest.fail("read before the size was checked"))
    with pytest.raises(HTMLMailError, match=r"is 26,214,401 bytes, over 26,214,400 \(25 MiB, before base64\)"):
        inline_image("huge.png", base=folder)


def test_a_fifo_is_not_read(folder):
    os.mkfifo(folder / "pipe.png")
    with pytest.raises(HTMLMailError, match="not a regular file"):
        inline_image("pipe.png", base=folder)  # opening it would block forever


def test_files_that_are_not_images_are_refused(folder):
    (folder / "notes.txt").write_text("private")
    with pytest.raises(HTMLMailError, match="not an image"):
        inline_image("notes.txt", base=folder)


def test_anything_else_is_refused_with_what_is_accepted():
    with pytest.raises(HTMLMailError, match="a file path or a matplotlib figure, not int"):
        inline_image(42)
