"""SigDL target plugin for the Intel Movidius Myriad 2 MA2450 (Neural Compute Stick v1).

Target ``movidius-ma2450``, re-tested by the ``movidius`` emulator:

* an operator check against the NCSDK v1 layer set with attribute rules and a fixed input
  resolution (:mod:`sigdl_target_movidius.operator_check`): a model that breaks a rule gets
  a report naming every offending node;
* FP16 only: the model is converted to FP16 and its accuracy measured with every tensor
  rounded to fp16 (:mod:`sigdl_target_movidius.fp16`);
* latency from the shared roofline with SHAVE efficiency factors
  (:mod:`sigdl_target_movidius.latency`); power as an estimate.

Importing this package is cheap; numpy, onnx and onnxruntime load when the emulator runs.
"""

__all__: list[str] = []
