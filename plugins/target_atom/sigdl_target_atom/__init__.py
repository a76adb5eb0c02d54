"""SigDL target plugin: Intel Atom x5-E3930 / x5-E3940 (Apollo Lake, Goldmont cores) and
AWS DeepLens. See :mod:`sigdl_target_atom.datasheet` for the figures and
:mod:`sigdl_target_atom.emulator` for the method."""

__version__ = "0.1.0"
