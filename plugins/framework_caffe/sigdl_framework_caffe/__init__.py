"""SigDL's Caffe plugin: ``.prototxt`` + ``.caffemodel`` in, as ONNX (see :mod:`.convert`)."""
