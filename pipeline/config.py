"""The line's configuration (``config/line.yaml``), validated with pydantic; errors name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import yaml
from pydantic import Field, ValidationError, model_validator

from engines.select import KINDS  # light: no runtime is imported until an engine is opened
from model.checkpoint import BUNDLED_CHECKPOINT
from model.config import StrictModel
from model.errors import InputError, first_error
from pipeline.wire import CAMERA_NAME

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class Slots(StrictModel):
    """Carousel positions: a frame's slot = first + (counter mod count)."""

    first: int = 0
    count: int = Field(24, ge=1)


class Trigger(StrictModel):
    selector: str = "FrameStart"
    mode: Literal["On", "Off"] = "On"
    source: str = "Line0"
    activation: str = "RisingEdge"


class SyntheticSource(StrictModel):
    product: Literal["vials", "ampoule", "blister"] = "vials"
    size: int = Field(256, ge=32)
    defect_rate: float = Field(0.1, ge=0, le=1)
    seed: int = 0
    pool: int = Field(0, ge=0, description="0: render every frame; N: render N frames once and cycle (benchmarks)")
    trigger_drop_rate: float = Field(0.0, ge=0, lt=1, description="on a carousel: triggers missed (tests)")
    trigger_repeat_rate: float = Field(0.0, ge=0, lt=1, description="on a carousel: triggers seen twice (tests)")
    trigger_buffers: int = Field(
        4, ge=1, description="on a carousel: exposed frames held for a late host; past them triggers are lost"
    )


class GenICamSource(StrictModel):
    cti: str | None = Field(None, description="GenTL producer; default: the genicam wheel's simulated viky.cti")
    serial_number: str | None = None
    device_id: str | None = None
    index: int | None = Field(None, ge=0)
    pixel_format: str | None = Field(None, description="Mono8, RGB8, BayerRG8, RGBa8 ...; None keeps the camera's")
    width: int | None = None
    height: int | None = None
    offset_x: int | None = None
    offset_y: int | None = None
    exposure_us: float | None = None
    gain_db: float | None = None
    frame_rate: float | None = None
    trigger: Trigger | None = None
    fetch_timeout_s: float = Field(2.0, gt=0)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)


class ReplaySource(StrictModel):
    path: str
    rate: str = Field("realtime", description="realtime | max | a number of frames per second")
    loop: bool = False

    @model_validator(mode="after")
    def _rate(self) -> ReplaySource:
        if self.rate not in ("realtime", "max"):
            try:
                if float(self.rate) <= 0:
                    raise InputError
            except ValueError:
                raise InputError(f"rate must be realtime, max or a positive number, got {self.rate!r}") from None
        return self


class CameraConfig(StrictModel):
    name: str = Field(pattern=f"^{CAMERA_NAME.pattern}$", description="letters, digits, _ . -; at most 64")
    source: Literal["synthetic", "genicam", "replay"] = "synthetic"
    fps: float = Field(10.0, gt=0, description="synthetic pace; genicam frame rate when frame_rate is unset")
    slots: Slots = Field(default_factory=Slots)
    synthetic: SyntheticSource = Field(default_factory=SyntheticSource)
    genicam: GenICamSource | None = None
    replay: ReplaySource | None = None
    crop: tuple[int, int, int, int] | None = Field(None, description="x, y, width, height before resizing")
    roi_mask: str | None = Field(None, description="static ROI PNG (255 = inspect) in frame coordinates")
    roi_prior: bool = Field(
        True, description="without roi_mask: inspect inside the checkpoint's ROI prior (false: the whole frame)"
    )
    threshold: float | None = Field(None, description="overrides the checkpoint's calibrated threshold")
    max_frames: int | None = Field(None, ge=1, description="stop after this many frames (tests, demo)")

    @model_validator(mode="after")
    def _source_settings(self) -> CameraConfig:
        if self.source == "replay" and self.replay is None:
            raise InputError("source replay needs a replay: {path: ...} section")
        if self.source == "genicam" and self.genicam is None:
            self.genicam = GenICamSource()
        return self


class Archive(StrictModel):
    enabled: bool = True
    dir: str = "runs/rejects"
    max_mb: float = Field(200.0, gt=0)


class CurveKeys(StrictModel):
    """ZeroMQ CURVE on tcp endpoints (``run_line.py keys`` makes the files; ipc stays plain)."""

    server_secret: str = Field(description="the worker's key pair (.key_secret); workers read it")
    server_public: str = Field(description="the worker's public key (.key); cameras read it")
    client_secret: str = Field(description="the cameras' key pair (.key_secret); cameras read it")
    clients_dir: str = Field(description="folder of public keys (.key) allowed to connect; workers read it")


class WorkerConfig(StrictModel):
    endpoints: list[str] = Field(default_factory=lambda: ["ipc:///tmp/grdnet-worker0.sock"], min_length=1)
    checkpoint: str = str(BUNDLED_CHECKPOINT)
    engine: Literal[KINDS] = "auto"  # engines/select.KINDS: one list for the CLI, the config and the selector
    plan: str | None = None
    threads: int | None = Field(None, ge=1)
    max_batch: int = Field(4, ge=1)
    max_wait_ms: float = Field(10.0, ge=0)
    max_queue: int = Field(64, ge=1)
    deadline_ms: float = Field(250.0, gt=0, description="acquisition to batch start; older frames are late")
    hwm: int = Field(16, ge=1, description="ZeroMQ high-water mark: small, or latency becomes queueing")
    max_message_mb: float = Field(64.0, gt=0, description="bigger messages are dropped by ZeroMQ unread")
    hang_s: float = Field(10.0, gt=0, description="a worker without progress this long is killed and restarted")
    archive: Archive = Field(default_factory=Archive)
    curve: CurveKeys | None = None
    allow_plaintext_tcp: bool = Field(False, description="allow a non-loopback tcp endpoint without CURVE")

    @model_validator(mode="after")
    def _exposed_endpoints_are_authenticated(self) -> WorkerConfig:
        if self.curve is not None and not all(ep.startswith("tcp://") for ep in self.endpoints):
            raise InputError("CURVE is per socket: with worker.curve, every endpoint must be tcp://")
        for ep in self.endpoints:
            if ep.startswith("tcp://") and self.curve is None and not self.allow_plaintext_tcp:
                host = urlparse(ep).hostname or ""
                if host not in LOOPBACK:
                    raise InputError(
                        f"endpoint {ep} is reachable beyond this host: configure worker.curve "
                        "(run_line.py keys) or set allow_plaintext_tcp"
                    )
        return self


class RedisConfig(StrictModel):
    url: str = "redis://127.0.0.1:6379/0"
    stream: str = "grdnet:verdicts"
    maxlen: int = Field(1_000_000, ge=1)
    buffer_max: int = Field(100_000, ge=1, description="verdicts kept in order while Redis is away")
    username: str | None = Field(None, description="ACL user (or in the URL)")
    password_file: str | None = Field(None, description="file holding the password (or in the URL)")
    tls_ca_file: str | None = Field(None, description="CA for rediss:// URLs")
    tls_cert_file: str | None = Field(None, description="client certificate, when the server asks for one")
    tls_key_file: str | None = None


class LedgerConfig(StrictModel):
    """Every frame a camera sends is recorded before it is sent; the reconciler writes a ``lost`` reject for a
    recorded frame that has no verdict ``grace_s`` after its deadline (docs/design.md 3.8)."""

    enabled: bool = True
    grace_s: float = Field(5.0, gt=0, description="after the deadline, and after Redis returns")
    claim_ttl_s: int = Field(3600, ge=60, description="how long a written verdict blocks a second one")
    resume_timeout_s: float = Field(10.0, ge=0, description="a starting camera waits this long for the ledger")
    buffer_max: int = Field(100_000, ge=1, description="ledger entries a camera keeps while Redis is away")


class MetricsConfig(StrictModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    worker_port: int = Field(9108, ge=0, description="worker i serves on worker_port + i; 0 = any free port")
    camera_port: int = Field(9120, ge=0, description="camera i serves on camera_port + i; 0 = any free port")
    reconciler_port: int = Field(9130, ge=0, description="the reconciler's endpoint; 0 = any free port")


class PageConfig(StrictModel):
    """The live line page (docs/design.md 3.10): read-only, served by the line on loopback unless told otherwise."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8088, ge=1, le=65535)
    refresh_s: float = Field(0.5, gt=0, le=1.0, description="how often the page gets new figures")
    gallery: int = Field(24, ge=1, le=200, description="latest rejects shown with their overlays")
    reject_rate_limit: float = Field(0.2, gt=0, le=1, description="alarm: share of rejects over the last minute")
    min_verdicts: int = Field(20, ge=1, description="the reject-rate alarm waits for this many verdicts a minute")
    consecutive_rejects: int = Field(5, ge=2, description="alarm: this many rejects in a row on one camera")
    camera_stale_s: float = Field(3.0, gt=0, description="alarm: a camera that sent nothing for this long")


class CarouselConfig(StrictModel):
    """The rotary carousel (docs/design.md 3.9): one unit per pitch; stations and ejector in pitches from the load
    point. With it, a synthetic camera is triggered by the encoder and the aggregator decides units."""

    units_per_minute: float = Field(gt=0, description="the pitch rate of the encoder")
    pockets: int = Field(24, ge=1)
    stations: dict[str, int] = Field(min_length=1, description="camera name -> position in pitches from load")
    ejector: int = Field(ge=1, description="the ejector's position in pitches from load")
    decision_margin_ms: float = Field(50.0, ge=0, description="a unit's decision is due this long before the ejector")
    start_lead_s: float = Field(1.0, ge=0, description="tick 0 this long after the cameras are ready")
    max_load: float = Field(
        0.8, gt=0, le=1, description="the stations may need at most this share of the frames/s the workers measured"
    )
    check_capacity: bool = Field(True, description="workers time their engine at start; refuse a rate above it")
    stream: str = "grdnet:units"
    t0_ns: int = Field(0, ge=0, description="tick 0 (set by the supervisor at start)")

    @model_validator(mode="after")
    def _stations_before_the_ejector(self) -> CarouselConfig:
        for cam, pos in self.stations.items():
            if not 0 <= pos < self.ejector:
                raise InputError(
                    f"station {cam} at pitch {pos} is not between the load point and the ejector ({self.ejector})"
                )
        return self

    @property
    def period_ms(self) -> float:
        return 60_000.0 / self.units_per_minute


class ChallengeConfig(StrictModel):
    """The start-of-shift challenge (``run_line.py challenge``; ``run --require-challenge`` checks its record)."""

    records_dir: str = "runs/challenge"
    max_frr: float = Field(0.0, ge=0, le=1, description="good units the challenge may reject")
    max_age_h: float = Field(12.0, gt=0, description="a record older than this does not open production")


class LineConfig(StrictModel):
    cameras: list[CameraConfig] = Field(min_length=1)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    carousel: CarouselConfig | None = None
    challenge: ChallengeConfig = Field(default_factory=ChallengeConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    page: PageConfig = Field(default_factory=PageConfig)
    cache_dir: str | None = Field(None, description="compiled engines; default ~/.cache/grdnet-line")
    timing_dir: str | None = Field(None, description="per-frame stage times as JSONL per process (benchmarks)")

    @model_validator(mode="after")
    def _unique_names(self) -> LineConfig:
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise InputError(f"camera names must be unique, got {names}")
        c = self.carousel
        if c is not None:
            unplaced = [n for n in names if n not in c.stations]
            unknown = [n for n in c.stations if n not in names]
            if unplaced or unknown:
                raise InputError(
                    f"carousel.stations: every camera has a station and every station a camera "
                    f"(not placed: {unplaced}, no such camera: {unknown})"
                )
            slack_ms = (c.ejector - max(c.stations.values())) * c.period_ms - c.decision_margin_ms
            if slack_ms <= self.worker.deadline_ms:
                raise InputError(
                    f"carousel: {c.units_per_minute:g} units/min leaves {slack_ms:.0f} ms from the last station to "
                    f"the decision, not more than worker.deadline_ms ({self.worker.deadline_ms:g}): no unit could "
                    "be judged in time; slow the carousel, move the ejector or shorten the deadline"
                )
        return self


def load_line_config(path: Path) -> LineConfig:
    """Read and validate ``path``; a bad key gives ``path: cameras.0.fps: <why>``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read line config: {exc}") from exc
    try:
        return LineConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise InputError(f"{path}: {first_error(exc)}") from exc
