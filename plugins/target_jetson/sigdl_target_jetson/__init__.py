"""SigDL target plugin: NVIDIA Jetson TX2 (Parker SoC, Pascal GPU) in its power modes.
See :mod:`sigdl_target_jetson.datasheet` for the figures and
:mod:`sigdl_target_jetson.emulator` for the calibrated roofline."""

__version__ = "0.1.0"
