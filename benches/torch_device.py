"""PyTorch side of the device benchmarks: benches/reference/bench_torch.py's `train_step`
and `infer_embed` workloads on any torch device, for a side-by-side run with

    cargo bench --features cuda --bench train_step -- --device cuda:0 [--precision bf16]

usage: python benches/torch_device.py [--device cuda] [--precision f32|bf16] [--reps 10]
           [--warmup 3] [--d 2048] [--train-batches 64,128] [--infer-batch 256]
           [--queue 65536] [--reference benches/reference]

Same models, step (official order: two EMA updates, SGD) and sizes as bench_torch.py, built
on --device (torch.set_default_device, so the reference's own factory calls land there too).
`--precision bf16` wraps the step and the embedding in torch.autocast(bfloat16), the
counterpart of the Rust `precision: bf16`. Every repetition ends with a device synchronise.
One JSON line per measurement, in bench_torch.py's record shape (bench_summary.py reads
both), plus `device`, `precision` and `peak_device_bytes` (torch.cuda.max_memory_allocated
over the measurement; null on CPU).
"""

import argparse
import json
import os
import statistics
import sys
import time


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--train-batches", default="64,128")
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--queue", type=int, default=65536)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--reference", default=os.path.join(here, "reference"))
    return ap.parse_args()


def main():
    args = parse()
    sys.path.insert(0, args.reference)
    import torch

    import slicer_ref as R

    device = torch.device(args.device)
    torch.set_default_device(device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def measure(fn):
        for _ in range(max(1, args.warmup)):
            fn()
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated(device) if cuda else None
        return times, peak

    def emit(bench, params, times, peak, work, unit):
        med = statistics.median(times)
        rec = {"impl": "pytorch", "bench": bench, **params, "device": str(device),
               "precision": args.precision, "median_s": med,
               "load_before": {"load1": os.getloadavg()[0]},
               "min_s": min(times), "max_s": max(times), "reps": len(times),
               "warmup": args.warmup, "times_s": [round(t, 6) for t in times],
               "throughput": work / med, "throughput_unit": unit, "peak_device_bytes": peak,
               "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(device) if cuda else None,
               "threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        print(json.dumps(rec), flush=True)

    cfg = R.StepConfig(ema_order="official")
    for b in [int(x) for x in args.train_batches.split(",")]:
        assert args.queue % b == 0, "the queue must hold whole batches"
        torch.manual_seed(0)
        student = R.SlicerNet(d=args.d, instance_dim=128, n_clusters=128)
        teacher = R.make_teacher(student)
        queue = R.MocoQueue(128, args.queue)
        opt = R.make_optimizer(student, "sgd")
        x1, x2 = torch.randn(b, 1, 64, 96), torch.randn(b, 1, 64, 96)

        def step():
            with autocast():
                R.slicer_train_step(student, teacher, queue, opt, x1, x2, cfg)

        times, peak = measure(step)
        emit("train_step", {"d": args.d, "batch": b, "input": [64, 96], "queue": args.queue,
                            "optimizer": "sgd", "ema_per_step": 2}, times, peak, b, "samples/s")

    for d in sorted({args.d, 512}, reverse=True):
        torch.manual_seed(0)
        enc = R.ByolaEncoder(d=d).eval()
        x = torch.randn(args.infer_batch, 1, 64, 96)

        def embed():
            with torch.inference_mode(), autocast():
                return enc(x)

        times, peak = measure(embed)
        emit("infer_embed", {"d": d, "batch": args.infer_batch, "input": [64, 96], "mode": "eval"},
             times, peak, args.infer_batch, "embeddings/s")


if __name__ == "__main__":
    main()
