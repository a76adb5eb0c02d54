"""Calibration of the target emulators against published batch-1 latencies.

For each row of the issue's table the network is built as an ONNX file
(``bench/emulation_models.py``, synthetic weights), handed to the installed emulator
through the plugin registry exactly as ``sigdl test --target`` does, and the predicted
batch-1 latency is compared with the published figure. The emulators are used unchanged:
this script fits nothing unless ``--fit`` is given, and then only prints what a refit of
the Jetson's two fitted constants would give.

Rows:

* Jetson TX2 (NVIDIA-AI-IOT/tf_to_trt_image_classification README, TensorRT 3, JetPack 3.2):
  the issue's six rows (GoogLeNet, ResNet-50 v1, Inception v3 × FP16/FP32) are the
  calibration set; twelve further rows of the same table (ResNet-101/152 v1, VGG-16 and
  MobileNet v1 1.0/224, 0.5/160, 0.25/128 × FP16/FP32) are a **hold-out** set the constants
  were not fitted to.
* Movidius NCS (MA2450) MobileNet v1 224 FP16 ≈ 38 ms, and TI AM5749 (one C66x at 750 MHz)
  JacintoNet11 v2 8-bit 117.9 ms: predicted by the ``target_movidius`` / ``target_c66x``
  plugins when installed (built by another engineer); otherwise the rows say so.
* Atom: no published figures. The Atom emulator executes each network on the host under
  the Atom's limits and scales it; its roofline cross-check is shown beside it (not a
  calibration: a consistency check of two independent estimates).

Usage::

    .venv/bin/python bench/emulation_calibration.py            # all rows, writes results
    .venv/bin/python bench/emulation_calibration.py --fit      # also refit TX2 constants
    .venv/bin/python bench/emulation_calibration.py --no-atom  # skip the executed Atom rows

Writes ``bench/results/emulation_calibration.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, os.fspath(HERE))

from emulation_models import MODELS  # noqa: E402

from sigdl_core.files import atomic_write_json, atomic_write_text  # noqa: E402
from sigdl_core.plugins import load_plugins  # noqa: E402

TRT = "NVIDIA-AI-IOT/tf_to_trt_image_classification README (TensorRT 3.0, JetPack 3.2)"

#: (board, target, model, precision, published ms, source, set, tolerance)
ROWS: list[tuple[str, str, str, str, float, str, str, float]] = [
    ("Jetson TX2", "jetson-tx2", "inception_v1", "fp16", 7.98, TRT, "calibration", 0.25),
    ("Jetson TX2", "jetson-tx2", "inception_v1", "fp32", 12.8, TRT, "calibration", 0.25),
    ("Jetson TX2", "jetson-tx2", "resnet_v1_50", "fp16", 15.7, TRT, "calibration", 0.25),
    ("Jetson TX2", "jetson-tx2", "resnet_v1_50", "fp32", 27.1, TRT, "calibration", 0.25),
    ("Jetson TX2", "jetson-tx2", "inception_v3", "fp16", 26.3, TRT, "calibration", 0.25),
    ("Jetson TX2", "jetson-tx2", "inception_v3", "fp32", 46.1, TRT, "calibration", 0.25),
    ("Movidius NCS (MA2450)", "movidius-ma2450", "mobilenet_v1_1p0_224", "fp16", 38.0,
     "forum report (treat as ±30 %)", "calibration", 0.25),
    ("TI AM5749, one C66x at 750 MHz", "c66x-am5749", "jacintonet11_v2", "int8", 117.9,
     "TI TIDL API documentation (example.rst)", "calibration", 0.25),
    # hold-out: same NVIDIA table, not used to set any constant
    ("Jetson TX2", "jetson-tx2", "resnet_v1_101", "fp16", 29.9, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "resnet_v1_101", "fp32", 51.8, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "resnet_v1_152", "fp16", 42.6, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "resnet_v1_152", "fp32", 78.2, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "vgg16", "fp16", 38.2, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "vgg16", "fp32", 79.2, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "mobilenet_v1_1p0_224", "fp16", 12.9, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "mobilenet_v1_1p0_224", "fp32", 12.9, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "mobilenet_v1_0p5_160", "fp16", 3.95, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "mobilenet_v1_0p5_160", "fp32", 4.00, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "mobilenet_v1_0p25_128", "fp16", 2.67, TRT, "hold-out", 0.25),
    ("Jetson TX2", "jetson-tx2", "mobilenet_v1_0p25_128", "fp32", 2.65, TRT, "hold-out", 0.25),
]

ATOM_MODELS = ("jacintonet11_v2", "mobilenet_v1_1p0_224", "inception_v1", "resnet_v1_50")

MACHINE = "2-core CI-class x86 VM (Intel Xeon @ 2.50GHz, KVM), shared with other jobs while measured"


def _options_for(target: str, precision: str) -> dict:
    if target.startswith("jetson"):
        return {"precision": precision, "use_gpu": False}
    if target == "c66x-am5749":
        return {"cores": 1}  # the published figure runs on one of the AM5749's two C66x
    return {}


def _build(name: str, folder: Path, cache: dict[str, Path]) -> Path:
    if name not in cache:
        path = folder / f"{name}.onnx"
        onnx.save(MODELS[name][0](), os.fspath(path))
        cache[name] = path
    return cache[name]


def run(fit: bool, atom: bool, keep: Path | None) -> dict:
    plugins = load_plugins(tolerate_conflicts=True)
    reg = plugins.registry
    targets = set(reg.names("target"))
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="sigdl-calib-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        cache: dict[str, Path] = {}
        for board, target, model, precision, published, source, kind, tol in ROWS:
            row = {"board": board, "target": target, "model": model,
                   "description": MODELS[model][1], "precision": precision,
                   "published_ms": published, "source": source, "set": kind}
            if target not in targets:
                row.update(predicted_ms=None, error=None, within=None,
                           note=f"target '{target}' not installed (plugin built by another engineer)")
                rows_out.append(row)
                print(f"{board:32s} {model:24s} {precision:5s} published {published:7.2f} ms: not installed")
                continue
            spec = reg.get("target", target)
            path = _build(model, folder, cache)
            t0 = time.perf_counter()
            try:
                report = reg.emulator(spec.emulator).emulate(path, spec, None, _options_for(target, precision))
            except Exception as exc:  # a failing emulator is a row, not a crash of the bench
                row.update(predicted_ms=None, error=None, within=None,
                           note=f"emulator failed: {type(exc).__name__}: {exc}")
                rows_out.append(row)
                print(f"{board:32s} {model:24s} {precision:5s}: FAILED {exc}")
                continue
            pred = report.latency_ms_p50
            err = pred / published - 1 if pred else None
            row.update(
                predicted_ms=pred, error=err,
                within=(abs(err) <= tol) if err is not None else None,
                method=report.provenance["latency_ms_p50"].method.value if pred else None,
                seconds=time.perf_counter() - t0,
                macs=report.extra.get("cost", {}).get("macs"),
            )
            rows_out.append(row)
            print(f"{board:32s} {model:24s} {precision:5s} published {published:7.2f} ms "
                  f"predicted {pred:7.2f} ms  error {err:+.1%}")

        atom_rows = []
        if atom and "atom-x5-e3930" in targets:
            spec = reg.get("target", "atom-x5-e3930")
            emu = reg.emulator(spec.emulator)
            for model in ATOM_MODELS:
                path = _build(model, folder, cache)
                rep = emu.emulate(path, spec, None, {"batch_sizes": [1], "repeats": 30,
                                                     "max_seconds": 30})
                cc = rep.extra.get("cross_check", {})
                cal = rep.extra.get("calibration", {})
                atom_rows.append({
                    "model": model, "executed_scaled_ms": rep.latency_ms_p50,
                    "roofline_ms": cc.get("roofline_ms"), "ratio": cc.get("ratio"),
                    "host_ms": rep.extra.get("execution", {}).get("latency_ms_p50"),
                    "factor": cal.get("factor"), "host_gflops": cal.get("host_gflops"),
                    "fits": rep.fits, "power_w": rep.power_w, "warnings": rep.warnings,
                    "flops": rep.extra.get("cost", {}).get("flops"),
                })
                print(f"atom-x5-e3930 {model:24s} executed+scaled {rep.latency_ms_p50:8.2f} ms, "
                      f"roofline {cc.get('roofline_ms', float('nan')):8.2f} ms")

    refit = _refit() if fit else None
    return {"rows": rows_out, "atom": atom_rows, "refit": refit}


def _refit() -> dict:
    """Refits the TX2's conv efficiency and per-call overhead on the six calibration rows."""
    import numpy as np
    from scipy.optimize import minimize
    from sigdl_target_jetson.emulator import CALIBRATION, predict_latency_ms
    from sigdl_target_jetson import emulator as jet

    from sigdl_core.emulation import analyze_model

    rows = [r for r in ROWS if r[1] == "jetson-tx2" and r[6] == "calibration"]
    costs = {r[2]: analyze_model(MODELS[r[2]][0]()) for r in rows}

    def loss(z: np.ndarray) -> float:
        eff, overhead_ms = float(z[0]), float(z[1])
        if not (0.05 < eff <= 1 and overhead_ms >= 0):
            return 1e9
        saved = dict(jet.CALIBRATION)
        jet.CALIBRATION.update(conv_efficiency=eff, per_inference_overhead_s=overhead_ms * 1e-3)
        try:
            return float(sum(math.log(predict_latency_ms(costs[m], p) / pub) ** 2
                             for _, _, m, p, pub, *_ in rows))
        finally:
            jet.CALIBRATION.clear()
            jet.CALIBRATION.update(saved)

    r = minimize(loss, np.array([CALIBRATION["conv_efficiency"],
                                 CALIBRATION["per_inference_overhead_s"] * 1e3]),
                 method="Nelder-Mead")
    out = {"conv_efficiency": float(r.x[0]), "per_inference_overhead_ms": float(r.x[1]),
           "rms_log_error": math.sqrt(float(r.fun) / len(rows)),
           "in_use": {"conv_efficiency": CALIBRATION["conv_efficiency"],
                      "per_inference_overhead_ms": CALIBRATION["per_inference_overhead_s"] * 1e3}}
    print("refit:", out)
    return out


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def write(results: dict, command: str) -> None:
    out_dir = HERE / "results"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = {**results, "command": command, "machine": MACHINE, "date": stamp,
               "python": platform.python_version()}
    atomic_write_json(out_dir / "emulation_calibration.json", results)

    lines = ["## Emulator calibration against published batch-1 latencies", "",
             f"Command: `{command}`  ", f"Machine: {MACHINE}; {stamp}.  ",
             "Graphs: ONNX built by `bench/emulation_models.py` (synthetic weights; TF-slim "
             "definitions for the NVIDIA rows). Predictions come from the installed emulators, "
             "unchanged, through the plugin registry.", "",
             "| board | model | format | published ms | predicted ms | error | within ±25 % | set | source |",
             "| --- | --- | --- | ---: | ---: | ---: | :---: | --- | --- |"]
    for r in results["rows"]:
        within = {True: "yes", False: "**no**", None: "—"}[r["within"]]
        pred = _fmt(r["predicted_ms"], ".2f")
        err = _fmt(r["error"], "+.1%")
        if r.get("note"):
            pred, err = pred, f"— ({r['note']})"
        lines.append(f"| {r['board']} | {r['description']} | {r['precision'].upper()} | "
                     f"{r['published_ms']:.2f} | {pred} | {err} | {within} | {r['set']} | {r['source']} |")
    lines += ["", "The Movidius and C66x rows are predicted by the `target_movidius` and "
              "`target_c66x` plugins (built by another engineer), called unchanged; the C66x row "
              "runs the `c66x-am5749` target with `cores=1`."]
    done = [r for r in results["rows"] if r["error"] is not None]
    for kind in ("calibration", "hold-out"):
        sel = [r for r in done if r["set"] == kind]
        if sel:
            worst = max(abs(r["error"]) for r in sel)
            rms = math.sqrt(sum(r["error"] ** 2 for r in sel) / len(sel))
            lines.append("")
            lines.append(f"{kind}: {sum(1 for r in sel if r['within'])}/{len(sel)} rows within ±25 %; "
                         f"worst |error| {worst:.1%}, RMS {rms:.1%}.")
    if results.get("refit"):
        f = results["refit"]
        lines += ["", f"Refit of the TX2's two fitted constants on the six calibration rows "
                      f"(`--fit`): conv efficiency {f['conv_efficiency']:.3f}, per-call overhead "
                      f"{f['per_inference_overhead_ms']:.2f} ms (in use: "
                      f"{f['in_use']['conv_efficiency']:.2f}, {f['in_use']['per_inference_overhead_ms']:.2f} ms); "
                      f"RMS log error {f['rms_log_error']:.3f}."]
    lines += ["", "TX2 constants (one set for every model; reasons in "
              "`plugins/target_jetson/sigdl_target_jetson/emulator.py`): conv efficiency 0.51 and "
              "per-call overhead 0.9 ms fitted on the six calibration rows; Winograd speed-up 1.5 "
              "for 3×3 stride-1 convs, occupancy half-point 24,576 outputs (2 SMs × 2048 threads × "
              "~6 outputs), FP16 efficiency 0.9, depthwise efficiency 0.01 (TensorRT 3 had no "
              "depthwise kernel; no FP16 gain), 80 % of LPDDR4 bandwidth, 10 µs per kernel, "
              "TensorRT's conv+BN+ReLU fusion and concat elimination — set from reasoning, not fitted. "
              "The published figures are taken as Max-N (the README does not state the mode)."]
    if results.get("atom"):
        lines += ["", "### Atom x5-E3930 (no published figures): executed and scaled vs roofline", "",
                  "The Atom emulator executes the network with onnxruntime on the host, pinned to "
                  "2 cores with an 8 GB address-space limit, in alternation (ABBA pairs) with a "
                  "reference 3×3 conv (64→64 at 56², 0.23 GFLOP) on the same cores; the Atom time "
                  "is the median model/reference time ratio × the reference's FLOPs over the Atom's "
                  "2 cores × 8 FLOP/cycle × 1.3 GHz × 0.70 (Goldmont: one 128-bit MULPS + one "
                  "128-bit ADDPS per cycle, no FMA; 0.70 assumed for a blocked SSE kernel). "
                  "'factor' is Atom time over host time. The roofline "
                  "column is the independent analytical estimate (19.2 GB/s LPDDR4-2400); the "
                  "emulator warns when they differ by more than 2×.", "",
                  "| model | host ms (2 cores) | host GFLOP/s: reference conv | host GFLOP/s: whole model | factor | Atom executed+scaled ms | Atom roofline ms | ratio |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for a in results["atom"]:
            lines.append(f"| {MODELS[a['model']][1]} | {_fmt(a['host_ms'], '.2f')} | "
                         f"{_fmt(a['host_gflops'], '.1f')} | "
                         f"{_fmt(a['flops'] / a['host_ms'] / 1e6 if a.get('flops') and a.get('host_ms') else None, '.1f')} | "
                         f"{_fmt(a['factor'], '.2f')} | "
                         f"{_fmt(a['executed_scaled_ms'], '.1f')} | {_fmt(a['roofline_ms'], '.1f')} | "
                         f"{_fmt(a['ratio'], '.2f')} |")
        lines += ["", "Reading: the two columns are independent estimates. The executed path keeps "
                  "each network's time relative to the reference layer as measured on the host "
                  "(its small late layers, 1×1 convs and per-node dispatch included); the roofline "
                  "lets every convolution reach 70 % of the Atom's peak and charges memory traffic "
                  "at 19.2 GB/s. Their ratio is a consistency check, not a validation: no Atom "
                  "measurement was available. (Timing the reference layer in a separate run, as a "
                  "first version did, let contention on this busy 2-core VM swing the factor 3× "
                  "between runs. With back-to-back pairs, two runs in a row agree within ±5 %; "
                  "between a quiet and a busy moment of the VM the Atom figure still moved by "
                  "about 25 % (ResNet-50: 398 ms quiet, 505–508 ms busy), because contention "
                  "slows multi-threaded small layers more than the reference layer.)",
                  "", "Host timings are noisy: other jobs shared the VM's two cores while measured."]
    atomic_write_text(out_dir / "emulation_calibration.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit", action="store_true", help="also refit the TX2's two fitted constants")
    ap.add_argument("--no-atom", action="store_true", help="skip the executed Atom rows")
    ap.add_argument("--keep", type=Path, help="keep the ONNX graphs in this folder")
    ap.add_argument("--rewrite", action="store_true",
                    help="only re-render the Markdown from the last JSON results")
    args = ap.parse_args(argv)
    if args.rewrite:
        import json

        last = json.loads((HERE / "results" / "emulation_calibration.json").read_text())
        write({k: last[k] for k in ("rows", "atom", "refit")}, last["command"])
        return 0
    command = ".venv/bin/python bench/emulation_calibration.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    results = run(args.fit, not args.no_atom, args.keep)
    write(results, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
