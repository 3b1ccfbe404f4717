"""The Learn2Reg dataset format: round trip, an official-style folder, and bad input named by file."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from regbench import io
from regbench.dataset import describe, image_relpath, read_dataset, validate_dataset, write_dataset
from regbench.displacement import Displacement
from regbench.errors import DatasetError
from regbench.image import Image, LabelMap, affine_from_spacing
from regbench.pair import Case, CaseId, PairId

DATA = Path(__file__).parents[1] / "data"


def _toy_dataset(root: Path, rng: np.random.Generator, *, ndim: int = 3) -> tuple[dict, dict[str, Case]]:
    """Three subjects, one val pair and one test pair, labels, masks, keypoints and ground truth."""
    shape = (10, 12, 8)[:ndim]
    affine = affine_from_spacing((1.5, 1.0, 2.0)[:ndim], origin=(-7.0, 3.0, 1.0)[:ndim])
    ids = [CaseId(c, 0) for c in (1, 2, 3, 4)]
    cases = {}
    for case in ids:
        test = case.case >= 3
        cases[image_relpath("Toy", case, test=test)] = Case(
            case,
            Image(rng.random(shape).astype(np.float32), affine),
            LabelMap(rng.integers(0, 4, shape).astype(np.int16), affine),
            LabelMap((rng.random(shape) > 0.3).astype(np.int16), affine),
            rng.random((5, ndim)) * 7,
        )
    rels = list(cases)

    def entry(rel: str) -> dict[str, str]:
        return {"image": rel, "label": rel.replace("images", "labels")}

    description = describe(
        "Toy", ndim=ndim, shape=shape, modality={0: "MR"}, labels={1: "a", 2: "b", 3: "c"},
        training=[entry(r) for r in rels[:2]], test=[entry(r) for r in rels[2:]],
        registration_val=[{"fixed": rels[0], "moving": rels[1]}],
        registration_test=[{"fixed": rels[2], "moving": rels[3]}], pairings="unpaired",
    )
    truth = {PairId(ids[0], ids[1]): Displacement(rng.normal(size=(*shape, ndim)).astype(np.float32))}
    write_dataset(root, description, cases, truth)
    return description, cases


@pytest.mark.parametrize("ndim", [2, 3])
def test_written_dataset_reads_back_identical(tmp_path, rng, ndim):
    description, cases = _toy_dataset(tmp_path, rng, ndim=ndim)
    task = validate_dataset(tmp_path)
    assert json.loads((tmp_path / "Toy_dataset.json").read_text()) == description
    assert task.ndim == ndim and task.labels == {1: "a", 2: "b", 3: "c"}
    for case in cases.values():
        loaded = task.load_case(case.id)
        assert np.array_equal(loaded.image.data, case.image.data)
        np.testing.assert_array_equal(loaded.image.affine, case.image.affine)
        assert loaded.image.spacing == case.image.spacing
        assert np.array_equal(loaded.labels.data, case.labels.data)
        assert np.array_equal(loaded.mask.data, case.mask.data)
        assert np.array_equal(loaded.keypoints, case.keypoints)
    val, test = task.pair_ids("val"), task.pair_ids("test")
    assert [p.key for p in val] == ["0001_0000<--0002_0000"] and [p.key for p in test] == ["0003_0000<--0004_0000"]
    assert task.training_cases() == [] and task.training_cases(exclude_eval=False) == [CaseId(1, 0), CaseId(2, 0)]
    assert task.load_groundtruth(val[0]) is not None and task.load_groundtruth(test[0]) is None


def _official_fixture(root: Path, rng: np.random.Generator) -> dict:
    description = json.loads((DATA / "ThoraxCBCT_dataset.json").read_text())
    shape = tuple(description["tensorImageShape"]["0"])
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "ThoraxCBCT_dataset.json", root)
    for entry in description["training"]:
        io.write_image(root / entry["image"], Image(rng.random(shape).astype(np.float32), np.diag([2.0, 2, 2, 1])))
    return description


def test_official_thoraxcbct_json_loads_unchanged(tmp_path, rng):
    description = _official_fixture(tmp_path, rng)
    task = validate_dataset(tmp_path)
    assert task.name == "ThoraxCBCT" and task.ndim == 3 and task.shape == (13, 10, 12)
    assert task.labels == {}
    pairs = task.pair_ids("val")
    assert len(pairs) == description["numRegistration_val"] == 4
    # The CBCT (modality 0001/0002) is fixed and the FBCT (0000) moving, as released.
    assert pairs[0].key == "0002_0001<--0002_0000"
    assert pairs[0].disp_stem == "disp_0002_0001_0002_0000" and pairs[0].short_disp_stem is None
    pair = task.load_pair(pairs[0])
    assert pair.fixed.image.spacing == (2.0, 2.0, 2.0) and pair.fixed.labels is None
    assert task.pair_ids("test") == []


def test_cases_carry_the_modality_names_of_the_json(tmp_path, rng):
    _official_fixture(tmp_path, rng)  # modality {"0": "FBCT", "1": "CBCT", "2": "CBCT"}
    task = read_dataset(tmp_path)
    pair = task.load_pair(task.pair_ids("val")[0])  # 0002_0001 <-- 0002_0000
    assert (pair.fixed.modality, pair.moving.modality) == ("CBCT", "FBCT") and pair.multimodal
    assert task.modality_name(CaseId(2, 7)) is None


def test_short_disp_names_follow_the_official_and_the_lumir_rules(tmp_path):
    paired, same = PairId(CaseId(1, 0), CaseId(1, 1)), PairId(CaseId(1, 0), CaseId(2, 0))
    thorax = PairId(CaseId(3, 1), CaseId(3, 0))  # ThoraxCBCT: fixed CBCT 0001 <- moving FBCT 0000
    io.write_disp(tmp_path / "disp_0001_0001.nii.gz", Displacement.zeros((4, 4, 4)))
    io.write_disp(tmp_path / "disp_0003_0003.nii.gz", Displacement.zeros((4, 4, 4)))
    assert io.find_disp(tmp_path, paired) == tmp_path / "disp_0001_0001.nii.gz"  # official: 0000 <- 0001 only
    assert io.find_disp(tmp_path, thorax) is None  # modalities differ and it is not 0000 <- 0001: long name only
    io.write_disp(tmp_path / "disp_0001_0002.npz", Displacement.zeros((4, 4, 4)))
    assert io.find_disp(tmp_path, same) == tmp_path / "disp_0001_0002.npz"  # LUMIR's name for one modality
    io.write_disp(tmp_path / "disp_0001_0000_0002_0000.npz", Displacement.zeros((4, 4, 4)))
    assert io.find_disp(tmp_path, same) == tmp_path / "disp_0001_0000_0002_0000.npz"  # the official name wins


def _message(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_missing_file_is_named(tmp_path, rng):
    _toy_dataset(tmp_path, rng)
    target = tmp_path / "labelsTr" / "Toy_0001_0000.nii.gz"
    (tmp_path / "imagesTr" / "Toy_0001_0000.nii.gz").unlink()
    with pytest.raises(DatasetError) as err:
        validate_dataset(tmp_path)
    assert "imagesTr/Toy_0001_0000.nii.gz: file not found" in _message(err)
    assert target.exists()


def test_truncated_and_corrupt_nifti_are_named(tmp_path, rng):
    _toy_dataset(tmp_path, rng)
    image = tmp_path / "imagesTr" / "Toy_0002_0000.nii.gz"
    image.write_bytes(image.read_bytes()[:200])
    with pytest.raises(DatasetError) as err:
        validate_dataset(tmp_path)
    assert str(image) in _message(err) and "not a readable NIfTI" in _message(err)
    image.write_bytes(gzip.compress(b"this is not a nifti header at all" * 20))
    with pytest.raises(DatasetError) as err:
        validate_dataset(tmp_path)
    assert str(image) in _message(err)


def test_label_shape_mismatch_is_named(tmp_path, rng):
    _toy_dataset(tmp_path, rng)
    labels = tmp_path / "labelsTr" / "Toy_0001_0000.nii.gz"
    io.write_image(labels, LabelMap(np.zeros((10, 12, 7), dtype=np.int16)))
    with pytest.raises(DatasetError) as err:
        validate_dataset(tmp_path)
    assert _message(err).startswith(str(labels)) and "does not match the image shape (10, 12, 8)" in _message(err)


def test_dataset_json_missing_a_key_is_named(tmp_path, rng):
    _toy_dataset(tmp_path, rng)
    path = tmp_path / "Toy_dataset.json"
    description = json.loads(path.read_text())
    del description["tensorImageShape"]
    path.write_text(json.dumps(description))
    with pytest.raises(DatasetError) as err:
        read_dataset(tmp_path)
    assert _message(err) == f"{path}: missing key(s) tensorImageShape"


def test_path_escaping_the_dataset_folder_is_refused(tmp_path, rng):
    root = tmp_path / "ds"
    _toy_dataset(root, rng)
    path = root / "Toy_dataset.json"
    description = json.loads(path.read_text())
    description["training"][0]["image"] = "../../elsewhere/Toy_0001_0000.nii.gz"
    path.write_text(json.dumps(description))
    with pytest.raises(DatasetError) as err:
        read_dataset(root)
    assert "path escapes the dataset folder" in _message(err)


@pytest.mark.parametrize("escaping", ["/elsewhere/Toy_0001_0000.nii.gz", "./imagesTr/../../Toy_0001_0000.nii.gz"])
def test_absolute_paths_and_parent_steps_are_refused(tmp_path, rng, escaping):
    root = tmp_path / "ds"
    _toy_dataset(root, rng)
    path = root / "Toy_dataset.json"
    description = json.loads(path.read_text())
    description["training"][0]["image"] = escaping
    path.write_text(json.dumps(description))
    with pytest.raises(DatasetError, match="path escapes the dataset folder"):
        read_dataset(root)


def test_symlinked_folders_are_followed(tmp_path, rng):
    # a download whose imagesTr lives on other storage, and the dataset folder itself reached through a link
    storage, root = tmp_path / "storage", tmp_path / "ds"
    _, cases = _toy_dataset(root, rng)
    storage.mkdir()
    shutil.move(root / "imagesTr", storage / "imagesTr")
    (root / "imagesTr").symlink_to(storage / "imagesTr", target_is_directory=True)
    (tmp_path / "link").symlink_to(root, target_is_directory=True)
    task = validate_dataset(tmp_path / "link")
    for relative, case in cases.items():
        loaded = task.load_case(CaseId.from_path(relative))
        np.testing.assert_array_equal(loaded.image.data, case.image.data)


def test_lumir_validation_pairs_are_the_val_split(tmp_path, rng):
    # LUMIR's json lists its validation pairs under "validation" / "numValidation", with no registration_val
    root = tmp_path / "ds"
    _toy_dataset(root, rng)
    path = root / "Toy_dataset.json"
    description = json.loads(path.read_text())
    pairs = description.pop("registration_val")
    description.pop("numRegistration_val")
    description.update(numValidation=len(pairs), validation=pairs)
    path.write_text(json.dumps(description))
    task = read_dataset(root)
    assert [(p.fixed, p.moving) for p in task.pair_ids("val")] == \
        [(CaseId.from_path(p["fixed"]), CaseId.from_path(p["moving"])) for p in pairs]
    description["numValidation"] = len(pairs) + 1
    path.write_text(json.dumps(description))
    with pytest.raises(DatasetError, match=f"numValidation is {len(pairs) + 1} but validation lists"):
        read_dataset(root)


def test_keypoint_files_of_unequal_length_are_named(tmp_path, rng):
    _toy_dataset(tmp_path, rng)
    moving = tmp_path / "keypointsTr" / "Toy_0002_0000.csv"
    io.write_keypoints(moving, rng.random((4, 3)))
    with pytest.raises(DatasetError) as err:
        validate_dataset(tmp_path)
    assert _message(err).startswith(str(moving)) and "4 keypoints" in _message(err)


def test_malformed_keypoint_csv_is_named(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("1,2,3\n4,five,6\n")
    with pytest.raises(DatasetError) as err:
        io.read_keypoints(path)
    assert _message(err).startswith(str(path))


def test_numregistration_count_mismatch_is_named(tmp_path, rng):
    _toy_dataset(tmp_path, rng)
    path = tmp_path / "Toy_dataset.json"
    description = json.loads(path.read_text())
    description["numRegistration_val"] = 3
    path.write_text(json.dumps(description))
    with pytest.raises(DatasetError, match="numRegistration_val is 3"):
        read_dataset(tmp_path)
