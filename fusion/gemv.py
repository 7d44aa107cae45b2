"""The decoding kernel (kernels/gemv.c): one row through a float32 matrix, built once per machine.

PyTorch 2.14's CPU paths stream a one-row product at ~16 GB/s (default) or ~24 GB/s (oneDNN
packed weights) on the 2-core reference machine; this kernel reads the same weights at
~37 GB/s, close to the machine's read bandwidth (bench/bench.py prints both side by side).

It is compiled with the system C compiler into the cache, keyed by the source, the compiler
and the CPU, and loaded with ctypes. Its OpenMP calls resolve to the libgomp torch has
already loaded, so it shares torch's thread team instead of starting a second one. Where
there is no compiler, torch does not use OpenMP, or the built kernel disagrees with torch on
a check product, `load_gemv` returns None and the caller keeps torch's own path.
Set LUNETTES_GEMV=0 to turn it off.
"""

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernels") / "gemv.c"
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]
SYMBOL = "lunettes_gemv_f32"

log = logging.getLogger(__name__)


class Gemv:
    """y [O] = weight [O, I] @ row [I] (+ bias [O]), float32, CPU, contiguous."""

    def __init__(self, library: Path):
        self.library = library
        self._kernel = getattr(ctypes.CDLL(str(library)), SYMBOL)
        self._kernel.restype = None
        self._kernel.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 2

    def __call__(
        self, weight: torch.Tensor, row: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        out_features, in_features = weight.shape
        float32 = torch.float32
        if (
            row.shape != (in_features,)
            or weight.dtype != float32
            or row.dtype != float32
            or weight.device.type != "cpu"
            or row.device.type != "cpu"
            or not (weight.is_contiguous() and row.is_contiguous())
            or (
                bias is not None
                and (
                    bias.shape != (out_features,)
                    or bias.dtype != float32
                    or bias.device.type != "cpu"
                    or not bias.is_contiguous()
                )
            )
        ):  # the kernel reads raw pointers: anything else would read the wrong memory
            raise ValueError(
                f"gemv needs contiguous float32 CPU tensors [{out_features}, {in_features}], "
                f"[{in_features}] and optionally [{out_features}]"
            )
        return self.unchecked(weight, row, bias)

    def unchecked(
        self, weight: torch.Tensor, row: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """__call__ without its checks (~1 ms per decoded token across the LM's 211 layers),
        for callers that already know their tensors fit (row_linear.RowLinear)."""
        out_features, in_features = weight.shape
        result = torch.empty(out_features, dtype=torch.float32)  # O
        self._kernel(
            weight.data_ptr(),
            row.data_ptr(),
            None if bias is None else bias.data_ptr(),
            result.data_ptr(),
            out_features,
            in_features,
        )
        return result


def load_gemv(cache_dir: Path) -> Gemv | None:
    """The kernel built for this machine (compiled on first use), or None where unavailable."""
    if os.environ.get("LUNETTES_GEMV", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not torch.backends.openmp.is_available():
        log.info(
            "decoding kernel not built: %s",
            "no C compiler" if compiler is None else "torch without OpenMP",
        )
        return None
    try:
        library = _build(compiler, cache_dir / "kernels")
        gemv = Gemv(library)
    except (OSError, subprocess.CalledProcessError) as error:
        log.warning("decoding kernel not built (%s); using torch's matrix-vector product", error)
        return None
    if not _agrees_with_torch(gemv):
        log.warning("decoding kernel disagrees with torch on a check product; not used")
        return None
    return gemv


def _build(compiler: str, directory: Path) -> Path:
    real = Path(shutil.which(compiler) or compiler).resolve()
    stat = real.stat()  # a changed or upgraded compiler builds anew (no subprocess per start)
    key = hashlib.sha256()
    for part in (
        SOURCE.read_bytes(),
        " ".join(FLAGS),
        f"{real}:{stat.st_size}:{stat.st_mtime_ns}",
        _cpu(),
    ):
        key.update(part if isinstance(part, bytes) else part.encode())
    library = directory / f"gemv-{key.hexdigest()[:16]}.so"
    if library.is_file():
        return library
    directory.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".so.partial", dir=directory)
    os.close(handle)
    try:
        subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", partial],
            capture_output=True,
            text=True,
            check=True,
        )
        os.replace(partial, library)  # a concurrent build writes the same bytes
    finally:
        Path(partial).unlink(missing_ok=True)
    return library


def _cpu() -> str:
    """What -march=native compiles for: the machine and its instruction-set flags."""
    try:
        flags = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        flags = ""
    return platform.machine() + flags


def _agrees_with_torch(gemv: Gemv) -> bool:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(37, 51, generator=generator)  # odd sizes: row blocks and lane tails
    row, bias = torch.randn(51, generator=generator), torch.randn(37, generator=generator)
    expected = torch.nn.functional.linear(row, weight, bias)
    return torch.allclose(gemv(weight, row, bias), expected, rtol=1e-4, atol=1e-4)
