"""SigDL target plugin: multicore ARM CPUs (Raspberry Pi, Jetson CPU complexes)."""
