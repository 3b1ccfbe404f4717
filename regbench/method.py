"""The interface every registration method implements, and the plumbing they all share.

A method is one file ``methods/<name>.py`` defining one ``Method`` subclass. It declares:

- ``name``: the file stem, used in config, file names and tables;
- ``Params``: a frozen ``Hyperparams`` dataclass with CPU-sized defaults and ``paper()`` (and ``smoke()``) presets;
- ``capabilities`` (dimensions, multi-modal pairs, labels for training, uncertainty) and ``resources``
  (threads, memory, whether a GPU helps), which the workflow turns into Snakemake ``threads``/``resources``;
- ``estimate(pair) -> Displacement``: the registration itself, all a classic method writes;
- for learning methods (``trainable = True``): ``fit(task, pairs, workdir)``, ``state_dict()`` and
  ``load_state_dict(state)``.

Callers never call ``estimate`` or ``fit`` directly but ``register``/``timed_register``, ``train``, ``save``
and ``load``, which this base class implements once: it validates the input, seeds torch and numpy (a fresh
``self.rng`` per call, so results depend on the seed and the pair only, not on the order of calls), sets the
thread count, times the registration (IO excluded: the pair is in memory already) and checks the output's
type, shape and finiteness. Displacements follow the Learn2Reg convention (``regbench.displacement``).

Bit-identical results are promised on the CPU for a given seed and thread count. On a GPU some kernels
(``grid_sample``'s backward among them) accumulate in a nondeterministic order; there results agree to
rounding only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar, overload

import numpy as np
import torch

from regbench import io
from regbench.cache import BoundedCache
from regbench.capabilities import Capabilities, PaperCost, Resources  # noqa: F401 (methods import them from here)
from regbench.dataset import Task
from regbench.displacement import Displacement
from regbench.errors import DatasetError, RegbenchError
from regbench.image import Image
from regbench.pair import CaseId, Pair, PairId

SCALES: tuple[str, ...] = ("smoke", "default", "paper")


@dataclass(frozen=True)
class Hyperparams:
    """Base of every method's hyperparameters: a frozen dataclass whose defaults are CPU-sized.

    Subclasses add fields (tied to the paper's symbols in their docstring) and override ``paper()`` with the
    published settings and ``smoke()`` with the smallest settings that still exercise every code path.
    """

    @classmethod
    def paper(cls) -> Self:
        """The published settings (default: the same as the defaults)."""
        return cls()

    @classmethod
    def smoke(cls) -> Self:
        """Settings for tests and CI smoke runs (default: the same as the defaults)."""
        return cls()

    @classmethod
    def preset(cls, scale: str) -> Self:
        """The settings for a benchmark scale: ``smoke``, ``default`` or ``paper``."""
        if scale not in SCALES:
            raise RegbenchError(f"{cls.__name__}: unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        return cls() if scale == "default" else getattr(cls, scale)()

    def replace(self, **overrides: Any) -> Self:
        """A copy with some fields changed, as a config file states them.

        Unknown names and values of the wrong type are errors (a typo must not silently leave the default in
        place). YAML lists become tuples, an int is accepted for a float field, and a nested ``Hyperparams``
        field takes a mapping of its own overrides.
        """
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise RegbenchError(f"{type(self).__name__}: unknown hyperparameter(s) {', '.join(unknown)}; "
                                f"known: {', '.join(known) or 'none'}")
        changes = {key: _coerce(type(self).__name__, key, getattr(self, key), value)
                   for key, value in overrides.items()}
        return dataclasses.replace(self, **changes)


def _coerce(owner: str, key: str, current: Any, value: Any) -> Any:
    """``value`` converted to the type of the field's current value, or a RegbenchError saying why not."""
    if isinstance(current, Hyperparams):
        if isinstance(value, Mapping):
            return current.replace(**value)
        if isinstance(value, type(current)):
            return value
    elif current is None or value is None:
        return value
    elif isinstance(current, bool) or isinstance(value, bool):
        if isinstance(current, bool) and isinstance(value, bool):
            return value
    elif isinstance(current, float) and isinstance(value, int | float):
        return float(value)
    elif isinstance(current, tuple) and isinstance(value, list | tuple):
        return tuple(_coerce(owner, key, current[0], v) for v in value) if current else tuple(value)
    elif isinstance(value, type(current)):
        return value
    raise RegbenchError(f"{owner}: hyperparameter {key} must be like {current!r} "
                        f"({type(current).__name__}), got {value!r} ({type(value).__name__})")


def check_choice(params: Hyperparams, field: str, choices: Sequence[str]) -> None:
    """For a ``__post_init__``: raise unless the string field ``field`` of ``params`` is one of ``choices``."""
    value = getattr(params, field)
    if value not in choices:
        raise RegbenchError(f"{type(params).__name__}: {field} must be one of {', '.join(choices)}, got {value!r}")


def similarity_by_modality(setting: str, pair: Pair, *, mono: str, multi: str) -> str:
    """A method's ``similarity`` setting for ``pair``: itself, or for ``auto`` ``multi`` on a multi-modal pair
    (intensities do not correspond) and ``mono`` otherwise."""
    if setting != "auto":
        return setting
    return multi if pair.multimodal else mono


class Method(ABC):
    """A registration method; see the module docstring for what a subclass writes.

    Args:
        params: hyperparameters (default: ``Params()``); ``configure`` builds them from a scale and overrides.
        seed: seeds torch and ``self.rng`` at the start of every ``register`` and ``train`` call.
        threads: CPU threads (default: ``resources.threads``).
        device: ``"cpu"`` or a CUDA device (only for methods with ``resources.gpu``).
        dtype: floating point type of the tensors the method computes with.
    """

    name: ClassVar[str]
    trainable: ClassVar[bool] = False
    Params: ClassVar[type[Hyperparams]] = Hyperparams
    capabilities: ClassVar[Capabilities] = Capabilities()
    resources: ClassVar[Resources] = Resources()

    def __init__(self, params: Hyperparams | None = None, *, seed: int = 0, threads: int | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> None:
        params = self.Params() if params is None else params
        if type(params) is not self.Params:
            raise TypeError(f"{type(self).__name__}(): params must be {self.Params.__name__}, "
                            f"got {type(params).__name__}")
        threads = self.resources.threads if threads is None else threads
        if threads < 1:
            raise RegbenchError(f"method {self.name!r}: threads must be >= 1, got {threads}")
        self.params = params
        self.seed = seed
        self.threads = threads
        self.device = self._check_device(torch.device(device))
        self.dtype = dtype
        self.rng = np.random.default_rng(seed)

    @classmethod
    def configure(cls, *, scale: str = "default", seed: int = 0, threads: int | None = None,
                  device: str | torch.device = "cpu", **overrides: Any) -> Self:
        """The method at a benchmark scale (``Params.preset``) with config overrides applied by keyword."""
        return cls(cls.Params.preset(scale).replace(**overrides), seed=seed, threads=threads, device=device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params}, seed={self.seed}, threads={self.threads}, device={self.device})"

    # What a method writes ------------------------------------------------------------------------------------

    @abstractmethod
    def estimate(self, pair: Pair) -> Displacement:
        """The displacement that aligns ``pair.moving`` to ``pair.fixed`` (Learn2Reg convention, voxels of the
        fixed grid). Called by ``register`` after validation, with seeds and threads set."""

    def fit(self, task: Task, pairs: Sequence[Pair], workdir: Path) -> None:
        """Learn from training ``pairs`` of ``task``; ``workdir`` is scratch space (checkpoints, logs)."""
        raise NotImplementedError(f"{type(self).__name__} is trainable but does not implement fit()")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The learned state as named tensors; methods that learn nothing have none."""
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore what ``state_dict`` returned."""
        if state:
            raise RegbenchError(f"method {self.name!r} learns nothing, but the state holds {', '.join(state)}")

    # What callers use ----------------------------------------------------------------------------------------

    def register(self, pair: Pair) -> Displacement:
        """Register one pair: validated, seeded, threads set, output checked."""
        return self.timed_register(pair)[0]

    def timed_register(self, pair: Pair) -> tuple[Displacement, float]:
        """``register`` and the seconds it took (the method's own time, no IO: the runtime in every table)."""
        return self.timed(pair, lambda: self.estimate(pair))

    def timed(self, pair: Pair, estimate: Callable[[], Displacement]) -> tuple[Displacement, float]:
        """``estimate()``'s field of ``pair``, checked as ``register`` checks it, and the seconds it took."""
        where = f"method {self.name!r} on pair {pair.id.key}"
        self._check_pair(pair, where)
        with self._session():
            start = time.perf_counter()
            disp = estimate()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - start
        self._check_output(disp, pair, where)
        return disp, seconds

    def train(self, task: Task, pairs: Sequence[Pair] | Sequence[PairId], workdir: str | Path) -> None:
        """Fit a trainable method; ``pairs`` may be loaded pairs or ids that are loaded from ``task`` on use.

        Labels are loaded only for methods that declare ``needs_labels``. The caller saves the result with
        ``save``; ``workdir`` (created if missing) holds whatever the method writes while training.
        """
        if not self.trainable:
            raise RegbenchError(f"method {self.name!r} is not trainable")
        if not pairs:
            raise RegbenchError(f"method {self.name!r}: no training pairs given for task {task.name!r}")
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)

        def check(pair: Pair) -> None:
            self._check_pair(pair, f"method {self.name!r} training on pair {pair.id.key}")

        loaded = _LazyPairs(task, pairs, with_labels=self.capabilities.needs_labels, check=check)
        with self._session():
            self.fit(task, loaded, workdir)

    def save(self, path: str | Path) -> None:
        """Write ``state_dict()`` with ``torch.save`` (tensors only, so ``load`` can use ``weights_only``)."""
        state = self.state_dict()
        bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
        if bad:
            raise TypeError(f"{type(self).__name__}.state_dict(): values must be tensors, not for {', '.join(bad)}")
        with io.atomic_path(path) as tmp:
            torch.save({key: value.detach().cpu() for key, value in state.items()}, tmp)

    def load(self, path: str | Path) -> None:
        """Read a state written by ``save`` (with ``weights_only=True``: no code runs from the file)."""
        path = Path(path)
        if not path.is_file():
            raise DatasetError(path, f"model file of method {self.name!r} not found")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as err:  # torch raises many types for a corrupt or foreign file
            raise DatasetError(path, f"not a readable model state ({type(err).__name__}: {err})") from err
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise DatasetError(path, "not a model state (expected a dict of tensors)")
        self.load_state_dict(state)

    # Helpers for subclasses ----------------------------------------------------------------------------------

    def to_tensor(self, image: Image | np.ndarray) -> torch.Tensor:
        """An image (or array) as a (1, 1, *spatial) tensor on the method's device and dtype."""
        data = image.data if isinstance(image, Image) else image
        return torch.as_tensor(np.ascontiguousarray(data), dtype=self.dtype, device=self.device)[None, None]

    # Plumbing ------------------------------------------------------------------------------------------------

    def _check_device(self, device: torch.device) -> torch.device:
        if device.type == "cpu":
            return device
        if device.type != "cuda" or not self.resources.gpu:
            raise RegbenchError(f"method {self.name!r} runs on the CPU only, not on {device}")
        if not torch.cuda.is_available():
            raise RegbenchError(f"method {self.name!r}: device {device} requested but CUDA is not available")
        return device

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Seed torch (restoring the caller's random state afterwards) and ``self.rng``; set the thread count."""
        threads = torch.get_num_threads()
        devices = []
        if self.device.type == "cuda":
            devices = [torch.cuda.current_device() if self.device.index is None else self.device.index]
        torch.set_num_threads(self.threads)
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                self.rng = np.random.default_rng(self.seed)
                yield
        finally:
            torch.set_num_threads(threads)

    def _check_pair(self, pair: Pair, where: str) -> None:
        fixed, moving = pair.fixed.image, pair.moving.image
        limit, voxels = self.capabilities.max_voxels, max(fixed.data.size, moving.data.size)
        if limit is not None and voxels > limit:
            reason = f" ({self.capabilities.max_voxels_reason})" if self.capabilities.max_voxels_reason else ""
            raise RegbenchError(f"method {self.name!r} refuses pair {pair.id.key}: {voxels / 1e6:.3g} M voxels exceed "
                                f"its declared limit of {limit / 1e6:.3g} M voxels{reason}")
        if fixed.ndim != moving.ndim:
            raise RegbenchError(f"{where}: fixed image is {fixed.ndim}D but moving image is {moving.ndim}D")
        if fixed.ndim not in self.capabilities.dims:
            dims = " or ".join(f"{d}D" for d in sorted(self.capabilities.dims))
            raise RegbenchError(f"{where}: the method registers {dims} images, the pair is {fixed.ndim}D")
        for role, image in (("fixed", fixed), ("moving", moving)):
            if not np.isfinite(image.data).all():
                raise RegbenchError(f"{where}: {role} image contains NaN or inf values")
        if pair.multimodal and not self.capabilities.multimodal:
            warnings.warn(f"{where}: a multi-modal pair ({pair.fixed.modality or pair.fixed.id.modality} to "
                          f"{pair.moving.modality or pair.moving.id.modality}) for a mono-modal method",
                          RuntimeWarning, stacklevel=3)

    def _check_output(self, disp: Displacement, pair: Pair, where: str) -> None:
        if not isinstance(disp, Displacement):
            raise RegbenchError(f"{where}: estimate() returned {type(disp).__name__}, not a Displacement")
        if disp.data.dtype != np.float32:
            raise RegbenchError(f"{where}: displacement of dtype {disp.data.dtype}, expected float32 "
                                "(Learn2Reg's; convert with .astype(np.float32))")
        expected = (*pair.fixed.image.shape, pair.ndim)
        if disp.data.shape != expected:
            raise RegbenchError(f"{where}: displacement of shape {disp.data.shape}, expected {expected} "
                                "(channels last, on the fixed grid)")
        if self.capabilities.uncertainty and disp.std is None and disp.samples is None:
            raise RegbenchError(f"{where}: the method declares uncertainty but returned neither std nor samples")


LOSS_LOG = "training_loss.csv"  # the per-step training loss a network method writes to its workdir
Prepared = TypeVar("Prepared")


class NetworkMethod(Method):
    """A learning method whose learned state is one network, ``self.net``, made by ``build(ndim)``.

    Saving and loading are the same for every such method, so they live here. A subclass names the state key
    whose weight reveals the network's dimensionality (``first_weight``: its tensor has ndim + 2 dimensions) and
    the settings that shape the network (``shape_settings``), which the error for a mismatched state names.
    """

    trainable = True
    first_weight: ClassVar[str]
    shape_settings: ClassVar[str]

    def __init__(self, params: Hyperparams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.net: torch.nn.Module | None = None
        self.loss_history: list[Any] = []  # what ``fit`` logs per training step, for its loss file

    @abstractmethod
    def build(self, ndim: int) -> torch.nn.Module:
        """A fresh network for ``ndim``-D pairs, on the method's device and dtype."""

    def new_network(self, ndim: int) -> torch.nn.Module:
        """``build(ndim)``, with a 3D network's weights in channels-last order on the CPU: oneDNN's 3D
        convolutions then run channels-last, 1.2-1.7 times faster forward and backward on one or two threads
        (measured on the five networks at smoke and default sizes); its outputs differ from the contiguous
        layout's only by rounding."""
        net = self.build(ndim)
        if ndim == 3 and self.device.type == "cpu":
            net = net.to(memory_format=torch.channels_last_3d)
        return net

    def parameter_count(self) -> int:
        """The network's learnable parameters (what a paper's "fewer parameters" counts; buffers excluded)."""
        if self.net is None:
            raise RegbenchError(f"{self.name}: no network to count, it has not been trained or loaded")
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.net is None:
            raise RegbenchError(f"{self.name}: nothing to save, the network has not been trained or loaded")
        return dict(self.net.state_dict())

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.net = self.network_from_state(state)

    def network_for(self, pair: Pair) -> torch.nn.Module:
        """The network that registers ``pair``: the trained one, or a fresh untrained one (with a warning) if
        there is none; refused if it was built for another dimensionality or the pair has two grids."""
        if self.net is None:
            warnings.warn(f"{self.name}: registering with an untrained network (train or load one first)",
                          RuntimeWarning, stacklevel=3)
            self.net = self.new_network(pair.ndim)
        if self.net.ndim != pair.ndim:
            raise RegbenchError(f"{self.name}: the network registers {self.net.ndim}D pairs, pair {pair.id.key} "
                                f"is {pair.ndim}D")
        self.check_one_grid(pair)
        return self.net

    def prepared_pairs(self, pairs: Sequence[Pair], prepare: Callable[[Image], Prepared], *,
                       one_grid: bool = True, moving: Callable[[Pair], Prepared] | None = None
                       ) -> Callable[[int], tuple[Prepared, Prepared]]:
        """``pair_at(index)``: the (fixed, moving) images of ``pairs[index]`` as ``prepare`` makes them. Each
        case is loaded and prepared on its first visit and kept while it is among the most recently used
        (``regbench.cache``), so later training steps do no IO, a case in several pairs is prepared once, and
        thousands of training images never sit in memory together. ``moving`` prepares a pair's moving image
        where it depends on the pair (an affine pre-alignment to its fixed image): kept per pair, not per case.
        ``one_grid`` refuses pairs on two grids (``check_one_grid``)."""
        prepared: BoundedCache[CaseId | PairId, Prepared] = BoundedCache()
        checked: set[int] = set()

        def pair_at(index: int) -> tuple[Prepared, Prepared]:
            ids = pair_id_at(pairs, index)
            moving_key = ids if moving else ids.moving
            if index in checked and ids.fixed in prepared and moving_key in prepared:
                return prepared[ids.fixed], prepared[moving_key]
            pair = pairs[index]  # reads the images: on a first visit, or when a case was evicted
            if one_grid and index not in checked:
                self.check_one_grid(pair)
            checked.add(index)
            prepare_moving = (lambda: moving(pair)) if moving else (lambda: prepare(pair.moving.image))
            with torch.no_grad():
                fixed = prepared.get(pair.fixed.id, lambda: prepare(pair.fixed.image))
                return fixed, prepared.get(moving_key, prepare_moving)

        return pair_at

    def write_loss_log(self, workdir: Path, columns: Sequence[str] = ("loss",)) -> None:
        """``loss_history`` (a value, or a tuple of ``columns``, per step) as ``workdir / LOSS_LOG``, with a
        step column first."""
        values = np.asarray(self.loss_history, dtype=np.float64).reshape(len(self.loss_history), len(columns))
        steps = np.arange(1, len(values) + 1)
        np.savetxt(Path(workdir) / LOSS_LOG, np.column_stack([steps, values]), delimiter=",",
                   header=",".join(["step", *columns]), comments="", fmt=["%d"] + ["%.6g"] * len(columns))

    def check_one_grid(self, pair: Pair) -> None:
        """Refuse a pair whose images lie on different grids: the network sees them stacked as channels."""
        if pair.fixed.image.shape != pair.moving.image.shape:
            raise RegbenchError(f"{self.name}: pair {pair.id.key} has fixed grid {pair.fixed.image.shape} and "
                                f"moving grid {pair.moving.image.shape}; the network needs one grid for both")

    def network_from_state(self, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
        """A network built for the state's dimensionality with the state's weights loaded."""
        first = state.get(self.first_weight)
        if first is None:
            raise RegbenchError(f"{self.name}: the state holds no {self.name} network (no {self.first_weight})")
        net = self.new_network(first.ndim - 2)
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise RegbenchError(f"{self.name}: the state does not fit the configured network ({err}); was it "
                                f"trained with other {self.shape_settings} settings?") from err
        return net


def pair_id_at(pairs: Sequence[Pair], index: int) -> PairId:
    """The id of ``pairs[index]``, without reading its images when ``pairs`` loads lazily (as in ``fit``)."""
    return pairs.id_at(index) if isinstance(pairs, _LazyPairs) else pairs[index].id


class _LazyPairs(Sequence[Pair]):
    """Training pairs that load from the task when accessed (so a large training set need not fit in memory),
    each validated as it is handed out."""

    def __init__(self, task: Task, items: Sequence[Pair] | Sequence[PairId], *, with_labels: bool,
                 check: Callable[[Pair], None]) -> None:
        self._task, self._items, self._with_labels, self._check = task, items, with_labels, check

    def __len__(self) -> int:
        return len(self._items)

    def id_at(self, index: int) -> PairId:
        """The id of pair ``index``, without reading its images."""
        item = self._items[index]
        return item.id if isinstance(item, Pair) else item

    @overload
    def __getitem__(self, index: int) -> Pair: ...

    @overload
    def __getitem__(self, index: slice) -> list[Pair]: ...

    def __getitem__(self, index: int | slice) -> Pair | list[Pair]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self._items[index]
        pair = item if isinstance(item, Pair) else self._task.load_pair(item, with_labels=self._with_labels)
        self._check(pair)
        return pair
