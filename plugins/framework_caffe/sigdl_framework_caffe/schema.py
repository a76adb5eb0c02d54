"""Caffe's message schema, the subset SigDL reads, built at import time without protoc.

The messages and fields below are those of BVLC Caffe's ``src/caffe/proto/caffe.proto``
(checked against BVLC/caffe at commit 9b891540) that the supported layers need, with the
**same field numbers, types and defaults**, so that a ``.caffemodel`` written by Caffe
parses here and one written here parses in Caffe. Fields left out are kept by protobuf as
unknown fields in binary files; in a ``.prototxt`` they are skipped.

The schema is a ``FileDescriptorProto`` assembled from the table :data:`MESSAGES` and turned
into message classes with ``google.protobuf.descriptor_pool`` and ``message_factory``: no
generated ``_pb2`` module, so nothing depends on the ``protoc`` version matching the
installed protobuf runtime. Legacy nets (V1 ``layers``, the ``input``/``input_dim`` fields)
are included for reading.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "caffe"
_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {
    "string": _F.TYPE_STRING, "bool": _F.TYPE_BOOL, "float": _F.TYPE_FLOAT, "double": _F.TYPE_DOUBLE,
    "int32": _F.TYPE_INT32, "int64": _F.TYPE_INT64, "uint32": _F.TYPE_UINT32, "uint64": _F.TYPE_UINT64,
}
_ENGINE = {"DEFAULT": 0, "CAFFE": 1, "CUDNN": 2}

#: The V1 layer types (``V1LayerParameter.LayerType``), all of them, so old prototxts parse.
V1_TYPES = {
    "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3, "CONTRASTIVE_LOSS": 37,
    "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6, "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7,
    "ELTWISE": 25, "EXP": 38, "FLATTEN": 8, "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11,
    "IMAGE_DATA": 12, "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18, "SIGMOID": 19,
    "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20, "SOFTMAX_LOSS": 21, "SPLIT": 22,
    "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24, "THRESHOLD": 31,
}

# message -> (nested enums {name: {value: number}}, fields [(name, number, label, type, default)])
# label: "optional" | "repeated" | "packed"; type: a scalar type, a message name, or "enum:Name".
MESSAGES: dict[str, tuple[dict[str, dict[str, int]], list[tuple[str, int, str, str, Any]]]] = {
    "BlobShape": ({}, [("dim", 1, "packed", "int64", None)]),
    "BlobProto": ({}, [
        ("shape", 7, "optional", "BlobShape", None), ("data", 5, "packed", "float", None),
        ("diff", 6, "packed", "float", None), ("double_data", 8, "packed", "double", None),
        ("double_diff", 9, "packed", "double", None), ("num", 1, "optional", "int32", 0),
        ("channels", 2, "optional", "int32", 0), ("height", 3, "optional", "int32", 0),
        ("width", 4, "optional", "int32", 0)]),
    "FillerParameter": ({"VarianceNorm": {"FAN_IN": 0, "FAN_OUT": 1, "AVERAGE": 2}}, [
        ("type", 1, "optional", "string", "constant"), ("value", 2, "optional", "float", 0.0),
        ("min", 3, "optional", "float", 0.0), ("max", 4, "optional", "float", 1.0),
        ("mean", 5, "optional", "float", 0.0), ("std", 6, "optional", "float", 1.0),
        ("sparse", 7, "optional", "int32", -1), ("variance_norm", 8, "optional", "enum:VarianceNorm", "FAN_IN")]),
    "NetParameter": ({}, [
        ("name", 1, "optional", "string", None), ("input", 3, "repeated", "string", None),
        ("input_shape", 8, "repeated", "BlobShape", None), ("input_dim", 4, "repeated", "int32", None),
        ("force_backward", 5, "optional", "bool", False), ("state", 6, "optional", "NetState", None),
        ("debug_info", 7, "optional", "bool", False), ("layer", 100, "repeated", "LayerParameter", None),
        ("layers", 2, "repeated", "V1LayerParameter", None)]),
    "NetState": ({}, [("phase", 1, "optional", "enum:.caffe.Phase", "TEST"), ("level", 2, "optional", "int32", 0),
                      ("stage", 3, "repeated", "string", None)]),
    "NetStateRule": ({}, [
        ("phase", 1, "optional", "enum:.caffe.Phase", None), ("min_level", 2, "optional", "int32", None),
        ("max_level", 3, "optional", "int32", None), ("stage", 4, "repeated", "string", None),
        ("not_stage", 5, "repeated", "string", None)]),
    "ParamSpec": ({"DimCheckMode": {"STRICT": 0, "PERMISSIVE": 1}}, [
        ("name", 1, "optional", "string", None), ("share_mode", 2, "optional", "enum:DimCheckMode", None),
        ("lr_mult", 3, "optional", "float", 1.0), ("decay_mult", 4, "optional", "float", 1.0)]),
    "LayerParameter": ({}, [
        ("name", 1, "optional", "string", None), ("type", 2, "optional", "string", None),
        ("bottom", 3, "repeated", "string", None), ("top", 4, "repeated", "string", None),
        ("phase", 10, "optional", "enum:.caffe.Phase", None), ("loss_weight", 5, "repeated", "float", None),
        ("param", 6, "repeated", "ParamSpec", None), ("blobs", 7, "repeated", "BlobProto", None),
        ("propagate_down", 11, "repeated", "bool", None), ("include", 8, "repeated", "NetStateRule", None),
        ("exclude", 9, "repeated", "NetStateRule", None),
        ("batch_norm_param", 139, "optional", "BatchNormParameter", None),
        ("concat_param", 104, "optional", "ConcatParameter", None),
        ("convolution_param", 106, "optional", "ConvolutionParameter", None),
        ("dropout_param", 108, "optional", "DropoutParameter", None),
        ("eltwise_param", 110, "optional", "EltwiseParameter", None),
        ("flatten_param", 135, "optional", "FlattenParameter", None),
        ("inner_product_param", 117, "optional", "InnerProductParameter", None),
        ("input_param", 143, "optional", "InputParameter", None),
        ("lrn_param", 118, "optional", "LRNParameter", None),
        ("pooling_param", 121, "optional", "PoolingParameter", None),
        ("relu_param", 123, "optional", "ReLUParameter", None),
        ("scale_param", 142, "optional", "ScaleParameter", None),
        ("softmax_param", 125, "optional", "SoftmaxParameter", None)]),
    "V1LayerParameter": ({"LayerType": V1_TYPES}, [
        ("bottom", 2, "repeated", "string", None), ("top", 3, "repeated", "string", None),
        ("name", 4, "optional", "string", None), ("include", 32, "repeated", "NetStateRule", None),
        ("exclude", 33, "repeated", "NetStateRule", None), ("type", 5, "optional", "enum:LayerType", None),
        ("blobs", 6, "repeated", "BlobProto", None), ("blobs_lr", 7, "repeated", "float", None),
        ("weight_decay", 8, "repeated", "float", None),
        ("concat_param", 9, "optional", "ConcatParameter", None),
        ("convolution_param", 10, "optional", "ConvolutionParameter", None),
        ("dropout_param", 12, "optional", "DropoutParameter", None),
        ("eltwise_param", 24, "optional", "EltwiseParameter", None),
        ("inner_product_param", 17, "optional", "InnerProductParameter", None),
        ("lrn_param", 18, "optional", "LRNParameter", None),
        ("pooling_param", 19, "optional", "PoolingParameter", None),
        ("relu_param", 30, "optional", "ReLUParameter", None),
        ("softmax_param", 39, "optional", "SoftmaxParameter", None)]),
    "ConcatParameter": ({}, [("axis", 2, "optional", "int32", 1), ("concat_dim", 1, "optional", "uint32", 1)]),
    "BatchNormParameter": ({}, [
        ("use_global_stats", 1, "optional", "bool", None), ("moving_average_fraction", 2, "optional", "float", 0.999),
        ("eps", 3, "optional", "float", 1e-5)]),
    "ConvolutionParameter": ({"Engine": _ENGINE}, [
        ("num_output", 1, "optional", "uint32", None), ("bias_term", 2, "optional", "bool", True),
        ("pad", 3, "repeated", "uint32", None), ("kernel_size", 4, "repeated", "uint32", None),
        ("stride", 6, "repeated", "uint32", None), ("dilation", 18, "repeated", "uint32", None),
        ("pad_h", 9, "optional", "uint32", 0), ("pad_w", 10, "optional", "uint32", 0),
        ("kernel_h", 11, "optional", "uint32", None), ("kernel_w", 12, "optional", "uint32", None),
        ("stride_h", 13, "optional", "uint32", None), ("stride_w", 14, "optional", "uint32", None),
        ("group", 5, "optional", "uint32", 1), ("weight_filler", 7, "optional", "FillerParameter", None),
        ("bias_filler", 8, "optional", "FillerParameter", None), ("engine", 15, "optional", "enum:Engine", "DEFAULT"),
        ("axis", 16, "optional", "int32", 1), ("force_nd_im2col", 17, "optional", "bool", False)]),
    "DropoutParameter": ({}, [("dropout_ratio", 1, "optional", "float", 0.5)]),
    "EltwiseParameter": ({"EltwiseOp": {"PROD": 0, "SUM": 1, "MAX": 2}}, [
        ("operation", 1, "optional", "enum:EltwiseOp", "SUM"), ("coeff", 2, "repeated", "float", None),
        ("stable_prod_grad", 3, "optional", "bool", True)]),
    "FlattenParameter": ({}, [("axis", 1, "optional", "int32", 1), ("end_axis", 2, "optional", "int32", -1)]),
    "InnerProductParameter": ({}, [
        ("num_output", 1, "optional", "uint32", None), ("bias_term", 2, "optional", "bool", True),
        ("weight_filler", 3, "optional", "FillerParameter", None),
        ("bias_filler", 4, "optional", "FillerParameter", None), ("axis", 5, "optional", "int32", 1),
        ("transpose", 6, "optional", "bool", False)]),
    "InputParameter": ({}, [("shape", 1, "repeated", "BlobShape", None)]),
    "LRNParameter": ({"NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1}, "Engine": _ENGINE}, [
        ("local_size", 1, "optional", "uint32", 5), ("alpha", 2, "optional", "float", 1.0),
        ("beta", 3, "optional", "float", 0.75), ("norm_region", 4, "optional", "enum:NormRegion", "ACROSS_CHANNELS"),
        ("k", 5, "optional", "float", 1.0), ("engine", 6, "optional", "enum:Engine", "DEFAULT")]),
    "PoolingParameter": ({"PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2}, "Engine": _ENGINE,
                          "RoundMode": {"CEIL": 0, "FLOOR": 1}}, [
        ("pool", 1, "optional", "enum:PoolMethod", "MAX"), ("pad", 4, "optional", "uint32", 0),
        ("pad_h", 9, "optional", "uint32", 0), ("pad_w", 10, "optional", "uint32", 0),
        ("kernel_size", 2, "optional", "uint32", None), ("kernel_h", 5, "optional", "uint32", None),
        ("kernel_w", 6, "optional", "uint32", None), ("stride", 3, "optional", "uint32", 1),
        ("stride_h", 7, "optional", "uint32", None), ("stride_w", 8, "optional", "uint32", None),
        ("engine", 11, "optional", "enum:Engine", "DEFAULT"), ("global_pooling", 12, "optional", "bool", False),
        ("round_mode", 13, "optional", "enum:RoundMode", "CEIL")]),
    "ReLUParameter": ({"Engine": _ENGINE}, [
        ("negative_slope", 1, "optional", "float", 0.0), ("engine", 2, "optional", "enum:Engine", "DEFAULT")]),
    "ScaleParameter": ({}, [
        ("axis", 1, "optional", "int32", 1), ("num_axes", 2, "optional", "int32", 1),
        ("filler", 3, "optional", "FillerParameter", None), ("bias_term", 4, "optional", "bool", False),
        ("bias_filler", 5, "optional", "FillerParameter", None)]),
    "SoftmaxParameter": ({"Engine": _ENGINE}, [
        ("engine", 1, "optional", "enum:Engine", "DEFAULT"), ("axis", 2, "optional", "int32", 1)]),
}
#: Top-level enums.
ENUMS = {"Phase": {"TRAIN": 0, "TEST": 1}}


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The schema as a proto2 ``FileDescriptorProto`` named ``caffe.proto``, package ``caffe``."""
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe.proto", package=PACKAGE, syntax="proto2")
    for name, values in ENUMS.items():
        enum = fdp.enum_type.add(name=name)
        for v, n in values.items():
            enum.value.add(name=v, number=n)
    for msg_name, (enums, fields) in MESSAGES.items():
        msg = fdp.message_type.add(name=msg_name)
        for enum_name, values in enums.items():
            enum = msg.enum_type.add(name=enum_name)
            for v, n in values.items():
                enum.value.add(name=v, number=n)
        for fname, number, label, ftype, default in fields:
            field = msg.field.add(name=fname, number=number)
            field.label = _F.LABEL_OPTIONAL if label == "optional" else _F.LABEL_REPEATED
            if label == "packed":
                field.options.packed = True
            if ftype in _TYPES:
                field.type = _TYPES[ftype]
            elif ftype.startswith("enum:"):
                field.type = _F.TYPE_ENUM
                ref = ftype[5:]
                field.type_name = ref if ref.startswith(".") else f".{PACKAGE}.{msg_name}.{ref}"
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{ftype}"
            if default is not None and label == "optional":
                field.default_value = _default_text(default)
    return fdp


def _classes() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in MESSAGES}


_CLASSES = _classes()
NetParameter = _CLASSES["NetParameter"]
LayerParameter = _CLASSES["LayerParameter"]
BlobProto = _CLASSES["BlobProto"]
