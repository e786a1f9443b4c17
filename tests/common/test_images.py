import io
import math

import numpy as np
import pytest
from PIL import Image

from common.images import (FORMATS, IMAGE_SUFFIXES, MIN_IMAGE_SIDE, InvalidImageError, decode_image,
                           extension, load_image)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_suffixes_are_one_lowercase_tuple_covering_the_decoded_formats():
    assert isinstance(IMAGE_SUFFIXES, tuple)
    assert set(IMAGE_SUFFIXES) == {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
    assert len(set(IMAGE_SUFFIXES)) == len(IMAGE_SUFFIXES)
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    assert {extension(f) for f in FORMATS} <= set(IMAGE_SUFFIXES)


def test_model_and_storage_share_the_suffixes_and_decoder():
    import models.data
    import storage.imaging
    assert models.data.IMAGE_SUFFIXES is IMAGE_SUFFIXES
    assert storage.imaging.IMAGE_SUFFIXES is IMAGE_SUFFIXES


@pytest.mark.parametrize("h, w", [(1, 1), (15, 100), (100, 15), (4, 6)])
def test_tiny_images_are_refused_naming_their_size(h, w):
    with pytest.raises(InvalidImageError) as err:
        decode_image(_png(np.zeros((h, w, 3), np.uint8)))
    assert str(err.value) == (f"image is {w}x{h} px: too small to label "
                              f"(each side must be at least {MIN_IMAGE_SIDE} px)")


def test_min_side_is_16_and_a_parameter():
    assert MIN_IMAGE_SIDE == 16
    assert decode_image(_png(np.zeros((16, 16, 3), np.uint8))).rgb.shape == (16, 16, 3)
    assert decode_image(_png(np.zeros((1, 1, 3), np.uint8)), min_side=1).rgb.shape == (1, 1, 3)
    with pytest.raises(InvalidImageError, match="at least 32 px"):
        decode_image(_png(np.zeros((20, 40, 3), np.uint8)), min_side=32)


def test_limits_are_checked_before_decoding():
    with pytest.raises(InvalidImageError, match="over the limit of 0.001 megapixels"):
        decode_image(_png(np.zeros((40, 30, 3), np.uint8)), max_megapixels=0.001)
    with pytest.raises(InvalidImageError, match="not an image"):
        decode_image(b"hello" * 20)
    with pytest.raises(InvalidImageError, match="empty file"):
        decode_image(b"")


def test_normalisation_and_orientation():
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    out = decode_image(_png(rgba))
    assert out.rgb.shape == (20, 30, 3) and (out.rgb[..., 0] == 200).all() and out.normalised
    arr = np.zeros((20, 40, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", exif=exif.tobytes())
    out = decode_image(buf.getvalue())
    assert out.rgb.shape == (40, 20, 3) and out.format == "JPEG" and out.normalised


def test_load_image_has_no_size_limits_by_default(tmp_path):
    p = tmp_path / "tiny.png"
    p.write_bytes(_png(np.full((4, 6, 3), 7, np.uint8)))
    assert (load_image(p) == 7).all() and load_image(p).shape == (4, 6, 3)
    with pytest.raises(InvalidImageError, match="too small"):
        load_image(p, min_side=MIN_IMAGE_SIDE)
    assert math.isinf(load_image.__kwdefaults__["max_megapixels"])


def test_storage_error_is_the_common_error():
    import storage
    import storage.imaging
    assert issubclass(storage.InvalidImageError, InvalidImageError)
    with pytest.raises(storage.InvalidImageError, match="image is 2x3 px: too small"):
        storage.imaging.decode_image(_png(np.zeros((3, 2, 3), np.uint8)))


def test_decoded_pixels_are_a_writable_array():
    for arr in (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint8)):
        rgb = decode_image(_png(arr)).rgb
        assert rgb.flags.writeable and rgb.flags.c_contiguous
