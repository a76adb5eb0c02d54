"""How fast `sigdl --help` and `sigdl plugins` answer, against `python -c pass`.

Each command runs REPEATS times as a fresh process; the median wall time is reported. A
second pass runs each under `python -X importtime` and records whether torch, tensorflow or
onnxruntime were imported (they must not be: plugin hook modules import nothing heavy).

    .venv/bin/python bench/cli_startup.py
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 15
HEAVY = ("torch", "tensorflow", "onnxruntime")
RESULTS = Path(__file__).parent / "results"

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "sigdl --help": [sys.executable, "-m", "sigdl_core.cli", "--help"],
    "sigdl plugins": [sys.executable, "-m", "sigdl_core.cli", "plugins"],
}


def median_seconds(cmd: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_imports(cmd: list[str]) -> list[str]:
    out = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, check=True)
    names = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


def main() -> None:
    rows = []
    base = None
    for name, cmd in COMMANDS.items():
        seconds = median_seconds(cmd)
        base = seconds if base is None else base
        rows.append({"command": name, "median_s": round(seconds, 4), "over_python_s": round(seconds - base, 4),
                     "heavy_imports": heavy_imports(cmd) if name != "python -c pass" else []})
    plugins = json.loads(subprocess.run([sys.executable, "-m", "sigdl_core.cli", "plugins", "--json"],
                                        capture_output=True, text=True, check=True).stdout)["plugins"]
    result = {"machine": f"{platform.machine()} {platform.system()}, {__import__('os').cpu_count()} cores",
              "python": platform.python_version(), "repeats": REPEATS,
              "plugins_installed": len(plugins), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_startup.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| command | median wall time | over `python -c pass` | torch/tensorflow/onnxruntime imported |",
             "| --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['command']}` | {1000 * r['median_s']:.0f} ms | {1000 * r['over_python_s']:.0f} ms | "
                     f"{', '.join(r['heavy_imports']) or 'none'} |")
    md = (f"Command: `.venv/bin/python bench/cli_startup.py` ({REPEATS} runs each, median; "
          f"{len(plugins)} plugins installed; {result['machine']}, Python {result['python']}).\n\n" + "\n".join(lines) + "\n")
    (RESULTS / "cli_startup.md").write_text(md)
    print(md)
    if any(r["heavy_imports"] for r in rows):
        sys.exit("a heavy library was imported at start-up")


if __name__ == "__main__":
    main()
