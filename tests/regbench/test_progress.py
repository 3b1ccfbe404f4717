"""Progress lines: when they are due, and what step, elapsed time and ETA they state (a fake clock, no sleeping)."""

from __future__ import annotations

import logging

import pytest

from regbench.progress import Progress, format_seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(progress: Progress, clock: FakeClock, steps: int, seconds_per_step: float, **values: float) -> None:
    for _ in range(steps):
        clock.now += seconds_per_step
        progress.step(**values)


def test_lines_at_the_first_step_every_n_steps_and_the_last(caplog):
    clock = FakeClock()
    progress = Progress(200, what="train net", every=50, seconds=0, clock=clock)
    with caplog.at_level(logging.INFO, logger="regbench.progress"):
        _run(progress, clock, 200, 0.2, loss=0.5)
    steps = [line.split("step ", 1)[1].split(" ", 1)[0] for line in caplog.messages]
    assert steps == ["1/200", "50/200", "100/200", "150/200", "200/200"]
    # after 50 steps of 0.2 s: 10 s elapsed; 150 steps to go at the same pace: 30 s
    assert caplog.messages[1] == "train net: step 50/200 (25%) loss=0.5 | elapsed 10.0 s, ETA 30.0 s"
    assert caplog.messages[-1].endswith("ETA 0.0 s")


def test_a_line_when_enough_time_has_passed_between_step_counts(caplog):
    clock = FakeClock()
    logger = logging.getLogger("test_progress")
    progress = Progress(1000, what="slow", every=0, seconds=30, logger=logger, clock=clock)
    with caplog.at_level(logging.INFO, logger="test_progress"):
        _run(progress, clock, 100, 1.0)  # lines at step 1, then each time 30 s have passed: steps 31, 61, 91
    assert [m.split("step ", 1)[1].split("/")[0] for m in caplog.messages] == ["1", "31", "61", "91"]


def test_note_and_level_go_into_the_line(caplog):
    clock = FakeClock()
    progress = Progress(2, what="register affine on brain_mr", every=1, clock=clock)
    with caplog.at_level(logging.INFO, logger="regbench.progress"):
        clock.now += 1.5
        progress.step("0001_0000<--0002_0000", runtime_s=1.5)
        progress.step("0003_0000<--0004_0000 FAILED: boom", level=logging.ERROR)
    assert caplog.messages[0].startswith("register affine on brain_mr: step 1/2 (50%) 0001_0000<--0002_0000 "
                                         "runtime_s=1.5 | elapsed 1.5 s, ETA 1.5 s")
    assert caplog.records[1].levelno == logging.ERROR and "FAILED: boom" in caplog.messages[1]


@pytest.mark.parametrize(("seconds", "text"), [(4.25, "4.2 s"), (185, "3 min 05 s"), (7620, "2 h 07 min")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_negative_total_is_refused():
    with pytest.raises(ValueError, match="total must be >= 0"):
        Progress(-1, what="x")
