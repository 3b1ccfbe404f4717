"""Real Learn2Reg folders: checked file by file for the split being run, linked (never copied), and a re-link or
removal of the link folder never touches the user's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from regbench.dataset import read_dataset
from regbench.errors import DatasetError
from regbench.tasks.generate import make_task
from regbench.tasks.real import check_folder, link_folder


@pytest.fixture
def download(tmp_path) -> Path:
    """A user's Learn2Reg folder whose imagesTr is a symlink to storage elsewhere."""
    root = make_task("brain_mr", tmp_path / "downloads" / "BRAIN", scale="smoke")
    shutil.move(root / "imagesTr", tmp_path / "storage")
    (root / "imagesTr").symlink_to(tmp_path / "storage", target_is_directory=True)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_link_folder_links_every_entry_and_reads_like_the_source(download, tmp_path):
    out = link_folder(download, tmp_path / "results" / "data" / "brain_mr", "val")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in download.iterdir())
    assert all(p.is_symlink() for p in out.iterdir())
    linked, source = read_dataset(out), read_dataset(download)
    pair = linked.pair_ids("val")[0]
    assert linked.name == source.name and linked.pair_ids("test") == source.pair_ids("test")
    assert (linked.load_pair(pair).moving.image.data == source.load_pair(pair).moving.image.data).all()


def test_relinking_and_removing_the_links_leave_the_users_files_intact(download, tmp_path):
    before = _files(download)
    out = tmp_path / "results" / "data" / "brain_mr"
    link_folder(download, out, "test")
    link_folder(download, out, "test")  # a rerun replaces the links
    shutil.rmtree(out)  # what Snakemake does to a job's directory output before rerunning it
    assert _files(download) == before and (tmp_path / "storage").is_dir()


def test_a_broken_file_of_the_split_is_named_and_nothing_is_linked(download, tmp_path):
    pair = read_dataset(download).pair_ids("test")[0]
    broken = read_dataset(download).image_path(pair.moving)
    broken.write_bytes(broken.read_bytes()[:100])
    out = tmp_path / "results" / "data" / "brain_mr"
    with pytest.raises(DatasetError, match=rf"{broken.name}: not a readable NIfTI file"):
        link_folder(download, out, "test")
    assert not out.exists() and not out.parent.exists()  # the check runs before anything is written


def test_a_missing_training_image_is_named(download):
    task = read_dataset(download)
    missing = task.image_path(task.training_cases()[0])
    missing.unlink()
    with pytest.raises(DatasetError, match=rf"{missing.name}: file not found \(listed under training"):
        check_folder(download, "val")


def test_a_split_without_pairs_is_named(download):
    path = download / "brain_mr_dataset.json"
    description = json.loads(path.read_text())
    description.update(registration_test=[], numRegistration_test=0)
    path.write_text(json.dumps(description))
    with pytest.raises(DatasetError, match="lists no test pairs"):
        check_folder(download, "test")
