"""The machine a report was measured on: CPU, caches, ISA in use, threads, versions."""

import importlib.metadata
import os
import platform
import socket
import sys

from softmaxlib import _native_loader as native

#: Libraries whose versions are recorded when installed (distribution names).
LIBRARIES = (
    "softmaxlib", "numpy", "scipy", "torch", "jax", "jaxlib", "ml_dtypes",
    "dask", "distributed", "cupy", "matplotlib", "array-api-compat",
)

#: CPU flags worth stating for SIMD kernels.
CPU_FLAGS = ("sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "neon", "asimd")


def _cpuinfo():
    """Model name and flags from /proc/cpuinfo (Linux), else from ``platform``."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and model is None:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _caches():
    """Cache sizes of CPU 0 from sysfs, e.g. {"L1d": "48K", "L2": "2048K", "L3": "..."}."""
    caches = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return caches
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            def read(name, entry=entry):
                with open(os.path.join(base, entry, name), encoding="utf-8") as f:
                    return f.read().strip()

            kind = read("type")
            name = f"L{read('level')}" + ("d" if kind == "Data" else "i" if kind == "Instruction" else "")
            caches[name] = read("size")
        except OSError:
            continue
    return caches


def _memory_gib():
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def usable_cpus():
    """CPUs this process may run on (affinity), falling back to ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def native_info():
    """``info()`` of the native kernels, or why they are unavailable."""
    try:
        return dict(native.info())
    except Exception as exc:  # noqa: BLE001 - the report states it instead of failing
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}


def library_versions():
    """{distribution: version} of the installed libraries in ``LIBRARIES``."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def machine_info():
    """Everything a reader needs to interpret the numbers, as a JSON-able dict."""
    model, flags = _cpuinfo()
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    return {
        "cpu_model": model,
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "caches": _caches(),
        "cpus_logical": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "memory_gib": _memory_gib(),
        "load_average": load,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "native": native_info(),
        "versions": library_versions(),
    }


def describe(info):
    """A few lines stating the machine, for the top of the printed report."""
    native = info["native"]
    if native.get("available"):
        isa = f"{native.get('isa')} (compiled: {', '.join(native.get('isas_compiled', []))})"
        threads = native.get("threads")
    else:
        isa = f"native kernels unavailable: {native.get('reason')}"
        threads = None
    caches = ", ".join(f"{k} {v}" for k, v in info["caches"].items())
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    load = info["load_average"]
    return "\n".join([
        f"CPU        {info['cpu_model']} ({info['cpus_usable']} usable of "
        f"{info['cpus_logical']} logical CPUs; flags: {' '.join(info['cpu_flags'])})",
        f"caches     {caches or 'unknown'}; memory {info['memory_gib']} GiB",
        f"ISA        {isa}; default threads {threads}",
        f"load avg   {', '.join(f'{x:.2f}' for x in load) if load else 'unknown'}"
        " (a busy machine makes timings noisy)",
        f"platform   {info['platform']}, Python {info['python']}",
        f"versions   {versions}",
    ])
