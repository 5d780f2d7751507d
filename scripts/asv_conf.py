"""Write a copy of the repository's asv.conf.json with some keys replaced (the nightly scripts' results/html folders).

    python scripts/asv_conf.py OUT.json results_dir=/abs/dir html_dir=/abs/html branches=main,HEAD

Relative paths in the committed config (repo, benchmark_dir) are made absolute,
so the copy can live anywhere. List-valued keys (branches) take a comma list.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTS = {"branches", "pythons"}


def main(argv: list[str]) -> int:
    if not argv or any("=" not in a for a in argv[1:]):
        print("usage: asv_conf.py OUT.json KEY=VALUE...", file=sys.stderr)
        return 2
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    conf["repo"] = str(ROOT)
    conf["benchmark_dir"] = str(ROOT / conf["benchmark_dir"])
    for item in argv[1:]:
        key, value = item.split("=", 1)
        conf[key] = [v for v in value.split(",") if v] if key in LISTS else value
    Path(argv[0]).parent.mkdir(parents=True, exist_ok=True)
    Path(argv[0]).write_text(json.dumps(conf, indent=4) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
