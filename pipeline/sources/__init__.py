"""Frame sources. Each yields ``(pixels, t_acq_ns)``; the camera process stamps ids and slots and sends."""
