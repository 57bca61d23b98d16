"""PyTorch baseline for Callosum's benchmarks (a benchmark, not a test: it asserts nothing).

The reference CNN of @callosum/core (Conv2D 32 3x3 relu -> MaxPool 2x2 -> Dense 128 relu -> Dense 10;
693,962 parameters) on the real MNIST training images, read from the IDX files given with --data, as a
PyTorch user would train it on a CPU:

  --mode gradient   forward and backward only (what `pnpm bench:core` measures of Callosum), one process
  --mode train      forward, backward and one Adam step per batch, one process
  --mode ddp        the same with DistributedDataParallel over gloo on loopback, --processes processes,
                    each computing an equal share of every global batch

Every process uses one BLAS/OpenMP thread: OMP_NUM_THREADS=1 is set before torch is imported (as torchrun
sets it; torch.set_num_threads(1) alone does not bound OpenBLAS). Warm-up steps are not timed. Prints
one JSON object on the last line of stdout: samples/s over the timed steps, the median step, the first
process's user and system CPU time and page faults over them, the versions and the BLAS library the
process actually mapped.
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="directory with train-images-idx3-ubyte and train-labels-idx1-ubyte")
    parser.add_argument("--mode", choices=["gradient", "train", "ddp"], required=True)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (split across processes in ddp)")
    parser.add_argument("--processes", type=int, default=2, help="ddp processes")
    parser.add_argument("--steps", type=int, default=150, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before them")
    parser.add_argument("--lr", type=float, default=0.002)
    return parser.parse_args()


def read_idx(path, header_bytes):
    with open(path, "rb") as file:
        return np.frombuffer(file.read(), dtype=np.uint8, offset=header_bytes)


def load_training_set(directory):
    images = read_idx(os.path.join(directory, "train-images-idx3-ubyte"), 16).reshape(-1, 1, 28, 28)
    labels = read_idx(os.path.join(directory, "train-labels-idx1-ubyte"), 8).astype(np.int64)
    if len(images) != len(labels):
        raise SystemExit(f"{directory}: {len(images)} images but {len(labels)} labels")
    return images, labels


def reference_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 13 * 13, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def batches(images, labels, batch_size, rank, processes):
    """This process's share of consecutive global batches of a seeded shuffle, as float tensors in [0, 1]."""
    order = np.random.default_rng(1).permutation(len(labels))
    share = batch_size // processes
    start = 0
    while True:
        if start + batch_size > len(order):
            start = 0
        indices = order[start + rank * share : start + (rank + 1) * share]
        start += batch_size
        yield torch.from_numpy(images[indices].astype(np.float32) / 255), torch.from_numpy(labels[indices])


def mapped_blas():
    """The BLAS shared libraries this process has mapped, resolved through Debian's alternatives links."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return sorted({os.path.realpath(path) for path in paths})


def run(rank, args, data, results):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = reference_cnn()
    optimizer = None
    if args.mode == "ddp":
        dist.init_process_group("gloo", rank=rank, world_size=args.processes)
        model = nn.parallel.DistributedDataParallel(model)
    if args.mode != "gradient":
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    processes = args.processes if args.mode == "ddp" else 1
    source = batches(*data, args.batch_size, rank, processes)
    times = []
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if args.mode == "ddp":
                dist.barrier()
            usage_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        images, labels = next(source)
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    if args.mode == "ddp":
        # The slowest process sets the pace: every step waited for it in the all-reduce.
        total = torch.tensor([sum(times)])
        dist.all_reduce(total, op=dist.ReduceOp.MAX)
        dist.destroy_process_group()
        total_seconds = float(total[0])
    else:
        total_seconds = sum(times)
    if rank == 0:
        results.put(
            {
                "samplesPerSecond": args.batch_size * args.steps / total_seconds,
                "medianStepMs": 1000 * statistics.median(times),
                "blas": mapped_blas(),
                "torchThreads": torch.get_num_threads(),
                # This process's CPU time over the timed steps: system time is mostly page faults on
                # memory glibc handed back to the kernel and allocates afresh.
                "userSeconds": usage.ru_utime - usage_before.ru_utime,
                "systemSeconds": usage.ru_stime - usage_before.ru_stime,
                "minorFaults": usage.ru_minflt - usage_before.ru_minflt,
            }
        )


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    args = parse_args()
    data = load_training_set(args.data)
    if args.mode == "ddp":
        if args.batch_size % args.processes != 0:
            raise SystemExit(f"--batch-size {args.batch_size} does not split evenly over {args.processes} processes")
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(free_port())
        context = mp.get_context("spawn")
        results = context.SimpleQueue()
        mp.start_processes(run, args=(args, data, results), nprocs=args.processes, start_method="spawn")
    else:
        results = mp.get_context("spawn").SimpleQueue()
        run(0, args, data, results)
    result = results.get()
    blas_info = re.search(r"BLAS_INFO=([^,\s]*)", torch.__config__.show())
    result.update(
        {
            "mode": args.mode,
            "batchSize": args.batch_size,
            "processes": args.processes if args.mode == "ddp" else 1,
            "steps": args.steps,
            "warmup": args.warmup,
            "torch": torch.__version__,
            "blasBuildInfo": blas_info.group(1) if blas_info else "not stated",
            "ompNumThreads": os.environ["OMP_NUM_THREADS"],
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
