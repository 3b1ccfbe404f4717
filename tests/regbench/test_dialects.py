"""The Learn2Reg dialect fixtures of ``tests/learn2reg_dialects.py``.

Their json mirrors the official files key for key (in order), the files are where the json (or, for what the
json does not list, the official evaluation) says, the pairs register (the true field beats a zero field by a
wide margin) and regbench reads every split, LUMIR's ``validation`` pairs, symlinked folders and COMULIS
``[H, W, 1, 2]`` fields included.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from regbench import io
from regbench.dataset import read_dataset, validate_dataset
from regbench.metrics.tre import displacement_at
from regbench.metrics.warp import warp_labels_nearest
from regbench.pair import CaseId, PairId
from tests.learn2reg_dialects import (
    CLASSIC_KEYS,
    LUMIR25_KEYS,
    SHAPE_2D,
    SHAPE_3D,
    THORAXCBCT_KEYS,
    lumir_validation_pairs,
    read_comulis_disp,
    read_true_field,
    write_classic,
    write_comulis_2d,
    write_comulis_disp,
    write_lumir,
    write_nlst,
    write_thoraxcbct,
)

DATA = Path(__file__).parents[1] / "data"
CSV_ROW = re.compile(r"^-?\d+\.\d{3}(,-?\d+\.\d{3})+$")
BUILDERS = {"oasis": write_classic, "nlst": write_nlst, "thoraxcbct": write_thoraxcbct, "lumir": write_lumir,
            "comulis": write_comulis_2d}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Every dialect once, with its hidden ground-truth folder and true fields: name -> (root, hidden)."""
    base = tmp_path_factory.mktemp("dialects")
    return {name: (builder(base / name, hidden_root=base / f"{name}_hidden", true_fields=True), base / f"{name}_hidden")
            for name, builder in BUILDERS.items()}


def _json(root: Path) -> dict:
    (path,) = root.glob("*_dataset.json")
    return json.loads(path.read_text())


def _listed_images(description: dict) -> list[str]:
    paths = [e["image"] for key in ("training", "test") for e in description.get(key, [])]
    for key in ("training_paired_images", "test_paired_images", "registration_val", "registration_test",
                "validation"):
        paths += [p[side] for p in description.get(key, []) for side in ("fixed", "moving")]
    return list(dict.fromkeys(paths))


def _mean_dice(fixed: np.ndarray, moving: np.ndarray, disp: np.ndarray) -> float:
    warped = warp_labels_nearest(moving, disp)
    labels = [k for k in np.unique(fixed) if k != 0]
    return float(np.mean([2 * ((fixed == k) & (warped == k)).sum() / ((fixed == k).sum() + (warped == k).sum())
                          for k in labels]))


# ------------------------------------------------------------------------------------------------- all dialects

@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_json_is_formatted_as_the_official_files(built, name):
    root, _ = built[name]
    (path,) = root.glob("*_dataset.json")
    description = json.loads(path.read_text())
    assert path.name == f"{description['name']}_dataset.json"
    assert path.read_text() == json.dumps(description, indent=4)  # byte for byte as LUMIR25_dataset.json


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_listed_image_exists_with_the_json_shape(built, name):
    root, _ = built[name]
    description = _json(root)
    shape = tuple(description["tensorImageShape"]["0"])
    for rel in _listed_images(description):
        assert rel.startswith("./images")
        data = nib.load(root / rel).get_fdata()
        assert data.shape[: len(shape)] == shape and all(n == 1 for n in data.shape[len(shape):])
    for count, listed in (("numTraining", "training"), ("numTest", "test"), ("numPairedTraining",
                          "training_paired_images"), ("numPairedTest", "test_paired_images"),
                          ("numRegistration_val", "registration_val"), ("numRegistration_test", "registration_test"),
                          ("numValidation", "validation")):
        if count in description:
            assert description[count] == len(description[listed])


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_seed_same_data_other_seed_other_data(tmp_path, built, name):
    root, _ = built[name]
    again = BUILDERS[name](tmp_path / "again")
    other = BUILDERS[name](tmp_path / "other", seed=1)
    (json_path,) = root.glob("*_dataset.json")
    assert (again / json_path.name).read_text() == json_path.read_text()
    rel = _listed_images(_json(root))[-1]
    first = np.asarray(nib.load(root / rel).dataobj)
    assert np.array_equal(np.asarray(nib.load(again / rel).dataobj), first)
    assert not np.array_equal(np.asarray(nib.load(other / rel).dataobj), first)


# ----------------------------------------------------------------------------------------------------- ThoraxCBCT

def test_thoraxcbct_json_matches_the_official_one_but_for_texts_and_shape(built):
    """tests/data/ThoraxCBCT_dataset.json mirrors the release (same counts: 2 training, 2 validation patients)."""
    ours = _json(built["thoraxcbct"][0])
    official = json.loads((DATA / "ThoraxCBCT_dataset.json").read_text())
    assert tuple(ours) == tuple(official) == THORAXCBCT_KEYS
    for key in THORAXCBCT_KEYS:
        if key not in ("description", "licence", "reference", "tensorImageShape"):
            assert ours[key] == official[key], key
    assert ours["tensorImageShape"] == {"0": list(SHAPE_3D)}
    assert ours["licence"].startswith("THE WORK (AS DEFINED BELOW) IS PROVIDED UNDER THE TERMS OF THIS CREATIVE")
    assert "https://doi.org/10.7937/K9/TCIA.2016.ELN8YGLE" in ours["reference"]
    assert ours["registration_direction"] == {"fixed": 1, "moving": 0}
    assert ours["modality"] == {"0": "FBCT", "1": "CBCT", "2": "CBCT"}


def test_thoraxcbct_keypoints_are_csv_files_that_the_json_names_nii_gz(built):
    root, hidden = built["thoraxcbct"]
    description = _json(root)
    for entry in description["training"]:
        for key in ("keypoints01", "keypoints02"):
            if key in entry:
                assert entry[key] == entry["image"].replace("imagesTr", f"{key}Tr")  # ".nii.gz", as released
                assert not (root / entry[key]).exists()
                lines = (root / entry[key].replace(".nii.gz", ".csv")).read_text().splitlines()
                assert lines and all(CSV_ROW.match(line) and line.count(",") == 2 for line in lines)
    assert sorted(p.name for p in (root / "keypoints01Tr").iterdir()) == [
        f"ThoraxCBCT_{c:04d}_{m:04d}.csv" for c in (0, 1) for m in (0, 1)]
    assert sorted(p.name for p in (root / "keypoints02Tr").iterdir()) == [
        f"ThoraxCBCT_{c:04d}_{m:04d}.csv" for c in (0, 1) for m in (0, 2)]
    assert not (root / "labelsTr").exists()  # labels {} and no labelsTr in the release
    # The withheld validation correspondences: row i of the CBCT file is row i of the FBCT file moved by u.
    for pair in read_dataset(root).pair_ids("val"):
        folder = hidden / f"keypoints0{pair.fixed.modality}Tr"
        fixed = np.loadtxt(folder / f"ThoraxCBCT_{pair.fixed}.csv", delimiter=",")
        moving = np.loadtxt(folder / f"ThoraxCBCT_{pair.moving}.csv", delimiter=",")
        u = read_true_field(root, pair)
        assert np.abs(fixed + displacement_at(u, fixed) - moving).max() < 0.01
        assert np.linalg.norm(moving - fixed, axis=1).mean() > 1.0


def test_thoraxcbct_reads_with_cbct_fixed_and_fbct_moving(built):
    root, hidden = built["thoraxcbct"]
    task = validate_dataset(root)
    assert [p.key for p in task.pair_ids("val")] == [
        "0002_0001<--0002_0000", "0003_0001<--0003_0000", "0002_0002<--0002_0000", "0003_0002<--0003_0000"]
    assert task.pair_ids("test") == [] and task.labels == {}
    pair = task.load_pair(task.pair_ids("val")[0])
    assert (pair.fixed.modality, pair.moving.modality) == ("CBCT", "FBCT") and pair.multimodal
    assert pair.fixed.labels is None and pair.fixed.keypoints is None
    for p in task.pair_ids("val"):  # label 1 for the VAL config's DSC [1], hidden
        fixed = io.read_labels(hidden / task.image_relpath(p.fixed).replace("images", "labels")).data
        moving = io.read_labels(hidden / task.image_relpath(p.moving).replace("images", "labels")).data
        assert set(np.unique(fixed)) == {0, 1}
        u = read_true_field(root, p)
        assert _mean_dice(fixed, moving, u) > _mean_dice(fixed, moving, np.zeros_like(u)) + 0.2


# ---------------------------------------------------------------------------------------------------------- LUMIR

def test_lumir_json_mirrors_lumir25_dataset_json(built):
    root, _ = built["lumir"]
    description = _json(root)
    assert tuple(description) == LUMIR25_KEYS
    assert "registration_val" not in description and "licence" not in description
    assert {k: description[k] for k in ("name", "release", "pairings", "provided_data", "modality", "labels",
                                        "tensorImageSize")} == {
        "name": "LUMIR", "release": "0.1", "pairings": "unpaired", "provided_data": {"0": ["image"]},
        "modality": {"0": "T1w Brain MRI"}, "labels": {}, "tensorImageSize": {"0": "3D"}}
    assert description["license"] == "CC BY 4.0 DEED: https://creativecommons.org/licenses/by/4.0/deed.en"
    assert description["training"] == [{"image": f"./imagesTr/LUMIRMRI_{c:04d}_0000.nii.gz"} for c in range(4)]
    assert description["validation"][:5] == [
        {"fixed": "./imagesVal/LUMIRMRI_3455_0000.nii.gz", "moving": "./imagesVal/LUMIRMRI_3454_0000.nii.gz"},
        {"fixed": "./imagesVal/LUMIRMRI_3456_0000.nii.gz", "moving": "./imagesVal/LUMIRMRI_3455_0000.nii.gz"},
        {"fixed": "./imagesVal/LUMIRMRI_4015_0000.nii.gz", "moving": "./imagesVal/LUMIRMRI_4014_0000.nii.gz"},
        {"fixed": "./imagesVal/LUMIRMRI_4016_0000.nii.gz", "moving": "./imagesVal/LUMIRMRI_4015_0000.nii.gz"},
        {"fixed": "./imagesVal/LUMIRMRI_4024_0000.nii.gz", "moving": "./imagesVal/LUMIRMRI_4033_0001.nii.gz"},
    ]
    assert description["validation"][-1] == {"fixed": "./imagesVal/LUMIRMRI_3486_0000.nii.gz",
                                             "moving": "./imagesVal/LUMIRMRI_3485_0000.nii.gz"}
    assert sorted(p.name for p in root.iterdir()) == ["LUMIR_dataset.json", "groundtruth", "imagesTr", "imagesVal"]


def test_lumir_hidden_folder_is_laid_out_as_the_lumir_evaluation_reads_it(built):
    """GT_PATH + pair['fixed'].replace('images', 'labels' | 'landmarks'); landmarks scored by label centroids."""
    root, hidden = built["lumir"]
    description = _json(root)
    groups = [group for group, _ in lumir_validation_pairs()]
    for group, pair in zip(groups, description["validation"], strict=True):
        kind = "landmarks" if group == "landmark" else "labels"
        volumes = []
        for side in ("fixed", "moving"):
            assert (hidden / pair[side]).is_file()  # the NDV mask is the fixed image > 0
            volumes.append(io.read_labels(hidden / pair[side].replace("images", kind)).data)
        fixed, moving = volumes
        u = read_true_field(root, PairId(CaseId.from_path(pair["fixed"]), CaseId.from_path(pair["moving"])))
        if kind == "labels":
            assert set(np.unique(fixed)) == set(np.unique(moving)) == {0, 1, 2, 3, 4}
            assert _mean_dice(fixed, moving, u) > _mean_dice(fixed, moving, np.zeros_like(u)) + 0.2
            continue
        assert set(np.unique(fixed)) == set(np.unique(moving)) == {0, 1, 2, 3, 4, 5}

        def centroid_error(disp: np.ndarray) -> float:
            warped = warp_labels_nearest(moving, disp)
            grid = np.indices(fixed.shape)
            return float(np.mean([np.linalg.norm(grid[:, warped == k].mean(1) - grid[:, fixed == k].mean(1))
                                  for k in range(1, 6)]))

        assert centroid_error(u) < 0.75 < centroid_error(np.zeros_like(u))
    assert not (hidden / "landmarksVal" / "LUMIRMRI_3455_0000.nii.gz").exists()


def test_lumir_reads_its_validation_pairs(built):
    root, _ = built["lumir"]
    task = validate_dataset(root)
    assert [(p.fixed, p.moving) for p in task.pair_ids("val")] == [pair for _, pair in lumir_validation_pairs()]
    assert task.pair_ids("test") == [] and task.labels == {}
    assert [c.case for c in task.training_cases()] == [0, 1, 2, 3]
    multi_modal = task.load_pair(PairId(CaseId(4024, 0), CaseId(4033, 1)))
    assert multi_modal.multimodal and multi_modal.moving.labels is None
    assert not task.load_pair(task.pair_ids("val")[0]).multimodal


# ---------------------------------------------------------------------------------------------------------- OASIS

def test_oasis_json_follows_the_classic_template(built):
    root, _ = built["oasis"]
    description = _json(root)
    assert tuple(description) == CLASSIC_KEYS
    assert description["pairings"] == "unpaired" and description["modality"] == {"0": "MR"}
    assert description["provided_data"] == {"0": ["image", "label", "mask"]}
    assert description["registration_direction"] == {"fixed": 0, "moving": 0}
    assert list(description["labels"]) == ["0"] and list(description["labels"]["0"]) == ["0", "1", "2", "3", "4"]
    assert description["labels"]["0"]["0"] == "background"
    training = {CaseId.from_path(e["image"]).case: e for e in description["training"]}
    assert sorted(training) == [1, 2, 3, 395, 396, 397]  # validation subjects are listed in training
    for entry in training.values():
        assert entry == {"image": entry["image"], "label": entry["image"].replace("images", "labels"),
                         "mask": entry["image"].replace("images", "masks")}
        assert (root / entry["label"]).is_file() and (root / entry["mask"]).is_file()
    assert description["test"] == [{"image": f"./imagesTs/OASIS_{c:04d}_0000.nii.gz"} for c in (415, 416, 417)]
    assert description["registration_val"] == [
        {"fixed": f"./imagesTr/OASIS_{c:04d}_0000.nii.gz", "moving": f"./imagesTr/OASIS_{c + 1:04d}_0000.nii.gz"}
        for c in (395, 396)]
    assert description["registration_test"][0] == {"fixed": "./imagesTs/OASIS_0415_0000.nii.gz",
                                                   "moving": "./imagesTs/OASIS_0416_0000.nii.gz"}
    assert not (root / "labelsTs").exists() and not (root / "masksTs").exists()


def test_oasis_reads_with_hidden_test_labels(built):
    root, hidden = built["oasis"]
    task = validate_dataset(root)
    assert [p.key for p in task.pair_ids("val")] == ["0395_0000<--0396_0000", "0396_0000<--0397_0000"]
    assert [p.key for p in task.pair_ids("test")] == ["0415_0000<--0416_0000", "0416_0000<--0417_0000"]
    assert task.labels == {1: "Left-Cerebral-White-Matter", 2: "Left-Cerebral-Cortex",
                           3: "Left-Lateral-Ventricle", 4: "Left-Inf-Lat-Ventricle"}
    assert task.training_cases() == [CaseId(1, 0), CaseId(2, 0), CaseId(3, 0)]
    test_pair = task.load_pair(task.pair_ids("test")[0])
    assert test_pair.fixed.labels is None and not test_pair.multimodal
    val_pair = task.load_pair(task.pair_ids("val")[0])
    assert val_pair.fixed.labels is not None and val_pair.fixed.mask is not None
    for split in ("val", "test"):
        for p in task.pair_ids(split):
            fixed = io.read_labels(hidden / task.image_relpath(p.fixed).replace("images", "labels")).data
            moving = io.read_labels(hidden / task.image_relpath(p.moving).replace("images", "labels")).data
            u = read_true_field(root, p)
            assert _mean_dice(fixed, moving, u) > 0.99  # grid_sample vs the official tie rule
            assert _mean_dice(fixed, moving, np.zeros_like(u)) < 0.75


def test_classic_with_test_labels_and_another_name(tmp_path):
    root = write_classic(tmp_path / "ct", "AbdomenCTCT", hidden_test_labels=False)
    description = _json(root)
    assert description["name"] == "AbdomenCTCT" and (root / "AbdomenCTCT_dataset.json").is_file()
    assert description["test"][0] == {"image": "./imagesTs/AbdomenCTCT_0415_0000.nii.gz",
                                       "label": "./labelsTs/AbdomenCTCT_0415_0000.nii.gz",
                                       "mask": "./masksTs/AbdomenCTCT_0415_0000.nii.gz"}
    task = read_dataset(root)
    assert task.load_case(task.pair_ids("test")[0].fixed).labels is not None


def test_classic_with_symlinked_image_folder(tmp_path):
    root = write_classic(tmp_path / "OASIS")
    storage = tmp_path / "storage"
    storage.mkdir()
    shutil.move(root / "imagesTr", storage / "imagesTr")
    (root / "imagesTr").symlink_to(storage / "imagesTr", target_is_directory=True)
    task = read_dataset(root)
    case = task.load_case(task.pair_ids("val")[0].fixed)
    assert case.image.shape == SHAPE_3D and case.labels is not None


# ----------------------------------------------------------------------------------------------------------- NLST

def test_nlst_json_follows_the_classic_template(built):
    root, _ = built["nlst"]
    description = _json(root)
    assert tuple(description) == CLASSIC_KEYS
    assert description["pairings"] == "paired" and description["registration_direction"] == {"fixed": 0, "moving": 1}
    assert description["provided_data"] == {"0": ["image", "mask", "keypoints"]}
    assert description["modality"] == {"0": "CT", "1": "CT"} and description["labels"] == {}
    cases = [(c, m) for c in (1, 2, 101, 102) for m in (0, 1)]
    assert description["training"] == [
        {"image": f"./imagesTr/NLST_{c:04d}_{m:04d}.nii.gz", "mask": f"./masksTr/NLST_{c:04d}_{m:04d}.nii.gz",
         "keypoints": f"./keypointsTr/NLST_{c:04d}_{m:04d}.nii.gz"} for c, m in cases]
    for entry in description["training"]:  # the json says .nii.gz, the file is .csv
        assert not (root / entry["keypoints"]).exists()
        assert (root / entry["keypoints"].replace(".nii.gz", ".csv")).is_file()
    paired = [(CaseId.from_path(p["fixed"]), CaseId.from_path(p["moving"])) for p in
              description["training_paired_images"]]
    assert paired == [(CaseId(c, 0), CaseId(c, 1)) for c in (1, 2, 101, 102)]  # validation pairs included
    assert description["registration_val"] == description["training_paired_images"][2:]
    assert description["test"] == description["registration_test"] == [] and description["numTest"] == 0


def test_nlst_reads_with_masks_and_corresponding_keypoints(built):
    root, _ = built["nlst"]
    task = validate_dataset(root)
    assert [p.key for p in task.pair_ids("val")] == ["0101_0000<--0101_0001", "0102_0000<--0102_0001"]
    assert task.pair_ids("test") == []
    assert task.training_cases() == [CaseId(c, m) for c in (1, 2) for m in (0, 1)]
    for p in task.pair_ids("val"):
        pair = task.load_pair(p)
        assert not pair.multimodal and pair.fixed.image.spacing == (1.5, 1.5, 1.5)
        assert pair.fixed.mask is not None and pair.fixed.keypoints.shape == pair.moving.keypoints.shape == (24, 3)
        u = read_true_field(root, p)
        fixed, moving = pair.fixed.keypoints, pair.moving.keypoints
        assert np.abs(fixed + displacement_at(u, fixed) - moving).max() < 0.01
        assert np.linalg.norm(moving - fixed, axis=1).mean() > 1.0  # a zero field is clearly wrong
        assert pair.fixed.image.data.min() < -900  # Hounsfield units, air at -1000


# -------------------------------------------------------------------------------------------------------- COMULIS

def test_comulis_is_2d_with_images_stored_h_w_1(built):
    root, hidden = built["comulis"]
    description = _json(root)
    assert tuple(description) == CLASSIC_KEYS
    assert description["tensorImageSize"] == {"0": "2D"} and description["tensorImageShape"] == {"0": list(SHAPE_2D)}
    assert description["modality"] == {"0": "SHG", "1": "BF"}
    assert all(p["fixed"].startswith("./imagesTr/") for p in description["registration_test"])
    assert nib.load(root / description["registration_val"][0]["fixed"]).shape == (*SHAPE_2D, 1)
    task = validate_dataset(root)
    assert task.ndim == 2 and task.shape == SHAPE_2D
    assert [p.key for p in task.pair_ids("val")] == ["0003_0000<--0003_0001", "0004_0000<--0004_0001"]
    assert [p.key for p in task.pair_ids("test")] == ["0005_0000<--0005_0001", "0006_0000<--0006_0001"]
    pair = task.load_pair(task.pair_ids("val")[0])
    assert pair.fixed.image.shape == SHAPE_2D and pair.multimodal
    points = np.loadtxt(hidden / "keypointsTr" / "COMULISSHGBF_0003_0000.csv", delimiter=",")
    assert points.shape == (24, 2)


def test_comulis_fields_are_stored_h_w_1_2(tmp_path, built):
    root, _ = built["comulis"]
    u = read_true_field(root, PairId(CaseId(3, 0), CaseId(3, 1)))
    assert u.shape == (*SHAPE_2D, 2)
    path = write_comulis_disp(tmp_path / "disp_0003_0003.nii.gz", u)
    stored = nib.load(path)
    assert stored.shape == (*SHAPE_2D, 1, 2) and stored.get_data_dtype() == np.float32
    np.testing.assert_allclose(read_comulis_disp(path), u, atol=1e-5)
    with pytest.raises(ValueError, match="H, W, 2"):
        write_comulis_disp(tmp_path / "bad.nii.gz", np.zeros((4, 4, 4, 3)))


def test_regbench_reads_a_comulis_field(tmp_path):
    u = np.random.default_rng(0).normal(size=(*SHAPE_2D, 2)).astype(np.float32)
    path = write_comulis_disp(tmp_path / "disp_0003_0003.nii.gz", u)
    np.testing.assert_allclose(io.read_disp(path, spatial_shape=SHAPE_2D).data, u, atol=1e-6)
