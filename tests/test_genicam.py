"""The GenICam source with the real harvesters code against the simulated producer (genicam's viky.cti)."""

import logging
import threading
import time

import numpy as np

from pipeline.config import GenICamSource, Trigger
from pipeline.sources.genicam import GenICamCamera, default_cti, harvester_for, node_settings


def _take(camera, n):
    it = camera.frames()
    frames = [next(it) for _ in range(n)]
    it.close()
    return frames


def test_rgba_camera_gives_owned_rgb_frames():
    frames = _take(GenICamCamera(GenICamSource(serial_number="0"), fps=50), 3)
    for f in frames:
        assert f.pixels.shape == (400, 400, 3) and f.pixels.dtype == np.uint8 and f.pixels.flags.c_contiguous
        assert f.t_acq_ns > 0
    assert frames[0].t_acq_ns < frames[-1].t_acq_ns


def test_pixel_format_and_geometry_are_applied():
    cam = GenICamCamera(
        GenICamSource(device_id="VikyTL_DEV_green", pixel_format="Mono8", width=200, height=120), fps=50
    )
    (f,) = _take(cam, 1)
    assert f.pixels.shape == (120, 200)


def test_missing_nodes_warn_instead_of_failing(caplog):
    cfg = GenICamSource(index=1, exposure_us=1000, gain_db=2, trigger=Trigger())
    with caplog.at_level(logging.WARNING, logger="grdnet.camera.genicam"):
        _take(GenICamCamera(cfg, fps=50), 1)
    text = caplog.text
    assert "no ExposureTime node" in text and "no Gain node" in text and "no TriggerMode node" in text


def test_trigger_settings_order():
    s = dict(node_settings(GenICamSource(trigger=Trigger(source="Line1")), fps=10))
    assert s["TriggerMode"] == "On" and s["TriggerSource"] == "Line1" and "AcquisitionFrameRate" not in s


def test_camera_in_use_is_retried_until_it_is_free():
    # the simulated producer refuses a second open of a device (ResourceInUse) within a process
    holder = harvester_for(default_cti())
    holder.update()
    ia = holder.create({"serial_number": "1"})
    reconnects = []
    cam = GenICamCamera(
        GenICamSource(serial_number="1", reconnect_min_s=0.2, reconnect_max_s=0.5),
        fps=50,
        on_reconnect=lambda: reconnects.append(time.monotonic()),
    )
    got = []
    frames = cam.frames()
    t = threading.Thread(target=lambda: got.append(next(frames)), daemon=True)
    t.start()
    time.sleep(1.5)
    assert not got and reconnects, "while the device is held, the camera keeps retrying"
    ia.destroy()
    t.join(timeout=20)
    assert got and got[0].pixels.shape == (400, 400, 3)
    cam.stopping = True
    cam.close()
