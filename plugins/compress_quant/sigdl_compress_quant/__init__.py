"""SigDL quantization and coding, after Deep Compression (Han, Mao & Dally, ICLR 2016).

* :mod:`.weight_sharing` — k-means weight sharing per layer (``quant``), with the projection
  that fine-tunes the centroids while keeping shared weights tied;
* :mod:`.linear` — int8 (per tensor/channel, symmetric/asymmetric, ONNX arithmetic) and fp16
  quantization (``int8``, ``fp16``);
* :mod:`.coding` — relative indexing of sparse positions and entropy coding of the streams
  (``huffman``, ``encode``); the coders themselves are in :mod:`sigdl_core.entropy`;
* :mod:`.onnx_export` — int8 QDQ ONNX with calibration, and fp16 ONNX (``[onnx]`` extra).

The hook module :mod:`.plugin` imports none of these until a compressor is built.
"""
