"""SigDL's ONNX plugin: any ONNX model file is a model (see :mod:`.framework`)."""
