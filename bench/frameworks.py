"""PyTorch and TensorFlow side by side, and TF Model Optimization beside SigDL on one Keras model.

Three parts, each real work in fresh processes:

1. **Train time per epoch** of LeNet-300-100 and LeNet-5 on ``mnist5k`` (4,000 training
   digits, batch 64, SGD), in torch and in TensorFlow: one process per measurement, which
   trains one epoch (the first, which in TensorFlow traces the compiled step) and then three
   more, timed. Measured in ABBA order (torch, tensorflow, tensorflow, torch), so that a load
   that drifts over the run weighs on both frameworks alike.
2. **`sigdl run` wall time**, from start to exit of the real command: the default recipe
   (LeNet-300-100) and ``--model lenet5``, each with ``--framework torch`` and
   ``--framework tensorflow``, again in ABBA order.
3. **TF-MOT, TFLite and SigDL on the same Keras LeNet-300-100** (trained once here):
   TF-MOT 0.8.1's ``prune_low_magnitude`` (polynomial decay from 50 % to 90 % sparsity),
   fine-tuned, ``strip_pruning``, then TFLite full-integer int8; TFLite's own post-training
   full-integer int8 of the baseline; and ``sigdl compress baseline.keras --with
   prune,quant,encode -p prune.sparsity=0.9``. Bytes on disk, gzip -9 bytes, top-1 on the
   test split. TF-MOT prunes only tf_keras (Keras 2) models, under ``TF_USE_LEGACY_KERAS=1``,
   and a plain ``pip install tensorflow-model-optimization`` pulls the full ``tensorflow``
   beside ``tensorflow-cpu``; so it runs in a venv of its own that this script builds under
   /tmp (``tf_keras`` and ``tensorflow-model-optimization`` installed there with ``--no-deps``;
   TensorFlow itself is the main venv's ``tensorflow-cpu``, reached through a ``.pth`` file),
   never in the plugin's dependencies. Both fine-tune for the same number of epochs in all:
   SigDL retrains after pruning and after quantizing, TF-MOT fine-tunes once for both.

The machine is shared with other jobs: ``uptime``'s load is recorded before and after.

    .venv/bin/python bench/frameworks.py             # measure (about 15 minutes on 2 busy cores)
    .venv/bin/python bench/frameworks.py --markdown  # rewrite frameworks.md from frameworks.json
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TFMOT_VENV = Path(tempfile.gettempdir()) / "sigdl-bench-tfmot"
TFMOT_PACKAGES = ["tf_keras==2.21.0", "tensorflow-model-optimization==0.8.1", "dm-tree"]
SPARSITY = 0.9
RETRAIN_EPOCHS = 2  # SigDL: after each of prune and quant; TF-MOT: twice this, once
RETRAIN_LR = 0.01

EPOCH_SCRIPT = """
import json, sys, time
from sigdl_core.plugins import load_plugins
from sigdl_core.interfaces import TrainSettings
fw_name, arch = sys.argv[1], sys.argv[2]
registry = load_plugins().registry
data = registry.load_dataset("mnist5k", 0)
fw = registry.framework(fw_name)
model = fw.build(arch, data.input_shape, 10, seed=0)
first = fw.train(model, data, TrainSettings(epochs=1, lr=0.02, seed=0)).seconds
steady = fw.train(model, data, TrainSettings(epochs=3, lr=0.02, seed=1)).seconds / 3
print(json.dumps({"first_epoch_s": first, "epoch_s": steady, "top1": fw.evaluate(model, data).top1}))
"""


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def python_json(args: list[str], env: dict[str, str] | None = None) -> dict:
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args[:3])} … failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def abba(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """For each model, torch then tensorflow, then tensorflow then torch (ABBA)."""
    order = []
    for i, (arch, _) in enumerate(pairs):
        fws = ["torch", "tensorflow"] if i % 2 == 0 else ["tensorflow", "torch"]
        order += [(arch, fw) for fw in fws]
    return order


def epoch_times() -> list[dict]:
    rows = []
    for arch, fw in abba([("lenet300100", ""), ("lenet5", "")]) + abba([("lenet5", ""), ("lenet300100", "")]):
        rows.append({"model": arch, "framework": fw,
                     **python_json([sys.executable, "-c", EPOCH_SCRIPT, fw, arch])})
    return rows


def sigdl_run(arch: str, fw: str, folder: Path) -> dict:
    args = ["--framework", fw] + (["--model", arch] if arch != "lenet300100" else [])
    out = folder / f"run-{arch}-{fw}"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sigdl_core.cli", "run", *args, "-o", str(out), "--json", "--quiet"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"sigdl run {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    chosen = report["chosen"] or {}
    base = report["baseline"]["accuracy"]
    stage = report["stages"]
    return {"model": arch, "framework": fw, "command": "sigdl run " + " ".join(args), "exit_code": proc.returncode,
            "met": report["met"], "wall_s": round(wall, 1),
            "train_s": stage.get("train", {}).get("seconds"), "search_s": stage.get("search", {}).get("seconds"),
            "candidates": len(report["candidates"]), "ratio": chosen.get("ratio"),
            "baseline_top1": base, "chosen_top1": chosen.get("accuracy"),
            "chosen_validation_top1": chosen.get("validation_accuracy")}


def tfmot_venv() -> tuple[Path | None, str]:
    """The TF-MOT venv's python (built if missing), or None and why it could not be built."""
    python = TFMOT_VENV / "bin" / "python"
    try:
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", str(TFMOT_VENV)], check=True, capture_output=True)
            site = TFMOT_VENV / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
            main_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
            (site / "sigdl_main_venv.pth").write_text(main_site + "\n")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *TFMOT_PACKAGES],
                       check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, OSError, StopIteration) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return None, f"the TF-MOT venv could not be built here: {detail.strip().splitlines()[-1] if detail else exc}"
    return python, f"venv {TFMOT_VENV} with {', '.join(TFMOT_PACKAGES)} (--no-deps), tensorflow-cpu from the main venv"


def compression_rows(folder: Path) -> tuple[list[dict], dict]:
    import numpy as np

    from sigdl_core.plugins import load_plugins
    from sigdl_framework_tensorflow.framework import to_keras_layout
    from sigdl_framework_tensorflow.plugin import RECOMMENDED_SETTINGS

    registry = load_plugins().registry
    data = registry.load_dataset("mnist5k", 0)
    fw = registry.framework("tensorflow")
    model = fw.build("lenet300100", data.input_shape, 10, seed=0)
    fw.train(model, data, RECOMMENDED_SETTINGS["lenet300100"])
    base_top1 = fw.evaluate(model, data).top1
    keras_file = fw.save(model, folder / "baseline.keras")
    rows: list[dict] = []

    def add(method: str, path: Path, top1: float | None, note: str = "") -> None:
        raw = path.read_bytes()
        rows.append({"method": method, "file": path.name, "bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 9)),
                     "top1": top1, "drop_points": None if top1 is None else round(100 * (base_top1 - top1), 2),
                     "note": note})

    flat = fw.export_tflite(model, folder / "baseline.tflite")
    add("baseline: TFLite float32", flat, fw.evaluate_tflite(flat, data).top1, "Keras model as trained")
    ptq = fw.export_tflite(model, folder / "ptq_int8.tflite", "int8", data)
    add("TFLite post-training int8 (full integer)", ptq, fw.evaluate_tflite(ptq, data).top1,
        "256 training samples calibrate")

    python, how = tfmot_venv()
    tfmot: dict = {"venv": how}
    if python is not None:
        npz = folder / "tfmot_input.npz"
        np.savez(npz, x_train=to_keras_layout(data.x_train), y_train=data.y_train, x_test=to_keras_layout(data.x_test),
                 y_test=data.y_test, sparsity=SPARSITY, epochs=2 * RETRAIN_EPOCHS, lr=RETRAIN_LR, seed=0,
                 **{f"w:{k}": v for k, v in fw.get_weights(model).items()})
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        result = python_json([str(python), str(ROOT / "bench" / "frameworks_tfmot.py"), str(npz), str(folder)], env)
        tfmot.update(result)
        add(f"TF-MOT {result['tfmot']}: prune_low_magnitude + strip_pruning, TFLite float32",
            folder / "tfmot_float.tflite", result["tflite"]["float"]["top1"],
            f"{100 * result['kernel_zeros']:.1f} % of kernel weights zero")
        add(f"TF-MOT {result['tfmot']}: prune_low_magnitude + strip_pruning + TFLite int8",
            folder / "tfmot_int8.tflite", result["tflite"]["int8"]["top1"], "full integer, 256 samples calibrate")

    # The same weights as a torch model too (the zoo's LeNets share names and layout), as a cross-check.
    torch_fw = registry.framework("torch")
    torch_model = torch_fw.build("lenet300100", data.input_shape, 10)
    torch_fw.set_weights(torch_model, fw.get_weights(model))
    files = {"tensorflow": keras_file, "torch": torch_fw.save(torch_model, folder / "baseline.pt")}
    for name, path in files.items():
        out = folder / f"sigdl-{name}"
        command = ["compress", str(path), "--with", "prune,quant,encode", "-p", f"prune.sparsity={SPARSITY}",
                   "--dataset", "mnist5k", "--retrain-epochs", str(RETRAIN_EPOCHS), "-o", str(out), "--json", "--quiet"]
        proc = subprocess.run([sys.executable, "-m", "sigdl_core.cli", *command], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"sigdl compress failed ({proc.returncode}): {proc.stderr[-3000:]}")
        summary = json.loads((out / "summary.json").read_text())
        add(f"SigDL ({name}): sigdl compress {path.name} --with prune,quant,encode -p prune.sparsity={SPARSITY}",
            out / "model.sigdl", summary["accuracy"],
            f"{summary['ratio']:.1f}× against float32; retrain {RETRAIN_EPOCHS} epochs after each stage")
    return rows, {"baseline_top1": base_top1, "tfmot": tfmot}


def markdown(result: dict) -> str:
    lines = [f"Command: `{result['command']}` ({result['machine']}). Host {result['load_before']} before, "
             f"{result['load_after']} after (above 1 on these 2 cores, other jobs shared them and the wall "
             "times are noisy).", "",
             "### Train time per epoch (mnist5k, 4,000 digits, batch 64, SGD)", "",
             "| model | framework | first epoch | later epochs (mean of 3) | top-1 after 4 epochs |",
             "| --- | --- | --- | --- | --- |"]
    for r in result["epochs"]:
        lines.append(f"| {r['model']} | {r['framework']} | {r['first_epoch_s']:.2f} s | {r['epoch_s']:.2f} s | "
                     f"{100 * r['top1']:.1f} % |")
    lines += ["", "ABBA order: each model measured torch, tensorflow, tensorflow, torch across the run. "
              "The first epoch includes TensorFlow's tracing of the compiled step and torch's first-use costs.", "",
              "### `sigdl run` wall time (start to exit)", "",
              "| command | exit | wall | baseline training | search | candidates | chosen ratio | top-1 test (baseline → chosen) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["runs"]:
        chosen = "—" if r["chosen_top1"] is None else f"{100 * r['chosen_top1']:.1f} %"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.1f}×"
        lines.append(f"| `{r['command']}` | {r['exit_code']} | {r['wall_s']:.0f} s | {r['train_s']:.1f} s | {r['search_s']:.0f} s "
                     f"| {r['candidates']} | {ratio} | {100 * r['baseline_top1']:.1f} % → {chosen} |")
    lines += ["", "Each run is the built-in default recipe (validation split 0.1 decides; the test split reports), "
              "with the model's own training defaults; the search may stop earlier in one framework than the other.", "",
              "### The same Keras LeNet-300-100: TF-MOT, TFLite and SigDL", "",
              f"Baseline top-1 {100 * result['compression']['baseline_top1']:.1f} % (test split, 1,000 digits). "
              f"TF-MOT: {result['compression']['tfmot']['venv']}.", "",
              "| method | bytes on disk | gzip -9 bytes | top-1 | drop | note |", "| --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        top1 = "—" if r["top1"] is None else f"{100 * r['top1']:.1f} %"
        drop = "—" if r["drop_points"] is None else f"{r['drop_points']:.1f} pt"
        lines.append(f"| {r['method']} | {r['bytes']:,} | {r['gzip_bytes']:,} | {top1} | {drop} | {r['note']} |")
    lines += ["", "For scale (issue 9): PyTorch's own tools and NNCF on LeNet-300-100 measured 273 KB on disk (3.9×) "
              "and about 31–39 KB gzipped, 0.4–1.4 points below baseline."]
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1:] == ["--markdown"]:  # rewrite the .md from the recorded .json
        (RESULTS / "frameworks.md").write_text(markdown(json.loads((RESULTS / "frameworks.json").read_text())))
        return
    before = load()
    with tempfile.TemporaryDirectory(prefix="sigdl-bench-frameworks-") as tmp:
        folder = Path(tmp)
        epochs = epoch_times()
        runs = [sigdl_run(arch, fw, folder) for arch, fw in abba([("lenet300100", ""), ("lenet5", "")])]
        rows, compression = compression_rows(folder)
    machine = f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    result = {"command": ".venv/bin/python bench/frameworks.py", "machine": machine, "load_before": before,
              "load_after": load(), "epochs": epochs, "runs": runs, "rows": rows, "compression": compression}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frameworks.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "frameworks.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
