"""Reading and writing the files of a Learn2Reg dataset: NIfTI images, keypoint CSVs, displacement fields.

Every reader turns a missing, truncated or malformed file into a ``DatasetError`` naming the file;
every writer writes to a temporary name beside the target and renames, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from regbench.displacement import Displacement, check_disp_array
from regbench.errors import DatasetError
from regbench.image import Image, LabelMap, Shape
from regbench.pair import PairId

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; a result file gets the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        img = nib.load(path)
        return np.asarray(img.dataobj), img.affine
    except _READ_ERRORS as err:
        raise DatasetError(path, f"not a readable NIfTI file ({type(err).__name__}: {err})") from err


def read_image(path: str | Path, *, ndim: int | None = None) -> Image:
    """Read an intensity image as float32. ``ndim=2`` accepts a 2D image stored as (H, W, 1)."""
    data, affine = _load_nifti(Path(path))
    return Image(_squeeze_to(data, ndim, path).astype(np.float32), affine)


def read_labels(path: str | Path, *, ndim: int | None = None) -> LabelMap:
    """Read a label map or mask; non-integer values are an error since they cannot be labels."""
    data, affine = _load_nifti(Path(path))
    data = _squeeze_to(data, ndim, path)
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise DatasetError(path, "label map holds non-integer values")
        data = rounded
    return LabelMap(data.astype(np.int16), affine)


def _squeeze_to(data: np.ndarray, ndim: int | None, path: str | Path) -> np.ndarray:
    if ndim == 2 and data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3) or (ndim is not None and data.ndim != ndim):
        want = f"{ndim}D" if ndim else "2D or 3D"
        raise DatasetError(path, f"expected a {want} image, got shape {data.shape}")
    return data


def read_spacing(path: str | Path, *, ndim: int = 3) -> tuple[float, ...]:
    """Voxel size in mm from the NIfTI header alone (``get_zooms()``, as the official evaluation reads it),
    without reading the voxels."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        zooms = nib.load(path).header.get_zooms()
    except _READ_ERRORS as err:
        raise DatasetError(path, f"not a readable NIfTI file ({type(err).__name__}: {err})") from err
    return tuple(float(z) for z in zooms[:ndim])


def write_image(path: str | Path, image: Image) -> None:
    """Write an image (float32) or label map (uint8/int16) as NIfTI."""
    if isinstance(image, LabelMap):
        dtype = np.uint8 if image.data.min() >= 0 and image.data.max() < 256 else np.int16
    else:
        dtype = np.float32
    nifti = nib.Nifti1Image(np.asarray(image.data, dtype=dtype), image.affine)
    with atomic_path(path) as tmp:
        nib.save(nifti, tmp)


def read_keypoints(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read a headerless ``x,y,z`` CSV of voxel coordinates (array order) into an (N, ndim) float64 array."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        points = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise DatasetError(path, f"not a keypoint CSV of x,y,z rows ({err})") from err
    if points.size == 0:
        raise DatasetError(path, "keypoint file is empty")
    if ndim is not None and points.shape[1] != ndim:
        raise DatasetError(path, f"expected {ndim} coordinates per row, got {points.shape[1]}")
    if not np.isfinite(points).all():
        raise DatasetError(path, "keypoints contain NaN or inf")
    return points


def write_keypoints(path: str | Path, points: np.ndarray) -> None:
    """Write keypoints with full float precision (repr), so a round trip is exact."""
    lines = [",".join(repr(float(v)) for v in row) for row in np.asarray(points, dtype=np.float64)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


DISP_EXTENSIONS = (".npz", ".nii.gz")


def disp_stems(pair: PairId) -> list[str]:
    """The names a pair's field may have, in search order: the official ones (the short name where the
    official code accepts it, then the long one), then, for pairs of one modality, the short name that
    LUMIR's evaluator and the L2RTest copy accept (``disp_3455_3454``, what LUMIR's examples write) and the
    2025 Learn2Reg evaluator no longer does; it comes last, so an official name always wins."""
    stems = ([pair.short_disp_stem] if pair.short_disp_stem else []) + [pair.disp_stem]
    if pair.fixed.modality == pair.moving.modality:
        stems.append(f"disp_{pair.fixed.case:04d}_{pair.moving.case:04d}")
    return stems


def find_disp(folder: str | Path, pair: PairId) -> Path | None:
    """The submission file for ``pair`` in ``folder``, searched in the order of ``disp_stems``, ``.npz``
    before ``.nii.gz`` (so the same file wins when several exist)."""
    for stem in disp_stems(pair):
        for ext in DISP_EXTENSIONS:
            candidate = Path(folder) / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
    return None


def read_disp(path: str | Path, *, spatial_shape: Shape | None = None, as_stored: bool = False,
              uncertainty: bool = False) -> Displacement:
    """Read a submission field (``.nii.gz`` as float64, or a single-array ``.npz`` as float32, as the official code).

    The NIfTI affine is ignored, as in the official evaluation: the field is in voxels of the fixed grid.
    A 2D field stored as (H, W, 1, 2), as COMULIS submissions are, is read as (H, W, 2).
    ``as_stored=True`` keeps a floating-point NIfTI field in its stored dtype (usually float32): the values
    are the same, without the volume-sized float64 copy, for callers that convert slab by slab (metrics).
    ``uncertainty=True`` also reads the std and samples that ``write_disp`` put beside the field, if any.
    """
    path = Path(path)
    if path.name.endswith(".npz"):
        if not path.is_file():
            raise DatasetError(path, "file not found")
        try:
            with np.load(path) as archive:
                if len(archive.files) != 1:
                    raise DatasetError(path, f"npz must hold exactly one array, found {len(archive.files)}")
                data = archive[archive.files[0]].astype(np.float32)
        except (*_READ_ERRORS, KeyError) as err:
            raise DatasetError(path, f"not a readable npz file ({type(err).__name__}: {err})") from err
    else:
        raw, _ = _load_nifti(path)
        data = raw if as_stored and np.issubdtype(raw.dtype, np.floating) else raw.astype(np.float64)
    if data.ndim == 4 and data.shape[2:] == (1, 2):
        data = data[:, :, 0]
    try:
        check_disp_array(data, where="displacement", spatial_shape=spatial_shape)
    except ValueError as err:
        raise DatasetError(path, str(err).removeprefix("displacement: ")) from err
    if uncertainty:
        return _read_uncertainty(path, data)
    return Displacement(data)


def uncertainty_path(path: str | Path) -> Path:
    """Where ``write_disp`` keeps a field's std and samples: ``disp_<pair>_uncertainty.npz`` beside it.

    A separate file, because the official format allows one array per field file; its name matches no
    official pattern, so evaluators that do not know it ignore it.
    """
    path = Path(path)
    stem = path.name.removesuffix(".nii.gz").removesuffix(".npz")
    return path.with_name(f"{stem}_uncertainty.npz")


def _read_uncertainty(path: Path, data: np.ndarray) -> Displacement:
    sidecar = uncertainty_path(path)
    if not sidecar.is_file():
        return Displacement(data)
    try:
        with np.load(sidecar) as archive:
            std, samples = (archive[key].astype(np.float32) if key in archive.files else None
                            for key in ("std", "samples"))
        return Displacement(data, std=std, samples=samples)
    except (*_READ_ERRORS, KeyError) as err:
        raise DatasetError(sidecar, f"not a readable uncertainty file ({type(err).__name__}: {err})") from err


def write_disp(path: str | Path, disp: Displacement) -> None:
    """Write a field as the official examples do: channels last, float32, identity affine.

    A field's std and samples, if it has any, go to ``uncertainty_path(path)`` (float32 arrays ``std`` and
    ``samples``); a stale one from an earlier field is removed.
    """
    path = Path(path)
    extra = {key: value.astype(np.float32) for key, value in (("std", disp.std), ("samples", disp.samples))
             if value is not None}
    if extra:
        with atomic_path(uncertainty_path(path)) as tmp:
            np.savez_compressed(tmp, **extra)
    else:
        uncertainty_path(path).unlink(missing_ok=True)
    if path.name.endswith(".npz"):
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, disp=disp.data.astype(np.float32))
        return
    nifti = nib.Nifti1Image(disp.data.astype(np.float32), np.eye(4))
    with atomic_path(path) as tmp:
        nib.save(nifti, tmp)
