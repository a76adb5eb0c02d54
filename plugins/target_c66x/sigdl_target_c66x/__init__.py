"""SigDL target plugin for TI C66x DSPs.

Targets ``c66x-c6678`` (8 C66x cores at 1.25 GHz), ``c66x-pcie-64`` (a PCIe card of eight
C6678) and ``c66x-am5749`` (the AM5749's two C66x at 750 MHz, TIDL's DSP target), all
re-tested by the ``c66x`` emulator:

* accuracy from a bit-exact emulation of 8/16-bit integer inference
  (:func:`sigdl_target_c66x.qdq_program.emulate_fixed_point`, kernels in
  :mod:`sigdl_target_c66x.fixed_point`);
* latency from MAC counts, core count and memory traffic (:mod:`sigdl_target_c66x.latency`);
* power and energy as datasheet-based estimates.

Importing this package is cheap; numpy, onnx and onnxruntime load when the emulator runs.
"""

__all__: list[str] = []
