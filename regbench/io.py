"""Reading and writing the files of a Learn2Reg dataset: NIfTI images, keypoint CSVs, displacement fields.

Every reader turns a missing, truncated or malformed file into a ``DatasetError`` naming the file;
every writer writes to a temporary name beside the target and renames, so a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
import tokenize
import warnings
import zipfile
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
# What nibabel, gzip, zipfile and numpy's .npy header parser raise on a truncated or damaged file.
_READ_ERRORS = (OSError, EOFError, ValueError, OverflowError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile,
                SyntaxError, tokenize.TokenError, nib.filebasedimages.ImageFileError,
                nib.spatialimages.HeaderDataError)
# Also from npz files: zipfile's unsupported (NotImplementedError) and encrypted (RuntimeError) entries, and an
# allocation a damaged .npy header can ask for (MemoryError).
_NPZ_ERRORS = (*_READ_ERRORS, KeyError, NotImplementedError, RuntimeError, MemoryError)
_MAX_DEFLATE_RATIO = 1032  # the most deflate (gzip) can compress: a larger claim is a damaged header


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; it replaces ``path`` (a file, a link or a folder, which
    ``rmtree`` removes without following links) only if the block succeeds, so a folder is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp makes it private; a result folder gets the usual permissions
    try:
        yield staging
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def _unreadable(path: Path, kind: str, err: BaseException) -> DatasetError:
    """The error for a file a library could not parse, with the library's own words."""
    return DatasetError(path, f"not a readable {kind} ({type(err).__name__}: {err})")


def _open_nifti(path: Path) -> nib.Nifti1Image:
    """The image with its header checked, voxels not read yet."""
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        img = nib.load(path)
        _check_data_size(path, img.header)
    except _READ_ERRORS as err:
        raise _unreadable(path, "NIfTI file", err) from err
    return img


def _check_data_size(path: Path, header: nib.Nifti1Header) -> None:
    """Refuse a header claiming more voxel data than the file can hold, before nibabel allocates it (a damaged
    header could otherwise claim hundreds of GB)."""
    claimed = header.get_data_offset() + int(np.prod(header.get_data_shape(), dtype=np.float64)
                                             * header.get_data_dtype().itemsize)
    size = path.stat().st_size
    limit = size * _MAX_DEFLATE_RATIO if path.name.endswith(".gz") else size
    if claimed > limit:
        raise DatasetError(path, f"header claims {claimed} bytes of data, more than the {size}-byte file holds "
                                 "(truncated file or damaged header)")


def _load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Voxels (integer or real; anything else is refused, never cast) and affine."""
    img = _open_nifti(path)
    try:
        data = np.asarray(img.dataobj)
    except _READ_ERRORS as err:
        raise _unreadable(path, "NIfTI file", err) from err
    return _real(data, path), img.affine


def _real(data: np.ndarray, path: Path) -> np.ndarray:
    """``data`` if it holds integers or real numbers: a complex (or RGB, text...) array is an error, since a cast
    would silently drop the imaginary part."""
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise DatasetError(path, f"holds {data.dtype} values; expected real numbers")
    return data


def read_image(path: str | Path, *, ndim: int | None = None) -> Image:
    """Read an intensity image as float32 (NaN or inf, also from values beyond float32, is an error).
    ``ndim=2`` accepts a 2D image stored as (H, W, 1)."""
    data, affine = _load_nifti(Path(path))
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
        data = _squeeze_to(data, ndim, path).astype(np.float32)
    if not np.isfinite(data).all():
        raise DatasetError(path, "image contains NaN or inf")
    return Image(data, affine)


def read_labels(path: str | Path, *, ndim: int | None = None) -> LabelMap:
    """Read a label map or mask; values that cannot be int16 labels (fractions, NaN, out of range) are errors."""
    data, affine = _load_nifti(Path(path))
    data = _squeeze_to(data, ndim, path)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.isfinite(data).all():
            raise DatasetError(path, "label map contains NaN or inf")
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise DatasetError(path, "label map holds non-integer values")
        data = rounded
    info = np.iinfo(np.int16)
    if data.min() < info.min or data.max() > info.max:
        raise DatasetError(path, f"label values {data.min()}..{data.max()} exceed the int16 range")
    return LabelMap(data.astype(np.int16), affine)


def _squeeze_to(data: np.ndarray, ndim: int | None, path: str | Path) -> np.ndarray:
    if ndim == 2 and data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3) or (ndim is not None and data.ndim != ndim) or data.size == 0:
        want = f"{ndim}D" if ndim else "2D or 3D"
        raise DatasetError(path, f"expected a non-empty {want} image, got shape {data.shape}")
    return data


def read_spacing(path: str | Path, *, ndim: int = 3) -> tuple[float, ...]:
    """Voxel size in mm from the NIfTI header alone (``get_zooms()``, as the official evaluation reads it),
    without reading the voxels; it must be positive and finite, as every distance in mm scales with it."""
    path = Path(path)
    spacing = tuple(float(z) for z in _open_nifti(path).header.get_zooms()[:ndim])
    if not all(np.isfinite(z) and z > 0 for z in spacing):
        raise DatasetError(path, f"voxel size {spacing} in the header is not positive and finite")
    return spacing


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
        with warnings.catch_warnings():  # an empty file warns; the error below says so in one line
            warnings.simplefilter("ignore", UserWarning)
            points = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise _unreadable(path, "keypoint CSV of x,y,z rows", err) from err
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
                data = _real(archive[archive.files[0]], path).astype(np.float32)
        except _NPZ_ERRORS as err:
            raise _unreadable(path, "npz file", err) from err
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
            std, samples = (_real(archive[key], sidecar).astype(np.float32) if key in archive.files else None
                            for key in ("std", "samples"))
        return Displacement(data, std=std, samples=samples)
    except _NPZ_ERRORS as err:
        raise _unreadable(sidecar, "uncertainty file", err) from err


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
