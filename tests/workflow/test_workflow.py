"""The Snakemake workflow: configuration validated at parse time, a smoke run end to end into leaderboards and
the report (opened in a headless browser), a re-run that does nothing, and a resumed run that redoes only what
is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from regbench import job_costs
from regbench.dry_run import job_counts, planned_jobs
from regbench.registry import method_class
from regbench.tasks.spec import task_specs

# Whole workflow runs: the smoke run behind several tests takes about 2 minutes on 2 quiet cores, many times
# that on a loaded machine.
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).parents[2]
TASKS = ["brain_mr", "abdomen_ct", "abdomen_mrct", "thorax_ct", "cardiac_mr"]


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    return subprocess.run([exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
                           *args], capture_output=True, text=True)


def _workdir(tmp_path: Path, config: str | None = None) -> Path:
    (tmp_path / "config").mkdir(parents=True)
    if config is None:
        shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config")
    else:
        (tmp_path / "config" / "config.yaml").write_text(config)
    return tmp_path


def test_dry_run_plans_every_stage_for_every_task(tmp_path):
    result = _snakemake(_workdir(tmp_path), "-n")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for rule in ("dataset", "register", "evaluate", "leaderboard", "overall_leaderboard", "plots", "report"):
        assert f"rule {rule}:" in result.stdout
    assert all(f"results/leaderboard/{task}.csv" in result.stdout for task in TASKS)
    refined = {(job.wildcards["task"], job.wildcards["method"]) for job in planned_jobs(result.stdout)
               if job.rule == "register_refined"}  # writes the method's row and its +io row
    registered = {(job.wildcards["task"], job.wildcards["method"]) for job in planned_jobs(result.stdout)
                  if job.rule == "register"} | refined | {(t, f"{m}+io") for t, m in refined}
    # Methods that assume corresponding intensities (vrnet, csain) do not run on the MR-CT task, only elsewhere;
    # the networks config instance_optimisation lists get a +io row each, registered with the same trained model.
    assert ("abdomen_mrct", "voxelmorph") in registered and ("brain_mr", "vrnet") in registered
    assert not {("abdomen_mrct", "vrnet"), ("abdomen_mrct", "csain"), ("abdomen_mrct", "vrnet+io")} & registered
    assert {("brain_mr", "voxelmorph+io"), ("abdomen_mrct", "gradirn+io")} <= registered
    assert ("brain_mr", "identity+io") not in registered
    trained = [job for job in planned_jobs(result.stdout) if job.rule == "train"]
    assert not any(job.wildcards["method"].endswith("+io") for job in trained)


def test_invalid_config_fails_before_any_job(tmp_path):
    result = _snakemake(_workdir(tmp_path, "tasks: [brain_mr]\nmethods: [identity]\nscale: huge\n"), "-n")
    assert result.returncode != 0
    assert "huge" in result.stdout + result.stderr


@pytest.mark.parametrize(("overrides", "message"), [
    ("overrides: {iterativ: {diffusion: 0.2}}", "overrides: iterativ: unknown method 'iterativ'"),
    ("task_overrides: {cardiac_rm: {affine: {lr: 0.1}}}", "task_overrides: unknown task(s) cardiac_rm"),
    ("overrides: {iterative: {lambda_diffusion: 2.0}}", "unknown hyperparameter(s) lambda_diffusion"),
    ("task_overrides: {cardiac_mr: {affine: {lr: fast}}}", "task_overrides: cardiac_mr: affine: AffineParams: "
                                                           "hyperparameter lr must be like"),
    ("instance_optimisation: {methods: [voxelmorf]}", "instance_optimisation: unknown methods voxelmorf"),
    ("scale_overrides: {defualt: {brain_mr: {affine: {lr: 0.1}}}}", "defualt"),
    ("train: pretrianed", "pretrianed"),
    ("instance_optimisation: {methods: [identity], settings: {iters: 3}}",
     "instance_optimisation: settings: InstanceParams: unknown hyperparameter(s) iters"),
])
def test_mistaken_overrides_fail_the_dry_run_naming_them(tmp_path, overrides, message):
    result = _snakemake(_workdir(tmp_path, f"tasks: [brain_mr]\nmethods: [identity]\n{overrides}\n"), "-n")
    assert result.returncode != 0 and message in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_run_with_its_own_results_dir_writes_nothing_into_results(tmp_path):
    result = _snakemake(_workdir(tmp_path), "-n", "--config", "methods=[identity]", "results_dir=results/subset")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    paths = [line.split(": ", 1)[1] for line in result.stdout.splitlines()
             if line.strip().startswith(("input:", "output:", "log:", "benchmark:"))]
    files = [path for line in paths for path in line.split(", ")]
    assert "results/subset/report.html" in files and "results/subset/leaderboard/overall.csv" in files
    assert all(path.startswith("results/subset/") for path in files), [p for p in files
                                                                       if not p.startswith("results/subset/")]


def test_cluster_profile_plans_every_job_with_its_resources(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_cluster_generic")
    result = _snakemake(_workdir(tmp_path), "-n", "--workflow-profile", str(ROOT / "profiles" / "cluster-generic"))
    assert result.returncode == 0, result.stdout[-2000:]
    assert "mem_mb=" in result.stdout and "runtime=" in result.stdout


def _job_resources(output: str, rule: str) -> dict[tuple[str, str], dict[str, str]]:
    """From a dry run's job listing: (task, method) -> that ``rule`` job's resources as strings."""
    return {(job.wildcards["task"], job.wildcards["method"]): job.resources
            for job in planned_jobs(output) if job.rule == rule}


def test_gpu_and_runtime_requests_follow_the_method_and_the_scale(tmp_path):
    workdir = _workdir(tmp_path)
    methods = "methods=[identity,iterative,voxelmorph]"
    default = _snakemake(workdir, "-n", "--config", methods, "device=cuda")
    paper = _snakemake(workdir, "-n", "--config", methods, "device=cuda", "scale=paper")
    assert default.returncode == 0 and paper.returncode == 0, default.stdout[-2000:] + paper.stdout[-2000:]
    register, register_paper = _job_resources(default.stdout, "register"), _job_resources(paper.stdout, "register")
    assert register["brain_mr", "identity"]["gpu"] == "0"  # identity declares no GPU use
    assert register["brain_mr", "iterative"]["gpu"] == "1"
    assert _job_resources(default.stdout, "train")["brain_mr", "voxelmorph"]["gpu"] == "1"
    # paper-scale brain_mr has 38 test pairs of 160x192x160 voxels against 8 of 64x76x64: a far longer limit
    assert int(register_paper["brain_mr", "iterative"]["runtime"]) > 10 * int(register["brain_mr", "iterative"]["runtime"])
    on_cpu = _snakemake(workdir, "-n", "--config", methods)
    assert _job_resources(on_cpu.stdout, "register")["brain_mr", "iterative"]["gpu"] == "0"


def test_a_job_takes_at_most_half_the_cores_so_two_share_a_small_machine(tmp_path):
    workdir = _workdir(tmp_path)
    methods = ("--config", "methods=[identity,bayesian,ants]", "tasks=[brain_mr]")
    declared = method_class("bayesian").resources.threads
    threads = {}
    for cores in ("2", "4", "8"):
        result = _snakemake(workdir, "-n", *methods, "--cores", cores)
        assert result.returncode == 0, result.stdout[-2000:]
        threads[cores] = {job.wildcards["method"]: job.threads for job in planned_jobs(result.stdout)
                          if job.rule == "register"}
    assert declared == 2 and threads["2"] == {"identity": 1, "bayesian": 1, "ants": 1}
    assert threads["4"]["bayesian"] == threads["8"]["bayesian"] == declared  # never more than it declares
    assert threads["8"]["ants"] == 1


def test_paper_scale_jobs_ask_for_the_measured_paper_costs(tmp_path):
    """A paper preset trains for days on a CPU: its jobs are sized from the paper figures measured at OASIS size
    (``Resources.paper``), not from the default-scale figures (minutes), memory included."""
    paper = _snakemake(_workdir(tmp_path), "-n", "--config", "methods=[affine,vrnet]", "scale=paper")
    assert paper.returncode == 0, paper.stdout[-2000:]
    size = job_costs.task_size(task_specs(["brain_mr"])["brain_mr"], "paper", "test")
    vrnet = method_class("vrnet").resources
    train = _job_resources(paper.stdout, "train")["brain_mr", "vrnet"]
    assert int(train["runtime"]) == job_costs.time_limit_minutes(job_costs.train_seconds(vrnet, size))
    assert int(train["runtime"]) > 3 * 24 * 60  # days, where the default figures would ask for minutes
    assert int(train["mem_mb"]) == job_costs.peak_mb(vrnet, size) > vrnet.mem_mb
    register = _job_resources(paper.stdout, "register_refined")["brain_mr", "vrnet"]  # with its +io row
    assert int(register["runtime"]) == job_costs.time_limit_minutes(job_costs.register_seconds(vrnet, size))


def test_the_paper_scale_generative_model_asks_for_a_day(tmp_path):
    # the 3D+t model: 24 h of training measured on 2 threads (workflow/rules/generative.smk), an hour by default
    requests = {}
    for scale in ("default", "paper"):
        result = _snakemake(_workdir(tmp_path / scale), "-n", "--config", "methods=[identity]",
                            "tasks=[cardiac_cohort]", f"scale={scale}")
        assert result.returncode == 0, result.stdout[-2000:]
        requests[scale] = next(job.resources for job in planned_jobs(result.stdout) if job.rule == "generative")
    assert int(requests["default"]["runtime"]) == 60 and int(requests["paper"]["runtime"]) >= 24 * 60
    assert int(requests["paper"]["mem_mb"]) > int(requests["default"]["mem_mb"])


def test_models_a_run_exports_are_loaded_by_the_next_run_and_not_retrained(tmp_path):
    # `snakemake pretrained` with train=scratch writes models in the shipped layout; a run pointed at them
    # (pretrained_dir) loads each instead of training, and says so; another seed trains again.
    workdir = _workdir(tmp_path)
    common = ("scale=smoke", "tasks=[cardiac_mr]", "methods=[voxelmorph]")
    shipped = workdir / "made" / "pretrained"
    earlier = shipped / "default" / "cardiac_mr" / "voxelmorph.json"  # the README's first command, run before
    earlier.parent.mkdir(parents=True)
    earlier.write_text("{}")
    made = _snakemake(workdir, "pretrained", "--config", *common, "train=scratch", "results_dir=made")
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert earlier.read_text() == "{}"  # a smoke export leaves the default one beside it
    record = json.loads((shipped / "smoke" / "cardiac_mr" / "voxelmorph.json").read_text())
    assert record["made"]["command"] == "snakemake --cores 2 pretrained --config train=scratch scale=smoke"
    target = "models/cardiac_mr/voxelmorph_source.json"
    for run, extra in (("loaded", ()), ("retrained", ("method_seed=1",))):
        result = _snakemake(workdir, f"{run}/{target}", "--config", *common, f"results_dir={run}",
                            f"pretrained_dir={shipped}", *extra)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    loaded = json.loads((workdir / "loaded" / target).read_text())
    assert loaded["source"] == "shipped" and loaded["reason"].startswith("loaded pretrained/smoke/cardiac_mr/voxelmorph.pt")
    assert (workdir / "loaded" / "models" / "cardiac_mr" / "voxelmorph.pt").read_bytes() == \
        (shipped / "smoke" / "cardiac_mr" / "voxelmorph.pt").read_bytes()
    assert "training voxelmorph" not in (workdir / "loaded" / "logs" / "train" / "cardiac_mr" / "voxelmorph.log").read_text()
    retrained = json.loads((workdir / "retrained" / target).read_text())
    assert retrained["source"] == "trained"
    assert retrained["reason"] == "the shipped model was trained otherwise: seed 0 shipped, 1 wanted"


SMOKE = ("--config", "scale=smoke", "methods=[identity,affine]")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A run interrupted after one task's leaderboard, then resumed to the end; returns (workdir, resume plan)."""
    workdir = _workdir(tmp_path_factory.mktemp("smoke"))
    partial = _snakemake(workdir, "results/leaderboard/cardiac_mr.csv", *SMOKE)
    assert partial.returncode == 0, partial.stdout[-3000:] + partial.stderr[-3000:]
    plan = _snakemake(workdir, "-n", *SMOKE)
    full = _snakemake(workdir, *SMOKE)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    return workdir, job_counts(plan.stdout + plan.stderr)


def test_smoke_run_writes_a_leaderboard_per_task_and_overall(smoke_run):
    workdir, _ = smoke_run
    overall = pd.read_csv(workdir / "results" / "leaderboard" / "overall.csv", index_col="method")
    assert set(overall.index) == {"identity", "affine"} and set(TASKS) <= set(overall.columns)
    for task in TASKS:
        board = pd.read_csv(workdir / "results" / "leaderboard" / f"{task}.csv", index_col="method")
        assert set(board.index) == {"identity", "affine"}
        assert (board["failed"] == 0).all()
        assert (workdir / "results" / "leaderboard" / f"{task}.md").read_text().startswith("# Leaderboard")
    runtimes = pd.read_csv(workdir / "results" / "registrations" / "brain_mr" / "affine" / "runtime.csv")
    assert (runtimes["status"] == "ok").all() and (runtimes["runtime_s"] > 0).all()


def test_resumed_run_redoes_only_what_is_missing(smoke_run):
    # After the run that finished cardiac_mr's leaderboard only, the plan holds the four other tasks' jobs, the
    # figures of all five (the partial run did not ask for cardiac_mr's), affine's robustness track on its two
    # tasks (config robustness: cardiac_mr and thorax_ct), the claims table and the report, and nothing more.
    _, plan = smoke_run
    assert plan == {"all": 1, "dataset": 4, "register": 8, "evaluate": 4, "leaderboard": 4,
                    "overall_leaderboard": 1, "plots": 5, "robustness": 2, "robustness_leaderboard": 1,
                    "claims": 1, "report": 1}


def test_rerun_after_completion_does_nothing(smoke_run):
    workdir, _ = smoke_run
    result = _snakemake(workdir, "-n", *SMOKE)
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


KILLED = ("--config", "scale=smoke", "tasks=[cardiac_mr]", "methods=[identity,affine]")


def test_a_run_killed_with_sigkill_resumes_as_the_readme_says_redoing_only_unfinished_jobs(tmp_path):
    workdir = _workdir(tmp_path)
    exe = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    run = subprocess.Popen([exe, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2",
                            *KILLED], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    board, dataset = workdir / "results" / "leaderboard" / "cardiac_mr.csv", workdir / "results" / "data"
    deadline = time.monotonic() + 900
    while not board.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.poll() is None and board.exists(), "the run ended, or never got to its leaderboard, before the kill"
    os.killpg(run.pid, signal.SIGKILL)  # snakemake and the job it runs, as a crash or an OOM kill of all would
    run.wait()
    stamp = (dataset / "cardiac_mr" / "cardiac_mr_dataset.json").stat().st_mtime_ns
    stopped = _snakemake(workdir, *KILLED)
    assert stopped.returncode != 0 and "cannot be locked" in stopped.stdout + stopped.stderr
    assert _snakemake(workdir, *KILLED, "--unlock").returncode == 0  # README, "The benchmark": --unlock, then again
    plan = job_counts(_snakemake(workdir, "-n", *KILLED).stdout)
    assert "report" in plan and set(plan) <= {"leaderboard", "overall_leaderboard", "plots", "robustness",
                                              "robustness_leaderboard", "claims", "report", "all"}, plan
    resumed = _snakemake(workdir, *KILLED)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert (workdir / "results" / "report.html").is_file()
    assert (dataset / "cardiac_mr" / "cardiac_mr_dataset.json").stat().st_mtime_ns == stamp  # not made again


class _References(HTMLParser):
    """Every image source and link target of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.references.append(values["src"])
        elif tag == "a" and values.get("href") and not values["href"].startswith("#"):
            self.references.append(values["href"])


def test_report_references_only_files_that_exist(smoke_run):
    workdir, _ = smoke_run
    page = workdir / "results" / "report.html"
    parser = _References()
    parser.feed(page.read_text())
    embedded = [r for r in parser.references if r.startswith("data:image/png;base64,")]
    beside = [r for r in parser.references if not r.startswith("data:")]
    # the rank heat-map plus at least the per-case metric figure and the qualitative panel of each task
    assert len(embedded) >= 1 + 2 * len(TASKS)
    assert beside and all((page.parent / r).is_file() for r in beside), [r for r in beside
                                                                       if not (page.parent / r).is_file()]
    assert {p.name for p in (workdir / "results" / "leaderboard" / "html").glob("*.html")} == \
        {f"{name}.html" for name in [*TASKS, "overall"]}


def test_report_loads_in_a_browser_without_errors(smoke_run, open_in_browser, tmp_path):
    workdir, _ = smoke_run
    screenshot = tmp_path / "report.png"
    loaded = open_in_browser((workdir / "results" / "report.html").as_uri(), screenshot)
    assert loaded.errors == []
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and loaded.height > 2000  # a long page, rendered
    print(f"screenshot of the report: {screenshot}")


def test_browser_check_catches_console_errors_and_missing_images(open_in_browser, tmp_path):
    # the check above must be able to fail: a page with a console error and a missing image
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><img src="absent.png"><script>console.error("deliberate")</script>')
    errors = open_in_browser(page.as_uri(), tmp_path / "broken.png").errors
    assert any("deliberate" in e for e in errors) and any("absent.png" in e for e in errors), errors


def test_snakemake_report_holds_the_figures_and_tables(smoke_run):
    workdir, _ = smoke_run
    result = _snakemake(workdir, *SMOKE, "--report", "results/snakemake_report.html")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = (workdir / "results" / "snakemake_report.html").read_text()
    assert "regbench runs every configured registration method" in text  # workflow/report/workflow.rst
    assert all(name in text for name in ("rank_heatmap.png", "qualitative.png", "overall.html", "report.html"))
