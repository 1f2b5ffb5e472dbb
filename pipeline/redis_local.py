"""A local ``redis-server`` on a free loopback port: for the demo (when none answers at the URL) and tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlparse

import redis

from model.errors import InputError, SetupError
from pipeline.redis_conn import mask_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str, timeout_s: float = 0.5, **client_kwargs) -> bool:
    """True when a Redis answers PING at ``url``; refused credentials raise InputError (a server is there, but it
    is not ours to use: never start another beside it)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, **client_kwargs)
        return bool(client.ping())
    except redis.AuthenticationError as exc:
        raise InputError(f"Redis at {mask_url(url)} refused the credentials: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, ValueError):
        return False


class LocalRedis:
    """``redis-server`` bound to 127.0.0.1, no persistence; ``stop()``/``start()`` keep the same port."""

    def __init__(
        self,
        port: int | None = None,
        persist: bool = False,
        args: tuple[str, ...] = (),
        url: str | None = None,
        **probe,
    ) -> None:
        """``args`` go to redis-server as they are (``--requirepass``, ``--tls-port`` ...); ``url`` and ``probe``
        (redis-py client arguments) are how to reach it then."""
        if shutil.which("redis-server") is None:
            raise SetupError("redis-server not found: install it (Debian: apt-get install redis-server)")
        self.port = port or free_port()
        self.url = url or f"redis://127.0.0.1:{self.port}/0"
        self.args, self.probe = tuple(args), probe
        self.proc: subprocess.Popen | None = None
        self.dir = tempfile.mkdtemp(prefix="grdnet-redis-")
        self.persist = persist  # append-only file in self.dir: what was written survives a restart

    def start(self, timeout_s: float = 10.0) -> LocalRedis:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persist else "no",
                "--appendfsync",
                "always",
                "--dir",
                self.dir,
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + timeout_s
        while not answers(self.url, 0.2, **self.probe):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise SetupError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def ensure_redis(url: str) -> tuple[str, LocalRedis | None]:
    """The URL when a server answers there; else, for a loopback URL, a local server started on a free port."""
    if answers(url):
        return url, None
    host = urlparse(url).hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise InputError(f"no Redis answers at {url}")
    server = LocalRedis().start()
    return server.url, server
