"""The products kernel (kernels/gemv.c): one row, or a few, through a matrix; built once per machine.

PyTorch 2.14's CPU paths stream a one-row product at ~16 GB/s (default) or ~24 GB/s (oneDNN
packed weights) on the 2-core reference machine; this kernel reads the same weights at
~37 GB/s, close to the machine's read bandwidth (bench/bench.py prints both side by side).

It also takes the matrix as a GGUF file stores it (`Blocks`: Q4_1 or Q8_0 blocks of 32
weights), making each weight in a register as the very float32 the file dequantizes to: the
same products as on the float32 copy, from 5x (Q4_1) or 4x (Q8_0) fewer bytes. The embedded
LM's 210 linear layers and its output head, one row, 2 threads, 2-core AVX2 EPYC, 2026-12-05:
9.7-10.4 ms from its blocks, 22.7-25.5 ms from float32 (one thread: 17.4 against 33-35 ms).
A decode batch of 2 to 8 rows goes through the blocks too, each weight made once for all
its rows: over the 211 layers, 8 rows 23-27 ms against 58-67 ms on oneDNN's packed float32.
Where the build has no AVX2, FMA and F16C, the blocks' plain C loop is ~3x slower than the
float32 product (`blocks_vectorised` says so) and callers keep float32.

And a few rows at once (up to HALF_ROWS: Whisper's 5 beams) through a float16 copy of a
weight whose float32 values are float16 values (Whisper's ship as float16): each weight is
read once for all the rows and converted to the float32 it exactly is (`half_rows`).
Whisper base's decoder products for 5 rows, 2 threads, 2-core AVX2 EPYC, 2026-12-05: 5.7-6.2
ms from float16, 13.7-15.1 ms from oneDNN's packed float32 weights.

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
from dataclasses import dataclass
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernels") / "gemv.c"
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]
SYMBOL = "lunettes_gemv_f32"
GROUP = 32  # weights per block
BLOCK_BYTES = {"q4_1": 20, "q8_0": 34}  # float16 d (and m for Q4_1), then the codes
_FORMAT_CODES = {"q4_1": 4, "q8_0": 8}  # as kernels/gemv.c names them
HALF_ROWS = 8  # the most rows half_rows and blocks_rows take at once

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Blocks:
    """A weight [O, I] as a GGUF file stores it: each row a run of I / 32 blocks.

    Q4_1: float16 d, float16 m, 16 bytes of 4-bit codes q (byte j: weight j in its low half,
    j + 16 in its high half); w = q * d + m. Q8_0: float16 d, 32 signed bytes q; w = q * d.
    """

    format: str  # "q4_1" or "q8_0"
    data: torch.Tensor  # [O, I / 32 * BLOCK_BYTES[format]] uint8, contiguous, CPU
    in_features: int  # I

    def __post_init__(self):
        if self.format not in BLOCK_BYTES:
            raise ValueError(
                f"block format must be one of {sorted(BLOCK_BYTES)}, not {self.format!r}"
            )
        width = self.in_features // GROUP * BLOCK_BYTES[self.format]
        if (
            self.in_features % GROUP
            or self.data.dtype != torch.uint8
            or self.data.dim() != 2
            or self.data.shape[1] != width
            or self.data.device.type != "cpu"
            or not self.data.is_contiguous()
        ):  # the kernel reads raw pointers: anything else would read the wrong memory
            raise ValueError(
                f"{self.format} blocks of a [O, {self.in_features}] weight must be a contiguous "
                f"uint8 CPU tensor [O, {width}] (in_features a multiple of {GROUP}), not "
                f"{self.data.dtype} {tuple(self.data.shape)}"
            )

    @property
    def out_features(self) -> int:
        return self.data.shape[0]

    def dequantized(self) -> torch.Tensor:
        """The weight [O, I] float32, as the file's float32 copy holds it (for checks)."""
        rows, blocks = self.out_features, self.in_features // GROUP
        raw = self.data.reshape(rows, blocks, BLOCK_BYTES[self.format])  # O, I/32, bytes
        scale = raw[..., 0:2].contiguous().view(torch.float16).float()  # O, I/32, 1
        if self.format == "q8_0":
            codes = raw[..., 2:].contiguous().view(torch.int8).float()  # O, I/32, 32
            return (codes * scale).reshape(rows, self.in_features)
        minimum = raw[..., 2:4].contiguous().view(torch.float16).float()
        packed = raw[..., 4:]  # O, I/32, 16
        codes = torch.cat([packed & 0x0F, packed >> 4], dim=-1).float()  # O, I/32, 32
        return (codes * scale + minimum).reshape(rows, self.in_features)


class Gemv:
    """y [O] = weight [O, I] @ row [I] (+ bias [O]), float32, CPU, contiguous; the weight
    float32 or as GGUF blocks (`blocks`; 2-8 rows, a decode batch: `blocks_rows`); and a few
    rows through a float16 weight (`half_rows`)."""

    def __init__(self, library: Path):
        self.library = library
        built = ctypes.CDLL(str(library))
        self._kernel = getattr(built, SYMBOL)
        self._kernel.restype = None
        self._kernel.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 2
        self._blocks = built.lunettes_gemv_blocks
        self._blocks.restype = None
        self._blocks.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 2
        self.blocks_vectorised = bool(built.lunettes_gemv_blocks_vectorised())
        self._blocks_rows = built.lunettes_gemm_blocks
        self._blocks_rows.restype = ctypes.c_int
        self._blocks_rows.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3
        self._half = built.lunettes_gemm_f16
        self._half.restype = ctypes.c_int
        self._half.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3
        self.half_vectorised = self.blocks_vectorised  # the same instructions (F16C)

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
            or not _fits_bias(bias, out_features)
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

    def blocks(
        self, weight: Blocks, row: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """y [O] = weight [O, I] @ row [I] (+ bias [O]) with the weight as GGUF blocks."""
        out_features, in_features = weight.out_features, weight.in_features
        if (
            row.shape != (in_features,)
            or row.dtype != torch.float32
            or row.device.type != "cpu"
            or not row.is_contiguous()
            or not _fits_bias(bias, out_features)
        ):
            raise ValueError(
                f"a product with blocks of a [{out_features}, {in_features}] weight needs a "
                f"contiguous float32 CPU row [{in_features}] and optionally bias [{out_features}]"
            )
        return self.blocks_unchecked(weight, row, bias)

    def blocks_unchecked(
        self, weight: Blocks, row: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`blocks` without its checks, for callers that already know the row fits."""
        result = torch.empty(weight.out_features, dtype=torch.float32)  # O
        self._blocks(
            _FORMAT_CODES[weight.format],
            weight.data.data_ptr(),
            row.data_ptr(),
            None if bias is None else bias.data_ptr(),
            result.data_ptr(),
            weight.out_features,
            weight.in_features,
        )
        return result

    def blocks_rows(
        self, weight: Blocks, rows: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """y [R, O] = rows [R, I] @ weight [O, I]^T (+ bias [O]) with the weight as GGUF blocks,
        2 <= R <= HALF_ROWS (a decode batch): each weight made once for all the rows. Only
        where `blocks_vectorised` (else a RuntimeError)."""
        out_features, in_features = weight.out_features, weight.in_features
        count = rows.shape[0] if rows.dim() == 2 else 0
        if (
            rows.shape != (count, in_features)
            or not 2 <= count <= HALF_ROWS
            or rows.dtype != torch.float32
            or rows.device.type != "cpu"
            or not rows.is_contiguous()
            or not _fits_bias(bias, out_features)
        ):
            raise ValueError(
                f"a product with blocks of a [{out_features}, {in_features}] weight needs 2 to "
                f"{HALF_ROWS} contiguous float32 CPU rows [R, {in_features}] and optionally a "
                f"float32 bias [{out_features}]"
            )
        return self.blocks_rows_unchecked(weight, rows, bias)

    def blocks_rows_unchecked(
        self, weight: Blocks, rows: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`blocks_rows` without its checks, for callers that already know the rows fit."""
        count = rows.shape[0]
        result = torch.empty(count, weight.out_features, dtype=torch.float32)  # R, O
        done = self._blocks_rows(
            _FORMAT_CODES[weight.format],
            weight.data.data_ptr(),
            rows.data_ptr(),
            None if bias is None else bias.data_ptr(),
            result.data_ptr(),
            count,
            weight.out_features,
            weight.in_features,
        )
        if not done:
            raise RuntimeError("this build of the kernel has no vectorised block product")
        return result

    def half_rows(
        self, weight: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """y [R, O] = rows [R, I] @ weight [O, I]^T (+ bias [O]): the weight float16, the rows
        and y float32, 1 <= R <= HALF_ROWS, all contiguous on the CPU. Only where
        `half_vectorised` (else a RuntimeError: the caller keeps its own product)."""
        out_features, in_features = weight.shape
        count = rows.shape[0] if rows.dim() == 2 else 0
        if (
            weight.dtype != torch.float16
            or rows.dtype != torch.float32
            or rows.shape != (count, in_features)
            or not 1 <= count <= HALF_ROWS
            or weight.device.type != "cpu"
            or rows.device.type != "cpu"
            or not (weight.is_contiguous() and rows.is_contiguous())
            or not _fits_bias(bias, out_features)
        ):
            raise ValueError(
                f"half_rows needs a contiguous float16 CPU weight [{out_features}, {in_features}], "
                f"1 to {HALF_ROWS} float32 rows [R, {in_features}] and optionally a float32 bias "
                f"[{out_features}]"
            )
        return self.half_rows_unchecked(weight, rows, bias)

    def half_rows_unchecked(
        self, weight: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`half_rows` without its checks, for callers that already know their tensors fit."""
        (count, in_features), out_features = rows.shape, weight.shape[0]
        result = torch.empty(count, out_features, dtype=torch.float32)  # R, O
        done = self._half(
            weight.data_ptr(),
            rows.data_ptr(),
            None if bias is None else bias.data_ptr(),
            result.data_ptr(),
            count,
            out_features,
            in_features,
        )
        if not done:
            raise RuntimeError("this build of the kernel has no float16 product (no AVX2/F16C)")
        return result


def _fits_bias(bias: torch.Tensor | None, out_features: int) -> bool:
    """No bias, or a contiguous float32 CPU one of out_features: what the kernel can read."""
    return bias is None or (
        bias.shape == (out_features,)
        and bias.dtype == torch.float32
        and bias.device.type == "cpu"
        and bias.is_contiguous()
    )


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
    if not torch.allclose(gemv(weight, row, bias), expected, rtol=1e-4, atol=1e-4):
        return False
    row = torch.randn(64, generator=generator)
    rows = torch.randn(5, 64, generator=generator)
    for format in BLOCK_BYTES:  # 37 rows: row blocks and their tails
        blocks = random_blocks(format, 37, 64, generator)
        expected = torch.nn.functional.linear(row, blocks.dequantized(), bias)
        if not torch.allclose(gemv.blocks(blocks, row, bias), expected, rtol=1e-4, atol=1e-4):
            return False
        if gemv.blocks_vectorised:
            expected = torch.nn.functional.linear(rows, blocks.dequantized(), bias)
            got = gemv.blocks_rows(blocks, rows, bias)
            if not torch.allclose(got, expected, rtol=1e-4, atol=1e-4):
                return False
    if gemv.half_vectorised:
        weight, rows = weight.half(), torch.randn(5, 51, generator=generator)
        expected = torch.nn.functional.linear(rows, weight.float(), bias)
        if not torch.allclose(gemv.half_rows(weight, rows, bias), expected, rtol=1e-4, atol=1e-4):
            return False
    return True


def random_blocks(
    format: str, out_features: int, in_features: int, generator: torch.Generator
) -> Blocks:
    """Blocks of random codes, with scales (and minimums) of a trained layer's size."""
    rows, blocks = out_features, in_features // GROUP
    scale = (torch.rand(rows, blocks, 1, generator=generator) * 0.02).half()
    if format == "q8_0":
        codes = torch.randint(-127, 128, (rows, blocks, GROUP), generator=generator)
        parts = [scale.view(torch.uint8), codes.to(torch.int8).view(torch.uint8)]
    else:
        minimum = (-torch.rand(rows, blocks, 1, generator=generator) * 0.15).half()
        codes = torch.randint(0, 16, (rows, blocks, GROUP), generator=generator, dtype=torch.uint8)
        packed = codes[..., :16] | (codes[..., 16:] << 4)  # byte j: code j low, j + 16 high
        parts = [scale.view(torch.uint8), minimum.view(torch.uint8), packed]
    data = torch.cat(parts, dim=-1).reshape(rows, -1).contiguous()
    return Blocks(format, data, in_features)
