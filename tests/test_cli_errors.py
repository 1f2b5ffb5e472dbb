"""The command line prints the project's own errors as one line (exit 2) and lets anything else crash with its
traceback: a bug must not look like bad input."""

import pytest

import run_line
from model.errors import GrdnetError, InputError, SetupError
from tests.conftest import assert_one_line_error, run_cli

ARGV = ["keys", "--out", "unused", "--name", "worker"]


def _command_raising(exc: BaseException):
    def command(args) -> int:
        raise exc

    return command


@pytest.mark.parametrize(
    "exc", [InputError("line.yaml: cameras.0.fps: must be > 0"), SetupError("redis-server not found"), OSError("x")]
)
def test_our_errors_and_os_errors_are_one_line_with_exit_2(monkeypatch, capsys, exc):
    monkeypatch.setitem(run_line.COMMANDS, "keys", _command_raising(exc))
    assert run_line.main(ARGV) == 2
    err = capsys.readouterr().err
    assert err == f"error: {exc}\n"


@pytest.mark.parametrize("exc", [KeyError("camera"), RuntimeError("bug"), ValueError("bug"), TypeError("bug")])
def test_anything_else_is_a_bug_and_keeps_its_traceback(monkeypatch, exc):
    monkeypatch.setitem(run_line.COMMANDS, "keys", _command_raising(exc))
    with pytest.raises(type(exc)):
        run_line.main(ARGV)


def test_project_errors_still_are_the_builtins_old_handlers_catch():
    from engines.base import EngineError
    from model.checkpoint import CheckpointError
    from model.dataset import DatasetError
    from pipeline.wire import BadFrame

    for cls in (DatasetError, CheckpointError, BadFrame, InputError):
        assert issubclass(cls, GrdnetError) and issubclass(cls, ValueError)
    for cls in (EngineError, SetupError):
        assert issubclass(cls, GrdnetError) and issubclass(cls, RuntimeError)


def test_bad_values_from_config_files_and_flags_stay_one_line(tmp_path):
    bad = tmp_path / "line.yaml"
    bad.write_text("cameras: [{name: a, source: synthetic, fps: -1}]\n")
    assert_one_line_error(run_cli("run", "--config", str(bad)), str(bad))
    assert_one_line_error(run_cli("demo", "--fps", "0"), "--fps > 0")
