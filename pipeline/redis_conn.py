"""One way to reach the line's Redis: URL plus ACL user, password file and TLS from the config; secrets never
reach a log (``mask_url``), and refused credentials are one clear error (``check_credentials``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import redis

from model.errors import InputError
from pipeline.config import RedisConfig


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (what every log line prints)."""
    parts = urlparse(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunparse(parts._replace(netloc=netloc))


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise InputError(f"redis.{what}: cannot read {path}: {exc.strerror}") from None


def connect(rc: RedisConfig, timeout_s: float = 1.0, connect_timeout_s: float = 0.5) -> redis.Redis:
    """A client for ``rc``: credentials and TLS settings from the config override the URL's."""
    kwargs: dict = {"socket_timeout": timeout_s, "socket_connect_timeout": connect_timeout_s}
    if rc.username:
        kwargs["username"] = rc.username
    if rc.password_file:
        kwargs["password"] = _read_secret(rc.password_file, "password_file")
    if rc.url.startswith("rediss://"):
        if rc.tls_ca_file:
            kwargs["ssl_ca_certs"] = rc.tls_ca_file
        if rc.tls_cert_file:
            kwargs["ssl_certfile"] = rc.tls_cert_file
            kwargs["ssl_keyfile"] = rc.tls_key_file
    elif rc.tls_ca_file or rc.tls_cert_file:
        raise InputError(f"redis.tls_*: TLS settings need a rediss:// URL, got {mask_url(rc.url)}")
    return redis.Redis.from_url(rc.url, **kwargs)


def check_credentials(rc: RedisConfig) -> bool:
    """At start: True when Redis answers, False when it is not reachable (the line buffers); a refused password,
    a missing one or a TLS failure raises ValueError with one line, before any process starts."""
    try:
        return bool(connect(rc).ping())
    except redis.AuthenticationError as exc:  # WRONGPASS and NOAUTH both
        raise InputError(f"Redis at {mask_url(rc.url)} refused the credentials: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if "SSL" in str(exc) or "certificate" in str(exc):
            raise InputError(f"Redis at {mask_url(rc.url)}: TLS failed: {exc}") from None
        return False


def keep_trying(flush: Callable[[], bool], timeout_s: float, retry_s: float) -> bool:
    """At a clean stop: call ``flush`` until it reports everything written or ``timeout_s`` passes."""
    end = time.monotonic() + timeout_s
    while not flush():
        if time.monotonic() > end:
            return False
        time.sleep(retry_s)
    return True
