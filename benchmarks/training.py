"""Training speed: EDSR-baseline ×4 updates per second (L1 step of ``train.loop.Trainer``).

    python benchmarks/training.py                     # batch 16, LR patches 48 and 32, fp32 (bf16 where fast)
    python benchmarks/training.py --patches 48 --bf16 yes --steps 3

Random tensors stand in for data (the data loader is not the bottleneck); the median step time after
one warm-up step is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sr_app.models import EDSR  # noqa: E402
from sr_app.upscalers import default_device  # noqa: E402
from train.edsr import build_parser  # noqa: E402
from train.loop import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patches", default="48,32", help="LR patch sides")
    parser.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    fast_bf16 = device.type == "cuda" or "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    dtypes = {"auto": [False, True] if fast_bf16 else [False], "yes": [False, True], "no": [False]}[args.bf16]
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    print("lr_patch | dtype | s/iteration | iterations/s")
    for patch in map(int, args.patches.split(",")):
        for bf16 in dtypes:
            train_args = build_parser().parse_args(["--data", ".", "--out", "."] + (["--bf16"] if bf16 else []))
            trainer = Trainer(EDSR(), train_args, device)
            lr = torch.rand(args.batch_size, 3, patch, patch, device=device)
            hr = torch.rand(args.batch_size, 3, patch * 4, patch * 4, device=device)
            times = []
            for _ in range(args.steps + 1):
                start = time.perf_counter()
                trainer.train_step(lr, hr)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            step = statistics.median(times[1:])
            print(f"{patch} | {'bf16' if bf16 else 'fp32'} | {step:.3f} | {1 / step:.2f}")


if __name__ == "__main__":
    main()
