import pytest

from pipeline.batcher import DynamicBatcher
from pipeline.verdicts import VERDICT_FIELDS, failed, judge
from tests.conftest import make_verdict

MS = 1_000_000


def test_batch_leaves_when_full():
    b = DynamicBatcher(max_batch=3, max_wait_ns=50 * MS, max_queue=10)
    for i in range(2):
        b.add(i, t_acq_ns=0, now_ns=0)
    assert b.take(now_ns=1 * MS) == ([], [])
    b.add(2, 0, 1 * MS)
    assert b.wait_ns(1 * MS) == 0
    assert b.take(now_ns=1 * MS) == ([0, 1, 2], [])


def test_batch_leaves_when_the_first_frame_waited_max_wait():
    b = DynamicBatcher(max_batch=8, max_wait_ns=10 * MS, max_queue=16)
    b.add("a", 0, now_ns=100 * MS)
    b.add("b", 0, now_ns=105 * MS)
    assert b.wait_ns(106 * MS) == 4 * MS
    assert b.take(now_ns=109 * MS) == ([], [])
    assert b.take(now_ns=110 * MS) == (["a", "b"], [])
    assert b.wait_ns(110 * MS) is None


def test_queue_bound_rejects_the_oldest():
    b = DynamicBatcher(max_batch=2, max_wait_ns=MS, max_queue=3)
    evicted = [b.add(i, 0, 0) for i in range(5)]
    assert evicted == [[], [], [], [0], [1]] and len(b) == 3


def test_late_frames_leave_without_counting_towards_the_batch():
    b = DynamicBatcher(max_batch=2, max_wait_ns=0, max_queue=10)
    b.add("old", t_acq_ns=0, now_ns=0)
    b.add("new1", t_acq_ns=290 * MS, now_ns=290 * MS)
    b.add("new2", t_acq_ns=295 * MS, now_ns=295 * MS)
    batch, late = b.take(now_ns=300 * MS, deadline_ns=250 * MS)
    assert late == ["old"] and batch == ["new1", "new2"]


def test_force_takes_a_partial_batch():
    b = DynamicBatcher(max_batch=4, max_wait_ns=10**12, max_queue=8)
    b.add("x", 0, 0)
    assert b.take(1) == ([], [])
    assert b.take(1, force=True) == (["x"], [])


def test_bounds_are_checked():
    with pytest.raises(ValueError):
        DynamicBatcher(max_batch=4, max_wait_ns=0, max_queue=2)


def test_judge_is_fail_safe():
    assert judge(0.2, 0.5) == "pass"
    assert judge(0.5, 0.5) == "pass"
    assert judge(0.51, 0.5) == "anomaly"
    assert judge(float("nan"), 0.5) == "anomaly"


def test_verdict_fields_are_strings_with_the_contract_keys():
    v = make_verdict("cam0", 4, slot=2, t_acq_ns=10, t_verdict_ns=20, score=0.123456789, model="m1")
    f = v.fields()
    assert set(f) == set(VERDICT_FIELDS)
    assert all(isinstance(x, str) for x in f.values()) and f["reject"] == "0" and f["score"] == "0.123457"
    bad = failed(reason="late", camera="cam0", frame_id=5, slot=2, t_acq_ns=10, now_ns=30, threshold=0.5, model="m1")
    assert bad.reject and bad.fields()["reject"] == "1" and bad.fields()["score"] == "nan"
    with pytest.raises(ValueError):
        failed(reason="pass", camera="cam0", frame_id=5, slot=2, t_acq_ns=10, now_ns=30, threshold=0.5, model="m1")
