"""ZeroMQ CURVE on the frame endpoints: the worker is a CURVE server that admits only the client keys in
``clients_dir`` (a ZAP handler); cameras are CURVE clients that know the worker's public key. Key files are
ZeroMQ's own certificate format (``zmq.auth.create_certificates``; ``run_line.py keys`` makes them).

CURVE is a socket option, so it covers every endpoint of a socket: with ``worker.curve`` set, the endpoints must
all be tcp (ipc stays plain; ``WorkerConfig`` refuses a mix).
"""

from __future__ import annotations

from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from model.errors import InputError
from pipeline.config import CurveKeys, WorkerConfig


def uses_curve(w: WorkerConfig) -> bool:
    return w.curve is not None and any(ep.startswith("tcp://") for ep in w.endpoints)


def _load(path: str, field: str, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, private = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"worker.curve.{field}: {path}: not a readable ZeroMQ certificate ({exc})") from None
    if secret and private is None:
        raise InputError(f"worker.curve.{field}: {path} holds no secret key (use the .key_secret file)")
    return public, private


def secure_server(ctx: zmq.Context, sock: zmq.Socket, keys: CurveKeys) -> ThreadAuthenticator:
    """Make ``sock`` a CURVE server admitting the public keys in ``keys.clients_dir``; returns the running
    authenticator (stop it when the socket closes)."""
    clients = Path(keys.clients_dir)
    if not clients.is_dir() or not any(clients.glob("*.key")):
        raise InputError(f"worker.curve.clients_dir: {clients}: no client public keys (*.key)")
    public, secret = _load(keys.server_secret, "server_secret", secret=True)
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(clients))
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True
    return auth


def secure_client(sock: zmq.Socket, keys: CurveKeys) -> None:
    public, secret = _load(keys.client_secret, "client_secret", secret=True)
    server_public, _ = _load(keys.server_public, "server_public", secret=False)
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public


def make_keys(out: Path, name: str) -> tuple[Path, Path]:
    """``out/<name>.key`` (public, to hand out) and ``out/<name>.key_secret`` (keep on the host that owns it)."""
    if not zmq.has("curve"):
        raise InputError("this libzmq was built without CURVE support")
    out.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(out), name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)
