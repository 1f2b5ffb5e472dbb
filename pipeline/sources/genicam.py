"""GenICam cameras through harvesters (GenTL producer .cti). Settings are applied where the camera has
the node, with a warning where it does not; the image is copied before the buffer is queued back; a
camera that disappears is reconnected with exponential backoff, logged."""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Callable, Iterator

from model.errors import GrdnetError, SetupError
from pipeline.config import GenICamSource
from pipeline.sources.frames import SourceFrame, to_model_pixels

log = logging.getLogger("grdnet.camera.genicam")


def default_cti() -> str:
    """The simulated producer shipped in the genicam wheel (3 devices, RGBa8 400x400)."""
    import genicam

    return os.path.join(os.path.dirname(genicam.__file__), "viky.cti")


_HARVESTERS: dict[str, object] = {}


class ProducerNotFound(GrdnetError, ValueError):
    """The configured .cti file does not exist: a configuration error, not something to retry."""


def harvester_for(cti: str):
    """One Harvester per producer for the life of the process: a GenTL producer that was closed (``reset``)
    does not list its devices again in the same process, so reconnecting must reuse the open one."""
    from harvesters.core import Harvester

    if cti not in _HARVESTERS:
        h = Harvester()
        h.add_file(cti)
        _HARVESTERS[cti] = h
        if len(_HARVESTERS) == 1:
            atexit.register(_reset_all)
    return _HARVESTERS[cti]


def _reset_all() -> None:
    for h in _HARVESTERS.values():
        h.reset()
    _HARVESTERS.clear()


def search_key(cfg: GenICamSource) -> int | dict[str, str]:
    if cfg.serial_number is not None:
        return {"serial_number": cfg.serial_number}
    if cfg.device_id is not None:
        return {"id_": cfg.device_id}
    return cfg.index or 0


def node_settings(cfg: GenICamSource, fps: float) -> list[tuple[str, object]]:
    """(node, value) in the order a camera accepts them: format and geometry, then timing, then trigger."""
    out: list[tuple[str, object]] = []
    for node, value in (
        ("PixelFormat", cfg.pixel_format),
        ("Width", cfg.width),
        ("Height", cfg.height),
        ("OffsetX", cfg.offset_x),
        ("OffsetY", cfg.offset_y),
        ("ExposureTime", cfg.exposure_us),
        ("Gain", cfg.gain_db),
    ):
        if value is not None:
            out.append((node, value))
    if cfg.trigger is None or cfg.trigger.mode == "Off":
        out.append(("AcquisitionFrameRateEnable", True))
        out.append(("AcquisitionFrameRate", cfg.frame_rate or fps))
    if cfg.trigger is not None:
        t = cfg.trigger
        out += [
            ("TriggerSelector", t.selector),
            ("TriggerMode", t.mode),
            ("TriggerSource", t.source),
            ("TriggerActivation", t.activation),
        ]
    return out


def apply_settings(node_map, settings: list[tuple[str, object]], warn: Callable[[str], None]) -> list[str]:
    """Set each node the camera has; warn for the others. Returns the nodes that were set."""
    applied = []
    for node, value in settings:
        if not hasattr(node_map, node):
            if node != "AcquisitionFrameRateEnable":  # optional on most cameras
                warn(f"camera has no {node} node; {node}={value} not applied")
            continue
        try:
            getattr(node_map, node).value = value
            applied.append(node)
        except Exception as exc:  # genicam raises its own exception family
            warn(f"cannot set {node}={value}: {exc}")
    return applied


class GenICamCamera:
    """One device; ``frames()`` yields owned copies and survives disconnects."""

    def __init__(self, cfg: GenICamSource, fps: float, on_reconnect: Callable[[], None] | None = None) -> None:
        self.cfg, self.fps = cfg, fps
        self.cti = cfg.cti or default_cti()
        self.ia = None
        self.on_reconnect = on_reconnect or (lambda: None)
        self.stopping = False

    def open(self) -> None:
        if not os.path.isfile(self.cti):
            raise ProducerNotFound(f"{self.cti}: GenTL producer (.cti) not found")
        harvester = harvester_for(self.cti)
        if not harvester.device_info_list:
            harvester.update()
        try:
            self.ia = harvester.create(search_key(self.cfg))
        except ValueError:  # not in the list: it may have come back since; update() releases open acquirers,
            harvester.update()  # so it is only called when the device is missing
            if not harvester.device_info_list:
                raise SetupError(f"{self.cti}: no GenICam device found") from None
            self.ia = harvester.create(search_key(self.cfg))
        apply_settings(self.ia.remote_device.node_map, node_settings(self.cfg, self.fps), log.warning)
        self.ia.start()

    def close(self) -> None:
        """Release the device (the producer stays open for reconnects)."""
        if self.ia is not None:
            try:
                self.ia.stop()
                self.ia.destroy()
            except Exception as exc:  # a vanished camera may fail to stop; we are closing anyway
                log.debug("closing camera: %s", exc)
            self.ia = None

    def _fetch(self) -> SourceFrame | None:
        from genicam.gentl import TimeoutException

        try:
            with self.ia.fetch(timeout=self.cfg.fetch_timeout_s) as buf:
                t_acq = time.time_ns()  # the simulated producer has no timestamp: stamp on the host at fetch
                comp = buf.payload.components[0]
                pixels = to_model_pixels(comp.data, comp.data_format, comp.height, comp.width)
                seq = _device_frame_id(buf)
            return SourceFrame(pixels, t_acq, device_seq=seq)
        except TimeoutException:
            return None  # no frame in time (e.g. no trigger): not a disconnect

    def frames(self) -> Iterator[SourceFrame]:
        """Owned frames until ``stopping``; the device is released however the iteration ends."""
        try:
            yield from self._frames()
        finally:
            self.close()

    def _frames(self) -> Iterator[SourceFrame]:
        backoff = self.cfg.reconnect_min_s
        while not self.stopping:
            if self.ia is None:
                try:
                    self.open()
                    backoff = self.cfg.reconnect_min_s
                except ProducerNotFound:
                    raise
                except Exception as exc:
                    self._retry_later(exc, backoff)
                    backoff = min(backoff * 2, self.cfg.reconnect_max_s)
                    continue
            try:
                frame = self._fetch()
            except Exception as exc:
                log.error("camera %s lost (%s); reconnecting", search_key(self.cfg), exc)
                self.close()
                continue
            if frame is not None:
                yield frame

    def _retry_later(self, exc: Exception, backoff: float) -> None:
        log.error("camera %s unavailable (%s); retrying in %.1f s", search_key(self.cfg), exc, backoff)
        self.close()
        time.sleep(backoff)
        self.on_reconnect()


def _device_frame_id(buf) -> int | None:
    """The frame counter the producer reports for the buffer (GenTL BUFFER_INFO_FRAMEID), None where it has none."""
    try:
        return int(buf.module.frame_id)
    except Exception:  # producers without the info raise their own exception types
        return None
