import json

import numpy as np
import pytest

from pipeline.wire import BadFrame, FrameHeader, decode, encode


def _header(**over):
    h = {"camera": "cam0", "frame_id": 7, "slot": 3, "t_acq_ns": 123, "shape": (4, 5, 3)}
    h.update(over)
    return FrameHeader(**h)


def test_roundtrip_without_copy():
    px = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)
    parts = encode(_header(), px)
    frame = decode([parts[0], bytes(parts[1])])
    assert frame.header == _header() and np.array_equal(frame.pixels, px)
    assert parts[1] is px, "C-contiguous pixels are sent as they are (zero copy)"


def _raw(**over):
    h = json.loads(_header().to_json())
    h.update(over)
    return json.dumps(h).encode()


@pytest.mark.parametrize(
    "parts,kind,camera,slot",
    [
        ([b"x"], "parts", None, None),
        ([b"{not json", b""], "json", None, None),
        ([b"[1,2]", b""], "json", None, None),
        ([json.dumps({"camera": "cam0", "slot": 3}).encode(), b""], "field", "cam0", 3),
        ([_raw(v=2), bytes(60)], "version", "cam0", 3),
        ([_raw(dtype="uint16"), bytes(60)], "dtype", "cam0", 3),
        ([_raw(shape=[4, -5]), bytes(60)], "field", "cam0", 3),
        ([_raw(frame_id="7"), bytes(60)], "field", "cam0", 3),
        ([_raw(), bytes(59)], "size", "cam0", 3),
    ],
)
def test_bad_frames_name_their_kind_and_what_the_header_said(parts, kind, camera, slot):
    with pytest.raises(BadFrame) as err:
        decode(parts)
    assert err.value.kind == kind and err.value.camera == camera and err.value.slot == slot


def test_encode_refuses_pixels_that_do_not_match_the_header():
    with pytest.raises(ValueError, match="do not match"):
        encode(_header(), np.zeros((4, 5), np.uint8))
