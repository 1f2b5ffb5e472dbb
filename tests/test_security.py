"""Authenticated transport with real sockets and real servers: ZeroMQ CURVE admits only the configured camera key,
Redis with an ACL user, a password and TLS, and secrets that never reach a log."""

import json
import logging
import time
from pathlib import Path

import pytest
import redis
import yaml
import zmq

from pipeline.config import CurveKeys, LineConfig, RedisConfig, WorkerConfig
from pipeline.curve import make_keys, secure_client, secure_server
from pipeline.publisher import VerdictPublisher
from pipeline.redis_conn import check_credentials, connect, mask_url
from pipeline.redis_local import LocalRedis
from tests.conftest import assert_one_line_error, make_verdict, run_cli


@pytest.fixture
def curve_keys(tmp_path) -> tuple[CurveKeys, Path]:
    make_keys(tmp_path / "server", "worker")
    make_keys(tmp_path / "clients", "camera")
    make_keys(tmp_path / "other", "intruder")
    make_keys(tmp_path / "other", "fake-worker")
    keys = CurveKeys(
        server_secret=str(tmp_path / "server" / "worker.key_secret"),
        server_public=str(tmp_path / "server" / "worker.key"),
        client_secret=str(tmp_path / "clients" / "camera.key_secret"),
        clients_dir=str(tmp_path / "clients"),
    )
    (tmp_path / "clients" / "camera.key_secret").rename(tmp_path / "camera.key_secret")  # only public keys stay
    keys.client_secret = str(tmp_path / "camera.key_secret")
    return keys, tmp_path


def _delivered(ctx, pull, endpoint, configure, timeout_ms=1500) -> bool:
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    configure(push)
    push.connect(endpoint)
    push.send(b"frame", zmq.NOBLOCK)
    got = pull.poll(timeout_ms)
    if got:
        pull.recv()
    push.close()
    return bool(got)


def test_curve_lets_only_the_authorised_camera_through(curve_keys):
    keys, tmp = curve_keys
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    auth = secure_server(ctx, pull, keys)
    endpoint = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    try:
        assert _delivered(ctx, pull, endpoint, lambda s: secure_client(s, keys)), "the configured camera key"
        intruder = keys.model_copy(update={"client_secret": str(tmp / "other" / "intruder.key_secret")})
        assert not _delivered(ctx, pull, endpoint, lambda s: secure_client(s, intruder)), "a key not in clients_dir"
        wrong_server = keys.model_copy(update={"server_public": str(tmp / "other" / "fake-worker.key")})
        assert not _delivered(ctx, pull, endpoint, lambda s: secure_client(s, wrong_server)), "wrong server key"
        assert not _delivered(ctx, pull, endpoint, lambda s: None), "a plain client"
        assert _delivered(ctx, pull, endpoint, lambda s: secure_client(s, keys)), "and the camera still gets in"
    finally:
        pull.close(linger=0)
        auth.stop()
        ctx.term()


def test_curve_key_files_that_are_wrong_are_named(curve_keys, tmp_path):
    keys, tmp = curve_keys
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    public_only = keys.model_copy(update={"client_secret": keys.server_public})
    with pytest.raises(ValueError, match="client_secret: .*worker.key holds no secret key"):
        secure_client(sock, public_only)
    missing = keys.model_copy(update={"server_public": str(tmp / "nope.key")})
    with pytest.raises(ValueError, match="server_public: .*nope.key"):
        secure_client(sock, missing)
    sock.close()
    ctx.term()


def test_exposed_tcp_needs_curve_and_curve_needs_tcp(curve_keys):
    keys, _ = curve_keys
    with pytest.raises(ValueError, match="reachable beyond this host: configure worker.curve"):
        WorkerConfig(endpoints=["tcp://0.0.0.0:5555"])
    WorkerConfig(endpoints=["tcp://127.0.0.1:5555"])  # loopback stays plain
    WorkerConfig(endpoints=["tcp://0.0.0.0:5555"], curve=keys)
    with pytest.raises(ValueError, match="every endpoint must be tcp"):
        WorkerConfig(endpoints=["ipc:///tmp/x.sock"], curve=keys)


@pytest.mark.parametrize(
    "url,masked",
    [
        ("redis://line:s3cret@10.0.0.5:6380/1", "redis://line:***@10.0.0.5:6380/1"),
        ("rediss://:s3cret@redis.plant/0", "rediss://:***@redis.plant/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_urls_are_logged_with_the_password_masked(url, masked):
    assert mask_url(url) == masked


ACL_USER = ("--user", "default", "off", "--user", "line", "on", ">s3cret-pw", "~*", "&*", "+@all")


@pytest.fixture
def acl_redis():
    server = LocalRedis(args=ACL_USER, username="line", password="s3cret-pw").start()
    yield server
    server.stop()


def test_redis_acl_user_and_password_from_the_config(acl_redis, tmp_path, caplog):
    secret = tmp_path / "redis.pw"
    secret.write_text("s3cret-pw\n")
    rc = RedisConfig(url=acl_redis.url, username="line", password_file=str(secret), stream="sec:acl")
    assert check_credentials(rc)
    pub = VerdictPublisher(rc.url, rc.stream, 1000, 10, client=connect(rc))
    assert pub.publish([make_verdict("cam0", 1, slot=1)])
    assert redis.Redis.from_url(acl_redis.url, username="line", password="s3cret-pw").xlen("sec:acl") == 1
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(acl_redis.url).ping()  # the default user is off: nothing gets in without the ACL user

    wrong = rc.model_copy(
        update={"password_file": None, "url": acl_redis.url.replace("redis://", "redis://line:nope@")}
    )
    with pytest.raises(ValueError, match=r"refused the credentials") as err:
        check_credentials(wrong)
    assert "nope" not in str(err.value) and "***" in str(err.value)
    with caplog.at_level(logging.ERROR, logger="grdnet.publisher"):
        bad = VerdictPublisher(wrong.url, "sec:acl", 1000, 100, client=connect(wrong), retry_s=0.05)
        for _ in range(20):
            bad.publish([make_verdict("cam0", 2, slot=2)])
            time.sleep(0.01)
    errors = [r.getMessage() for r in caplog.records if r.name == "grdnet.publisher"]
    assert len(errors) == 1 and "refused our credentials" in errors[0], "one clear line, not a storm"
    assert all("nope" not in e for e in errors) and len(bad.buffer) == 20, "kept, in order, for when it is fixed"


def test_wrong_redis_password_stops_the_line_with_one_line(acl_redis, tmp_path):
    cfg = {
        "cameras": [{"name": "cam0", "max_frames": 1}],
        "worker": {"endpoints": [f"ipc://{tmp_path}/w.sock"]},
        "redis": {"url": acl_redis.url.replace("redis://", "redis://line:wrong-pw@")},
        "metrics": {"enabled": False},
        "page": {"enabled": False},
    }
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run_cli("run", "--config", str(path))
    assert_one_line_error(result, "refused the credentials")
    assert "wrong-pw" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def _tls_files(tmp: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, made with the cryptography package."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def cert(subject, key, issuer, signer, ca, san=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca = cert("grdnet test CA", ca_key, "grdnet test CA", ca_key, True)
    srv = cert(
        "127.0.0.1", srv_key, "grdnet test CA", ca_key, False, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    files = {"ca": tmp / "ca.crt", "cert": tmp / "srv.crt", "key": tmp / "srv.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return files


def test_redis_over_tls_with_the_ca_from_the_config(tmp_path):
    from pipeline.redis_local import free_port

    f = _tls_files(tmp_path)
    port = free_port()
    args = ("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(f["cert"]), "--tls-key-file", str(f["key"]))
    args += ("--tls-ca-cert-file", str(f["ca"]), "--tls-auth-clients", "no", "--requirepass", "tls-pw")
    url = f"rediss://:tls-pw@127.0.0.1:{port}/0"
    server = LocalRedis(port=port, args=args, url=url, ssl_ca_certs=str(f["ca"])).start()
    try:
        rc = RedisConfig(url=url, tls_ca_file=str(f["ca"]), stream="sec:tls")
        assert check_credentials(rc)
        pub = VerdictPublisher(rc.url, rc.stream, 1000, 10, client=connect(rc))
        assert pub.publish([make_verdict("cam0", 1, slot=1)])
        assert connect(rc).xlen("sec:tls") == 1
        untrusted = rc.model_copy(update={"tls_ca_file": None})
        with pytest.raises(ValueError, match="TLS failed"):
            check_credentials(untrusted)  # the server's certificate is not signed by a CA this client trusts
    finally:
        server.stop()


def test_tls_settings_without_a_rediss_url_are_refused(tmp_path):
    with pytest.raises(ValueError, match="need a rediss:// URL"):
        connect(RedisConfig(url="redis://127.0.0.1:1/0", tls_ca_file=str(tmp_path / "ca.crt")))


def test_line_config_with_keys_loads(curve_keys, tmp_path):
    keys, _ = curve_keys
    cfg = LineConfig(
        cameras=[{"name": "cam0"}], worker={"endpoints": ["tcp://0.0.0.0:5599"], "curve": keys.model_dump()}
    )
    assert cfg.worker.curve.clients_dir == keys.clients_dir


def test_a_pickle_passed_as_a_checkpoint_is_refused_unread(tmp_path):
    import pickle

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # what unpickling would run

    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps({"state_dict": Payload()}))
    result = run_cli("export", "--checkpoint", str(evil), "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(result, "not a GRD-Net checkpoint")
    assert not marker.exists(), "the pickle was never unpickled"


def test_a_graph_that_differs_from_its_sidecar_is_refused_with_one_line(tiny_onnx, tmp_path):
    import shutil

    from engines.sidecar import sidecar_path

    tampered = tmp_path / "model.onnx"
    data = bytearray(tiny_onnx.read_bytes())
    data[-20] ^= 0xFF
    tampered.write_bytes(bytes(data))
    shutil.copy(sidecar_path(tiny_onnx), sidecar_path(tampered))
    result = run_cli("build-engine", "--onnx", str(tampered), "--out", str(tmp_path / "m.plan"))
    assert_one_line_error(result, "sha256 differs from its sidecar")
    assert not (tmp_path / "m.plan").exists()


@pytest.mark.parametrize("rel", ["../outside.png", "/etc/passwd", "frames/../../x.png"])
def test_a_recording_cannot_point_replay_outside_itself(tmp_path, rel):
    from pipeline.config import ReplaySource
    from pipeline.recorder import replay_frames

    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "stream.jsonl").write_text(json.dumps({"camera": "cam0", "frame_id": 0, "slot": 0, "file": rel}) + "\n")
    with pytest.raises(ValueError, match="lies outside the recording"):
        next(replay_frames(ReplaySource(path=str(rec), rate="max")))
