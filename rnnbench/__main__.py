"""`python -m rnnbench` runs the CLI."""

import sys

try:
    from rnnbench.cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI is still importing: the same one line as later
    print("rnnbench: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
