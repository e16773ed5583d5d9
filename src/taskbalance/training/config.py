"""A run's configuration: everything that determines its result, and nothing else.

A run is a pure function of its :class:`RunConfig`; :meth:`RunConfig.run_id` hashes the canonical JSON form, so the
store can recognise a finished run and a sweep can skip it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskbalance.method import Method

# Paper defaults (Kirchdorfer et al. 2024, Sec. 5): Adam, weight decay 1e-5, learning rate halved every
# 100 epochs on NYUv2/Cityscapes (30 on CelebA).
DEFAULT_WEIGHT_DECAY = 1e-5
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# Where and how deterministically a run trains does not change what experiment it is.
NOT_IDENTITY = ("device", "deterministic", "data_on_device")
# Fields added after runs were first stored: they enter the identity only when they differ from these defaults, so
# the ids of runs stored before them stay valid.
LATER_DEFAULTS: dict[str, Any] = {
    "precision": "fp32", "loader_workers": 0, "optimizer": "adam", "momentum": 0.0, "method_lr": None,
}
OPTIMIZERS = ("adam", "sgd")
# Real-valued fields: an int given for one (``lr=1``, TOML's ``weight_decay = 0``) is stored as a float, so that
# ``1`` and ``1.0`` are one experiment with one run id.
REAL_FIELDS = ("lr", "weight_decay", "lr_gamma", "momentum", "method_lr")


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range; the message names the field."""


@dataclass
class RunConfig:
    """One training run.

    Attributes:
        dataset: registry name of the dataset (``taskbalance.data``).
        dataset_options: keyword options of the dataset builder (e.g. ``root``).
        model: registry name of the model (``taskbalance.models``).
        model_options: keyword options of the model builder (e.g. ``pretrained``).
        tasks: the tasks to train, in order; empty means every task of the dataset. One task = a single-task run.
        method: registry name of the weighting or gradient method (``taskbalance.methods``).
        method_options: its hyper-parameters (e.g. ``{"temperature": 2.0}``).
        lr: learning rate of the optimizer.
        weight_decay: L2 weight decay of the model's parameters (added to their gradients, as ``torch.optim.Adam``
            and ``SGD`` do); a method's own parameters (UW's log-variances) get none.
        optimizer: ``"adam"`` (default; the paper, Kirchdorfer et al. 2024, and Elich et al. 2024's finding) or
            ``"sgd"`` (``torch.optim.SGD``, the optimizer of much earlier MTL work, which Elich et al. 2024 compare
            Adam with). Part of the run's identity when it is not the default.
        momentum: SGD's momentum (default 0, as ``torch.optim.SGD``; 0.9 is the usual choice); only with
            ``optimizer = "sgd"``. Part of the run's identity when it is not 0.
        method_lr: learning rate of the method's own parameters (UW's log-variances, IMTL-L's log-scales,
            GradNorm's weights); None (default) uses ``lr``, as LibMTL does. Nash-MTL's and FAMO's trainers give
            them their own (``method_params_lr``, 0.025 there). It follows the same StepLR schedule. Part of the
            run's identity when set and the method has such parameters (``Method.learns_parameters``).
        lr_step: epochs between learning-rate decays (StepLR step size).
        lr_gamma: factor of each decay (the paper halves: 0.5).
        epochs: training epochs.
        batch_size: training batch size.
        eval_batch_size: batch size of evaluation passes.
        seed: seeds model initialisation, data order, augmentation and stochastic methods.
        max_steps_per_epoch: cap on optimizer steps per epoch (0 = whole training split); for smoke runs.
        log_every: record task losses and weights every this many steps.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: forward passes run under ``torch.autocast`` in
            that dtype; task losses are computed in float32 before any method sees them; ``"fp16"`` scales the
            losses with a ``GradScaler`` (steps whose gradients overflow are skipped). Part of the run's identity.
        device: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``. Not part
            of the run's identity: a run is the same experiment on any device (the device used is recorded with
            its result).
        deterministic: on CUDA, ``torch.use_deterministic_algorithms(True)`` (and the cuBLAS workspace setting it
            needs); without it cuDNN may pick faster non-deterministic kernels. CPU runs are deterministic either
            way. Not part of the run's identity.

        loader_workers: DataLoader worker processes for the training split (on-disk datasets). Workers draw their
            own random augmentation, so this is part of the run's identity when it is not 0. Batches are pinned and
            copied without blocking on CUDA.
        data_on_device: keep every split on the device and batch by indexing there (datasets that hold their
            splits in memory, e.g. MultiFashion): no per-batch host work. The same samples in the same order as
            batches from a DataLoader, so the result is the same (not part of the run's identity).

    ``lr``, ``weight_decay``, ``lr_gamma``, ``momentum`` and ``method_lr`` are kept as floats (an int given for one
    is converted), so ``lr=1`` and ``lr=1.0`` are the same run.

    The run's identity (:meth:`run_id`) hashes every field except ``device``, ``deterministic`` and
    ``data_on_device``; ``precision``, ``loader_workers``, ``optimizer``, ``momentum`` and ``method_lr`` enter it only
    when they are not their defaults, so the ids of runs stored before they existed stay valid.
    """

    dataset: str = "multifashion"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model: str = "multilenet"
    model_options: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    method: str = "ew"
    method_options: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    lr_step: int = 100
    lr_gamma: float = 0.5
    epochs: int = 5
    batch_size: int = 256
    eval_batch_size: int = 1024
    seed: int = 0
    max_steps_per_epoch: int = 0
    log_every: int = 1
    precision: str = "fp32"
    device: str = "auto"
    deterministic: bool = False
    loader_workers: int = 0
    data_on_device: bool = False
    # Added after runs were first stored: last, so that positional construction keeps its meaning.
    optimizer: str = "adam"
    momentum: float = 0.0
    method_lr: float | None = None

    def __post_init__(self) -> None:
        self.validate()
        for name in REAL_FIELDS:
            value = getattr(self, name)
            if isinstance(value, int):  # validate refused bools
                setattr(self, name, float(value))

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""
        for name in ("dataset", "model", "method"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("dataset_options", "model_options", "method_options"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ConfigError(f"{name} must be a table (mapping of names to values), got {value!r}")
        if not isinstance(self.tasks, list) or not all(isinstance(t, str) and t for t in self.tasks):
            raise ConfigError(f"tasks must be a list of task names, got {self.tasks!r}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks lists a task twice: {self.tasks!r}")
        positive_floats = {"lr": self.lr, "lr_gamma": self.lr_gamma}
        for name, value in positive_floats.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        wd = self.weight_decay
        if isinstance(wd, bool) or not isinstance(wd, int | float) or not math.isfinite(wd) or wd < 0:
            raise ConfigError(f"weight_decay must be a finite number ≥ 0, got {wd!r}")
        for name in ("lr_step", "epochs", "batch_size", "eval_batch_size", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer ≥ 1, got {value!r}")
        for name in ("seed", "max_steps_per_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer ≥ 0, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        momentum = self.momentum
        if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 <= momentum < 1:
            raise ConfigError(f"momentum must be a number in [0, 1), got {momentum!r}")
        if momentum and self.optimizer != "sgd":
            raise ConfigError(f"momentum is SGD's (optimizer = 'sgd'); optimizer is {self.optimizer!r}, got momentum "
                              f"{momentum!r}")
        method_lr = self.method_lr
        if method_lr is not None and (isinstance(method_lr, bool) or not isinstance(method_lr, int | float)
                                      or not math.isfinite(method_lr) or method_lr <= 0):
            raise ConfigError(f"method_lr must be a positive finite number (or absent: the model's lr), got "
                              f"{method_lr!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        for name in ("deterministic", "data_on_device"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) or self.loader_workers < 0:
            raise ConfigError(f"loader_workers must be an integer ≥ 0, got {self.loader_workers!r}")
        try:
            json.dumps(self.to_dict(), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"config values must be plain JSON values (no NaN): {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stored_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the fields added later that are at their defaults, as a store keeps a config: a
        taskbalance from before those fields reads the runs that do not use them (``from_dict`` fills them in).

        Example:
            >>> sorted(set(RunConfig().to_dict()) - set(RunConfig().stored_dict()))
            ['loader_workers', 'method_lr', 'momentum', 'optimizer', 'precision']
        """
        return {k: v for k, v in self.to_dict().items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a mapping (e.g. a parsed TOML file); unknown keys are an error that names them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        try:
            return cls(**values)
        except TypeError as error:
            raise ConfigError(str(error)) from None

    def replace(self, **changes: Any) -> RunConfig:
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def identity(self) -> dict[str, Any]:
        """The fields that determine the run's result: all but ``device``, ``deterministic`` and
        ``data_on_device``; ``precision``, ``loader_workers``, ``optimizer``, ``momentum`` and ``method_lr`` only when
        they are not their defaults; and
        ``method_revisions``, the :attr:`~taskbalance.method.Method.revision` of the method and of the weighting it
        composes with, when one is above 0. Method options are hashed as :func:`canonical_method_options` gives
        them (``temperature=1`` and ``temperature=1.0`` are one run)."""
        identity = {k: v for k, v in self.stored_dict().items() if k not in NOT_IDENTITY}
        identity["method_options"] = canonical_method_options(self.method, self.method_options)
        revisions = method_revisions(self.method, self.method_options)
        if revisions:
            identity["method_revisions"] = revisions
        if "method_lr" in identity and not learns_parameters(self.method, self.method_options):
            del identity["method_lr"]  # no parameter of the method to apply it to: the same experiment
        return identity

    def run_id(self) -> str:
        """Stable identifier: the first 16 hex digits of the SHA-256 of the canonical JSON of :meth:`identity`."""
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _method_classes(method: str, options: dict[str, Any]) -> dict[str, type[Method] | None]:
    """The class of the method and of the weighting named in its ``weighting`` option; None for a name no registry
    knows (a plugin that is not installed here)."""
    # Imported here: the method registries load every method module (and plugins), which a config needs only to
    # compute an identity.
    from taskbalance.methods import UnknownMethodError, method_class

    names = [method]
    if isinstance(options.get("weighting"), str):
        names.append(options["weighting"])
    classes: dict[str, type[Method] | None] = {}
    for name in names:
        try:
            classes[name] = method_class(name)
        except UnknownMethodError:
            classes[name] = None
    return classes


_REAL_VALUED_OPTIONS: dict[type, frozenset[str]] = {}


def real_valued_options(cls: type[Method]) -> frozenset[str]:
    """The constructor options of a method class annotated as real numbers (``float``, ``Sequence[float]``, …) and
    not as integers.

    Example:
        >>> from taskbalance.methods import method_class
        >>> sorted(real_valued_options(method_class("stch")))
        ['mu', 'preference']
    """
    if cls in _REAL_VALUED_OPTIONS:
        return _REAL_VALUED_OPTIONS[cls]
    names = set()
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        annotation = parameter.annotation
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        words = set(re.findall(r"\w+", text))
        if "float" in words and "int" not in words:
            names.add(name)
    _REAL_VALUED_OPTIONS[cls] = frozenset(names)
    return _REAL_VALUED_OPTIONS[cls]


def _as_floats(options: dict[str, Any], real: frozenset[str]) -> dict[str, Any]:
    def real_number(value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    return {key: ([real_number(v) for v in value] if isinstance(value, list) else real_number(value))
            if key in real else value for key, value in options.items()}


def canonical_method_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with an int given for a real-valued option of the method (or of the weighting it composes with,
    under ``weighting_options``) as a float, so that ``1`` and ``1.0`` are one experiment. Options of a method no
    registry knows are kept as given.

    Example:
        >>> canonical_method_options("uwso", {"temperature": 1})
        {'temperature': 1.0}
        >>> canonical_method_options("pcgrad", {"seed": 1, "weighting": "dwa", "weighting_options": {"temperature": 2}})
        {'seed': 1, 'weighting': 'dwa', 'weighting_options': {'temperature': 2.0}}
    """
    classes = _method_classes(method, options)
    own = classes[method]
    canonical = _as_floats(options, real_valued_options(own)) if own is not None else dict(options)
    weighting, nested = options.get("weighting"), options.get("weighting_options")
    if isinstance(weighting, str) and isinstance(nested, dict) and classes.get(weighting) is not None:
        weighting_class = classes[weighting]
        assert weighting_class is not None
        canonical["weighting_options"] = _as_floats(nested, real_valued_options(weighting_class))
    return canonical


def method_revisions(method: str, options: dict[str, Any]) -> dict[str, int]:
    """``{name: revision}`` of the method and of the weighting named in its ``weighting`` option, those above 0.

    A name no registry knows (a plugin that is not installed here) counts as revision 0.
    """
    return {name: cls.revision for name, cls in _method_classes(method, options).items()
            if cls is not None and cls.revision}


def learns_parameters(method: str, options: dict[str, Any]) -> bool:
    """Whether the method, or the weighting it composes with, trains parameters of its own (``learns_parameters``);
    True for a name no registry knows, so that ``method_lr`` stays in such a run's identity."""
    return any(cls is None or cls.learns_parameters for cls in _method_classes(method, options).values())
