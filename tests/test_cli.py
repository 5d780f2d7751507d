"""`rnnbench verify` as a person runs it: exit codes, one-line errors, no tracebacks.

Bad arguments to every command are tests/test_bad_input.py's table (in-process, plus one line through
`python -m rnnbench`).
"""

from __future__ import annotations

import os
import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rnnbench", *args], capture_output=True, text=True, timeout=600)


def test_verify_numpy_passes():
    p = run("verify", "--framework", "numpy", "--cell", "gru*")
    assert p.returncode == 0, p.stderr
    assert " 0 failed" in p.stdout
    assert "gru[take_new,before]" in p.stdout


def test_verify_counts_a_build_time_unsupported_once(monkeypatch, capsys):
    """A case the backend refuses only when building it is 'not applicable', not also 'passed'."""
    from rnnbench import backends
    from rnnbench.cli.verify import verify_grid
    from rnnbench.errors import Unsupported
    from rnnbench.sweep.grid import Grid

    numpy_backend = type(backends.get("numpy"))
    build = numpy_backend._build

    def refuse_concat(self, case, *args):
        if case.formulation == "concat":
            raise Unsupported("concat refused at build time (test)")
        return build(self, case, *args)

    monkeypatch.setattr(numpy_backend, "_build", refuse_concat)
    grid = Grid(frameworks=("numpy",), cells=("rnn", "lstm"), formulations=("separate", "concat", "hoisted"),
                passes=("forward",), shapes=((2, 3, 4, 5),))  # fmt: skip
    assert verify_grid(grid) == 0
    assert "4 passed, 0 failed, 2 not applicable (numpy)" in capsys.readouterr().out


def test_a_closed_stdout_is_not_a_traceback():
    """`rnnbench env | head -0`: the reader is gone before anything is written."""
    p = subprocess.Popen([sys.executable, "-m", "rnnbench", "env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert p.returncode == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_ctrl_c_during_the_cli_import_is_one_line(tmp_path):
    """A KeyboardInterrupt raised while `python -m rnnbench` imports the CLI prints the usual line."""
    hook = tmp_path / "sitecustomize.py"
    hook.write_text(
        "import builtins\n"
        "real = builtins.__import__\n"
        "def interrupting(name, *a, **k):\n"
        "    if name == 'rnnbench.cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = interrupting\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "rnnbench", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 130
    assert p.stderr.strip() == "rnnbench: interrupted"
