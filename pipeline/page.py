"""The live line page (docs/design.md 3.10): a Starlette app served by uvicorn in a process of its own, fed by a
thread that follows the line's Redis streams. Read-only: it issues XREAD, HGETALL and PING, nothing else, so it
can never change what the carousel tracker or the ejector reads. A page that cannot start (port taken) logs one
line and leaves the line running without it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from pathlib import Path

import redis
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from pipeline.config import LineConfig
from pipeline.line_keys import LineKeys
from pipeline.line_view import LineView
from pipeline.redis_conn import connect, mask_url

log = logging.getLogger("grdnet.page")
ASSETS = Path(__file__).with_name("page_assets")
BACKFILL_S = 3600  # a (re)started page reads the last hour back, so its hour figures are whole at once
REJECT_IMAGE = re.compile(r"^[A-Za-z0-9_.\-]{1,200}\.png$")


def page_url(cfg: LineConfig) -> str:
    host = cfg.page.host if cfg.page.host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{cfg.page.port}/"


class StreamFollower:
    """Follows the verdict stream, the ledger and the unit stream, and reads the workers' status hashes; keeps
    the latest snapshot, recomputed every ``page.refresh_s`` whatever the number of browsers watching."""

    def __init__(self, cfg: LineConfig, client: redis.Redis | None = None) -> None:
        self.cfg, self.keys = cfg, LineKeys(cfg.redis.stream)
        self.client = client or connect(cfg.redis, timeout_s=2.0, connect_timeout_s=0.5)
        workers = len(cfg.worker.endpoints)
        self.view = LineView([c.name for c in cfg.cameras], workers, cfg.page, time.time())
        start = f"{int(time.time() * 1000) - BACKFILL_S * 1000}-0"
        self.streams = {cfg.redis.stream: start, self.keys.ledger: start}
        if cfg.carousel is not None:
            self.streams[cfg.carousel.stream] = start
        self.lock = threading.Lock()
        self.latest: dict = self.view.snapshot(time.time())
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="stream-follower", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)

    def _feed(self, stream: str, fields: dict[bytes, bytes]) -> None:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        if stream == self.cfg.redis.stream:
            self.view.add_verdict(f)
        elif stream == self.keys.ledger:
            self.view.add_sent(f)
        else:
            self.view.add_unit(f)

    def poll(self, block_ms: int) -> None:
        """One round: new stream entries, the workers' status; raises when Redis is away."""
        resp = self.client.xread(self.streams, count=1000, block=block_ms)
        pipe = self.client.pipeline(transaction=False)
        for i in range(len(self.view.workers)):
            pipe.hgetall(self.keys.worker_status(i))
        statuses = pipe.execute()
        with self.lock:
            for name, entries in resp or []:
                stream = name.decode()
                for entry_id, fields in entries:
                    self._feed(stream, fields)
                    self.streams[stream] = entry_id.decode()
            for i, st in enumerate(statuses):
                self.view.set_worker(i, {k.decode(): v.decode() for k, v in st.items()} or None)
            self.view.set_redis(True, "", time.time())

    def _loop(self) -> None:
        next_snapshot = 0.0
        while not self.stopped.is_set():
            try:
                self.poll(block_ms=int(min(200, self.cfg.page.refresh_s * 500)))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                with self.lock:
                    if self.view.redis_up:
                        log.error("Redis at %s unreachable (%s)", mask_url(self.cfg.redis.url), exc)
                    self.view.set_redis(False, str(exc), time.time())
                self.stopped.wait(0.2)
            now = time.time()
            if now >= next_snapshot:
                next_snapshot = now + self.cfg.page.refresh_s
                with self.lock:
                    self.latest = self.view.snapshot(now)


def build_app(cfg: LineConfig, follower: StreamFollower) -> Starlette:
    from sse_starlette.sse import EventSourceResponse

    archive = Path(cfg.worker.archive.dir).resolve()

    async def index(request) -> Response:
        return FileResponse(ASSETS / "index.html")

    async def state(request) -> Response:
        return JSONResponse(follower.latest)

    async def events(request) -> Response:
        async def stream():
            last = -1
            while True:
                snap = follower.latest
                if snap["seq"] != last:
                    last = snap["seq"]
                    yield {"event": "state", "data": json.dumps(snap, separators=(",", ":"))}
                await asyncio.sleep(cfg.page.refresh_s / 2)

        return EventSourceResponse(stream(), ping=15)

    async def reject_image(request) -> Response:
        """An overlay of the reject archive, by file name only: nothing outside the archive folder is served."""
        name = request.path_params["name"]
        path = archive / name
        if not REJECT_IMAGE.match(name) or path.resolve().parent != archive or not path.is_file():
            return Response("not in the reject archive", status_code=404)
        return FileResponse(path, media_type="image/png")

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/events", events),
        Route("/rejects/{name}", reject_image),
    ]
    return Starlette(routes=routes)


def port_for(host: str, preferred: int) -> int:
    """``preferred`` when it is free on ``host``, else one the system picks (a demo beside another line)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in (preferred, 0):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError(f"no free port on {host}")


def bind(host: str, port: int) -> socket.socket | None:
    """The page's listening socket, or None (one error line) when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        log.error("line page not served: %s:%d (page.host/page.port): %s", host, port, exc)
        return None
    return sock


def page_main(cfg_json: str) -> None:
    """The page process: exits 0 (not restarted) when its port is taken; the line runs on without it."""
    import uvicorn

    from pipeline.process_setup import setup_logging

    cfg = LineConfig.model_validate_json(cfg_json)
    setup_logging("page")
    sock = bind(cfg.page.host, cfg.page.port)
    if sock is None:
        return
    follower = StreamFollower(cfg)
    follower.start()
    config = uvicorn.Config(
        build_app(cfg, follower), log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    log.info("line page on %s", page_url(cfg))
    uvicorn.Server(config).run(sockets=[sock])
    follower.stop()
