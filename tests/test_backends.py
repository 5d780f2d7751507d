"""Every framework x formulation x mode x cell variant x layers agrees with the numpy reference.

The grid is the `verify` preset (all cell variants, layers 1 and 2, both
modes, forward and train). All four frameworks are installed by `make test`,
so a missing framework is a failure here, not a skip.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnbench
from rnnbench import backends
from rnnbench.case import FRAMEWORKS, Case
from rnnbench.measure.verify import make_inputs, tolerance, verify_kernel
from rnnbench.reference import negate_update_gate
from rnnbench.sweep.grid import PRESETS, expand

CASES, _ = expand(PRESETS["verify"], installed=FRAMEWORKS)


def test_every_framework_is_installed():
    assert backends.available() == list(FRAMEWORKS)


def test_verify_grid_covers_everything():
    seen = {(c.framework, c.formulation, c.mode, c.spec.label, c.layers, c.pass_) for c in CASES}
    assert ("torch", "native", "compiled", "gru[take_new,after]", 2, "train") in seen
    assert ("tensorflow", "native", "eager", "gru[keep_old,before]", 1, "train") in seen
    assert ("jax", "hoisted", "compiled", "lstm", 2, "train") in seen
    assert ("numpy", "concat", "eager", "rnn[relu]", 2, "forward") in seen
    assert len(CASES) > 500


def _in_fast_tier(case: Case) -> bool:
    """`make test-fast` keeps every framework x formulation x pass of the plain cells at one layer; the cell
    variants, two layers and torch.compile (seconds of compiling per case) run in `make test`."""
    plain = case.layers == 1 and case.spec.label in ("rnn", "gru", "lstm")
    return plain and not (case.framework == "torch" and case.mode == "compiled")


@pytest.mark.parametrize(
    "case", [c if _in_fast_tier(c) else pytest.param(c, marks=pytest.mark.slow) for c in CASES], ids=lambda c: c.key
)
def test_case_matches_reference(case):
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get(case.framework).build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


def test_a_wrong_kernel_fails_verification():
    """The check can fail: perturb one recurrent weight inside the kernel only."""
    case = Case(framework="torch", cell="gru", formulation="concat", pass_="train", layers=2)
    weights, x, state0 = make_inputs(case)
    bad = dict(weights)
    bad["weight_hh_l1"] = bad["weight_hh_l1"] * 1.01
    check = verify_kernel(backends.get("torch").build(case, bad, x, state0), weights, x, state0)
    assert not check.ok


LOW_PRECISION = [
    case
    for case in (
        Case(framework=fw, cell=cell, formulation=form, mode=mode, pass_=p, dtype=dtype, precision=prec, seq_len=4)
        for fw, mode, forms in (
            ("torch", "eager", ("separate", "concat", "hoisted", "native")),
            ("tensorflow", "compiled", ("separate", "concat", "native")),
            ("jax", "compiled", ("separate", "concat", "hoisted")),
        )
        for form in forms
        for cell in ("gru", "lstm")
        for p in ("forward", "train")
        for dtype in ("bfloat16", "float16")
        for prec in ("mixed", "pure")
    )
    if not backends.get(case.framework).unsupported(case)
]


# the train cases (JAX's especially) spend seconds compiling each: slow
@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c.train else c for c in LOW_PRECISION], ids=lambda c: c.key
)
def test_half_precision_matches_reference(case):
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get(case.framework).build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


@pytest.mark.parametrize(
    "framework,mode",
    # torch.compile of a two-layer train pass, per formulation and GRU reset: by far the slowest
    [("torch", "eager"), pytest.param("torch", "compiled", marks=pytest.mark.slow), ("tensorflow", "eager"),
     ("jax", "compiled")],
)  # fmt: skip
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_concat_gradients_map_back_onto_separate(framework, mode, cell):
    """dW_m split back into W and U equals separate's dW and dU, in the framework's own precision."""
    for reset in ("after", "before") if cell == "gru" else ("after",):
        case = Case(
            framework=framework, cell=cell, formulation="separate", mode=mode, pass_="train", layers=2, gru_reset=reset
        )
        weights, x, state0 = make_inputs(case)
        b = backends.get(framework)
        grads = {}
        for form in ("separate", "concat"):
            k = b.build(case.replace(formulation=form), weights, x, state0)
            grads[form] = k.fetch(k.call()).grads
        for name in weights:
            np.testing.assert_allclose(
                grads["concat"][name], grads["separate"][name], rtol=1e-4, atol=1e-4, err_msg=name
            )


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("reset", ["after", "before"])
def test_take_new_with_negated_weights_equals_keep_old_in_every_framework(framework, reset):
    weights, x, state0 = make_inputs(Case(cell="gru", layers=2))
    for formulation in ("separate", "concat", "hoisted"):
        keep, _ = rnnbench.forward(x, weights, "gru", formulation, framework, h0=state0[0], gru_reset=reset)
        neg = negate_update_gate(rnnbench.CellSpec("gru"), weights)
        take, _ = rnnbench.forward(
            x, neg, "gru", formulation, framework, h0=state0[0], gru_update="take_new", gru_reset=reset
        )
        np.testing.assert_allclose(take, keep, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("framework", ["torch", "tensorflow", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_matches_reference(framework, dtype):
    b = backends.get(framework)
    if "cuda" not in b.devices():
        pytest.skip(f"{framework} sees no CUDA device")
    for form in ("separate", "concat", "hoisted", "native"):
        for p in ("forward", "train"):
            case = Case(framework=framework, device="cuda", cell="lstm", formulation=form, pass_=p, dtype=dtype,
                        mode="compiled" if framework == "jax" else "eager")  # fmt: skip
            if b.unsupported(case):
                continue
            weights, x, state0 = make_inputs(case)
            check = verify_kernel(b.build(case, weights, x, state0), weights, x, state0)
            assert check.ok, case.key


LONG_BF16 = [("torch", "eager", "separate"), ("tensorflow", "compiled", "native"), ("jax", "compiled", "hoisted")]


@pytest.mark.slow
@pytest.mark.parametrize("framework,mode,formulation", LONG_BF16)
def test_bfloat16_train_over_375_steps_needs_float32_master_weights(framework, mode, formulation):
    """Pure bf16 sums 375 x 16 bias gradients in bf16 and stalls (inaccurate); the mixed policy passes."""
    checks = {}
    for precision in ("pure", "mixed"):
        case = Case(framework=framework, mode=mode, formulation=formulation, cell="gru", pass_="train",
                    dtype="bfloat16", precision=precision, seq_len=375, batch=16, input_size=16, hidden=16)  # fmt: skip
        weights, x, state0 = make_inputs(case)
        checks[precision] = verify_kernel(backends.get(framework).build(case, weights, x, state0), weights, x, state0)
    assert not checks["pure"].ok and checks["pure"].worst.startswith("dbias")
    assert checks["mixed"].ok, (checks["mixed"].worst, checks["mixed"].worst_rel_error)


def test_mixed_precision_keeps_float32_weights_and_gradients():
    case = Case(framework="torch", cell="lstm", pass_="train", dtype="bfloat16")
    assert (case.precision, case.param_dtype) == ("mixed", "float32")
    assert Case(dtype="bfloat16", precision="pure").param_dtype == "bfloat16"
    assert Case().precision == "pure"
    with pytest.raises(rnnbench.UsageError):
        Case(precision="mixed")  # float32 has no mixed policy
    assert case.key.endswith("bfloat16-mixed") and Case().key.endswith("/float32")


def test_tolerance_follows_dtype_fp32_mode_and_reduction_length():
    short = Case(dtype="bfloat16", pass_="train", seq_len=4, batch=4)
    long = short.replace(seq_len=375, batch=16)
    assert tolerance(long, "dbias_hh_l0") > tolerance(short, "dbias_hh_l0") == tolerance(short, "y")
    assert tolerance(long, "y") == tolerance(short, "y")  # 375 steps is within the base length
    gpu = Case(device="cuda")
    assert tolerance(gpu.replace(fp32="tf32")) > tolerance(gpu) > tolerance(Case())
    assert tolerance(Case(dtype="bfloat16")) > tolerance(Case(dtype="float16")) > tolerance(Case())


def test_an_inaccurate_case_is_recorded_apart_from_a_crash():
    from rnnbench.measure.timing import TimingConfig
    from rnnbench.sweep.worker import measure_case

    case = Case(framework="jax", mode="compiled", cell="gru", pass_="train", dtype="bfloat16", precision="pure",
                seq_len=375, batch=16, input_size=16, hidden=16)  # fmt: skip
    record = measure_case(case, TimingConfig(), threads=1, peak_gflops=None).to_json()
    assert record["status"] == "inaccurate" and "dbias" in record["error"]
    assert (record["precision"], record["fp32"], record["median_s"]) == ("pure", "strict", None)


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_every_call_sets_its_own_fp32_matmul_precision(framework):
    """Kernels of both fp32 modes in one process: each call leaves the mode it was built for."""
    import tensorflow as tf
    import torch

    def tf32_enabled():
        if framework == "torch":
            return (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                    torch.get_float32_matmul_precision() == "high")  # fmt: skip
        return (tf.config.experimental.tensor_float_32_execution_enabled(),)

    b = backends.get(framework)
    case = Case(framework=framework, mode="eager")
    weights, x, state0 = make_inputs(case)
    strict, loose = (b.build(case.replace(fp32=m), weights, x, state0) for m in ("strict", "tf32"))
    loose.call()
    assert all(tf32_enabled())
    strict.call()
    assert not any(tf32_enabled())


@pytest.mark.slow  # torch.compile: 14 s, the slowest test left in make test-fast
def test_torch_compiled_compiles_at_build_not_per_call(monkeypatch):
    """torch.compile wrappers are made once per layer at build; later calls neither re-wrap nor recompile."""
    import torch
    from torch._dynamo.utils import counters

    wrappers = []
    real_compile = torch.compile

    def counting_compile(fn, **kw):
        wrappers.append(fn)
        return real_compile(fn, **kw)

    monkeypatch.setattr(torch, "compile", counting_compile)
    case = Case(framework="torch", mode="compiled", cell="gru", layers=2, seq_len=3, hidden=5, input_size=5)
    assert case.compiler == "inductor"
    weights, x, state0 = make_inputs(case)
    kernel = backends.get("torch").build(case, weights, x, state0)
    assert len(wrappers) == 2  # one per layer, at build
    kernel.call()
    frames = counters["frames"]["ok"]
    for _ in range(3):
        kernel.call()
    assert len(wrappers) == 2
    assert counters["frames"]["ok"] == frames  # no recompilation after the first call


def test_compiler_is_named_on_every_case_and_checked_per_backend():
    assert Case(framework="tensorflow", mode="compiled").compiler == "tf.function"
    assert Case(framework="jax", mode="compiled").compiler == "xla"
    assert Case(framework="torch").compiler == "none"
    xla = Case(framework="tensorflow", mode="compiled", compiler="tf.function+xla")
    assert backends.get("tensorflow").unsupported(xla) is None and xla.key.endswith("/tf.function+xla")
    graphs = Case(framework="torch", mode="compiled", compiler="inductor+cudagraphs")
    assert "CUDA" in backends.get("torch").unsupported(graphs)
    assert "no compiler" in backends.get("jax").unsupported(Case(framework="jax", mode="compiled", compiler="inductor"))
    with pytest.raises(rnnbench.UsageError):
        Case(framework="torch", compiler="inductor")  # eager has no compiler


def test_tf_function_with_xla_matches_reference():
    case = Case(framework="tensorflow", mode="compiled", compiler="tf.function+xla", cell="lstm", pass_="train")
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get("tensorflow").build(case, weights, x, state0), weights, x, state0)
    assert check.ok, (check.worst, check.max_rel_error)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_outputs_say_where_they_lived_and_a_mismatch_fails_the_case(framework):
    """Device truth: fetch records the outputs' device; verifying against another device fails."""
    from rnnbench.measure.verify import compare, reference

    case = Case(framework=framework, mode="compiled" if framework == "jax" else "eager", cell="lstm")
    weights, x, state0 = make_inputs(case)
    out = (k := backends.get(framework).build(case, weights, x, state0)).fetch(k.call())
    assert out.device == "cpu"
    ref = reference(case, weights, x, state0)
    assert compare(case, out, ref).ok
    with pytest.raises(AssertionError, match="live on 'cpu'"):
        compare(case.replace(device="cuda"), out, ref)


@pytest.mark.parametrize(
    "framework,cell,impl", [("torch", "lstm", "aten"), ("tensorflow", "gru", "generic loop"), ("numpy", "rnn", None)]
)
def test_kernels_say_which_native_implementation_ran(framework, cell, impl):
    form = "separate" if framework == "numpy" else "native"
    case = Case(framework=framework, cell=cell, formulation=form)
    weights, x, state0 = make_inputs(case)
    assert backends.get(framework).build(case, weights, x, state0).impl == impl


def test_tensorflow_soft_device_placement_is_off():
    import tensorflow as tf

    backends.get("tensorflow").devices()  # imports and configures TF
    assert tf.config.get_soft_device_placement() is False


HEAD_CASES = [
    case
    for fw, mode in (
        ("numpy", "eager"),
        ("torch", "eager"),
        ("torch", "compiled"),
        ("tensorflow", "eager"),
        ("tensorflow", "compiled"),
        ("jax", "compiled"),
    )
    for form in ("separate", "concat", "hoisted", "native")
    for p in ("forward", "train")
    for case in [
        Case(framework=fw, mode=mode, formulation=form, pass_=p, cell="lstm", layers=2, head="linear", vocab=7)
    ]
    if not backends.get(fw).unsupported(case)
]


@pytest.mark.parametrize("case", HEAD_CASES, ids=lambda c: c.key)
def test_output_head_matches_reference_in_every_framework_and_formulation(case):
    """Logits y_t = W_hy h_t + b_y and, for train, cross-entropy gradients including dW_hy and db_y."""
    weights, x, state0 = make_inputs(case)
    out = (k := backends.get(case.framework).build(case, weights, x, state0)).fetch(k.call())
    assert out.y.shape == (case.seq_len, case.batch, case.vocab)
    if case.train:
        assert {"weight_hy", "bias_y"} <= set(out.grads)
        # cross-entropy gradients are small: compare them on their own scale, not the max(1, |ref|) one
        from rnnbench.measure.verify import reference

        ref = reference(case, weights, x, state0)
        for name in ("weight_hy", "bias_y", "weight_hh_l0"):
            np.testing.assert_allclose(out.grads[name], ref.grads[name], rtol=1e-3, atol=1e-6, err_msg=name)
    check = verify_kernel(k, weights, x, state0)
    assert check.ok, (check.worst, check.max_rel_error)


def test_head_is_a_grid_axis_with_vocab_sizes():
    from rnnbench.sweep.grid import Grid, expand

    cases, _ = expand(Grid(frameworks=("jax",), heads=("none", "linear"), vocabs=(16, 64), formulations=("concat",),
                           passes=("train",), cells=("rnn",)), installed=FRAMEWORKS)  # fmt: skip
    assert {(c.head, c.vocab) for c in cases} == {("none", 0), ("linear", 16), ("linear", 64)}
    assert len({c.key for c in cases}) == len(cases)
    with pytest.raises(rnnbench.UsageError):
        Case(head="linear")  # needs a vocab size
