"""Quantization: calibration data, per-target schemes, sensitivity analysis and the fallback loop.
Heavy libraries (onnxruntime, nncf, coremltools) are imported inside functions only."""
