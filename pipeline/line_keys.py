"""The Redis keys of one line, all named after its verdict stream, and the write-once verdict (docs/design.md 3.8).

A frame's verdict is written by a Lua script that first sets a claim key for the frame's identity
(camera, epoch, frame_id) with NX: the worker's verdict, a retried batch and the reconciler's ``lost`` race for
the same claim, one wins, the others write nothing and are counted. Duplicates are impossible by construction
for ``claim_ttl_s`` after a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from pipeline.verdicts import Verdict

# KEYS[1] the verdict stream, KEYS[2] the frame's claim key; ARGV[1] MAXLEN ~, ARGV[2] claim TTL (s), ARGV[3] the
# reason (the claim's value), ARGV[4..] the entry's field/value pairs. 1: written, 0: the frame had a verdict.
WRITE_ONCE = """
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 4))
  return 1
end
return 0
"""


@dataclass(frozen=True)
class LineKeys:
    stream: str  # the verdict stream (redis.stream); every other key of the line starts with it

    @property
    def ledger(self) -> str:
        """Stream of sent frames: camera, epoch, frame_id, slot, t_acq_ns, one entry per frame, before it is sent."""
        return f"{self.stream}:sent"

    @property
    def last_sent(self) -> str:
        """Hash camera -> last recorded frame_id: where a restarted camera continues."""
        return f"{self.stream}:last"

    @property
    def reconciled(self) -> str:
        """Ledger entry id up to which every frame has its verdict: where a restarted reconciler resumes."""
        return f"{self.stream}:reconciled"

    def worker_status(self, index: int) -> str:
        """Hash a worker refreshes every second (engine, model, threshold, queue fill), expiring when it stops:
        what the line page shows of the workers, read-only."""
        return f"{self.stream}:status:worker:{index}"

    def claim(self, camera: str, epoch: int, frame_id: int) -> str:
        return f"{self.stream}:claim:{camera}:{epoch}:{frame_id}"


def write_once_script(client: redis.Redis):
    return client.register_script(WRITE_ONCE)


def queue_verdict(pipe, script, keys: LineKeys, v: Verdict, maxlen: int, claim_ttl_s: int, claimed: bool) -> None:
    """Add ``v`` to a pipeline: through the claim when it is a frame the ledger knows, as a plain XADD when it is
    not (a bad or unknown-camera message, which has no identity to protect)."""
    fields = v.fields()
    if not claimed:
        pipe.xadd(keys.stream, fields, maxlen=maxlen, approximate=True)
        return
    write_once(
        pipe, script, keys.stream, keys.claim(v.camera, v.epoch, v.frame_id), v.reason, fields, maxlen, claim_ttl_s
    )


def write_once(
    pipe, script, stream: str, claim_key: str, value: str, fields: dict[str, str], maxlen: int, ttl_s: int
) -> None:
    """XADD ``fields`` to ``stream`` only if ``claim_key`` was not taken (one entry per identity: verdicts per
    frame, decisions per unit); the pipeline's result for it is 1 when written, 0 when refused."""
    flat = [x for kv in fields.items() for x in kv]
    script(keys=[stream, claim_key], args=[maxlen, ttl_s, value, *flat], client=pipe)
