"""The frequency form of an ONNX model: circulant FC layers (and, asked, convolutions) through ``DFT``.

Any framework's dense ONNX export is the input (framework-neutral): every ``Gemm`` (``transB=1``,
``alpha = beta = 1``) whose weight initializer is exactly block-circulant
(:func:`sigdl_core.structured_weights.circulant_vectors_of`, largest block first) is replaced by

    Pad → Reshape [N, Q/b, b, 1] → DFT (axis 2) → per frequency bin a complex product with the
    precomputed spectra of the defining vectors (four real ``MatMul``, one ``Sub``, one ``Add``,
    batched over the ``b`` bins) → DFT (inverse, axis 2) → real part → Reshape → Slice → Add bias.

The spectra are stored as two ``[b, Q/b, P/b]`` float32 initializers (real and imaginary
parts), so the file holds ``2 * (P/b)(Q/b) b`` values instead of ``P * Q``. ONNX's ``DFT``
needs opset 17 (``axis`` an attribute; from opset 20 it is an input, which is handled too);
both DFTs are two-sided (opset 17 has no one-sided inverse). The graph is checked with the
ONNX checker; outputs match the dense model to float32 rounding (tests compare them with
onnxruntime to 1e-4).

With ``convolutions=True`` (``--conv``) stride-1 convolutions go through an untiled 2-D DFT
as well (see :func:`frequency_form`).

Run as a command::

    python -m sigdl_compress_fft.onnx_frequency model.onnx -o model.frequency.onnx [--conv]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sigdl_core.errors import BadInputError, InvalidValueError
from sigdl_core.structured_weights import circulant_vectors_of

BLOCKS = (256, 128, 64, 32, 16, 8, 4, 2)
MIN_OPSET = 17


def _opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _circulant_block(w: np.ndarray) -> int | None:
    for b in BLOCKS:
        if b <= min(w.shape) and circulant_vectors_of(w, b) is not None:
            return b
    return None


def frequency_form(model: Any, min_block: int = 2, convolutions: bool = False) -> tuple[Any, list[dict[str, Any]]]:
    """A copy of ``model`` (an ``onnx.ModelProto``) with its block-circulant Gemm layers in DFT
    form, and one record per replaced layer (name, shape, block, stored values).

    ``convolutions=True`` also puts every stride-1, undilated, ungrouped ``Conv`` with a
    constant weight and a statically known input size into the frequency domain, untiled:
    the zero-padded ``Hp x Wp`` input's 2-D DFT (two 1-D DFTs), a per-bin complex product
    with the kernels' conjugate spectra (cross-correlation) summing over input channels, the
    inverse 2-D DFT, and the valid ``(Hp - k + 1) x (Wp - k + 1)`` corner. Its spectra hold
    ``2 O C Hp Wp`` values, more than the ``O C k k`` kernel: this form is for targets that
    run DFTs well, not for storage (the ``.sigdl`` file keeps the sparse DCT coefficients).
    """
    import onnx
    from onnx import helper, numpy_helper

    opset = _opset(model)
    if opset < MIN_OPSET:
        raise InvalidValueError(f"the ONNX model has opset {opset}; the DFT operator needs opset {MIN_OPSET}",
                                "export it again with opset 17 or later")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    new_nodes = []
    replaced: list[dict[str, Any]] = []
    used: set[str] = set()

    def const(name: str, array: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    shapes = _static_shapes(model) if convolutions else {}
    for index, node in enumerate(graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv" and convolutions:
            conv = _conv_frequency_nodes(node, attrs, inits, shapes, f"sigdl_fftconv{index}_", const, opset)
            if conv is not None:
                nodes, record = conv
                new_nodes.extend(nodes)
                used.add(node.input[1])
                replaced.append(record)
                continue
        weight = inits.get(node.input[1]) if node.op_type == "Gemm" and len(node.input) > 1 else None
        if (weight is None or attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)
        block = _circulant_block(w) if w.ndim == 2 else None
        if block is None or block < min_block:
            new_nodes.append(node)
            continue
        p, q = w.shape
        v = circulant_vectors_of(w, block)
        assert v is not None
        n_p, n_q = v.shape[:2]
        spectra = np.fft.fft(v.astype(np.float64), axis=-1)  # (nP, nQ, b)
        pre = f"sigdl_fft{index}_"
        cr = const(pre + "spectra_real", np.ascontiguousarray(spectra.real.transpose(2, 1, 0)).astype(np.float32))
        ci = const(pre + "spectra_imag", np.ascontiguousarray(spectra.imag.transpose(2, 1, 0)).astype(np.float32))
        x = node.input[0]
        nodes = []
        if n_q * block != q:
            pads = const(pre + "pads", np.array([0, 0, 0, n_q * block - q], np.int64))
            nodes.append(helper.make_node("Pad", [x, pads], [pre + "padded"]))
            x = pre + "padded"
        shape_in = const(pre + "shape_in", np.array([-1, n_q, block, 1], np.int64))
        nodes.append(helper.make_node("Reshape", [x, shape_in], [pre + "chunks"]))

        def dft(src: str, dst: str, inverse: int) -> Any:
            if opset >= 20:
                axis = const(f"{dst}_axis", np.array(2, np.int64))
                return helper.make_node("DFT", [src, "", axis], [dst], inverse=inverse, onesided=0)
            return helper.make_node("DFT", [src], [dst], axis=2, inverse=inverse, onesided=0)

        nodes.append(dft(pre + "chunks", pre + "xf", 0))  # (N, nQ, b, 2)
        zero, one = const(pre + "zero", np.array(0, np.int64)), const(pre + "one", np.array(1, np.int64))
        for part, idx in (("xr", zero), ("xi", one)):
            nodes.append(helper.make_node("Gather", [pre + "xf", idx], [pre + part + "_nqb"], axis=3))
            nodes.append(helper.make_node("Transpose", [pre + part + "_nqb"], [pre + part], perm=[2, 0, 1]))
        mm = [("rr", "xr", cr), ("ii", "xi", ci), ("ri", "xr", ci), ("ir", "xi", cr)]
        for tag, a, b in mm:
            nodes.append(helper.make_node("MatMul", [pre + a, b], [pre + tag]))  # (b, N, nP)
        nodes.append(helper.make_node("Sub", [pre + "rr", pre + "ii"], [pre + "yr"]))
        nodes.append(helper.make_node("Add", [pre + "ri", pre + "ir"], [pre + "yi"]))
        last = const(pre + "last", np.array([-1], np.int64))
        for part in ("yr", "yi"):
            nodes.append(helper.make_node("Unsqueeze", [pre + part, last], [pre + part + "_u"]))
        nodes.append(helper.make_node("Concat", [pre + "yr_u", pre + "yi_u"], [pre + "yf_bnp"], axis=-1))
        nodes.append(helper.make_node("Transpose", [pre + "yf_bnp"], [pre + "yf"], perm=[1, 2, 0, 3]))
        nodes.append(dft(pre + "yf", pre + "y_complex", 1))  # (N, nP, b, 2)
        nodes.append(helper.make_node("Gather", [pre + "y_complex", zero], [pre + "y_blocks"], axis=3))
        shape_out = const(pre + "shape_out", np.array([-1, n_p * block], np.int64))
        nodes.append(helper.make_node("Reshape", [pre + "y_blocks", shape_out], [pre + "y_padded"]))
        y = pre + "y_padded"
        if n_p * block != p:
            starts, ends = const(pre + "starts", np.array([0], np.int64)), const(pre + "ends", np.array([p], np.int64))
            axes = const(pre + "axes", np.array([1], np.int64))
            nodes.append(helper.make_node("Slice", [y, starts, ends, axes], [pre + "y"]))
            y = pre + "y"
        if len(node.input) > 2 and node.input[2]:
            nodes.append(helper.make_node("Add", [y, node.input[2]], [node.output[0]]))
        else:
            nodes.append(helper.make_node("Identity", [y], [node.output[0]]))
        new_nodes.extend(nodes)
        used.add(weight.name)
        replaced.append({"node": node.name or node.output[0], "weight": weight.name, "shape": [p, q],
                         "block": block, "stored_values": int(2 * spectra.size), "dense_values": int(w.size)})
    still = {i for n in new_nodes for i in n.input}
    keep = [i for i in graph.initializer if i.name not in used or i.name in still]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.node[:]
    graph.node.extend(new_nodes)
    # stale shape annotations of intermediate values would contradict the new graph
    del graph.value_info[:]
    onnx.checker.check_model(out)
    return out, replaced


def _static_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    out: dict[str, tuple[int, ...]] = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims[1:]):
            out[v.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in dims)
    return out


def _conv_frequency_nodes(node: Any, attrs: dict[str, Any], inits: dict[str, Any],
                          shapes: dict[str, tuple[int, ...]], pre: str, const: Any,
                          opset: int) -> tuple[list[Any], dict[str, Any]] | None:
    """The DFT form of one Conv (see :func:`frequency_form`), or None when it cannot be."""
    from onnx import helper, numpy_helper

    weight = inits.get(node.input[1]) if len(node.input) > 1 else None
    x_shape = shapes.get(node.input[0])
    if weight is None or x_shape is None or len(x_shape) != 4:
        return None
    if (attrs.get("group", 1) != 1 or any(s != 1 for s in attrs.get("strides", [1, 1]))
            or any(d != 1 for d in attrs.get("dilations", [1, 1])) or attrs.get("auto_pad", b"NOTSET") not in
            (b"NOTSET", "NOTSET")):
        return None
    w = numpy_helper.to_array(weight).astype(np.float64)
    o, c, kh, kw = w.shape
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    _, _, h, wd = x_shape
    hp, wp = h + pads[0] + pads[2], wd + pads[1] + pads[3]
    ho, wo = hp - kh + 1, wp - kw + 1
    if ho < 1 or wo < 1:
        return None
    kernel = np.zeros((o, c, hp, wp))
    kernel[:, :, :kh, :kw] = w
    spectra = np.conj(np.fft.fft2(kernel))  # (O, C, Hp, Wp)
    bins = hp * wp
    k = spectra.reshape(o, c, bins).transpose(2, 1, 0)  # (bins, C, O)
    kr = const(pre + "spectra_real", np.ascontiguousarray(k.real).astype(np.float32))
    ki = const(pre + "spectra_imag", np.ascontiguousarray(k.imag).astype(np.float32))
    nodes = []
    x = node.input[0]
    if any(pads):
        p = const(pre + "pads", np.array([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], np.int64))
        nodes.append(helper.make_node("Pad", [x, p], [pre + "padded"]))
        x = pre + "padded"
    last = const(pre + "last", np.array([-1], np.int64))
    nodes.append(helper.make_node("Unsqueeze", [x, last], [pre + "real"]))  # (N, C, Hp, Wp, 1)

    def dft(src: str, dst: str, axis: int, inverse: int) -> Any:
        if opset >= 20:
            a = const(f"{dst}_axis", np.array(axis, np.int64))
            return helper.make_node("DFT", [src, "", a], [dst], inverse=inverse, onesided=0)
        return helper.make_node("DFT", [src], [dst], axis=axis, inverse=inverse, onesided=0)

    nodes += [dft(pre + "real", pre + "fw", 3, 0), dft(pre + "fw", pre + "xf", 2, 0)]  # (N, C, Hp, Wp, 2)
    zero, one = const(pre + "zero", np.array(0, np.int64)), const(pre + "one", np.array(1, np.int64))
    flat = const(pre + "flat", np.array([0, c, bins], np.int64))
    for part, idx in (("xr", zero), ("xi", one)):
        nodes.append(helper.make_node("Gather", [pre + "xf", idx], [pre + part + "_4d"], axis=4))
        nodes.append(helper.make_node("Reshape", [pre + part + "_4d", flat], [pre + part + "_ncb"]))
        nodes.append(helper.make_node("Transpose", [pre + part + "_ncb"], [pre + part], perm=[2, 0, 1]))
    for tag, a, b in (("rr", "xr", kr), ("ii", "xi", ki), ("ri", "xr", ki), ("ir", "xi", kr)):
        nodes.append(helper.make_node("MatMul", [pre + a, b], [pre + tag]))  # (bins, N, O)
    nodes.append(helper.make_node("Sub", [pre + "rr", pre + "ii"], [pre + "yr"]))
    nodes.append(helper.make_node("Add", [pre + "ri", pre + "ir"], [pre + "yi"]))
    for part in ("yr", "yi"):
        nodes.append(helper.make_node("Unsqueeze", [pre + part, last], [pre + part + "_u"]))
    nodes.append(helper.make_node("Concat", [pre + "yr_u", pre + "yi_u"], [pre + "yf_bno"], axis=-1))
    nodes.append(helper.make_node("Transpose", [pre + "yf_bno"], [pre + "yf_nob"], perm=[1, 2, 0, 3]))
    grid = const(pre + "grid", np.array([0, o, hp, wp, 2], np.int64))
    nodes.append(helper.make_node("Reshape", [pre + "yf_nob", grid], [pre + "yf"]))
    nodes += [dft(pre + "yf", pre + "yh", 2, 1), dft(pre + "yh", pre + "y_complex", 3, 1)]
    nodes.append(helper.make_node("Gather", [pre + "y_complex", zero], [pre + "y_full"], axis=4))
    starts = const(pre + "starts", np.array([0, 0], np.int64))
    ends = const(pre + "ends", np.array([ho, wo], np.int64))
    axes = const(pre + "axes", np.array([2, 3], np.int64))
    out = node.output[0]
    has_bias = len(node.input) > 2 and node.input[2]
    nodes.append(helper.make_node("Slice", [pre + "y_full", starts, ends, axes], [pre + "y" if has_bias else out]))
    if has_bias:
        bshape = const(pre + "bias_shape", np.array([1, o, 1, 1], np.int64))
        nodes.append(helper.make_node("Reshape", [node.input[2], bshape], [pre + "bias"]))
        nodes.append(helper.make_node("Add", [pre + "y", pre + "bias"], [out]))
    record = {"node": node.name or out, "weight": weight.name, "shape": [o, c, kh, kw], "fft": [hp, wp],
              "stored_values": int(2 * spectra.size), "dense_values": int(w.size)}
    return nodes, record


def write_frequency_form(src: Path | str, dst: Path | str, convolutions: bool = False,
                         only_if_changed: bool = False) -> list[dict[str, Any]]:
    """Reads the ONNX model ``src``, writes its frequency form to ``dst`` atomically.

    When ``dst`` lies beside ``src``, the written model names ``src`` as its dense
    equivalent (:data:`sigdl_core.targets.DENSE_EQUIVALENT_KEY`), so that a target without
    ``DFT`` re-tests the dense model instead. ``only_if_changed``: write nothing when no
    layer was replaced.
    """
    import onnx
    from sigdl_core.files import atomic_write_bytes
    from sigdl_core.targets import DENSE_EQUIVALENT_KEY

    try:
        model = onnx.load(str(src))
    except Exception as exc:  # a protobuf decode error, a missing file
        raise BadInputError(f"cannot read ONNX model '{src}': {exc}", "give an .onnx file") from None
    converted, replaced = frequency_form(model, convolutions=convolutions)
    if only_if_changed and not replaced:
        return replaced
    src, dst = Path(src), Path(dst)
    if src.resolve() != dst.resolve():  # converting in place keeps the dense model it names
        kept = [p for p in converted.metadata_props if p.key != DENSE_EQUIVALENT_KEY]
        del converted.metadata_props[:]
        converted.metadata_props.extend(kept)
        if src.resolve().parent == dst.resolve().parent:
            converted.metadata_props.add(key=DENSE_EQUIVALENT_KEY, value=src.name)
    atomic_write_bytes(dst, converted.SerializeToString())
    return replaced


def export_frequency_form(onnx_path: Path | str, out_path: Path | str,
                          convolutions: bool) -> list[dict[str, Any]] | None:
    """:meth:`sigdl_core.interfaces.Compressor.export_frequency_form` of both compressors:
    the frequency form of ``onnx_path`` at ``out_path``, or None (nothing written) when no
    layer takes it."""
    replaced = write_frequency_form(onnx_path, out_path, convolutions=convolutions, only_if_changed=True)
    return replaced or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the DFT (frequency) form of a block-circulant ONNX model.")
    parser.add_argument("model", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--conv", action="store_true", help="also put stride-1 convolutions through DFT")
    args = parser.parse_args(argv)
    try:
        replaced = write_frequency_form(args.model, args.out, args.conv)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in replaced:
        how = f"in blocks of {r['block']}" if "block" in r else f"as a {r['fft'][0]}x{r['fft'][1]} 2-D DFT"
        print(f"{r['weight']}: {'x'.join(map(str, r['shape']))} {how} through DFT")
    if not replaced:
        print("no block-circulant layer found; the model is unchanged", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
