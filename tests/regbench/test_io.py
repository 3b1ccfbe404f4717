"""Displacement and image files: round trips in both submission formats, and bad files named."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from regbench import io
from regbench.displacement import Displacement
from regbench.errors import DatasetError
from regbench.image import Image, LabelMap, affine_from_spacing


@pytest.mark.parametrize("ext", [".nii.gz", ".npz"])
@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 5)])
def test_disp_round_trip(tmp_path, rng, ext, shape):
    disp = Displacement(rng.normal(size=(*shape, len(shape))).astype(np.float32))
    path = tmp_path / f"disp_0001_0000_0002_0000{ext}"
    io.write_disp(path, disp)
    assert np.array_equal(io.read_disp(path, spatial_shape=shape).data, disp.data)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_image_and_labels_round_trip_2d(tmp_path, rng):
    affine = affine_from_spacing((1.25, 1.5))
    image = Image(rng.random((8, 9)).astype(np.float32), affine)
    labels = LabelMap(rng.integers(0, 3, (8, 9)).astype(np.int16), affine)
    io.write_image(tmp_path / "i.nii.gz", image)
    io.write_image(tmp_path / "l.nii.gz", labels)
    assert np.array_equal(io.read_image(tmp_path / "i.nii.gz", ndim=2).data, image.data)
    read = io.read_labels(tmp_path / "l.nii.gz", ndim=2)
    assert isinstance(read, LabelMap) and np.array_equal(read.data, labels.data)
    assert read.spacing == (1.25, 1.5)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (np.zeros((3, 6, 7, 5), np.float32), "channels-last"),  # channels first
        (np.zeros((6, 7, 5, 2), np.float32), "channels-last"),  # wrong number of channels
        (np.full((6, 7, 5, 3), np.nan, np.float32), "NaN or inf"),
        (np.zeros((6, 7, 4, 3), np.float32), "expected shape (6, 7, 5, 3)"),
    ],
)
def test_bad_disp_is_named(tmp_path, data, problem):
    path = tmp_path / "disp_0001_0000_0002_0000.npz"
    np.savez(path, data)
    with pytest.raises(DatasetError) as err:
        io.read_disp(path, spatial_shape=(6, 7, 5))
    assert str(err.value).startswith(str(path)) and problem in str(err.value)


def test_npz_with_two_arrays_and_unreadable_file_are_named(tmp_path):
    path = tmp_path / "disp_0001_0002.npz"
    np.savez(path, a=np.zeros((4, 4, 4, 3)), b=np.zeros(1))
    with pytest.raises(DatasetError, match="exactly one array"):
        io.read_disp(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="not a readable npz"):
        io.read_disp(path)


def test_non_integer_labels_are_refused(tmp_path):
    path = tmp_path / "l.nii.gz"
    io.write_image(path, Image(np.full((4, 4, 4), 0.5, np.float32)))
    with pytest.raises(DatasetError, match="non-integer"):
        io.read_labels(path)


def test_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "keep.csv"
    io.write_keypoints(path, np.ones((2, 3)))
    before = path.read_bytes()
    with pytest.raises(RuntimeError), io.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_find_disp_searches_in_the_official_order(tmp_path):
    # evaluation.py: the short name (when allowed) before the long one, and .npz before .nii.gz.
    from regbench.pair import CaseId, PairId

    pair = PairId(CaseId(1, 0), CaseId(1, 1))
    for name in ("disp_0001_0000_0001_0001.npz", "disp_0001_0001.nii.gz", "disp_0001_0001.npz"):
        io.write_disp(tmp_path / name, Displacement.zeros((4, 4, 4)))
    assert io.find_disp(tmp_path, pair) == tmp_path / "disp_0001_0001.npz"
    (tmp_path / "disp_0001_0001.npz").unlink()
    assert io.find_disp(tmp_path, pair) == tmp_path / "disp_0001_0001.nii.gz"


def test_find_disp_takes_lumirs_short_name_after_the_official_ones(tmp_path):
    # Same-modality pairs: the 2025 evaluation.py wants the long name; LUMIR's evaluator (and its examples)
    # use disp_FIXED_MOVING. Pairs of two modalities other than 0000 -> 0001 have the long name only.
    from regbench.pair import CaseId, PairId

    pair = PairId(CaseId(3455, 0), CaseId(3454, 0))
    assert io.disp_stems(pair) == ["disp_3455_0000_3454_0000", "disp_3455_3454"]
    io.write_disp(tmp_path / "disp_3455_3454.nii.gz", Displacement.zeros((4, 4, 4)))
    assert io.find_disp(tmp_path, pair) == tmp_path / "disp_3455_3454.nii.gz"
    io.write_disp(tmp_path / "disp_3455_0000_3454_0000.nii.gz", Displacement.zeros((4, 4, 4)))
    assert io.find_disp(tmp_path, pair) == tmp_path / "disp_3455_0000_3454_0000.nii.gz"
    thorax = PairId(CaseId(11, 1), CaseId(11, 0))
    assert io.disp_stems(thorax) == ["disp_0011_0001_0011_0000"]
    io.write_disp(tmp_path / "disp_0011_0011.nii.gz", Displacement.zeros((4, 4, 4)))
    assert io.find_disp(tmp_path, thorax) is None


@pytest.mark.parametrize("ext", [".nii.gz", ".npz"])
def test_2d_field_with_a_singleton_axis_is_read_as_2d(tmp_path, rng, ext):
    # COMULIS submissions store 2D fields as (H, W, 1, 2).
    field = rng.normal(size=(6, 7, 2)).astype(np.float32)
    path = tmp_path / f"disp_0001_0000_0001_0001{ext}"
    if ext == ".npz":
        np.savez(path, field[:, :, None, :])
    else:
        nib.save(nib.Nifti1Image(field[:, :, None, :], np.eye(4)), path)
    read = io.read_disp(path, spatial_shape=(6, 7))
    assert read.data.shape == (6, 7, 2) and np.array_equal(read.data, field)
    np.savez(path.with_name("d.npz"), np.zeros((6, 7, 2, 2), np.float32))  # two slices: not a 2D field
    with pytest.raises(DatasetError, match="channels-last"):
        io.read_disp(path.with_name("d.npz"))


def test_read_spacing_reads_the_header_only(tmp_path):
    io.write_image(tmp_path / "i.nii.gz", Image(np.zeros((4, 5, 6), np.float32), affine_from_spacing((0.5, 1.5, 2.0))))
    assert io.read_spacing(tmp_path / "i.nii.gz") == (0.5, 1.5, 2.0)
    assert io.read_spacing(tmp_path / "i.nii.gz", ndim=2) == (0.5, 1.5)
    with pytest.raises(DatasetError, match="file not found"):
        io.read_spacing(tmp_path / "none.nii.gz")


def test_read_disp_as_stored_keeps_the_nifti_dtype(tmp_path, rng):
    disp = Displacement(rng.normal(size=(5, 6, 7, 3)).astype(np.float32))
    io.write_disp(tmp_path / "d.nii.gz", disp)
    official = io.read_disp(tmp_path / "d.nii.gz")
    stored = io.read_disp(tmp_path / "d.nii.gz", as_stored=True)
    assert official.data.dtype == np.float64 and stored.data.dtype == np.float32
    assert np.array_equal(official.data, stored.data)


def test_atomic_outputs_get_the_usual_file_permissions(tmp_path):
    import os

    from regbench.io import atomic_path

    with atomic_path(tmp_path / "table.csv") as tmp:
        tmp.write_text("a\n")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(("value", "dtype"), [(np.nan, np.float32), (np.inf, np.float32), (1e300, np.float64)])
def test_image_with_nan_or_inf_is_refused(tmp_path, value, dtype):
    # 1e300 is finite in the file but inf as float32: refused too, not handed on as inf
    data = np.zeros((4, 5, 6), dtype)
    data[1, 2, 3] = value
    path = tmp_path / "i.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(DatasetError, match="image contains NaN or inf") as err:
        io.read_image(path)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("read", [io.read_image, io.read_labels, io.read_disp])
def test_complex_nifti_is_refused_not_cast(tmp_path, read):
    shape = (4, 5, 6, 3) if read is io.read_disp else (4, 5, 6)
    path = tmp_path / "disp_0001_0000_0002_0000.nii.gz"
    nib.save(nib.Nifti1Image(np.full(shape, 1 + 2j, np.complex64), np.eye(4)), path)
    with pytest.raises(DatasetError, match="holds complex64 values; expected real numbers") as err:
        read(path)
    assert str(err.value).startswith(str(path))


def test_complex_npz_field_is_refused_not_cast(tmp_path):
    path = tmp_path / "disp_0001_0000_0002_0000.npz"
    np.savez(path, disp=np.full((4, 5, 6, 3), 1j, np.complex128))
    with pytest.raises(DatasetError, match="holds complex128 values; expected real numbers"):
        io.read_disp(path)


def test_labels_beyond_int16_are_refused_not_wrapped(tmp_path):
    path = tmp_path / "l.nii.gz"
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), 70000, np.int32), np.eye(4)), path)
    with pytest.raises(DatasetError, match="exceed the int16 range"):
        io.read_labels(path)


def test_header_claiming_more_data_than_the_file_holds_is_refused_before_reading(tmp_path):
    path = tmp_path / "i.nii.gz"
    io.write_image(path, Image(np.zeros((4, 5, 6), np.float32)))
    image = nib.load(path)
    image.header.set_data_shape((30000, 30000, 30000))  # 108 TB of float32: must not be allocated
    path.write_bytes(gzip.compress(image.header.binaryblock + b"\0" * 4 + b"\0" * 480))
    with pytest.raises(DatasetError, match="more than the .*-byte file holds"):
        io.read_image(path)


def test_truncated_npz_field_is_named(tmp_path):
    path = tmp_path / "disp_0001_0000_0002_0000.npz"
    io.write_disp(path, Displacement(np.ones((6, 7, 5, 3), np.float32)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"not a readable npz file \(BadZipFile"):
        io.read_disp(path)


def test_atomic_dir_replaces_a_folder_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), io.atomic_dir(target) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["data"] and (target / "old.txt").read_text() == "old"
    with io.atomic_dir(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["data"]
