"""The line's commands: the demo, the live line, its challenge and chaos runs, units, keys, recording and replay.

Each command imports what it runs only when it runs (``run_line.py --help`` stays instant).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.registry import bundled_checkpoint, command, line_flags
from engines.select import KINDS
from model.errors import InputError


@command("demo")
def cmd_demo(a: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(
        a.frames,
        a.fps,
        a.cameras,
        a.redis_url,
        a.engine,
        a.summary_json,
        carousel=not a.no_carousel,
        page=None if a.no_page else a.page_port,
    )


@command("run")
def cmd_run(a: argparse.Namespace) -> int:
    from pipeline.config import load_line_config
    from pipeline.process_setup import setup_logging
    from pipeline.supervisor import Supervisor

    setup_logging("supervisor")
    cfg = load_line_config(Path(a.config))
    if a.require_challenge:
        from pipeline.challenge import require_challenge

        rec = require_challenge(cfg)
        print(f"challenge of {rec['time']} passed ({rec['defects_ejected']}/{rec['defects']} defects ejected)")
    return Supervisor(cfg, role=a.role).run_forever()


@command("challenge")
def cmd_challenge(a: argparse.Namespace) -> int:
    from pipeline.challenge import run_challenge
    from pipeline.config import load_line_config

    rec = run_challenge(load_line_config(Path(a.config)), Path(a.set), a.camera, a.max_frr)
    print(
        f"challenge {'PASSED' if rec['passed'] else 'FAILED'}: model {rec['model']} at threshold "
        f"{rec['threshold']:.4f}, {rec['defects_ejected']}/{rec['defects']} defects ejected, false-reject rate "
        f"{rec['false_reject_rate']:.3f} (limit {rec['max_false_reject_rate']:.3f}); record in "
        f"{Path(load_line_config(Path(a.config)).challenge.records_dir) / 'latest.json'}"
    )
    for u in rec["units"]:
        if u["outcome"] not in ("passed", "ejected"):
            print(f"  {u['outcome']}: {u['path']} ({u['label']}, {u['reason']})")
    return 0 if rec["passed"] else 1


@command("chaos")
def cmd_chaos(a: argparse.Namespace) -> int:
    import json

    from pipeline.chaos import chaos_on_local_redis
    from pipeline.process_setup import setup_logging

    setup_logging("chaos")
    report = chaos_on_local_redis(a.checkpoint, a.fps, a.seconds)
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if a.json:
        Path(a.json).write_text(text)
    return 0 if report["promise_kept"] else 1


@command("unit-bench")
def cmd_unit_bench(a: argparse.Namespace) -> int:
    from pipeline.process_setup import setup_logging
    from pipeline.unit_bench import run_unit_bench, write_unit_bench

    setup_logging("unit-bench")
    rates = [float(x) for x in a.rates.split(",")]
    result = run_unit_bench(a.checkpoint, rates, a.seconds, a.redis_url, a.engine)
    best = result["max_units_per_minute"]
    print(f"highest rate with no unit undecided and none ejected for lateness: {best} units/min")
    if a.json:
        write_unit_bench(result, Path(a.json))
    return 0


@command("unit")
def cmd_unit(a: argparse.Namespace) -> int:
    import json

    import redis

    from pipeline.audit import trace_unit
    from pipeline.config import load_line_config
    from pipeline.redis_conn import connect

    cfg = load_line_config(Path(a.config))
    if cfg.carousel is None:
        raise InputError(f"{a.config}: no carousel section: the line decides frames, not units")
    try:
        t = trace_unit(connect(cfg.redis), cfg.redis.stream, cfg.carousel.stream, a.id, a.run)
    except redis.ConnectionError as exc:
        raise InputError(f"Redis unavailable: {exc}") from None
    print(json.dumps(t, indent=1))
    return 0


@command("keys")
def cmd_keys(a: argparse.Namespace) -> int:
    from pipeline.curve import make_keys

    public, secret = make_keys(Path(a.out), a.name)
    print(f"wrote {public} (public: give it to the peers) and {secret} (secret, mode 600: keep it on this host)")
    return 0


@command("record")
def cmd_record(a: argparse.Namespace) -> int:
    from pipeline.recording import record

    n = record(
        out=Path(a.out),
        frames=a.frames,
        source=a.source,
        fps=a.fps,
        cameras=a.cameras,
        defect_rate=a.defect_rate,
        seed=a.seed,
        cti=a.cti,
        device=a.device,
        path=a.path,
    )
    print(f"recorded {n} frames to {a.out}")
    return 0


@command("replay")
def cmd_replay(a: argparse.Namespace) -> int:
    from pipeline.recording import replay

    return replay(Path(a.dir), a.rate, a.redis_url, a.engine, a.summary_json, page=None if a.no_page else a.page_port)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this group's subcommands on ``sub``."""
    demo = sub.add_parser("demo", help="the embedded default: simulated vial cameras -> worker -> Redis")
    demo.add_argument("--frames", type=int, default=60, help="total frames over all cameras")
    # the model judges 256 px frames at their native resolution: ~5 frames/s on 2 CPU cores, so 2 x 1.5 fps
    # keeps the demo real-time with room for the camera processes' rendering
    demo.add_argument("--fps", type=float, default=1.5, help="per camera")
    demo.add_argument("--cameras", type=int, default=2)
    demo.add_argument(
        "--no-carousel", action="store_true", help="frames only: no carousel, no unit decisions (docs/design.md 3.9)"
    )
    line_flags(demo)

    run = sub.add_parser("run", help="the live line as configured")
    run.add_argument("--config", default="config/line.yaml")
    run.add_argument("--require-challenge", action="store_true", help="refuse to start without a passed challenge")
    run.add_argument(
        "--role", default="all", choices=["all", "workers", "cameras"], help="this host's part of a split line"
    )

    challenge = sub.add_parser("challenge", help="known good and defective units through the configured line")
    challenge.add_argument(
        "--set", required=True, help="dataset folder (docs/design.md 3.2): test/good and test/<defect>"
    )
    challenge.add_argument("--config", default="config/line.yaml")
    challenge.add_argument("--camera", help="whose settings judge the set (default: the first camera)")
    challenge.add_argument("--max-frr", type=float, help="override challenge.max_frr")

    chaos = sub.add_parser("chaos", help="the line under kills, a hang and a Redis restart, then an audit (3.8)")
    chaos.add_argument("--seconds", type=float, default=26.0)
    chaos.add_argument("--fps", type=float, default=1.0, help="per camera (2 cameras)")
    chaos.add_argument("--checkpoint", default=str(bundled_checkpoint()))
    chaos.add_argument("--json")

    unit_bench = sub.add_parser("unit-bench", help="units per minute on a simulated carousel (docs/design.md 3.9)")
    unit_bench.add_argument("--rates", default="120,240,360,480", help="units per minute, comma separated")
    unit_bench.add_argument("--seconds", type=float, default=20.0, help="carousel time per rate")
    unit_bench.add_argument("--checkpoint", default=str(bundled_checkpoint()))
    unit_bench.add_argument("--engine", default="auto", choices=KINDS)
    unit_bench.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    unit_bench.add_argument("--json")

    unit = sub.add_parser("unit", help="one unit's decision and the frame verdicts behind it (docs/design.md 3.9)")
    unit.add_argument("id", type=int)
    unit.add_argument("--run", type=int, help="the run (tick 0, ns); default: the newest that decided the unit")
    unit.add_argument("--config", default="config/line.yaml")

    keys = sub.add_parser("keys", help="make a ZeroMQ CURVE key pair for worker.curve (docs/design.md 3.3)")
    keys.add_argument("--out", required=True, help="folder for NAME.key and NAME.key_secret")
    keys.add_argument("--name", required=True, help="e.g. worker or camera")

    record = sub.add_parser("record", help="write a recorded stream (docs/design.md 3.4) from a source")
    record.add_argument("--out", required=True)
    record.add_argument("--frames", type=int, required=True, help="total over all cameras")
    record.add_argument("--source", default="synthetic", choices=["synthetic", "genicam", "replay"])
    record.add_argument("--fps", type=float, default=10.0)
    record.add_argument("--cameras", type=int, default=1, help="synthetic cameras")
    record.add_argument("--defect-rate", type=float, default=0.1)
    record.add_argument("--seed", type=int, default=0)
    record.add_argument("--cti", help="GenTL producer (default: the simulated viky.cti)")
    record.add_argument("--device", help="GenICam device: serial number, id, or #index")
    record.add_argument("--path", help="replay source: a recorded stream or an image folder")

    replay = sub.add_parser("replay", help="play a recorded stream or image folder through the line")
    replay.add_argument("dir")
    replay.add_argument("--rate", default="realtime", help="realtime | max | frames per second")
    line_flags(replay)
