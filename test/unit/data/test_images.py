"""Image encode/decode helpers: round trips per encoding, and clear errors on malformed input."""

import numpy as np
import pytest

from wamdiff_ros.data import images as im


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:32]
    img = np.stack([xx * 8, yy * 10, (xx + yy) * 4], -1).astype(np.uint8)
    img[0, 0] = rng.integers(0, 255, 3)
    return img


def test_png_round_trip_is_exact_and_channel_order_is_rgb(rgb):
    data = im.encode_compressed(rgb, "png")
    assert im.sniff_format(data) == "png"
    out = im.decode_compressed(data, "rgb8; png compressed bgr8")
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_round_trip_is_close(rgb):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    out = im.decode_compressed(im.encode_compressed(red, "jpeg", 95), "jpeg")
    assert out[..., 0].min() > 240 and out[..., 2].max() < 15  # still red, not swapped to blue
    out = im.decode_compressed(im.encode_compressed(rgb, "jpeg", 95))
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 4


@pytest.mark.parametrize("direct_rgb", [True, False], ids=["imread_rgb", "bgr_then_convert"])
def test_jpeg_decodes_the_same_with_or_without_opencvs_direct_rgb(rgb, monkeypatch, direct_rgb):
    """Both decode paths (OpenCV >= 4.11 straight to RGB, older OpenCV via BGR) give identical pixels, and
    a grayscale JPEG comes out as three equal channels."""
    import cv2

    colour = im.encode_compressed(rgb, "jpeg", 90)
    ok, gray = cv2.imencode(".jpg", rgb[..., 1].copy())
    assert ok
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(colour, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if not direct_rgb:
        monkeypatch.setattr(im, "_IMREAD_RGB", None)
    elif im._IMREAD_RGB is None:
        pytest.skip("this OpenCV has no IMREAD_COLOR_RGB (< 4.11)")
    out = im.decode_compressed(colour, "jpeg", expected_size=(32, 24))
    np.testing.assert_array_equal(out, reference)
    assert out.flags.c_contiguous
    mono = im.decode_compressed(gray.tobytes(), "jpeg")
    assert mono.shape == (24, 32, 3) and (mono[..., 0] == mono[..., 1]).all() and (mono[..., 1] == mono[..., 2]).all()
    with pytest.raises(ValueError, match="could not decode"):
        im.decode_compressed(colour[:40], "jpeg")


def test_jpeg_quality_changes_size(rgb):
    big = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert len(im.encode_compressed(big, "jpeg", 95)) > len(im.encode_compressed(big, "jpeg", 30))


@pytest.mark.parametrize("encoding", list(im.RAW_ENCODINGS))
def test_raw_round_trip_every_encoding(rgb, encoding):
    data, w, h, step = im.encode_raw(rgb, encoding)
    assert (w, h) == (32, 24) and step == 32 * im.RAW_ENCODINGS[encoding] and len(data) == step * h
    out = im.decode_raw(data, w, h, encoding, step, expected_size=(32, 24))
    if encoding == "mono8":
        assert out.shape == rgb.shape and (out[..., 0] == out[..., 1]).all()
    else:
        np.testing.assert_array_equal(out, rgb)


def test_raw_with_row_padding(rgb):
    data, w, h, step = im.encode_raw(rgb, "bgr8")
    padded = np.zeros((h, step + 4), np.uint8)
    padded[:, :step] = np.frombuffer(data, np.uint8).reshape(h, step)
    np.testing.assert_array_equal(im.decode_raw(padded.tobytes(), w, h, "bgr8", step + 4), rgb)


def test_errors_name_what_was_expected(rgb):
    data, w, h, _ = im.encode_raw(rgb, "rgb8")
    with pytest.raises(ValueError, match="expected one of .*rgb8"):
        im.decode_raw(data, w, h, "yuv422")
    with pytest.raises(ValueError, match=r"expected 2304 bytes .*32×24 rgb8"):
        im.decode_raw(data[:-1], w, h, "rgb8")
    with pytest.raises(ValueError, match="step"):
        im.decode_raw(data, w, h, "rgb8", step=10)
    with pytest.raises(ValueError, match=r"expected a 64×24 image, got 32×24"):
        im.decode_raw(data, w, h, "rgb8", expected_size=(64, 24))
    with pytest.raises(ValueError, match="neither JPEG nor PNG"):
        im.decode_compressed(b"hello world", "jpeg")
    with pytest.raises(ValueError, match="says png, but the data is jpeg"):
        im.decode_compressed(im.encode_compressed(rgb, "jpeg"), "png")
    with pytest.raises(ValueError, match="could not decode"):
        im.decode_compressed(im.encode_compressed(rgb, "jpeg")[:20])
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        im.encode_compressed(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="quality"):
        im.encode_compressed(rgb, "jpeg", 0)
