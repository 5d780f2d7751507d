"""`python -m rnnbench` runs the CLI."""

import sys

try:
    from rnnbench.cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI is still importing: the same one line as later
    print("rnnbench: interrupted", file=sys.stderr)
    sys.exit(130)

code = main()
if code == 130:
    # interrupted: the one line is printed and the workers are gone; a second Ctrl-C while the
    # interpreter shuts down (its handlers reset) must not turn exit 130 into death by SIGINT
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
