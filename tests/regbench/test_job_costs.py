"""Job costs: default-scale figures scale with voxels; declared paper figures size paper-scale jobs by the
task's voxels against OASIS's; limits err high."""

from __future__ import annotations

import pytest

from regbench import job_costs
from regbench.capabilities import PaperCost, Resources
from regbench.tasks.spec import task_specs

MEASURED = Resources(threads=2, mem_mb=2000, pair_seconds=3, train_minutes=10,
                     paper=PaperCost(pair_cpu_s=16.0, peak_mb=9000, train_cpu_h=4000.0))
UNMEASURED = Resources(threads=2, mem_mb=2000, pair_seconds=3, train_minutes=10)


def test_a_synthetic_task_at_paper_scale_has_its_paper_grid_and_pairs():
    size = job_costs.task_size(task_specs(["brain_mr"])["brain_mr"], "paper", "test")
    assert size.voxels == 160 * 192 * 160 and size.pairs == 38
    assert size.default_ratio == pytest.approx(size.voxels / (64 * 76 * 64))


def test_default_scale_figures_scale_with_the_voxels_relative_to_the_default_scale():
    size = job_costs.TaskSize("default", 64**3 * 2, 2.0, pairs=5)
    assert job_costs.train_seconds(MEASURED, size) == 60 * 10 * 2.0  # paper figures only at scale=paper
    assert job_costs.register_seconds(MEASURED, size) == 3 * 2.0 * 5
    assert job_costs.peak_mb(MEASURED, size) == 2000


def test_paper_figures_size_paper_jobs_by_voxels_against_the_oasis_reference():
    half = job_costs.TaskSize("paper", job_costs.REFERENCE_VOXELS // 2, 50.0, pairs=10)
    assert job_costs.train_seconds(MEASURED, half) == pytest.approx(3600 * 4000 / 2 / 2)  # CPU h over 2 threads
    assert job_costs.register_seconds(MEASURED, half) == pytest.approx(16 / 2 / 2 * 10)
    assert job_costs.peak_mb(MEASURED, half) == 4500
    double = job_costs.TaskSize("paper", job_costs.REFERENCE_VOXELS * 2, 100.0, pairs=1)
    assert job_costs.peak_mb(MEASURED, double) == 18000


def test_without_paper_figures_paper_jobs_fall_back_to_the_default_figures():
    size = job_costs.TaskSize("paper", job_costs.REFERENCE_VOXELS, 25.0, pairs=4)
    assert job_costs.train_seconds(UNMEASURED, size) == 60 * 10 * 25.0
    assert job_costs.peak_mb(UNMEASURED, size) == 2000


def test_memory_is_never_asked_below_the_default_figure():
    tiny = job_costs.TaskSize("paper", 256 * 256, 4.0, pairs=50)
    assert job_costs.peak_mb(MEASURED, tiny) == 2000


@pytest.mark.parametrize("seconds, minutes", [(0, 10), (60, 10), (400, 20), (3600, 180)])
def test_time_limits_are_three_times_the_expectation_and_at_least_ten_minutes(seconds, minutes):
    assert job_costs.time_limit_minutes(seconds) == minutes


def test_a_robustness_job_costs_its_registrations_on_at_most_the_pairs_the_task_has():
    size = job_costs.TaskSize("default", 64**3, 1.0, pairs=3)
    track = {"budgets": [0.5, 1.0], "draws": 2, "evaluations": 4, "pairs": 2}
    assert job_costs.robustness_seconds(UNMEASURED, size, track) == 3 * (1 + 2 * (2 + 8)) * 2
    assert job_costs.robustness_seconds(UNMEASURED, size, dict(track, pairs=5)) == 3 * 21 * 3
