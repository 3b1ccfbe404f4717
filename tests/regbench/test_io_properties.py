"""Property tests of the file readers of regbench.io: whatever bytes a file holds, reading it either succeeds or
raises a ``DatasetError`` naming the file; never another exception, never a huge allocation."""

from __future__ import annotations

import gzip
import io as _bytes_io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regbench import io
from regbench.errors import DatasetError

# Every example rewrites the same file under tmp_path, so the function-scoped fixture is safe to share.
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER_BYTES = 352  # NIfTI-1 header plus extension flag; the voxels follow


def _valid_nifti(shape: tuple[int, ...] = (4, 5, 3), dtype: type = np.float32) -> bytes:
    """A small single-file NIfTI-1 image (``.nii`` bytes)."""
    data = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    return nib.Nifti1Image(data, np.diag([1.5, 1.0, 2.0, 1.0])).to_bytes()


def _valid_npz() -> bytes:
    buffer = _bytes_io.BytesIO()
    np.savez_compressed(buffer, disp=np.zeros((4, 5, 3, 3), np.float32))
    return buffer.getvalue()


def _corrupt(data: bytes, edits: list[tuple[int, int]], limit: int) -> bytes:
    """``data`` with byte ``index % limit`` set to ``value`` for each edit."""
    corrupted = bytearray(data)
    for index, value in edits:
        corrupted[index % min(limit, len(data))] = value
    return bytes(corrupted)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8)


def _reads_or_names_the_file(read, path: Path) -> None:
    try:
        read(path)
    except DatasetError as err:
        assert str(err).startswith(str(path)) and "\n" not in err.problem


NIFTI_READERS = {
    "image": io.read_image,
    "labels": io.read_labels,
    "spacing": io.read_spacing,
    "disp": io.read_disp,
}


@pytest.mark.parametrize("reader", sorted(NIFTI_READERS))
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@PROPERTY
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_as_nifti_are_a_dataset_error(tmp_path, reader, suffix, data):
    path = tmp_path / f"disp_0001_0000_0002_0000{suffix}"
    path.write_bytes(data)
    _reads_or_names_the_file(NIFTI_READERS[reader], path)


@pytest.mark.parametrize("reader", sorted(NIFTI_READERS))
@pytest.mark.parametrize("compress", [True, False])
@PROPERTY
@given(edits=EDITS)
def test_corrupted_nifti_header_is_a_dataset_error(tmp_path, reader, compress, edits):
    data = _corrupt(_valid_nifti(), edits, HEADER_BYTES)
    path = tmp_path / f"disp_0001_0000_0002_0000.nii{'.gz' if compress else ''}"
    path.write_bytes(gzip.compress(data) if compress else data)
    _reads_or_names_the_file(NIFTI_READERS[reader], path)


@PROPERTY
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_as_npz_field_are_a_dataset_error(tmp_path, data):
    path = tmp_path / "disp_0001_0000_0002_0000.npz"
    path.write_bytes(data)
    _reads_or_names_the_file(io.read_disp, path)


@PROPERTY
@given(edits=EDITS, cut=st.integers(0, 400))
def test_corrupted_or_truncated_npz_field_is_a_dataset_error(tmp_path, edits, cut):
    data = _valid_npz()
    path = tmp_path / "disp_0001_0000_0002_0000.npz"
    path.write_bytes(_corrupt(data, edits, len(data))[:len(data) - cut])
    _reads_or_names_the_file(io.read_disp, path)


@PROPERTY
@given(data=st.binary(max_size=300) | st.text(alphabet="0123456789.,-+eE naifNI\n\r\t", max_size=80).map(str.encode))
def test_arbitrary_keypoint_csv_is_a_dataset_error(tmp_path, data):
    path = tmp_path / "Toy_0001_0000.csv"
    path.write_bytes(data)
    _reads_or_names_the_file(lambda p: io.read_keypoints(p, ndim=3), path)
    _reads_or_names_the_file(io.read_keypoints, path)
