#!/usr/bin/env python3
"""Generate the `gemm_efficiency` tables (parallax.GemmEfficiencyTable) of the bundled GPU presets.

What the table means
--------------------
Achieved fraction of the dense fp16/bf16 tensor-core peak for a cuBLAS GEMM of shape (m, n, k), on a
grid m, n, k in {128, 512, 2048, 8192, 32768}; parallax interpolates trilinearly in log2 and clamps
outside the grid. Values are listed k fastest, then n, then m:
    index = (im * len(n) + in) * len(k) + ik.

The table captures only the tile / wave-quantisation / occupancy effect. Arithmetic intensity
(memory-bound GEMMs with a small k or a small m or n) is handled separately by the roofline in the
compute cost model, time = max(FLOPs / (peak * eff), bytes / (HBM bw * eff_bw)) + overhead
(docs/architecture.md, "Cost model"), so it must not be counted twice here.

Model
-----
    w(x)  = x / (x + x_half),   x_half = 96 for m and n, 128 for k
    eff   = e_max * w(m) * w(n) * sqrt(w_k(k)) / (w(8192)^2 * sqrt(w_k(8192)))

- w(x) is a saturating occupancy term: a dimension much larger than a thread-block tile (128-256
  wide in cuBLAS' tensor-core kernels) fills all SMs in many full waves, and efficiency approaches
  its asymptote; a dimension close to one tile leaves SMs idle or a partial last wave (tile and wave
  quantisation), and efficiency falls roughly as x / (x + tile/2 ... tile).
- k enters with a square root and a larger x_half because k is the reduction dimension: it does not
  create parallel work, it only shortens each tile's main loop (prologue/epilogue amortisation), so
  it matters less than m and n.
- The normalisation makes eff(8192, 8192, 8192) = e_max exactly; larger shapes come out slightly
  above e_max (at most ~2.4 % relative at 32768^3), every value stays in (0, 1].

e_max, the efficiency of a large square GEMM:
    V100 0.75   large fp16 cuBLAS GEMMs, ~94 of 125 TFLOP/s
    A100 0.74   ~250 of 312 TFLOP/s at 8192^3 fp16 at the 1410 MHz boost clock (0.80), times the
                clock a DGX A100 sustains under a training run's power draw (400 W cap; ~1305 MHz,
                0.925): 0.80 * 0.925 = 0.74
    H100 0.70   ~700 of 989 TFLOP/s for plain cuBLAS bf16 (H100 runs below its datasheet peak under
                power/clock limits)
    H200 0.72   H100 plus a little for the higher HBM bandwidth (assumption)
Sources: NVIDIA Deep Learning Performance Guide, "Matrix Multiplication Background" (GEMM
throughput versus shape, tile and wave quantisation); the e_max figures are the published large-GEMM
cuBLAS efficiencies summarised above. These are *defaults*: `parallax calibrate` refits the table
from measured runs (docs/architecture.md, "Cost model").

The laptop-CPU preset (scenarios/clusters/cpu-laptop.pbtxt) gets a flat 0.5 table, a placeholder
until the host backend is calibrated.

Usage
-----
    scripts/gen_gemm_efficiency.py           rewrite the tables in place
    scripts/gen_gemm_efficiency.py --check   exit 1 if any file is out of date (for CI)
    scripts/gen_gemm_efficiency.py --print a100-sxm4-80gb   print one table to stdout

Each target file holds a block delimited by the BEGIN/END marker comments below; only the lines
between the markers are replaced, the hand-written rest of the file is left alone. The indentation of
the BEGIN line is used for the generated block.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

AXIS = [128, 512, 2048, 8192, 32768]
X_HALF_MN = 96.0
X_HALF_K = 128.0
NORM_AT = 8192

# The generated blocks: (marker / field name, model tables, flat tables).
BLOCKS = ["gemm_efficiency", "fp8_gemm_efficiency"]

GUIDE = 'NVIDIA Deep Learning Performance Guide, "Matrix Multiplication Background"'

# preset file (relative to scenarios/) -> (e_max, short description of where e_max comes from)
GPUS = {
    "gpus/v100-sxm2-32gb.pbtxt": (0.75, "large fp16 cuBLAS GEMMs reach ~75% of 125 TFLOP/s on V100"),
    "gpus/a100-sxm4-80gb.pbtxt": (0.74, "~250 of 312 TFLOP/s for an 8192^3 fp16 cuBLAS GEMM on A100 at boost clock, x0.925 for the clock sustained under training power (~1305 of 1410 MHz)"),
    "gpus/h100-sxm5-80gb.pbtxt": (0.70, "~700 of 989 TFLOP/s for large plain-cuBLAS bf16 GEMMs on H100"),
    "gpus/h100-96gb.pbtxt": (0.70, "the H100 SXM table: same GH100 silicon and cuBLAS tiles; its 500 W clock cap is in the preset's peak (912 TFLOP/s), not here"),
    "gpus/h200-sxm-141gb.pbtxt": (0.72, "H100's ~0.70 plus a little for H200's higher HBM bandwidth (assumed)"),
    # Blackwell: the MAMF (maximum achievable matmul FLOPS, stas00/ml-engineering compute/accelerator
    # table: B200 1,745 of 2,250 TFLOP/s bf16, GB200 1,822 of 2,500) times the H100's ratio of
    # training-run to MAMF efficiency (0.70 / 0.80, MAMF 794.5 of 989): 0.776 * 0.875, 0.729 * 0.875.
    "gpus/b200-sxm-180gb.pbtxt": (0.68, "B200 bf16 MAMF 1,745 of 2,250 TFLOP/s (0.776), x0.875 as H100's training-run / MAMF ratio"),
    "gpus/gb200-186gb.pbtxt": (0.64, "GB200 bf16 MAMF 1,822 of 2,500 TFLOP/s (0.729), x0.875 as H100's training-run / MAMF ratio"),
}

# FP8 tables (fp8_gemm_efficiency, fraction of the dense FP8 peak), the same shape model with their own
# e_max. H100: fitted on the FP8/BF16 calibration pair of validation/modern.tsv, MR27/MR28 (NeMo GPT-3
# 175B on 128 H100, one config with FP8 switched on; modern-sources.md names it the pair that isolates
# the FP8 speed-up): with the BF16 table's 0.70 fixed, MR28's step comes out within 1% of its measured
# 5.63 s at e_max 0.57, i.e. ~1,130 of 1,979 TFLOP/s for a large FP8 GEMM in a training run, 1.63x the
# BF16 table. A single H100 at full clock runs an 8192^3 cuBLASLt E4M3 GEMM at ~1,600 TFLOP/s (0.81;
# public cuBLASLt FP8 cross-check reports: 1,599-1,630 TFLOP/s on 16 GPUs): FP8 GEMMs lose more than
# BF16 ones (0.80 -> 0.70) to the clock a GPU holds at its power cap under a training run, and TE's
# FP8 GEMMs carry scaling-factor epilogues. The other FP8 rows (MR02, MR04, MR10, MR13) test it.
FP8_GPUS = {
    "gpus/h100-sxm5-80gb.pbtxt": (0.57, "fitted on the MR27/MR28 FP8-BF16 calibration pair of validation/modern.tsv: ~1,130 of 1,979 TFLOP/s in a training run (one H100 at full clock: ~1,600 for an 8192^3 cuBLASLt E4M3 GEMM)"),
    "gpus/h100-96gb.pbtxt": (0.57, "the H100 SXM FP8 table: same silicon; the 500 W cap is in the preset's peak"),
    "gpus/h200-sxm-141gb.pbtxt": (0.59, "the H100 FP8 value plus the 0.02 the bf16 table adds for H200's HBM (assumed)"),
    # Blackwell: no FP8/BF16 pair measured on it yet; the H100's FP8-to-BF16 e_max ratio (0.57 / 0.70).
    "gpus/b200-sxm-180gb.pbtxt": (0.55, "the B200 bf16 e_max 0.68 x the H100's FP8/BF16 e_max ratio 0.57/0.70 (assumed; no Blackwell FP8 pair measured)"),
    "gpus/gb200-186gb.pbtxt": (0.52, "the GB200 bf16 e_max 0.64 x the H100's FP8/BF16 e_max ratio 0.57/0.70 (assumed)"),
}

# preset file -> constant value (placeholder tables)
FLAT = {
    "clusters/cpu-laptop.pbtxt": (0.5, "flat 0.5 placeholder for laptop CPU cores (host BLAS); "
                                       "replace with `parallax calibrate` on a measured host run"),
}


def w(x: float, half: float) -> float:
    return x / (x + half)


def efficiency(m: int, n: int, k: int, e_max: float) -> float:
    raw = w(m, X_HALF_MN) * w(n, X_HALF_MN) * math.sqrt(w(k, X_HALF_K))
    norm = w(NORM_AT, X_HALF_MN) ** 2 * math.sqrt(w(NORM_AT, X_HALF_K))
    return e_max * raw / norm


def model_values(e_max: float) -> list[float]:
    return [round(efficiency(m, n, k, e_max), 4) for m in AXIS for n in AXIS for k in AXIS]


def flat_values(value: float) -> list[float]:
    return [value] * (len(AXIS) ** 3)


def quote(text: str) -> str:
    """A protobuf text-format string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def table_lines(values: list[float], source: str, indent: str, field: str = "gemm_efficiency") -> list[str]:
    assert len(values) == len(AXIS) ** 3
    assert all(0.0 < v <= 1.0 for v in values), "efficiency values must lie in (0, 1]"
    axis = ", ".join(str(a) for a in AXIS)
    out = [
        field + " {",
        f"  source: {quote(source)}",
        f"  m: [{axis}]",
        f"  n: [{axis}]",
        f"  k: [{axis}]",
        f"  # One (m, n) pair per line; the five values are k = {axis}.",
        "  efficiency: [",
    ]
    rows = len(AXIS) * len(AXIS)
    for row in range(rows):
        im, jn = divmod(row, len(AXIS))
        chunk = values[row * len(AXIS):(row + 1) * len(AXIS)]
        sep = "," if row < rows - 1 else " "
        nums = ", ".join(f"{v:.4f}" for v in chunk)
        out.append(f"    {nums}{sep}  # m={AXIS[im]} n={AXIS[jn]}")
    out.append("  ]")
    out.append("}")
    return [indent + line for line in out]


def model_source(e_max: float, why: str) -> str:
    return (f"scripts/gen_gemm_efficiency.py: eff = e_max*w(m)*w(n)*sqrt(w(k)), w(x)=x/(x+x_half), "
            f"x_half 96 (m,n) / 128 (k), normalised to e_max at 8192^3; e_max={e_max:.2f} ({why}); "
            f"{GUIDE}. Tile/wave effect only; memory-bound shapes are left to the roofline.")


def block_for(rel: str, indent: str, field: str = "gemm_efficiency") -> list[str]:
    if field == "fp8_gemm_efficiency":
        e_max, why = FP8_GPUS[rel]
        return table_lines(model_values(e_max), model_source(e_max, why), indent, field)
    if rel in GPUS:
        e_max, why = GPUS[rel]
        return table_lines(model_values(e_max), model_source(e_max, why), indent)
    value, why = FLAT[rel]
    return table_lines(flat_values(value), f"scripts/gen_gemm_efficiency.py: {why}", indent)


def render(path: pathlib.Path, rel: str) -> str:
    lines = path.read_text().splitlines()
    for field in BLOCKS:
        if field == "fp8_gemm_efficiency" and rel not in FP8_GPUS:
            continue
        begin, end = f"# BEGIN {field}", f"# END {field}"
        begins = [i for i, l in enumerate(lines) if l.strip() == begin or l.strip().startswith(begin + " ")]
        ends = [i for i, l in enumerate(lines) if l.strip() == end or l.strip().startswith(end + " ")]
        if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
            raise SystemExit(f"{path}: need exactly one '{begin}' line followed by one '{end}' line")
        b, e = begins[0], ends[0]
        indent = lines[b][: len(lines[b]) - len(lines[b].lstrip())]
        lines = lines[: b + 1] + block_for(rel, indent, field) + lines[e:]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    parser.add_argument("--print", metavar="PRESET", help="print the table for one GPU preset name")
    args = parser.parse_args()

    if args.print:
        rel = f"gpus/{args.print}.pbtxt"
        if rel not in GPUS:
            rel = f"clusters/{args.print}.pbtxt"
        if rel not in GPUS and rel not in FLAT:
            raise SystemExit(f"unknown preset {args.print}")
        print("\n".join(block_for(rel, "")))
        return 0

    stale = []
    for rel in list(GPUS) + list(FLAT):  # FP8_GPUS are among GPUS
        path = SCENARIOS / rel
        text = render(path, rel)
        if path.read_text() != text:
            if args.check:
                stale.append(str(path.relative_to(ROOT)))
            else:
                path.write_text(text)
                print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run scripts/gen_gemm_efficiency.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
