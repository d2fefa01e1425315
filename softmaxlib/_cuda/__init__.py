"""CUDA sources compiled at run time by CuPy (NVRTC): package data, shipped in the wheel."""
