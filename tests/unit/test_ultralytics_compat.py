"""Importing Ultralytics changes nothing vopt relies on: it patches PIL.Image.open for the whole process (a
file Pillow cannot identify then runs check_requirements("pi-heif") and imports it), and with that patch an
unreadable image in any later build of the same process failed with "No module named 'pi_heif'" instead of
the error naming the file."""

from __future__ import annotations

import pytest

from vopt.models.ultralytics_compat import INSTALL, available

pytestmark = pytest.mark.skipif(not available(), reason=f"needs Ultralytics: {INSTALL}")


def test_import_leaves_pillow_open_and_unreadable_images_are_named(tmp_path):
    from PIL import Image

    from vopt.datasets.images import header_problem
    from vopt.models.ultralytics_compat import import_ultralytics

    import_ultralytics()
    import ultralytics.utils.patches  # noqa: F401 - the module that patches, imported in full

    assert Image.open.__module__ == "PIL.Image"
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"this is text, not a JPEG")
    assert "cannot identify image file" in (header_problem(bad) or "")
