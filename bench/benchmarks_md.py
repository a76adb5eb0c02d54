"""Writes BENCHMARKS.md from the fragments the benchmarks left in bench/results/.

Every figure in BENCHMARKS.md comes from a benchmark's own results file, with the command
that produced it; nothing is typed in by hand. `make bench` runs this last.

    .venv/bin/python bench/benchmarks_md.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

SECTIONS = [
    ("Deep Compression: LeNet-300-100 and LeNet-5 (issue 3)", "deep_compression",
     "Tables 2 and 3 of Han, Mao & Dally (ICLR 2016) reproduced on `mnist5k`, ours beside the paper's."),
    ("The loop: `sigdl run` (issues 5 and 13)", "loop",
     "The default run (LeNet-300-100) and `--model lenet5` on seeds 0-2, each a real `sigdl run` process; "
     "decisions on the validation split, the test split reported."),
    ("Emulator calibration against published measurements (issues 4 and 14)", "emulation_calibration",
     "Every prediction against a published measurement, per board, with the constants each row set; "
     "one set of constants per board and software generation."),
    ("ARM CPUs against ncnn's benchncnn (issue 11)", "arm_calibration",
     "Fitted to the Raspberry Pi 4B rows only; the other boards' rows are held-out judgement."),
    ("PyTorch and TensorFlow side by side; TF-MOT beside SigDL (issue 9)", "frameworks",
     "Train time per epoch and `sigdl run` wall time in both frameworks, and TF Model Optimization, "
     "TFLite int8 and SigDL on the same Keras LeNet-300-100."),
    ("Sparse fully connected layers at batch 1 (issue 3)", "sparse_fc",
     "The sparse inference path (`SparseLinear`) against dense torch at Deep Compression's densities."),
    ("Whole-model inference: sparse and thinned models (issue 3)", "model_inference", ""),
    ("Frequency-domain methods: FFT convolution, block-circulant FC, circulant and freq-prune (issue 8)", "fft",
     "Tiled FFT convolution and circulant FC layers against torch's direct paths; what `circulant` and "
     "`freq-prune` compress on `mnist5k` beside Deep Compression at the same retraining budget."),
    ("Acceleration: data-parallel training and the search on executors (issue 10)", "acceleration",
     "Training samples/s with 1 and 2 DDP workers (one thread each), and the search of a `sigdl run` with "
     "`--jobs 1`, `--jobs 2` and a Dask LocalCluster of 2 workers."),
    ("Coding speed and the entropy bound (issue 3)", "quant_coding_speed", ""),
    ("CLI start-up (issue 2)", "cli_startup",
     "`sigdl --help` and `sigdl plugins` must answer at once and import no heavy library."),
]


def demote(markdown: str) -> str:
    """Fragments' own headings sit one level below the section's."""
    out = []
    for line in markdown.splitlines():
        if line.startswith("#"):
            line = "#" + line if not line.startswith("####") else line
        out.append(line)
    return "\n".join(out).strip()


def main() -> None:
    parts = ["# SigDL benchmarks", "",
             "Written by `bench/benchmarks_md.py` from `bench/results/*.md`; each section says the "
             "command that produced it and the machine it ran on. Regenerate everything with `make bench`.",
             "The machine is the project's 2-core, 24 GiB x86 VM (no GPU). Timings marked as taken on a "
             "shared machine were measured while other jobs ran on its two cores: read them as noisy."]
    missing = []
    for title, name, intro in SECTIONS:
        fragment = RESULTS / f"{name}.md"
        parts += ["", f"## {title}", ""]
        if intro:
            parts += [intro, ""]
        if fragment.is_file():
            parts.append(demote(fragment.read_text(encoding="utf-8")))
        else:
            parts.append(f"Not yet measured: run `.venv/bin/python bench/{name}.py`.")
            missing.append(name)
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts) + "\n", encoding="utf-8")
    print(f"wrote BENCHMARKS.md ({len(SECTIONS) - len(missing)} sections measured"
          + (f"; missing: {', '.join(missing)}" if missing else "") + ")")


if __name__ == "__main__":
    main()
