"""What one measurement is: the `Case` spec and the vocabulary of its fields.

A `Case` is a frozen, hashable, JSON-friendly description of one thing to
build and time: framework, device, cell variant, formulation, execution mode,
pass, shape, dtype and numeric policy (`precision`: how a low-precision
dtype is used; `fp32`: whether float32 matmuls may run in TF32). Validation of names and sizes happens here, so every
entry point (CLI, asv, pytest-benchmark, the Python API) rejects bad input
the same way, with a one-line `UsageError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rnnbench.errors import UsageError
from rnnbench.reference import CellSpec, init_targets, useful_flops

__all__ = [
    "COMPILERS",
    "DEVICES",
    "DTYPES",
    "FORMULATIONS",
    "FP32_MODES",
    "FRAMEWORKS",
    "HEADS",
    "MODES",
    "PASSES",
    "PRECISIONS",
    "Case",
]

FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")
FORMULATIONS = ("separate", "concat", "hoisted", "native")
MODES = ("eager", "compiled")
PASSES = ("forward", "train")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float16", "bfloat16")
# How a low-precision dtype is used. `mixed`: float32 master weights, computed in `dtype` the way
# people train (torch autocast, a Keras mixed policy, JAX casting f32 parameters to bf16 per step),
# so gradients accumulate in float32. `pure`: weights, activations and gradients all stored in
# `dtype`. float32 cases are always `pure`.
PRECISIONS = ("mixed", "pure")
# float32 matmuls: `strict` full FP32; `tf32` lets tensor cores round inputs to TF32 (GPU only matters).
FP32_MODES = ("strict", "tf32")
HEADS = ("none", "linear")
# What `compiled` means, per framework: torch.compile's inductor (optionally replaying CUDA graphs,
# mode="reduce-overhead", GPU only), tf.function graphs (optionally with XLA, jit_compile=True),
# jax.jit's XLA. Eager cases are "none". Which backend accepts which is the backend's `compilers`.
COMPILERS = ("none", "inductor", "inductor+cudagraphs", "tf.function", "tf.function+xla", "xla")
DEFAULT_COMPILER = {"torch": "inductor", "tensorflow": "tf.function", "jax": "xla", "numpy": "none"}


def check_choice(what: str, value: object, allowed: tuple[str, ...]) -> None:
    """UsageError unless `value` is one of `allowed`."""
    if value not in allowed:
        raise UsageError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")


@dataclass(frozen=True)
class Case:
    """One formulation of one cell on one framework/device/shape, to verify and time.

    `pass_` is spelled with an underscore because `pass` is a Python keyword;
    `to_dict` writes it as `pass`, the name used in result files.
    """

    framework: str = "numpy"
    device: str = "cpu"
    cell: str = "rnn"
    formulation: str = "separate"
    mode: str = "eager"
    pass_: str = "forward"
    batch: int = 4
    input_size: int = 8
    hidden: int = 8
    seq_len: int = 5
    layers: int = 1
    dtype: str = "float32"
    nonlinearity: str = "tanh"
    gru_update: str = "keep_old"
    gru_reset: str = "after"
    precision: str = ""  # "" -> "pure" for float32, "mixed" for float16/bfloat16
    fp32: str = "strict"
    compiler: str = ""  # "" -> "none" for eager, else the framework's DEFAULT_COMPILER
    head: str = "none"  # "linear": logits y_t = W_hy h_t + b_y and a cross-entropy loss in train
    vocab: int = 0  # the head's output size (classes); 0 without a head

    def __post_init__(self) -> None:
        check_choice("framework", self.framework, FRAMEWORKS)
        check_choice("device", self.device, DEVICES)
        check_choice("formulation", self.formulation, FORMULATIONS)
        check_choice("mode", self.mode, MODES)
        check_choice("pass", self.pass_, PASSES)
        check_choice("dtype", self.dtype, DTYPES)
        if not self.precision:
            object.__setattr__(self, "precision", "pure" if self.dtype == "float32" else "mixed")
        check_choice("precision", self.precision, PRECISIONS)
        if self.dtype == "float32" and self.precision != "pure":
            raise UsageError("precision 'mixed' applies to float16/bfloat16 only")
        check_choice("fp32 mode", self.fp32, FP32_MODES)
        if not self.compiler:
            default = "none" if self.mode == "eager" else DEFAULT_COMPILER[self.framework]
            object.__setattr__(self, "compiler", default)
        check_choice("compiler", self.compiler, COMPILERS)
        check_choice("head", self.head, HEADS)
        if self.head == "linear" and (
            isinstance(self.vocab, bool) or not isinstance(self.vocab, int) or self.vocab < 1
        ):
            raise UsageError(f"head 'linear' needs a positive vocab size, got {self.vocab!r}")
        if self.head == "none" and self.vocab:
            raise UsageError("vocab applies to head 'linear' only")
        if self.mode == "eager" and self.compiler != "none":
            raise UsageError(f"mode {self.mode!r} does not go with compiler {self.compiler!r}")
        for name in ("batch", "input_size", "hidden", "seq_len", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        self.spec  # validates the cell options  # noqa: B018

    @property
    def spec(self) -> CellSpec:
        return CellSpec(self.cell, self.nonlinearity, self.gru_update, self.gru_reset)

    @property
    def train(self) -> bool:
        return self.pass_ == "train"

    @property
    def flops(self) -> int:
        """Useful FLOPs of one call (see `reference.useful_flops`), plus the head's GEMM (x3 for train)."""
        cells = useful_flops(self.spec, self.batch, self.input_size, self.hidden, self.seq_len, self.layers, self.train)
        head = 2 * self.seq_len * self.batch * self.hidden * self.vocab * (3 if self.train else 1)
        return cells + head

    def targets(self) -> Any:
        """The head's target classes `(T, B)` (int64 numpy), the same for every framework and the reference."""
        return init_targets(self.seq_len, self.batch, self.vocab)

    @property
    def param_dtype(self) -> str:
        """The dtype weights are stored (and gradients returned) in."""
        return "float32" if self.precision == "mixed" else self.dtype

    @property
    def key(self) -> str:
        """Stable one-line identity, used for resume, sharding and report joins."""
        return (
            f"{self.framework}/{self.device}/{self.spec.label}/{self.formulation}/{self.mode}/{self.pass_}/"
            f"b{self.batch}/i{self.input_size}/h{self.hidden}/t{self.seq_len}/l{self.layers}/{self.dtype}"
            # suffixes only off the defaults of float32, so keys written before these fields still match
            + (f"-{self.precision}" if self.dtype != "float32" else "")
            + ("/tf32" if self.fp32 == "tf32" else "")
            + (f"/head-v{self.vocab}" if self.head == "linear" else "")
            + (f"/{self.compiler}" if self.compiler not in ("none", DEFAULT_COMPILER[self.framework]) else "")
        )

    def replace(self, **changes: Any) -> Case:
        if "pass" in changes:
            changes["pass_"] = changes.pop("pass")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pass"] = d.pop("pass_")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "pass" in d:
            kw["pass_"] = d["pass"]
        return cls(**kw)
