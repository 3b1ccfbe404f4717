"""The command line: listing, generating, validating, and one-line errors without a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from regbench.cli import main


def test_validate_reports_a_bad_folder_in_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    result = subprocess.run([sys.executable, "-m", "regbench.cli", "validate", str(missing)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == f"regbench: error: {missing}: dataset folder not found"
    assert "Traceback" not in result.stderr


def test_make_task_of_unknown_task_is_one_line(tmp_path, capsys):
    assert main(["make-task", "no_such_task", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such task" in err[0]
    assert not (tmp_path / "x").exists()


def test_tasks_lists_every_builtin_task(capsys):
    from regbench.tasks.spec import list_tasks

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_tasks())


def test_methods_lists_every_registered_method_with_its_capabilities(capsys):
    from regbench.registry import list_methods

    assert main(["methods"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(rows) == list_methods()
    assert rows["identity"][1:4] == ["2D/3D", "multi", "no"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("regbench: error: ")
    return err[0]


def test_make_task_into_a_folder_of_other_files_refuses_and_deletes_nothing(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    assert main(["make-task", "cardiac_mr", str(tmp_path / "mine"), "--scale", "smoke"]) == 1
    assert _one_error_line(capsys) == (
        f"regbench: error: {tmp_path / 'mine'}: holds thesis.tex, so it is not a regbench-generated cardiac_mr "
        "dataset; make-task would delete it; give an empty or new folder")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left behind


def test_make_task_replaces_only_a_dataset_it_generated_for_that_task(tmp_path, capsys):
    out = tmp_path / "cardiac"
    assert main(["make-task", "cardiac_mr", str(out), "--scale", "smoke"]) == 0
    assert main(["make-task", "cardiac_mr", str(out), "--scale", "smoke", "--seed", "3"]) == 0  # re-made
    capsys.readouterr()
    assert main(["make-task", "brain_mr", str(out), "--scale", "smoke"]) == 1  # another task's dataset
    assert "holds cardiac_mr_dataset.json, so it is not a regbench-generated brain_mr" in _one_error_line(capsys)
    json_path = out / "cardiac_mr_dataset.json"
    json_path.write_text(json_path.read_text().replace("regbench synthetic", "Learn2Reg"))  # e.g. a download
    assert main(["make-task", "cardiac_mr", str(out), "--scale", "smoke"]) == 1
    assert "no cardiac_mr_dataset.json written by regbench" in _one_error_line(capsys)
    assert "Learn2Reg" in json_path.read_text()


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "image contains NaN or inf"),
                                                (np.inf, "image contains NaN or inf"),
                                                (1 + 1j, "holds complex64 values; expected real numbers")])
def test_validate_names_an_image_holding_nan_inf_or_complex_values(generated_task, tmp_path, capsys, value, problem):
    root = shutil.copytree(generated_task("cardiac_mr", "smoke").root, tmp_path / "cardiac")
    image = root / "imagesTr" / "cardiac_mr_0002_0000.nii.gz"
    loaded = nib.load(image)
    data = np.asarray(loaded.dataobj).astype(np.complex64 if np.iscomplexobj(value) else np.float32)
    data[3, 4] = value
    nib.save(nib.Nifti1Image(data, loaded.affine), image)
    assert main(["validate", str(root)]) == 1
    assert _one_error_line(capsys) == f"regbench: error: {image}: {problem}"


def test_version_prints_the_package_version_and_the_commit(capsys):
    from importlib import metadata

    from regbench.report.environment import regbench_commit

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"regbench {metadata.version('regbench')}, commit {regbench_commit()}"


def test_help_says_what_regbench_is_and_that_the_benchmark_runs_through_snakemake(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "benchmark of medical image registration methods" in out
    assert "The benchmark itself runs through Snakemake" in out and "snakemake --cores 2" in out
