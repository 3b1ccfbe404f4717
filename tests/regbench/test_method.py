"""The Method base class: hyperparameter overrides, validation, seeding, threads, timing, save/load."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from regbench.dataset import describe, image_relpath, read_dataset, write_dataset
from regbench.displacement import Displacement
from regbench.errors import DatasetError, RegbenchError
from regbench.image import Image
from regbench.cache import TRAINING_CACHE_ITEMS
from regbench.method import Capabilities, Hyperparams, Method, NetworkMethod
from regbench.pair import Case, CaseId, Pair, PairId


@dataclass(frozen=True)
class _Inner(Hyperparams):
    lr: float = 0.1


@dataclass(frozen=True)
class _Params(Hyperparams):
    steps: int = 10
    weight: float = 1.0
    factors: tuple[int, ...] = (4, 2)
    name: str = "lncc"
    flag: bool = False
    inner: _Inner = _Inner()

    @classmethod
    def paper(cls) -> _Params:
        return cls(steps=1000)


class _Shift(Method):
    """Shifts by a random amount drawn from torch and from self.rng; records what it saw."""

    name = "shift"
    Params = _Params
    capabilities: ClassVar[Capabilities] = Capabilities(dims=frozenset({3}))

    def estimate(self, pair: Pair) -> Displacement:
        self.seen_threads = torch.get_num_threads()
        value = float(torch.rand(())) + float(self.rng.random())
        return Displacement(np.full((*pair.fixed.image.shape, 3), value, dtype=np.float32))


class _Broken(Method):
    name = "broken"
    output: object = None

    def estimate(self, pair: Pair) -> Displacement:
        return self.output  # type: ignore[return-value]


class _Mean(Method):
    """A trainable method whose state is the mean fixed intensity of its training pairs."""

    name = "mean"
    trainable = True

    def fit(self, task, pairs, workdir) -> None:
        self.seen = [pair.id for pair in pairs]
        self.labels_seen = [pair.fixed.labels is not None for pair in pairs]
        self.mean = torch.tensor([float(np.mean([pair.fixed.image.data.mean() for pair in pairs]))])

    def estimate(self, pair: Pair) -> Displacement:
        return Displacement(np.full((*pair.fixed.image.shape, pair.ndim), float(self.mean), dtype=np.float32))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean}

    def load_state_dict(self, state) -> None:
        self.mean = state["mean"]


def _image(shape, value=0.0) -> Image:
    return Image(np.full(shape, value, dtype=np.float32))


def _pair(fixed_shape, moving_shape, *, fixed_value=0.0) -> Pair:
    return Pair(PairId(CaseId(1, 0), CaseId(2, 0)), Case(CaseId(1, 0), _image(fixed_shape, fixed_value)),
                Case(CaseId(2, 0), _image(moving_shape)))


@pytest.fixture
def pair3d(synthetic_pair):
    return synthetic_pair((10, 9, 8), seed=1)[0]


def test_overrides_apply_by_keyword_with_yaml_types():
    params = _Params().replace(steps=3, weight=2, factors=[2, 1], flag=True, inner={"lr": 1})
    assert params == _Params(steps=3, weight=2.0, factors=(2, 1), flag=True, inner=_Inner(lr=1.0))
    assert isinstance(params.weight, float) and isinstance(params.inner.lr, float)


def test_unknown_or_mistyped_overrides_are_clear_errors():
    with pytest.raises(RegbenchError, match=r"_Params: unknown hyperparameter\(s\) step, wieght; known: steps,"):
        _Params().replace(step=3, wieght=1)
    with pytest.raises(RegbenchError, match="hyperparameter steps must be like 10 \\(int\\), got '3' \\(str\\)"):
        _Params().replace(steps="3")
    with pytest.raises(RegbenchError, match="hyperparameter flag"):
        _Params().replace(flag=1)
    with pytest.raises(RegbenchError, match="hyperparameter steps"):
        _Params().replace(steps=1.5)
    with pytest.raises(RegbenchError, match="hyperparameter factors must be like 4 \\(int\\), got '4' \\(str\\)"):
        _Params().replace(factors=["4", "2"])
    with pytest.raises(RegbenchError, match="_Inner: unknown hyperparameter\\(s\\) rate"):
        _Params().replace(inner={"rate": 1})


def test_presets_by_scale():
    assert _Params.preset("default") == _Params()
    assert _Params.preset("paper").steps == 1000
    assert _Params.preset("smoke") == _Params()  # not overridden: the defaults
    with pytest.raises(RegbenchError, match="unknown scale 'huge'"):
        _Params.preset("huge")
    method = _Shift.configure(scale="paper", steps=5, seed=3, threads=1)
    assert method.params.steps == 5 and method.seed == 3 and method.threads == 1


def test_registration_is_seeded_per_call_and_leaves_the_callers_random_state_alone(pair3d):
    method = _Shift(seed=5)
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    first = method.register(pair3d)
    second = method.register(pair3d)
    np.testing.assert_array_equal(first.data, second.data)
    assert torch.equal(torch.rand(3), expected_next)
    assert not np.array_equal(_Shift(seed=6).register(pair3d).data, first.data)


def test_thread_count_is_set_during_registration_and_restored(pair3d):
    before = torch.get_num_threads()
    method = _Shift(threads=1)
    method.register(pair3d)
    assert method.seen_threads == 1 and torch.get_num_threads() == before


def test_timing_measures_the_estimate():
    class Slow(_Shift):
        def estimate(self, pair):
            time.sleep(0.05)
            return super().estimate(pair)

    _, seconds = Slow().timed_register(_pair((4, 4, 4), (4, 4, 4)))
    assert 0.05 <= seconds < 1.0


def test_invalid_pairs_are_refused_with_the_method_and_pair_named():
    with pytest.raises(RegbenchError, match=r"method 'shift' on pair 0001_0000<--0002_0000: the method registers "
                                            r"3D images, the pair is 2D"):
        _Shift().register(_pair((4, 4), (4, 4)))
    with pytest.raises(RegbenchError, match="fixed image is 3D but moving image is 2D"):
        _Shift().register(_pair((4, 4, 4), (4, 4)))
    with pytest.raises(RegbenchError, match="fixed image contains NaN"):
        _Shift().register(_pair((4, 4, 4), (4, 4, 4), fixed_value=np.nan))


def test_a_declared_voxel_limit_refuses_larger_pairs_up_front_in_one_line(tmp_path, synthetic_pair):
    class Small(_Shift):
        capabilities = Capabilities(dims=frozenset({3}), max_voxels=100, max_voxels_reason="toy memory budget")
        calls = 0

        def estimate(self, pair):
            self.calls += 1
            return super().estimate(pair)

    assert Capabilities().max_voxels is None
    method = Small()
    method.register(_pair((4, 5, 5), (4, 5, 5)))  # 100 voxels: at the limit, registered
    assert method.calls == 1
    message = (r"^method 'shift' refuses pair 0001_0000<--0002_0000: 0\.00012 M voxels exceed its declared limit "
               r"of 0\.0001 M voxels \(toy memory budget\)$")
    with pytest.raises(RegbenchError, match=message):
        method.register(_pair((4, 5, 6), (4, 5, 5)))
    with pytest.raises(RegbenchError, match=message):  # the larger image counts; refused before the NaN scan
        method.register(_pair((4, 5, 5), (4, 6, 5), fixed_value=np.nan))
    assert method.calls == 1

    class SmallMean(_Mean):
        capabilities = Capabilities(max_voxels=100)

    task = _task(tmp_path / "toy", synthetic_pair)  # 6x5x4 = 120 voxels per image
    with pytest.raises(RegbenchError, match=r"^method 'mean' refuses pair 0001_0000<--0002_0000: .* of 0\.0001 M "
                                            r"voxels$"):
        SmallMean().train(task, [PairId(CaseId(1, 0), CaseId(2, 0))], tmp_path / "work")


def test_multimodal_pair_warns_a_mono_modal_method(synthetic_pair):
    pair, _ = synthetic_pair((10, 9, 8), multimodal=True)
    with pytest.warns(RuntimeWarning, match="multi-modal pair \\(MR to CT\\) for a mono-modal method"):
        _Shift().register(pair)


def test_outputs_are_checked():
    pair = _pair((4, 5), (4, 5))
    method = _Broken()
    method.output = np.zeros((4, 5, 2))
    with pytest.raises(RegbenchError, match="estimate\\(\\) returned ndarray, not a Displacement"):
        method.register(pair)
    method.output = Displacement.zeros((5, 4))
    with pytest.raises(RegbenchError, match=r"displacement of shape \(5, 4, 2\), expected \(4, 5, 2\)"):
        method.register(pair)
    method.output = Displacement(np.zeros((4, 5, 2)))
    with pytest.raises(RegbenchError, match="displacement of dtype float64, expected float32"):
        method.register(pair)

    class Uncertain(_Broken):
        capabilities = Capabilities(uncertainty=True)

    uncertain = Uncertain()
    uncertain.output = Displacement.zeros((4, 5))
    with pytest.raises(RegbenchError, match="declares uncertainty but returned neither std nor samples"):
        uncertain.register(pair)


def test_gpu_is_refused_for_cpu_methods_and_params_must_match():
    with pytest.raises(RegbenchError, match="method 'shift' runs on the CPU only, not on cuda"):
        _Shift(device="cuda")
    with pytest.raises(TypeError, match="params must be _Params, got Hyperparams"):
        _Shift(Hyperparams())


def _task(root, synthetic_pair):
    cases, names = {}, []
    for index in range(3):
        image_pair, _ = synthetic_pair((6, 5, 4), seed=index)
        case_id = CaseId(index + 1, 0)
        names.append(image_relpath("Toy", case_id))
        cases[names[-1]] = Case(case_id, image_pair.fixed.image, image_pair.fixed.labels)
    entries = [{"image": n, "label": n.replace("images", "labels")} for n in names]
    write_dataset(root, describe("Toy", ndim=3, shape=(6, 5, 4), modality={0: "CT"}, labels={1: "a"},
                                 training=entries, test=[], registration_val=[{"fixed": names[0], "moving": names[1]}],
                                 registration_test=[], pairings="unpaired"), cases)
    return read_dataset(root)


def test_train_loads_pair_ids_lazily_without_labels_then_save_and_load_round_trip(tmp_path, synthetic_pair):
    task = _task(tmp_path / "toy", synthetic_pair)
    ids = [PairId(CaseId(1, 0), CaseId(3, 0)), PairId(CaseId(2, 0), CaseId(3, 0))]
    method = _Mean()
    method.train(task, ids, tmp_path / "work")
    assert method.seen == ids and method.labels_seen == [False, False]  # needs_labels is False
    assert (tmp_path / "work").is_dir()
    method.save(tmp_path / "model.pt")
    loaded = _Mean()
    loaded.load(tmp_path / "model.pt")
    assert torch.equal(loaded.mean, method.mean)


def test_load_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(DatasetError, match="model file of method 'mean' not found"):
        _Mean().load(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(DatasetError, match="junk.pt: not a readable model state"):
        _Mean().load(tmp_path / "junk.pt")
    torch.save({"mean": torch.zeros(1)}, tmp_path / "state.pt")
    with pytest.raises(RegbenchError, match="method 'shift' learns nothing, but the state holds mean"):
        _Shift().load(tmp_path / "state.pt")


def test_training_is_refused_for_classic_methods(tmp_path, synthetic_pair):
    task = _task(tmp_path / "toy", synthetic_pair)
    with pytest.raises(RegbenchError, match="method 'shift' is not trainable"):
        _Shift().train(task, [PairId(CaseId(1, 0), CaseId(2, 0))], tmp_path)


class _Net(NetworkMethod):
    name = "net"

    def build(self, ndim: int) -> torch.nn.Module:
        return torch.nn.Identity()

    def estimate(self, pair: Pair) -> Displacement:
        return Displacement(np.zeros((*pair.fixed.image.shape, pair.ndim), np.float32))

    def fit(self, task, pairs, workdir) -> None:
        """Not used: the test calls ``prepared_pairs`` directly."""


def test_prepared_training_cases_are_kept_while_recent_and_bounded_in_number():
    def case(number: int) -> Case:
        return Case(CaseId(number, 0), _image((3, 3, 3), float(number)))

    many = [Pair(PairId(CaseId(2 * i, 0), CaseId(2 * i + 1, 0)), case(2 * i), case(2 * i + 1))
            for i in range(TRAINING_CACHE_ITEMS)]  # twice as many cases as the cache holds
    prepared: list[int] = []
    pair_at = _Net().prepared_pairs(many, lambda image: prepared.append(int(image.data[0, 0, 0])) or image)
    fixed, moving = pair_at(0)
    assert (fixed.data[0, 0, 0], moving.data[0, 0, 0]) == (0.0, 1.0)
    pair_at(0)
    assert prepared == [0, 1]  # a revisit prepares nothing
    for index in range(len(many)):
        pair_at(index)
    pair_at(0)  # evicted by the later cases: prepared again rather than kept for ever
    assert len(prepared) == 2 * len(many) + 2


def test_a_moving_image_prepared_per_pair_is_kept_per_pair_not_per_case():
    # Two pairs share a moving case; prepared through its pair (as an affine pre-alignment to the pair's fixed
    # image is), it is prepared once for each pair and a revisit prepares nothing.
    cases = [Case(CaseId(number, 0), _image((3, 3, 3), float(number))) for number in range(3)]
    pairs = [Pair(PairId(cases[0].id, cases[2].id), cases[0], cases[2]),
             Pair(PairId(cases[1].id, cases[2].id), cases[1], cases[2])]
    made: list[str] = []

    def through_pair(pair: Pair) -> str:
        made.append(f"{pair.moving.id.case} to {pair.fixed.id.case}")
        return made[-1]

    pair_at = _Net().prepared_pairs(pairs, lambda image: int(image.data[0, 0, 0]), moving=through_pair)
    assert pair_at(0) == (0, "2 to 0") and pair_at(1) == (1, "2 to 1")
    pair_at(0)
    pair_at(1)
    assert made == ["2 to 0", "2 to 1"]
