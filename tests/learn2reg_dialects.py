"""Tiny, registrable dataset folders in each published Learn2Reg dialect, json field for field.

Import as ``from tests.learn2reg_dialects import write_classic, ...``. ``tests/`` has no ``__init__.py``,
so ``tests`` is a namespace package: this works under ``python -m pytest`` from the project root (which puts
the root on ``sys.path``), not under a bare ``pytest`` executable unless ``pythonpath = ["."]`` is set in
``[tool.pytest.ini_options]``.

Every builder writes a complete folder (``<root>/<NAME>_dataset.json`` plus the image folders) and returns
``root``. Output is a pure function of ``seed``. Images are small (3D 20x24x20, 2D 48x48) with smooth
anatomy-like blobs (labels 1..N tiling an ellipsoid, as ``tests/conftest.py: _blob_labels``). In every
registration pair the fixed image is the moving anatomy warped by a known smooth diffeomorphic field u
(``fixed(x) = moving(x + u(x))``, the Learn2Reg convention; |u| about 1.7 voxels on average, 4 at most), so a
zero field is clearly worse than a real method (mean Dice about 0.5-0.65 unregistered, 0.8-0.9 after ANTs,
ConvexAdam, elastix or ``iterative`` at smoke scale, each under a second per pair once warm). Subjects that
are in no pair are a common template deformed by their own random field. Keypoints of a pair are points x of
the fixed image and x + u(x) in the moving image.

Options shared by the builders:

- ``hidden_root``: also write the organisers' ground-truth folder, laid out as the official evaluation
  scripts read it (their ``GT_PATH``/``-d``): for every evaluation pair the image and every annotation the
  evaluation derives from the image path (``images`` replaced by ``labels``/``masks``/``keypoints``/
  ``landmarks``), whether or not the public download ships it.
- ``true_fields``: also write ``<root>/groundtruth/disp_<FFFF_MMMM_FFFF_MMMM>.nii.gz``, the exact field of
  every evaluation pair (regbench's layout for synthetic tasks; no real download has it).

Official sources mirrored, and every deliberate difference (besides sizes, counts and the voxels)
--------------------------------------------------------------------------------------------------
``write_thoraxcbct`` - the released ``ThoraxCBCT_dataset.json`` (release "2", Learn2Reg 2023). Not in a
repository of MDL-UzL; the complete file, the folder listing and ``info.txt`` were read from a terminal
paste in a third-party file (search string ``"numRegistration_val":``; repository unknown).
``tests/data/ThoraxCBCT_dataset.json`` mirrors the same file. Same keys in the same order and the same
values for every non-list field (``description``, ``licence``, ``reference`` verbatim); entries as released:
the FBCT ``_0000`` lists ``keypoints01`` and ``keypoints02``, a ``_0001`` CBCT only ``keypoints01``, a
``_0002`` CBCT only ``keypoints02``, validation cases only ``image``. The json names the keypoint files
``./keypoints01Tr/ThoraxCBCT_CCCC_MMMM.nii.gz`` while the files on disk are ``.csv`` (as released).
``training_paired_images`` lists every ``0001<-0000`` pair, then every ``0002<-0000`` pair; so does
``registration_val``. Keypoints exist only for training cases ("The correspondences for the validation
cases will not be published yet", ``info.txt``); no ``labelsTr`` is released (``labels`` is ``{}``).
Differences: 2 training cases (0000-0001) and 2 validation cases (0002-0003) instead of 11 (0000-0010)
and 3 (0011-0013); 24 keypoints per file instead of thousands. ``hidden_root`` gets, for the validation
cases, ``labelsTr`` with label 1 (the VAL config ``MDL-UzL/L2R:evaluation/evaluation_configs/
ThoraxCBCT_VAL_evaluation_config.json`` scores DSC on labels [1]) and ``keypoints01Tr``/``keypoints02Tr``
named like the training release. The official ``evaluation.py`` (MDL-UzL/L2R @ 8847509) would look for a
pair ``0001<-0000`` in ``keypoints00000001Tr/`` (``'keypoints' + min(mod) + max(mod)``), a folder no release
has; that is not reproduced.

``write_lumir`` - ``LUMIR25_dataset.json`` of JHU-MedImage-Reg/LUMIR25_L2R25 (identical copies in
``LUMIR25_Evalution_GC/ground-truth/`` and ``LUMIR25_Docker_Example/``; HEAD 62d3ae4, file last changed in
c0b479c). Same keys in the same order (``license``, not ``licence``; no ``registration_direction``,
``img_shift``, ``numTest``, ``test`` or ``registration_*``), same values for the non-list fields (including
``release`` "0.1" and the 2024 description, as published). Images ``./imagesTr/LUMIRMRI_CCCC_0000.nii.gz``
(training) and ``./imagesVal/...`` (validation); ``validation`` lists, in the official order, the in-domain
segmentation pairs (fixed CCCC+1 <- moving CCCC, from 3454), the high-field pairs (from 4014), the
multi-modal pairs (fixed 4024.._0000 <- moving 4033.._0001) and the landmark pairs (from 3484): 2 pairs per
group here, 9 in the real file (36 in all). 4 training images instead of 3384. LUMIR 2024's
``LUMIR_dataset.json`` (JHU-MedImage-Reg/LUMIR_L2R) is a Google-Drive download, not public in a repository;
its evaluation configs (``L2R_LUMIR_Eval/ground-truth/``) use the same ``./imagesVal/LUMIRMRI_`` pairs.
``hidden_root`` is laid out as ``LUMIR25_Evalution_GC/evaluation.py`` reads it: ``imagesVal/`` (the
NDV mask is the fixed image > 0), ``labelsVal/<same name>`` (label maps; its Dice label list includes 0) for
the three segmentation groups, ``landmarksVal/<same name>`` for the landmark group: label volumes with one
small blob per landmark (labels 1..K), scored by warping the moving volume nearest-neighbour and comparing
label centroids (``utils.calc_TRE``). LUMIR 2025's coarse 10-class validation labels are a separate
download of unknown layout and are not reproduced.

``write_classic`` (OASIS) - no ``OASIS_dataset.json`` is public in any indexed repository. Keys and order
follow the ThoraxCBCT template (the same organisers' json generator); values come from code that reads the
real file: training entries are ``{"image", "label", "mask"}`` with folders ``imagesTr/labelsTr/masksTr``
(third-party split scripts; ``MDL-UzL/L2R:examples/l2r_SCB``), validation subjects are listed in
``training`` (the official examples filter them out), ``labels`` is nested by modality ``{"0": {"0":
"background", ...}}`` (``examples/basic_docker_examples/vxm++/inference.py``: ``len(dataset['labels']['0'])``),
pairs are consecutive subjects (OASIS_VAL config: 0395<-0396 ... 0413<-0414; TEST: 0415<-0416 ... in
``imagesTs``), test labels are not public. ``img_shift {"fixed": "Patient A", "moving": "Patient B"}`` is
quoted by third-party code ("Direction follows OASIS_dataset.json: fixed = Patient A"). Unverified
placeholders: ``release``, ``description``, ``licence``, ``reference``. Differences: 4 labels instead of 35
(names from the OASIS seg35 list), subjects 0001-0003 (training), 0395-0397 (validation, 2 pairs) and
0415-0417 (test, 2 pairs) instead of 0001-0394, 0395-0414 (19 pairs), 0415-0453 (38 pairs). With
``hidden_test_labels=False`` test entries also get ``label`` and ``mask`` and ``labelsTs/``, ``masksTs/`` are
written (not the real download). Another ``name`` only renames (json ``name`` and file names).

``write_nlst`` - no ``NLST_dataset.json`` is public either. Template as OASIS; values from code reading the
real file: training entries ``{"image", "mask", "keypoints"}`` where the ``keypoints`` path ends in
``.nii.gz`` although the file is ``keypointsTr/*.csv`` (RWCNet's ``util.py convert-nlst-json``:
``kp.replace(".nii.gz", ".csv")  # lol``; ``MDL-UzL/L2R:examples/l2r_SCB/train_registration_paired.py``),
both ``_0000`` and ``_0001`` listed, ``training_paired_images`` includes the validation pairs, validation pairs
0101..0110 fixed ``_0000`` <- moving ``_0001`` in ``imagesTr`` (NLST_VAL config, masked evaluation). No
test data (released separately). Unverified placeholders: ``release``, ``description``, ``licence``,
``reference``, ``img_shift`` (empty strings). Differences: cases 0001-0002 and 0101-0102 (2 validation
pairs) instead of 0001-0100 and 0101-0110; 24 keypoints instead of ~1000-2000; spacing 1.5 mm as NLST.

``write_comulis_2d`` - no ``COMULISSHGBF_dataset.json`` is public. What is known (MIDA-group/globalign
``Learn2Reg/COMULISSHGBF_2024.py``; JackyWang22/Neon_ShgBf): folder ``COMULISSHGBF/`` with
``COMULISSHGBF_dataset.json``, pairs in ``registration_val`` and ``registration_test`` with fixed
``COMULISSHGBF_CCCC_0000`` (SHG) and moving ``_0001`` (BF), test images inside ``imagesTr``, images read
with ``.squeeze()``, displacement fields saved as ``[H, W, 1, 2]`` (``np.expand_dims(displace, axis=2)``) and
named ``disp_CCCC_CCCC.nii.gz``. Keys follow the classic template with ``tensorImageSize {"0": "2D"}``;
images are stored ``(H, W, 1)``. Differences: 48x48 instead of 834x834; grayscale BF (the real BF is
likely RGB); the case numbers and the training entries are placeholders.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from regbench import io, spatial
from regbench.displacement import Displacement
from regbench.image import Image, LabelMap, affine_from_spacing
from regbench.pair import CaseId, PairId
from regbench.tasks import synth

SHAPE_3D = (20, 24, 20)
SHAPE_2D = (48, 48)
N_KEYPOINTS = 24
PAIR_AMPLITUDE = 3.0  # largest velocity component of a pair's field, voxels (mean |u| ~1.7 inside)
PAIR_SMOOTHNESS = 3  # a pair's field has sigma = max(shape) / 3: smooth, mostly low-frequency
SUBJECT_AMPLITUDE = 1.5  # of a subject's deviation from the template
SUBJECT_SMOOTHNESS = 6

# Top-level keys, in the order of the official files (ThoraxCBCT: the released json; LUMIR: LUMIR25_dataset.json).
THORAXCBCT_KEYS = (
    "name", "release", "description", "licence", "reference", "pairings", "provided_data",
    "registration_direction", "modality", "img_shift", "labels", "tensorImageSize", "tensorImageShape",
    "numTraining", "numTest", "training", "test", "numPairedTraining", "training_paired_images", "numPairedTest",
    "test_paired_images", "numRegistration_val", "registration_val", "numRegistration_test", "registration_test",
)
CLASSIC_KEYS = THORAXCBCT_KEYS  # OASIS, NLST and COMULIS follow the same generator's template
LUMIR25_KEYS = (
    "name", "release", "description", "license", "reference", "pairings", "provided_data", "modality", "labels",
    "tensorImageSize", "tensorImageShape", "numTraining", "training", "numValidation", "validation",
)

THORAXCBCT_DESCRIPTION = ("Training/Validation Subset ThoraxCBCT of Learn2Reg Dataset. Please see "
                          "https://learn2reg.grand-challenge.org/ for more information. ")
THORAXCBCT_LICENCE = (
    "THE WORK (AS DEFINED BELOW) IS PROVIDED UNDER THE TERMS OF THIS CREATIVE COMMONS PUBLIC LICENSE (\"CCPL\" "
    "OR \"LICENSE\"). THE WORK IS PROTECTED BY COPYRIGHT AND/OR OTHER APPLICABLE LAW. ANY USE OF THE WORK OTHER "
    "THAN AS AUTHORIZED UNDER THIS LICENSE OR COPYRIGHT LAW IS PROHIBITED. BY EXERCISING ANY RIGHTS TO THE WORK "
    "PROVIDED HERE, YOU ACCEPT AND AGREE TO BE BOUND BY THE TERMS OF THIS LICENSE. TO THE EXTENT THIS LICENSE MAY "
    "BE CONSIDERED TO BE A CONTRACT, THE LICENSOR GRANTS YOU THE RIGHTS CONTAINED HERE IN CONSIDERATION OF YOUR "
    "ACCEPTANCE OF SUCH TERMS AND CONDITIONS."
)
THORAXCBCT_REFERENCE = (
    "Hugo, G. D., Weiss, E., Sleeman, W. C., Balik, S., Keall, P. J., Lu, J., & Williamson, J. F. (2016). Data "
    "from 4D Lung Imaging of NSCLC Patients (Version 2) [Data set]. The Cancer Imaging Archive. "
    "https://doi.org/10.7937/K9/TCIA.2016.ELN8YGLE; Hugo, G. D., Weiss, E., Sleeman, W. C., Balik, S., Keall, "
    "P. J., Lu, J., & Williamson, J. F. (2017). A longitudinal four-dimensional computed tomography and cone "
    "beam computed tomography dataset for image-guided radiation therapy research in lung cancer. In Medical "
    "Physics (Vol. 44, Issue 2, pp. 762\u2013771). Wiley. https://doi.org/10.1002/mp.12059; Balik, S., Weiss, "
    "E., Jan, N., Roman, N., Sleeman, W. C., Fatyga, M., Christensen, G. E., Zhang, C., Murphy, M. J., Lu, J., "
    "Keall, P., Williamson, J. F., & Hugo, G. D. (2013). Evaluation of 4-dimensional Computed Tomography to "
    "4-dimensional Cone-Beam Computed Tomography Deformable Image Registration for Lung Cancer Adaptive "
    "Radiation Therapy. In International Journal of Radiation Oncology*Biology*Physics (Vol. 86, Issue 2, pp. "
    "372\u2013379). Elsevier BV. PMCID: PMC3647023. https://doi.org/10.1016/j.ijrobp.2012.12.023; Roman, N. "
    "O., Shepherd, W., Mukhopadhyay, N., Hugo, G. D., & Weiss, E. (2012). Interfractional Positional "
    "Variability of Fiducial Markers and Primary Tumors in Locally Advanced Non-Small-Cell Lung Cancer During "
    "Audiovisual Biofeedback Radiotherapy. In International Journal of Radiation Oncology*Biology*Physics (Vol. "
    "83, Issue 5, pp. 1566\u20131572). Elsevier BV. https://doi.org/10.1016/j.ijrobp.2011.10.051; Clark K, "
    "Vendt B, Smith K, Freymann J, Kirby J, Koppel P, Moore S, Phillips S, Maffitt D, Pringle M, Tarbox L, "
    "Prior F. The Cancer Imaging Archive (TCIA): Maintaining and Operating a Public Information Repository, "
    "Journal of Digital Imaging, Volume 26, Number 6, December, 2013, pp 1045-1057. DOI: "
    "10.1007/s10278-013-9622-7"
)
LUMIR_DESCRIPTION = ("Training and validation dataset of LUMIR challenge at Learn2Reg 2024. Please see "
                     "https://learn2reg.grand-challenge.org/ for more information. ")
LUMIR_LICENSE = "CC BY 4.0 DEED: https://creativecommons.org/licenses/by/4.0/deed.en"
LUMIR_REFERENCE = (
    "1. Dufumier, Benoit, et al. 'Openbhb: a large-scale multi-site brain mri data-set for age prediction and "
    "debiasing.' NeuroImage 263 (2022): 119637. 2. Taha, Alaa, et al. 'Magnetic resonance imaging datasets "
    "with anatomical fiducials for quality control and registration.' Scientific Data 10.1 (2023): 449. 3. "
    "Marcus, Daniel S., et al. 'Open Access Series of Imaging Studies (OASIS): cross-sectional MRI data in "
    "young, middle aged, nondemented, and demented older adults.' Journal of cognitive neuroscience 19.9 "
    "(2007): 1498-1507."
)
OASIS_LABEL_NAMES = ("Left-Cerebral-White-Matter", "Left-Cerebral-Cortex", "Left-Lateral-Ventricle",
                     "Left-Inf-Lat-Ventricle")
FIXTURE_NOTE = "regbench test fixture; the official value of this field is not public"

# Case numbers of each fixture (the official numbering, truncated).
OASIS_TRAIN, OASIS_VAL, OASIS_TEST = (1, 2, 3), (395, 396, 397), (415, 416, 417)
NLST_TRAIN, NLST_VAL = (1, 2), (101, 102)
THORAX_TRAIN, THORAX_VAL = (0, 1), (2, 3)
LUMIR_TRAIN = (0, 1, 2, 3)
LUMIR_GROUPS = {  # official order of LUMIR25_dataset.json "validation": (first moving case, moving modality, pairs)
    "in_domain": (3454, 0), "high_field": (4014, 0), "multi_modal": (4033, 1), "landmark": (3484, 0),
}
LUMIR_PAIRS_PER_GROUP = 2
LUMIR_MULTI_MODAL_FIXED = 4024
LUMIR_LANDMARKS = 5
COMULIS_TRAIN, COMULIS_VAL, COMULIS_TEST = (1, 2), (3, 4), (5, 6)


# --------------------------------------------------------------------------------------------------------
# Synthetic anatomy


@dataclass(frozen=True)
class _Anatomy:
    """What a subject is made of: label map, fine texture and (optionally) landmark blobs, all warpable."""

    labels: np.ndarray  # int16, 0 outside the body
    texture: np.ndarray  # float64 in [-1, 1]
    landmarks: np.ndarray  # int16, one small blob per landmark, 0 elsewhere


def _template(rng: np.random.Generator, shape: tuple[int, ...], n_labels: int, n_landmarks: int) -> _Anatomy:
    """Labels 1..n_labels tiling an ellipsoidal body (argmax of smooth random fields), as ``_blob_labels``."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    fields = np.stack([synth.smooth_noise(rng, shape, sigma=max(shape) / 10) for _ in range(n_labels)])
    body = (grid**2).sum(0) < 0.8**2
    labels = np.where(body, 1 + fields.argmax(0), 0).astype(np.int16)
    texture = synth.smooth_noise(rng, shape, sigma=1.5)
    landmarks = np.zeros(shape, dtype=np.int16)
    chosen: list[np.ndarray] = []
    if n_landmarks:
        inner = np.argwhere(ndimage.binary_erosion(body, iterations=3))
        for index in rng.permutation(len(inner)):
            if len(chosen) == n_landmarks:
                break
            point = inner[index]
            if all(np.abs(point - other).max() >= 4 for other in chosen):
                chosen.append(point)
        if len(chosen) < n_landmarks:
            raise ValueError(f"room for {len(chosen)} landmarks only, {n_landmarks} asked")
    for k, point in enumerate(chosen, start=1):
        landmarks[tuple(slice(p - 1, p + 2) for p in point)] = k
    return _Anatomy(labels, texture, landmarks)


def _field(rng: np.random.Generator, shape: tuple[int, ...], amplitude: float, smoothness: float) -> np.ndarray:
    """A smooth diffeomorphic displacement (ndim, *shape) in voxels."""
    velocity = synth.random_velocity(rng, shape, sigma=max(shape) / smoothness, amplitude=amplitude)
    return synth.exp_velocity(velocity)


def _deform(anatomy: _Anatomy, disp: np.ndarray) -> _Anatomy:
    """The anatomy a fixed image shows when ``anatomy`` is its moving image and ``disp`` the pair's field."""
    u = torch.from_numpy(np.ascontiguousarray(disp, dtype=np.float64))[None]

    def nearest(labels: np.ndarray) -> np.ndarray:
        warped = spatial.warp_labels(torch.from_numpy(labels.astype(np.int64))[None, None], u)
        return warped[0, 0].numpy().astype(np.int16)

    texture = spatial.warp(torch.from_numpy(anatomy.texture)[None, None], u, padding="border")[0, 0].numpy()
    return _Anatomy(nearest(anatomy.labels), texture, nearest(anatomy.landmarks))


def _population(rng: np.random.Generator, template: _Anatomy, cases: Sequence[CaseId],
                pairs: Sequence[tuple[CaseId, CaseId]]) -> tuple[dict[CaseId, _Anatomy], dict[PairId, np.ndarray]]:
    """Anatomies of ``cases`` and the true field of each (fixed, moving) pair.

    A case that is the fixed image of a pair is its moving case warped by a fresh field (so that field is the
    exact answer); any other case is the template deformed by its own field. Each case may be fixed in one
    pair only (true of chains such as OASIS's and of paired tasks).
    """
    shape = template.labels.shape
    moving_of: dict[CaseId, CaseId] = {}
    for fixed, moving in pairs:
        if fixed in moving_of:
            raise ValueError(f"case {fixed} is the fixed image of two pairs")
        moving_of[fixed] = moving
    anatomies: dict[CaseId, _Anatomy] = {}
    truth: dict[PairId, np.ndarray] = {}

    def make(case: CaseId) -> _Anatomy:
        if case not in anatomies:
            if case in moving_of:
                moving = make(moving_of[case])
                disp = _field(rng, shape, PAIR_AMPLITUDE, PAIR_SMOOTHNESS)
                truth[PairId(case, moving_of[case])] = disp
                anatomies[case] = _deform(moving, disp)
            else:
                anatomies[case] = _deform(template, _field(rng, shape, SUBJECT_AMPLITUDE, SUBJECT_SMOOTHNESS))
        return anatomies[case]

    for case in cases:
        make(case)
    return anatomies, truth


def _render(rng: np.random.Generator, anatomy: _Anatomy, base: np.ndarray, kind: str) -> np.ndarray:
    """Intensities of a subject in one modality: a tissue value per label, texture, blur, noise."""
    inside = anatomy.labels > 0
    tissue = np.concatenate([[0.0], base])[anatomy.labels] + 0.08 * anatomy.texture * inside
    tissue = ndimage.gaussian_filter(tissue, 0.7)
    body = ndimage.gaussian_filter(inside.astype(np.float64), 0.7)
    if kind == "CT":  # Hounsfield units: air -1000
        image, noise = -1000.0 + 1050.0 * tissue, 10.0
    elif kind == "CBCT":  # another HU calibration and more noise
        image, noise = 0.85 * (-1000.0 + 1050.0 * tissue) - 60.0, 30.0
    elif kind == "MR":
        image, noise = tissue, 0.01
    elif kind == "T1w":  # LUMIR: [0, 255]
        image, noise = 255.0 * tissue, 2.0
    elif kind == "T1w_high_field":  # out-of-domain: other contrast curve, more noise
        image, noise = 255.0 * np.clip(tissue, 0, None) ** 0.7, 4.0
    elif kind == "T2w":  # inverted tissue contrast, dark background: not a monotone map of T1w
        image, noise = 255.0 * np.clip(1.1 * body - tissue, 0, None), 2.0
    elif kind == "SHG":
        image, noise = np.clip(tissue, 0, None) ** 2, 0.01
    elif kind == "BF":  # bright background
        image, noise = 1.0 - 0.8 * tissue, 0.01
    else:
        raise ValueError(f"unknown modality kind {kind!r}")
    image = image + noise * rng.standard_normal(image.shape)
    if kind.startswith("T"):
        image = np.clip(image, 0.0, 255.0)
    return image.astype(np.float32)


def _keypoints(rng: np.random.Generator, anatomy: _Anatomy, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corresponding points: x inside the fixed body and x + u(x), both rounded as the released csv (3 decimals)."""
    inner = np.argwhere(ndimage.binary_erosion(anatomy.labels > 0, iterations=2))
    chosen = inner[rng.choice(len(inner), size=N_KEYPOINTS, replace=False)]
    fixed = np.round(chosen + rng.uniform(-0.4, 0.4, chosen.shape), 3)
    shift = np.stack([ndimage.map_coordinates(component, fixed.T, order=1) for component in disp], axis=1)
    return fixed, np.round(fixed + shift, 3)


# --------------------------------------------------------------------------------------------------------
# Writing


class _Writer:
    """Writes one dataset folder (and optionally the hidden ground-truth folder and true fields)."""

    def __init__(self, root: str | Path, spacing: Sequence[float], *, hidden_root: str | Path | None,
                 true_fields: bool, store_2d_as_3d: bool = False) -> None:
        self.root = Path(root)
        self.hidden = None if hidden_root is None else Path(hidden_root)
        self.true_fields = true_fields
        self.affine = affine_from_spacing(tuple(spacing))
        self.store_2d_as_3d = store_2d_as_3d
        self.root.mkdir(parents=True, exist_ok=True)

    def _array(self, data: np.ndarray) -> np.ndarray:
        return data[..., None] if self.store_2d_as_3d and data.ndim == 2 else data

    def image(self, rel: str, data: np.ndarray) -> None:
        """A public image (``hidden_image`` copies one into the hidden folder)."""
        io.write_image(self.root / rel, Image(self._array(data), self.affine))

    def labels(self, rel: str, data: np.ndarray, *, hidden_only: bool = False, public_only: bool = False) -> None:
        for base in self._targets(hidden_only, public_only):
            io.write_image(base / rel, LabelMap(self._array(data.astype(np.int16)), self.affine))

    def keypoints(self, rel: str, points: np.ndarray, *, hidden_only: bool = False,
                  public_only: bool = False) -> None:
        """A headerless csv, one ``x,y,z`` row per point, 3 decimals (as the released files)."""
        for base in self._targets(hidden_only, public_only):
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(",".join(f"{v:.3f}" for v in row) + "\n" for row in points))

    def hidden_image(self, rel: str) -> None:
        """Copy an already written image into the hidden ground-truth folder."""
        if self.hidden is not None:
            (self.hidden / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / rel, self.hidden / rel)

    def _targets(self, hidden_only: bool = False, public_only: bool = False) -> list[Path]:
        targets = [] if hidden_only else [self.root]
        if self.hidden is not None and not public_only:
            targets.append(self.hidden)
        return targets

    def truth(self, fields: Mapping[PairId, np.ndarray], pairs: Iterable[PairId]) -> None:
        if not self.true_fields:
            return
        for pair in pairs:
            disp = np.moveaxis(fields[pair], 0, -1).astype(np.float32)
            io.write_disp(self.root / "groundtruth" / f"{pair.disp_stem}.nii.gz", Displacement(disp))

    def description(self, description: Mapping[str, Any]) -> None:
        """``<name>_dataset.json`` exactly as the official files are formatted (``json.dumps(indent=4)``)."""
        (self.root / f"{description['name']}_dataset.json").write_text(json.dumps(description, indent=4))


def _rel(folder: str, task: str, case: CaseId, ext: str = ".nii.gz") -> str:
    return f"./{folder}/{task}_{case}{ext}"


def _pair_entry(fixed: str, moving: str) -> dict[str, str]:
    return {"fixed": fixed, "moving": moving}


def _companion(rel: str, kind: str, ext: str = ".nii.gz") -> str:
    """As the official evaluation derives it: ``images`` replaced by ``kind`` (first occurrence)."""
    return rel.replace("images", kind, 1).replace(".nii.gz", ext)


def _base_values(rng: np.random.Generator, n_labels: int) -> np.ndarray:
    return rng.permutation(np.linspace(0.3, 1.0, n_labels))


# --------------------------------------------------------------------------------------------------------
# Builders


def write_classic(root: str | Path, name: str = "OASIS", *, hidden_test_labels: bool = True, seed: int = 0,
                  hidden_root: str | Path | None = None, true_fields: bool = False) -> Path:
    """OASIS dialect: unpaired inter-subject MR, ``registration_val`` and ``registration_test``.

    ``imagesTr/labelsTr/masksTr`` for subjects 0001-0003 (training only) and 0395-0397 (validation pairs
    0395<-0396, 0396<-0397, all listed in ``training``); ``imagesTs`` for 0415-0417 (test pairs 0415<-0416,
    0416<-0417) with no labels unless ``hidden_test_labels=False``. Labels 1..4 in ``labels["0"]``.
    """
    rng = np.random.default_rng(seed)
    n_labels = len(OASIS_LABEL_NAMES)
    template = _template(rng, SHAPE_3D, n_labels, 0)
    base = _base_values(rng, n_labels)
    ids = {split: [CaseId(c, 0) for c in cases]
           for split, cases in (("train", OASIS_TRAIN), ("val", OASIS_VAL), ("test", OASIS_TEST))}
    pairs = {split: [(ids[split][i], ids[split][i + 1]) for i in range(len(ids[split]) - 1)]
             for split in ("val", "test")}
    all_cases = ids["train"] + ids["val"] + ids["test"]
    anatomies, truth = _population(rng, template, all_cases, pairs["val"] + pairs["test"])
    out = _Writer(root, (1.0, 1.0, 1.0), hidden_root=hidden_root, true_fields=true_fields)

    rel = {case: _rel("imagesTs" if case in ids["test"] else "imagesTr", name, case) for case in all_cases}
    eval_cases = {c for split in ("val", "test") for pair in pairs[split] for c in pair}
    training, test = [], []
    for case in all_cases:
        anatomy, image_rel = anatomies[case], rel[case]
        out.image(image_rel, _render(rng, anatomy, base, "MR"))
        if case in eval_cases:
            out.hidden_image(image_rel)
        is_test = case in ids["test"]
        public = not (is_test and hidden_test_labels)
        entry = {"image": image_rel}
        mask = (anatomy.labels > 0).astype(np.int16)
        if public:
            entry.update(label=_companion(image_rel, "labels"), mask=_companion(image_rel, "masks"))
            out.labels(entry["label"], anatomy.labels, public_only=case not in eval_cases)
            out.labels(entry["mask"], mask, public_only=case not in eval_cases)
        elif case in eval_cases:
            out.labels(_companion(image_rel, "labels"), anatomy.labels, hidden_only=True)
            out.labels(_companion(image_rel, "masks"), mask, hidden_only=True)
        (test if is_test else training).append(entry)

    def listed(split: str) -> list[dict[str, str]]:
        return [_pair_entry(rel[f], rel[m]) for f, m in pairs[split]]

    out.description({
        "name": name,
        "release": "1.1",
        "description": f"{name} fixture in the Learn2Reg OASIS layout ({FIXTURE_NOTE})",
        "licence": FIXTURE_NOTE,
        "reference": FIXTURE_NOTE,
        "pairings": "unpaired",
        "provided_data": {"0": ["image", "label", "mask"]},
        "registration_direction": {"fixed": 0, "moving": 0},
        "modality": {"0": "MR"},
        "img_shift": {"fixed": "Patient A", "moving": "Patient B"},
        "labels": {"0": {"0": "background", **{str(k): v for k, v in enumerate(OASIS_LABEL_NAMES, start=1)}}},
        "tensorImageSize": {"0": "3D"},
        "tensorImageShape": {"0": list(SHAPE_3D)},
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
        "numPairedTraining": 0,
        "training_paired_images": [],
        "numPairedTest": 0,
        "test_paired_images": [],
        "numRegistration_val": len(pairs["val"]),
        "registration_val": listed("val"),
        "numRegistration_test": len(pairs["test"]),
        "registration_test": listed("test"),
    })
    out.truth(truth, [PairId(f, m) for split in ("val", "test") for f, m in pairs[split]])
    return Path(root)


def write_nlst(root: str | Path, *, seed: int = 0, hidden_root: str | Path | None = None,
               true_fields: bool = False) -> Path:
    """NLST dialect: paired intra-subject CT, fixed ``_0000`` <- moving ``_0001``, masks and keypoints.

    Cases 0001-0002 (training) and 0101-0102 (validation pairs), all in ``imagesTr`` with ``masksTr`` and
    ``keypointsTr`` (csv; the json lists them with ``.nii.gz``), every pair in ``training_paired_images``, the
    validation pairs in ``registration_val``; no test data. Spacing 1.5 mm.
    """
    rng = np.random.default_rng(seed)
    n_labels = 3
    template = _template(rng, SHAPE_3D, n_labels, 0)
    base = _base_values(rng, n_labels)
    numbers = NLST_TRAIN + NLST_VAL
    pairs = [(CaseId(c, 0), CaseId(c, 1)) for c in numbers]
    cases = [case for pair in pairs for case in pair]
    anatomies, truth = _population(rng, template, cases, pairs)
    out = _Writer(root, (1.5, 1.5, 1.5), hidden_root=hidden_root, true_fields=true_fields)

    rel = {case: _rel("imagesTr", "NLST", case) for case in cases}
    val_cases = {c for f, m in pairs if f.case in NLST_VAL for c in (f, m)}
    for case in sorted(cases):
        out.image(rel[case], _render(rng, anatomies[case], base, "CT"))
        if case in val_cases:
            out.hidden_image(rel[case])
        out.labels(_companion(rel[case], "masks"), anatomies[case].labels > 0, public_only=case not in val_cases)
    for fixed, moving in pairs:
        fixed_points, moving_points = _keypoints(rng, anatomies[fixed], truth[PairId(fixed, moving)])
        for case, points in ((fixed, fixed_points), (moving, moving_points)):
            out.keypoints(_companion(rel[case], "keypoints", ".csv"), points, public_only=case not in val_cases)
    training = [{"image": rel[c], "mask": _companion(rel[c], "masks"), "keypoints": _companion(rel[c], "keypoints")}
                for c in sorted(cases)]
    paired = [_pair_entry(rel[f], rel[m]) for f, m in pairs]
    val = [_pair_entry(rel[f], rel[m]) for f, m in pairs if f.case in NLST_VAL]
    out.description({
        "name": "NLST",
        "release": "1.1",
        "description": f"NLST fixture in the Learn2Reg NLST layout ({FIXTURE_NOTE})",
        "licence": FIXTURE_NOTE,
        "reference": FIXTURE_NOTE,
        "pairings": "paired",
        "provided_data": {"0": ["image", "mask", "keypoints"]},
        "registration_direction": {"fixed": 0, "moving": 1},
        "modality": {"0": "CT", "1": "CT"},
        "img_shift": {"fixed": "", "moving": ""},
        "labels": {},
        "tensorImageSize": {"0": "3D"},
        "tensorImageShape": {"0": list(SHAPE_3D)},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
        "numPairedTraining": len(paired),
        "training_paired_images": paired,
        "numPairedTest": 0,
        "test_paired_images": [],
        "numRegistration_val": len(val),
        "registration_val": val,
        "numRegistration_test": 0,
        "registration_test": [],
    })
    out.truth(truth, [PairId(f, m) for f, m in pairs if f.case in NLST_VAL])
    return Path(root)


def write_thoraxcbct(root: str | Path, *, seed: int = 0, hidden_root: str | Path | None = None,
                     true_fields: bool = False) -> Path:
    """ThoraxCBCT dialect: per patient an FBCT ``_0000`` (moving) and two CBCTs ``_0001``, ``_0002`` (fixed).

    Training patients 0000-0001 with keypoints in ``keypoints01Tr/`` (pair 0001<-0000: files ``_0000.csv`` and
    ``_0001.csv``) and ``keypoints02Tr/`` (pair 0002<-0000); validation patients 0002-0003 with images only
    (pairs 0002_0001<-0002_0000, 0003_0001<-0003_0000, then the ``_0002`` ones). No labels.
    """
    rng = np.random.default_rng(seed)
    n_labels = 4
    template = _template(rng, SHAPE_3D, n_labels, 0)
    base = _base_values(rng, n_labels)
    patients = THORAX_TRAIN + THORAX_VAL
    pairs = [(CaseId(p, cbct), CaseId(p, 0)) for cbct in (1, 2) for p in patients]  # official order
    cases = [CaseId(p, m) for p in patients for m in (0, 1, 2)]
    anatomies, truth = _population(rng, template, cases, pairs)
    out = _Writer(root, (1.0, 1.0, 1.0), hidden_root=hidden_root, true_fields=true_fields)
    rel = {case: _rel("imagesTr", "ThoraxCBCT", case) for case in cases}
    for case in cases:
        out.image(rel[case], _render(rng, anatomies[case], base, "CT" if case.modality == 0 else "CBCT"))
        if case.case in THORAX_VAL:
            out.hidden_image(rel[case])
            out.labels(_companion(rel[case], "labels"), anatomies[case].labels == 1, hidden_only=True)
    for fixed, moving in sorted(pairs):
        folder = f"keypoints0{fixed.modality}Tr"
        fixed_points, moving_points = _keypoints(rng, anatomies[fixed], truth[PairId(fixed, moving)])
        hidden_only = fixed.case in THORAX_VAL  # "The correspondences for the validation cases will not be published"
        for case, points in ((fixed, fixed_points), (moving, moving_points)):
            out.keypoints(_rel(folder, "ThoraxCBCT", case, ".csv"), points, hidden_only=hidden_only,
                          public_only=not hidden_only)
    training = []
    for case in cases:
        entry = {"image": rel[case]}
        if case.case in THORAX_TRAIN:
            for cbct in (1, 2):
                if case.modality in (0, cbct):
                    entry[f"keypoints0{cbct}"] = _rel(f"keypoints0{cbct}Tr", "ThoraxCBCT", case)
        training.append(entry)
    paired = [_pair_entry(rel[f], rel[m]) for f, m in pairs if f.case in THORAX_TRAIN]
    val = [_pair_entry(rel[f], rel[m]) for f, m in pairs if f.case in THORAX_VAL]
    out.description({
        "name": "ThoraxCBCT",
        "release": "2",
        "description": THORAXCBCT_DESCRIPTION,
        "licence": THORAXCBCT_LICENCE,
        "reference": THORAXCBCT_REFERENCE,
        "pairings": "paired",
        "provided_data": {"0": ["image", "keypoints01", "keypoints02"]},
        "registration_direction": {"fixed": 1, "moving": 0},
        "modality": {"0": "FBCT", "1": "CBCT", "2": "CBCT"},
        "img_shift": {"fixed": "followup", "moving": "baseline"},
        "labels": {},
        "tensorImageSize": {"0": "3D"},
        "tensorImageShape": {"0": list(SHAPE_3D)},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
        "numPairedTraining": len(paired),
        "training_paired_images": paired,
        "numPairedTest": 0,
        "test_paired_images": [],
        "numRegistration_val": len(val),
        "registration_val": val,
        "numRegistration_test": 0,
        "registration_test": [],
    })
    out.truth(truth, [PairId(f, m) for f, m in pairs if f.case in THORAX_VAL])
    return Path(root)


def lumir_validation_pairs() -> list[tuple[str, tuple[CaseId, CaseId]]]:
    """(group, (fixed, moving)) in the order of LUMIR25_dataset.json's ``validation``."""
    listed = []
    for group, (first, modality) in LUMIR_GROUPS.items():
        for i in range(LUMIR_PAIRS_PER_GROUP):
            if group == "multi_modal":
                listed.append((group, (CaseId(LUMIR_MULTI_MODAL_FIXED + i, 0), CaseId(first + i, modality))))
            else:
                listed.append((group, (CaseId(first + i + 1, 0), CaseId(first + i, 0))))
    return listed


def write_lumir(root: str | Path, *, seed: int = 0, hidden_root: str | Path | None = None,
                true_fields: bool = False) -> Path:
    """LUMIR 2025 dialect: ``validation``/``numValidation`` (no ``registration_val``), no labels shipped.

    4 training images ``imagesTr/LUMIRMRI_000C_0000``; 8 validation pairs in ``imagesVal`` (2 per group:
    in-domain 3455<-3454, 3456<-3455; high-field 4015<-4014, 4016<-4015; multi-modal 4024_0000<-4033_0001,
    4025_0000<-4034_0001 (moving T2w-like); landmark 3485<-3484, 3486<-3485). ``hidden_root`` gets
    ``imagesVal``, ``labelsVal`` (segmentation groups) and ``landmarksVal`` (landmark group, label volumes).
    """
    rng = np.random.default_rng(seed)
    n_labels = 4
    template = _template(rng, SHAPE_3D, n_labels, LUMIR_LANDMARKS)
    base = _base_values(rng, n_labels)
    validation = lumir_validation_pairs()
    pairs = [pair for _, pair in validation]
    train = [CaseId(c, 0) for c in LUMIR_TRAIN]
    val_cases = list(dict.fromkeys(c for pair in pairs for c in pair))
    anatomies, truth = _population(rng, template, train + val_cases, pairs)
    out = _Writer(root, (1.0, 1.0, 1.0), hidden_root=hidden_root, true_fields=true_fields)
    group_of = {case: group for group, pair in validation for case in pair}
    kinds = {"in_domain": "T1w", "high_field": "T1w_high_field", "landmark": "T1w", "multi_modal": "T1w"}
    for case in train:
        out.image(_rel("imagesTr", "LUMIRMRI", case), _render(rng, anatomies[case], base, "T1w"))
    for case in val_cases:
        group, rel = group_of[case], _rel("imagesVal", "LUMIRMRI", case)
        kind = "T2w" if case.modality == 1 else kinds[group]
        out.image(rel, _render(rng, anatomies[case], base, kind))
        out.hidden_image(rel)
        if group == "landmark":
            out.labels(_companion(rel, "landmarks"), anatomies[case].landmarks, hidden_only=True)
        else:
            out.labels(_companion(rel, "labels"), anatomies[case].labels, hidden_only=True)
    out.description({
        "name": "LUMIR",
        "release": "0.1",
        "description": LUMIR_DESCRIPTION,
        "license": LUMIR_LICENSE,
        "reference": LUMIR_REFERENCE,
        "pairings": "unpaired",
        "provided_data": {"0": ["image"]},
        "modality": {"0": "T1w Brain MRI"},
        "labels": {},
        "tensorImageSize": {"0": "3D"},
        "tensorImageShape": {"0": list(SHAPE_3D)},
        "numTraining": len(train),
        "training": [{"image": _rel("imagesTr", "LUMIRMRI", case)} for case in train],
        "numValidation": len(pairs),
        "validation": [_pair_entry(_rel("imagesVal", "LUMIRMRI", f), _rel("imagesVal", "LUMIRMRI", m))
                       for f, m in pairs],
    })
    out.truth(truth, [PairId(f, m) for f, m in pairs])
    return Path(root)


def write_comulis_2d(root: str | Path, *, seed: int = 0, hidden_root: str | Path | None = None,
                     true_fields: bool = False) -> Path:
    """COMULIS SHG-BF dialect: 2D (``tensorImageSize {"0": "2D"}``), fixed SHG ``_0000`` <- moving BF ``_0001``.

    Images 48x48 stored as ``(H, W, 1)`` NIfTI, all in ``imagesTr``: training cases 0001-0002 (paired),
    validation 0003-0004 (``registration_val``), test 0005-0006 (``registration_test``). ``hidden_root`` gets
    ``keypointsTr`` csv rows ``x,y`` for the evaluation pairs. Submission fields: ``write_comulis_disp``.
    """
    rng = np.random.default_rng(seed)
    n_labels = 4
    template = _template(rng, SHAPE_2D, n_labels, 0)
    base = _base_values(rng, n_labels)
    numbers = COMULIS_TRAIN + COMULIS_VAL + COMULIS_TEST
    pairs = [(CaseId(c, 0), CaseId(c, 1)) for c in numbers]
    cases = [case for pair in pairs for case in pair]
    anatomies, truth = _population(rng, template, cases, pairs)
    out = _Writer(root, (1.0, 1.0), hidden_root=hidden_root, true_fields=true_fields, store_2d_as_3d=True)
    name = "COMULISSHGBF"
    rel = {case: _rel("imagesTr", name, case) for case in cases}
    eval_numbers = COMULIS_VAL + COMULIS_TEST
    for case in cases:
        out.image(rel[case], _render(rng, anatomies[case], base, "SHG" if case.modality == 0 else "BF"))
        if case.case in eval_numbers:
            out.hidden_image(rel[case])
    for fixed, moving in pairs:
        if fixed.case in eval_numbers:
            fixed_points, moving_points = _keypoints(rng, anatomies[fixed], truth[PairId(fixed, moving)])
            for case, points in ((fixed, fixed_points), (moving, moving_points)):
                out.keypoints(_companion(rel[case], "keypoints", ".csv"), points, hidden_only=True)

    def listed(numbers: Sequence[int]) -> list[dict[str, str]]:
        return [_pair_entry(rel[f], rel[m]) for f, m in pairs if f.case in numbers]

    training = [{"image": rel[c]} for c in cases if c.case in COMULIS_TRAIN + COMULIS_VAL]
    out.description({
        "name": name,
        "release": "1.0",
        "description": f"COMULIS SHG-BF fixture in the Learn2Reg layout ({FIXTURE_NOTE})",
        "licence": FIXTURE_NOTE,
        "reference": FIXTURE_NOTE,
        "pairings": "paired",
        "provided_data": {"0": ["image"]},
        "registration_direction": {"fixed": 0, "moving": 1},
        "modality": {"0": "SHG", "1": "BF"},
        "img_shift": {"fixed": "", "moving": ""},
        "labels": {},
        "tensorImageSize": {"0": "2D"},
        "tensorImageShape": {"0": list(SHAPE_2D)},
        "numTraining": len(training),
        "numTest": 0,
        "training": training,
        "test": [],
        "numPairedTraining": len(COMULIS_TRAIN),
        "training_paired_images": listed(COMULIS_TRAIN),
        "numPairedTest": 0,
        "test_paired_images": [],
        "numRegistration_val": len(COMULIS_VAL),
        "registration_val": listed(COMULIS_VAL),
        "numRegistration_test": len(COMULIS_TEST),
        "registration_test": listed(COMULIS_TEST),
    })
    out.truth(truth, [PairId(f, m) for f, m in pairs if f.case in eval_numbers])
    return Path(root)


def write_comulis_disp(path: str | Path, disp: np.ndarray | Displacement) -> Path:
    """A 2D field as COMULIS submissions store it: ``[H, W, 1, 2]`` float32 NIfTI, identity affine.

    ``disp`` is channels-last ``(H, W, 2)`` in pixels (channel c along array axis c), or a ``Displacement``.
    """
    data = disp.data if isinstance(disp, Displacement) else np.asarray(disp)
    if data.ndim != 3 or data.shape[-1] != 2:
        raise ValueError(f"write_comulis_disp(): expected an (H, W, 2) field, got {data.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data[:, :, None, :].astype(np.float32), np.eye(4)), path)
    return path


def read_comulis_disp(path: str | Path) -> np.ndarray:
    """The ``(H, W, 2)`` field of a ``[H, W, 1, 2]`` file (what ``write_comulis_disp`` writes)."""
    data = np.asarray(nib.load(path).dataobj, dtype=np.float64)
    if data.ndim != 4 or data.shape[2:] != (1, 2):
        raise ValueError(f"{path}: expected an [H, W, 1, 2] field, got {data.shape}")
    return data[:, :, 0, :]


def read_true_field(root: str | Path, pair: PairId) -> np.ndarray:
    """The channels-last true field a builder wrote with ``true_fields=True``."""
    return np.asarray(nib.load(Path(root) / "groundtruth" / f"{pair.disp_stem}.nii.gz").dataobj, dtype=np.float64)


__all__ = [
    "CLASSIC_KEYS", "LUMIR25_KEYS", "THORAXCBCT_KEYS", "lumir_validation_pairs", "read_comulis_disp",
    "read_true_field", "write_classic", "write_comulis_2d", "write_comulis_disp", "write_lumir", "write_nlst",
    "write_thoraxcbct",
]
