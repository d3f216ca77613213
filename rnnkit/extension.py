"""rnnkit's compiled CPU time loops (``rnnkit/csrc/*.cpp``): build once, load, or say why not.

The fused path's time loops (LSTM, GRU, RNN, and minGRU / minLSTM's linear recurrence) run in
C++ when this library is available: each step is then one matrix product and one pass over its
elements, where the Python loop dispatches a dozen kernels (see ``rnnkit/csrc/lstm.cpp``).
It is compiled with torch's own extension builder the first time it is needed (about 40 s on
2 cores) and cached in ``rnnkit-pyXY/`` under ``$TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``); later processes load it in a fraction of a second. ``make``
builds it ahead (``python -m rnnkit.extension``).

Its large buffers come from a cache that keeps freed ones for reuse (``cache_info``,
``empty_cache``; at most ``RNNKIT_CACHE_MB`` megabytes, default 512): a fresh 32 MB buffer
costs 8192 page faults, which took longer than the loop that fills it.

When it cannot be built (no compiler, no ninja) the fused path keeps its Python time loops,
which compute the same function more slowly, and ``layer.plan()`` says why. Set
``RNNKIT_EXTENSION=0`` to never build or use it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

import torch

__all__ = ["available", "cache_info", "empty_cache", "load", "loaded", "status"]

log = logging.getLogger("rnnkit")

CSRC = Path(__file__).parent / "csrc"
SOURCES = sorted(CSRC.glob("*.cpp"))  # lstm, gru, rnn, scan; common.h is included by each
DTYPES = (torch.float32, torch.float64)
STALE_LOCK_S = 600  # a build takes about 40 s; a lock this old was left by a killed build
# -fno-trapping-math lets the loops vectorize.
BASE_FLAGS = ["-O3", "-fno-trapping-math"]
# The library is built on the machine that runs it, so its plain C++ loops (the element-wise
# passes, layer norm's sums) may use every vector instruction this CPU has: measured on an
# AMD EPYC, the LSTM loops took 15-28% less time than built for baseline x86-64 (SSE2), and
# the weight-gradient kernel's packing 30% less. The CPU is part of the build's name, so a
# cache shared with another kind of machine gets its own build. A compiler that refuses the
# flag builds without it.
NATIVE = ["-march=native"]


def _openmp() -> tuple[list[str], list[str]]:
    """Compile and link flags that put at::parallel_for on torch's own threads. It is an
    inline template over `#pragma omp parallel`: without -fopenmp the pragma is ignored and
    every "parallel" loop in csrc/ runs on one thread. The library must then use the OpenMP
    runtime torch loaded, not a second one (which would ignore torch.set_num_threads): the
    Linux wheels ship theirs in torch/lib, so link that file itself."""
    if sys.platform != "linux" or not torch._C.has_openmp:
        return [], []
    lib = Path(torch.__file__).parent / "lib"
    bundled = sorted(lib.glob("libgomp*.so*"))
    if bundled:
        return ["-fopenmp"], [str(bundled[0]), f"-Wl,-rpath,{lib}"]
    return ["-fopenmp"], ["-fopenmp"]  # torch uses the system's libgomp


def _attempts() -> list[tuple[list[str], list[str]]]:
    """(compile flags, link flags) to try in order: for this CPU with OpenMP, then without
    -march=native, then (should that fail too, say with a compiler that has no OpenMP) without
    OpenMP, the loops then on one thread."""
    omp_c, omp_l = _openmp()
    plain = (BASE_FLAGS, [])
    if not omp_c:
        return [(BASE_FLAGS + NATIVE, []), plain]
    return [(BASE_FLAGS + NATIVE + omp_c, omp_l), (BASE_FLAGS + omp_c, omp_l), plain]


def _cpu() -> str:
    """What identifies this CPU's instruction set: its model and feature flags (Linux), else
    the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def _name(flags: tuple[list[str], list[str]] | None = None) -> str:
    """The build's name carries a hash of every source and header, of torch's version and of
    the CPU (for -march=native), so a changed header (which torch's builder does not hash),
    another torch (whose C++ ABI may differ) or another kind of CPU gets a fresh build instead
    of a stale library."""
    cflags, ldflags = flags or _attempts()[0]
    digest = hashlib.sha256(torch.__version__.encode() + " ".join(cflags + ldflags).encode())
    if NATIVE[0] in cflags:
        digest.update(_cpu().encode())
    for path in sorted(CSRC.glob("*.[ch]*")):
        digest.update(path.name.encode() + path.read_bytes())
    return f"rnnkit_cpu_{digest.hexdigest()[:12]}"


_state: dict[str, object] = {}  # "ok": bool, "why": str, once tried
_lock = threading.Lock()


def _build() -> None:
    from torch.utils import cpp_extension

    # ninja comes with the `ninja` package into this environment's bin/, which is not on PATH
    # when the interpreter is started as .venv/bin/python
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("ninja") is None:
        raise RuntimeError("ninja is not installed (pip install ninja)")
    attempts = _attempts()
    for i, flags in enumerate(attempts):
        try:
            _build_with(cpp_extension, flags)
            return
        except Exception as e:
            if i == len(attempts) - 1:
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            log.warning(
                "rnnkit: the build with %s failed (%s); building with %s",
                " ".join(flags[0]),
                first,
                " ".join(attempts[i + 1][0]),
            )


def _build_with(cpp_extension, flags: tuple[list[str], list[str]]) -> None:
    name = _name(flags)
    # our own build directory (under torch's default root), so that its lock file is known:
    # torch's builder waits forever on a lock left by a process killed mid-build
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    build_dir = Path(root) / f"rnnkit-py{sys.version_info[0]}{sys.version_info[1]}" / name
    build_dir.mkdir(parents=True, exist_ok=True)
    lock = build_dir / "lock"
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        log.warning("rnnkit: removing a stale build lock left by an interrupted build: %s", lock)
        lock.unlink(missing_ok=True)
    if not (build_dir / f"{name}.so").exists():  # say why the first call pauses
        log.warning("rnnkit: compiling the C++ time loops once (about 40 s; cached afterwards)")
    start = time.perf_counter()
    cpp_extension.load(
        name=name,
        sources=[str(s) for s in SOURCES],
        build_directory=str(build_dir),
        extra_cflags=flags[0],
        extra_ldflags=flags[1],
        is_python_module=False,
        verbose=False,
    )
    log.info("rnnkit: C++ time loops ready (%.1f s)", time.perf_counter() - start)


def load() -> bool:
    """Build (first time) and load the library; True when its ops are usable. Never raises."""
    with _lock:  # one thread builds; the others wait for its answer
        return _load()


def _load() -> bool:
    if "ok" not in _state:
        if os.environ.get("RNNKIT_EXTENSION", "1") == "0":
            _state.update(ok=False, why="disabled by RNNKIT_EXTENSION=0")
        else:
            try:
                _build()
                torch.ops.rnnkit.lstm_forward  # noqa: B018 (raises if the op is missing)
                _state.update(ok=True, why="")
            except Exception as e:  # any build or load failure: fall back, and say why
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                _state.update(ok=False, why=f"it could not be built or loaded ({first[:200]})")
                log.warning("rnnkit: C++ time loops unavailable, using Python: %s", first)
    return bool(_state["ok"])


def available(t: torch.Tensor) -> bool:
    """Whether the C++ loops apply to tensors like t: CPU, float32 or float64, and built."""
    return t.device.type == "cpu" and t.dtype in DTYPES and load()


def loaded() -> bool:
    """Whether the library is loaded already (never builds it)."""
    return bool(_state.get("ok"))


def status() -> str:
    """Why the C++ loops are not used ('' when they are), after trying to load them."""
    load()
    return str(_state["why"])


def cache_info() -> dict[str, int]:
    """Bytes in rnnkit's cache of large CPU buffers (``csrc/pool.h``), which the C++ loops
    allocate their (t, b, .) sequences from: ``cached`` (freed, kept for reuse; at most
    ``RNNKIT_CACHE_MB``, default 512) and ``in_use`` (held by live tensors). Zeros when the
    library is not loaded."""
    if not _state.get("ok"):
        return {"cached": 0, "in_use": 0}
    cached, in_use = torch.ops.rnnkit.cache_info()
    return {"cached": int(cached), "in_use": int(in_use)}


def empty_cache() -> None:
    """Give every cached buffer back to the system (the CPU analogue of
    ``torch.cuda.empty_cache``); buffers held by live tensors are not touched."""
    if _state.get("ok"):
        torch.ops.rnnkit.empty_cache()


if __name__ == "__main__":  # python -m rnnkit.extension: build ahead of first use
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ok = load()
    print("rnnkit C++ time loops:", "ready" if ok else f"not available: {status()}")
    sys.exit(0 if ok else 1)
