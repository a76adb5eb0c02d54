"""The compression search: the most compressed model that stays within the budget.

Trying every combination of per-layer settings is hopeless (8 bit widths and 10 sparsities
for 16 layers is 80^16 models), so the search walks three short, ordered phases, each
candidate compressed, retrained, tested, encoded and re-tested on every target:

1. **Sensitivity** (no retraining, cheap): each prunable layer alone is pruned to each
   sparsity of ``search.sensitivity`` and the model tested. A layer's *cap* ``c`` is the
   highest sparsity that costs at most half of the allowed accuracy drop.
2. **Strength**: one scalar ``t`` sets every layer's sparsity to ``1 - (1 - c)^t``: ``t = 1``
   is the sensitivity caps, larger ``t`` prunes every layer harder, robust layers most in
   absolute terms, while keeping each layer's density in proportion to its sensitivity.
   The search brackets the largest ``t`` whose retrained model keeps the accuracy
   (doubling or halving from 1), then bisects ``bisection_steps`` times.
3. **Bits**: at that strength, layer by layer from the largest, a binary search for the
   fewest bits per weight (down to ``min_bits``) that keep the accuracy.

Phases 2 and 3 decide on accuracy alone, since it is what compression strength trades
against; the final choice applies the whole budget (speed, size, power on every target):
the candidate with the highest ratio that meets it, or, when none does, the best one found
(keeping the accuracy first, then the highest ratio), with the limits it misses and by how
much. The search is deterministic given the results it sees, and every candidate is looked
up in the :class:`~sigdl_core.runstore.RunStore` before it is computed: a resumed run
replays the same path and recomputes only what is missing.

The search speaks to compressors by their role (:data:`~sigdl_core.interfaces.COMPRESSOR_ROLES`):
a ``prune`` compressor takes ``sparsity`` as layer → fraction, a ``quantize`` one ``layers`` as
layer → bits.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import Budget
from .errors import BadInputError
from .interfaces import COMPRESSIBLE_KINDS, Accuracy, ArrayDataset, Framework, Model, TargetSpec
from .plugins import LoadedPlugins
from .recipe import Recipe
from .runstore import RunStore, settings_key

#: Bits the search starts from, per layer kind (Deep Compression's: 8 conv, 5 fc).
START_BITS = {"conv": 8, "depthwise": 8, "fc": 5}
#: Largest strength tried: density d^t with t = 4 turns a 10 % density into 0.01 %.
MAX_STRENGTH = 4.0


class SearchStopped(Exception):
    """The candidate or time limit was reached; the search keeps what it has."""


@dataclass
class Workbench:
    """What every candidate needs: the framework, the model, the data and the baseline."""

    plugins: LoadedPlugins
    framework: Framework
    model: Model
    data: ArrayDataset
    recipe: Recipe
    store: RunStore
    baseline_weights: dict[str, Any]
    kinds: dict[str, str]
    baseline_top1: float | None
    targets: list[TargetSpec]
    budget: Budget
    observer: Any
    new_data: ArrayDataset | None = None
    train_data: ArrayDataset | None = None
    started: float = field(default_factory=time.perf_counter)
    tried: int = 0
    _groups: Any = None

    # ------------------------------------------------------------------ pieces

    def accuracy_of(self, weights: Mapping[str, Any]) -> Accuracy | None:
        if self.data.timing_only:
            return None
        self.framework.set_weights(self.model, weights)
        return self.framework.evaluate(self.model, self.data, "test")

    def retrain(self, weights: dict[str, Any], projection: Any) -> dict[str, Any]:
        self.framework.set_weights(self.model, weights)
        settings = self.recipe.retrain_settings()
        # post-training mode: a framework that cannot train this model compresses without retraining
        if settings.epochs > 0 and not self.data.timing_only and self.framework.training_unavailable(self.model) is None:
            self.framework.train(self.model, self.train_data or self.data, settings, projection=projection,
                                 progress=self.observer.progress)
        return self.framework.get_weights(self.model)

    def emulate(self, onnx_path: Path) -> dict[str, dict[str, Any]]:
        registry = self.plugins.registry
        out = {}
        for spec in self.targets:
            report = registry.emulator(spec.emulator).emulate(onnx_path, spec, self.data, {})
            out[spec.name] = target_record(report)
        return out

    def accuracy_ok(self, record: Mapping[str, Any]) -> bool:
        if self.baseline_top1 is None or record.get("accuracy") is None:
            return True
        return record["accuracy"] >= self.budget.accuracy_floor(self.baseline_top1) - 1e-12

    def check_limits(self) -> None:
        limits = self.recipe.limits
        if self.tried >= limits["max_candidates"]:
            raise SearchStopped(f"the limit of {limits['max_candidates']} candidates was reached")
        if limits["max_seconds"] is not None and time.perf_counter() - self.started > limits["max_seconds"]:
            raise SearchStopped(f"the limit of {limits['max_seconds']} s was reached")

    # ------------------------------------------------------------------ one candidate

    def candidate(self, chain: Sequence[tuple[str, Mapping[str, Any]]], phase: str, note: str = "") -> dict[str, Any]:
        """Compresses, retrains, tests, encodes and re-tests one setting; memoized by the store."""
        from .artifact import write_artifact
        from .compression import build_artifact_layers, chain_compressors, summary

        settings = [[name, _plain(params)] for name, params in chain]
        key = settings_key({"chain": settings, "retrain": self.recipe.compress["retrain"],
                            "targets": [t.name for t in self.targets], "seed": self.recipe.seed})
        cached = self.store.lookup(key)
        if cached is not None:
            cached = self.rechecked(cached)
            self.tried += 1
            self.observer.candidate_finished(cached, cached=True)
            return cached
        self.check_limits()
        self.tried += 1
        index = self.store.next_index()
        start = time.perf_counter()
        self.observer.stage_started("compress", {"candidate": index, "phase": phase})
        self.plugins.hook.sigdl_stage_started(stage="compress", run_dir=self.store.run_dir,
                                              info={"candidate": index, "phase": phase, "chain": settings})
        result = chain_compressors(self.plugins.registry, self.baseline_weights, self.kinds,
                                   self.with_runtime_params(chain), retrain=self.retrain)
        accuracy = self.accuracy_of(result.weights)
        new_acc = None
        if self.new_data is not None:
            new_acc = self.framework.evaluate(self.model, self.new_data, "test").top1
        layers = build_artifact_layers(result, result.weights, self.kinds)
        artifact = self.store.artifact_path(index)
        write_artifact(artifact, layers, {"model": self.model.architecture, "framework": self.framework.name,
                                          "input_shape": list(self.model.input_shape),
                                          "num_classes": self.model.num_classes, "candidate": index})
        figures = summary(layers, artifact, self.baseline_weights)
        record: dict[str, Any] = {
            "index": index, "key": key, "phase": phase, "note": note, "settings": settings,
            "accuracy": accuracy.top1 if accuracy else None, "top5": accuracy.top5 if accuracy else None,
            "new_data_accuracy": new_acc,
            "artifact": str(artifact.relative_to(self.store.run_dir)),
            "artifact_bytes": figures["artifact_bytes"], "original_bytes": figures["original_bytes"],
            "ratio": figures["ratio"],
            "layers": {n: _layer_figures(v) for n, v in figures["layers"].items()
                       if self.kinds.get(n) in COMPRESSIBLE_KINDS},
        }
        if self.accuracy_ok(record):
            self.framework.set_weights(self.model, result.weights)
            with tempfile.TemporaryDirectory(prefix="sigdl-cand-") as tmp:
                onnx_path = self.framework.export_onnx(self.model, Path(tmp) / "model.onnx")
                record["targets"] = self.emulate(onnx_path)
            record["emulated"] = True
        else:
            record["targets"] = {}
            record["emulated"] = False
        record["seconds"] = round(time.perf_counter() - start, 3)
        record = self.rechecked(record)
        self.store.add(record)
        self.plugins.hook.sigdl_stage_finished(stage="compress", run_dir=self.store.run_dir,
                                               result=_brief(record))
        self.observer.stage_finished("compress", {"seconds": record["seconds"]})
        self.observer.candidate_finished(record, cached=False)
        return record

    def with_runtime_params(self, chain: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
        """The chain with what only the loop can give: the model's channel groups to
        compressors that take them, and its retraining to a gradual (AGP) pruner.

        Added after the candidate's key is computed: they are not settings.
        """
        out = []
        for name, params in chain:
            documented = self.plugins.registry.get("compressor", name).params
            if "channel_groups" in documented and "channel_groups" not in params:
                if self._groups is None:
                    self.framework.set_weights(self.model, self.baseline_weights)
                    self._groups = self.framework.channel_groups(self.model)
                params = {**params, "channel_groups": self._groups}
            if "retrain" in documented and "agp_steps" in params and not {"agp_step", "retrain"} & set(params):
                params = {**params, "retrain": self.retrain}
            out.append((name, params))
        return out

    def rechecked(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with its shortfalls against this run's budget (re)computed."""
        shortfalls = self.budget.check(self.baseline_top1, record.get("accuracy"), record.get("artifact_bytes"),
                                       record.get("targets") or {})
        record["shortfalls"] = [s.to_dict() for s in shortfalls]
        record["met"] = not shortfalls  # a candidate is emulated whenever it keeps the accuracy
        return record


def target_record(report: Any) -> dict[str, Any]:
    """An emulation report as a run records it (``fps`` is the batch-1 figure)."""
    record = report.to_dict()
    record["fps"] = record.get("fps_batch1")
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _layer_figures(layer: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("kept", "total", "weight_bits", "index_bits", "entropy_bits", "bits_per_weight", "encoding")
    return {k: layer.get(k) for k in keys if k in layer}


def _brief(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("index", "phase", "accuracy", "ratio", "artifact_bytes", "met")}


# --------------------------------------------------------------------------- the strategy


@dataclass
class SearchPlan:
    """The chain with the search's knobs located in it."""

    chain: list[str]
    params: dict[str, dict[str, Any]]
    prune: str | None
    quantize: str | None

    @classmethod
    def of(cls, plugins: LoadedPlugins, recipe: Recipe) -> SearchPlan:
        registry = plugins.registry
        chain = list(recipe.compress["chain"])
        roles = {name: registry.get("compressor", name).role for name in chain}
        prune = next((n for n in chain if roles[n] == "prune"), None)
        quantize = next((n for n in chain if roles[n] == "quantize"), None)
        return cls(chain, {n: dict(recipe.compress["params"].get(n, {})) for n in chain}, prune, quantize)

    def build(self, sparsity: Mapping[str, float] | None, bits: Mapping[str, int] | None) -> list[tuple[str, dict]]:
        chain = []
        for name in self.chain:
            params = dict(self.params[name])
            if name == self.prune and sparsity is not None:
                for k in ("quality", "global_sparsity", "sparsity"):
                    params.pop(k, None)
                params["sparsity"] = {n: round(float(s), 6) for n, s in sparsity.items()}
            if name == self.quantize and bits is not None:
                params.pop("bits", None)
                params["layers"] = dict(bits)
            chain.append((name, params))
        return chain


def prunable_layers(weights: Mapping[str, Any], kinds: Mapping[str, str]) -> list[str]:
    return [n for n, w in weights.items() if kinds.get(n) in COMPRESSIBLE_KINDS and getattr(w, "ndim", 0) >= 2]


def sensitivity_analysis(bench: Workbench, plan: SearchPlan) -> dict[str, list[list[float]]]:
    """Per layer: [[sparsity, top-1], …], that layer alone pruned, without retraining."""
    cached = bench.store.load("sensitivity.json")
    grid = [float(s) for s in bench.recipe.search["sensitivity"]]
    if cached is not None and cached.get("grid") == grid:
        return cached["curves"]
    compressor = bench.plugins.registry.compressor(plan.prune)
    layers = prunable_layers(bench.baseline_weights, bench.kinds)
    curves: dict[str, list[list[float]]] = {}
    total = len(layers) * len(grid)
    done = 0
    for name in layers:
        curve = []
        for s in grid:
            params = {k: v for k, v in plan.params[plan.prune].items() if k not in ("quality", "global_sparsity", "sparsity")}
            params["sparsity"] = {name: s}
            result = compressor.compress(bench.baseline_weights, bench.kinds, params)
            acc = bench.accuracy_of(result.weights)
            curve.append([s, acc.top1 if acc else 0.0])
            done += 1
            bench.observer.progress("sensitivity", done, total)
        curves[name] = curve
    bench.framework.set_weights(bench.model, bench.baseline_weights)
    bench.store.save("sensitivity.json", {"grid": grid, "baseline": bench.baseline_top1, "curves": curves})
    return curves


def sensitivity_caps(curves: Mapping[str, Sequence[Sequence[float]]], baseline: float | None,
                     allowed_drop: float, grid: Sequence[float]) -> dict[str, float]:
    """Each layer's highest sparsity costing at most half the allowed drop (at least grid[0]/2)."""
    caps = {}
    for name, curve in curves.items():
        ok = [s for s, acc in curve if baseline is None or acc >= baseline - allowed_drop / 2]
        caps[name] = max([*ok, min(grid) / 2])
    return caps


def sparsities_at(caps: Mapping[str, float], strength: float) -> dict[str, float]:
    """Per-layer sparsity ``1 - (1 - cap)^strength``, at most 99.9 %."""
    return {n: min(0.999, 1.0 - (1.0 - c) ** strength) for n, c in caps.items()}


def run_search(bench: Workbench, on_phase: Callable[[str], None] | None = None) -> tuple[list[dict], str | None]:
    """Runs the search; returns every candidate tried and why it stopped early (or None)."""
    plan = SearchPlan.of(bench.plugins, bench.recipe)
    if not plan.chain:
        return [], None
    stopped = None
    try:
        if bench.recipe.search["strategy"] == "fixed" or (plan.prune is None and plan.quantize is None):
            bench.candidate(plan.build(None, None), "fixed", "the chain's parameters as given")
            return bench.store.candidates(), None
        layers = prunable_layers(bench.baseline_weights, bench.kinds)
        if not layers:
            raise BadInputError("the model has no conv or fully connected weights to compress",
                                "check the model, or use a chain without prune/quant")
        bits = {n: START_BITS[bench.kinds[n]] for n in layers} if plan.quantize else None
        sparsity = None
        if plan.prune:
            if on_phase:
                on_phase("sensitivity")
            allowed = (bench.baseline_top1 - bench.budget.accuracy_floor(bench.baseline_top1)) \
                if bench.baseline_top1 is not None else 0.0
            grid = bench.recipe.search["sensitivity"]
            curves = sensitivity_analysis(bench, plan) if not bench.data.timing_only else {n: [] for n in layers}
            caps = sensitivity_caps(curves, bench.baseline_top1, allowed, grid)
            if on_phase:
                on_phase("strength")
            best_t = _bisect_strength(bench, plan, caps, bits)
            sparsity = sparsities_at(caps, best_t) if best_t is not None else sparsities_at(caps, 0.25)
        if plan.quantize:
            if on_phase:
                on_phase("bits")
            _fewest_bits(bench, plan, sparsity, bits, layers)
    except SearchStopped as why:
        stopped = str(why)
    return bench.store.candidates(), stopped


def _bisect_strength(bench: Workbench, plan: SearchPlan, caps: Mapping[str, float],
                     bits: Mapping[str, int] | None) -> float | None:
    def ok(t: float) -> bool:
        rec = bench.candidate(plan.build(sparsities_at(caps, t), bits), "strength", f"t={t:.4g}")
        return bench.accuracy_ok(rec)

    lo, hi = None, None  # lo passes, hi fails
    t = 1.0
    if ok(t):
        lo = t
        while lo < MAX_STRENGTH:
            t = min(MAX_STRENGTH, lo * 2)
            if ok(t):
                lo = t
            else:
                hi = t
                break
    else:
        hi = t
        t = 0.5
        while t >= 0.125:
            if ok(t):
                lo = t
                break
            hi, t = t, t / 2
    if lo is None or hi is None:
        return lo
    for _ in range(bench.recipe.search["bisection_steps"]):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _fewest_bits(bench: Workbench, plan: SearchPlan, sparsity: Mapping[str, float] | None,
                 bits: dict[str, int], layers: Sequence[str]) -> None:
    min_bits = bench.recipe.search["min_bits"]
    by_size = sorted(layers, key=lambda n: -bench.baseline_weights[n].size)
    for name in by_size:
        lo, hi = min_bits, bits[name]  # find the fewest bits in [lo, hi] that pass; hi passes
        while lo < hi:
            mid = (lo + hi) // 2
            trial = {**bits, name: mid}
            rec = bench.candidate(plan.build(sparsity, trial), "bits", f"{name}: {mid} bits")
            if bench.accuracy_ok(rec):
                hi = mid
            else:
                lo = mid + 1
        bits[name] = hi


def choose(candidates: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The highest-ratio candidate that meets the budget; else the best found.

    "Best" keeps the accuracy first (fewest shortfalls beyond accuracy), then the highest
    ratio; with no candidate keeping the accuracy, the most accurate one.
    """
    if not candidates:
        return None
    met = [c for c in candidates if c.get("met")]
    if met:
        return dict(max(met, key=lambda c: (c.get("ratio") or 0, c.get("accuracy") or 0)))
    keeps = [c for c in candidates if not any(s["limit"] == "accuracy" for s in c.get("shortfalls", []))]
    if keeps:
        return dict(min(keeps, key=lambda c: (len(c.get("shortfalls", [])), -(c.get("ratio") or 0))))
    return dict(max(candidates, key=lambda c: (c.get("accuracy") or 0, c.get("ratio") or 0)))
