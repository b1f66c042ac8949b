"""Hello, GPU: which device a job got, and a first computation on it

The smallest useful check that a GPU job works, to run before a long training job: torch looks
for a CUDA device (and, when there is none, says so and uses the CPU), multiplies two random
matrices on it a few times, and checks the product against the same product computed on the
CPU in double precision. The log then tells you three things: which device the job really
used, how fast it multiplies (in GFLOP/s, billions of floating-point operations a second), and
that the answer is right.

If a job on a GPU partition reports the CPU, it did not get a GPU (check `--gres=gpu:1`), or
the venv's torch was installed without CUDA support.

Run it: python3 examples/hello_gpu.py --quick
"""

import statistics
import time

import torch

import workshop


def main() -> None:
    parser = workshop.make_parser(
        "Find the GPU (or fall back to the CPU), time a matrix product on it and check the answer.",
        default_out="results/hello_gpu",
    )
    parser.add_argument("--size", type=workshop.at_least(1), default=4096, help="rows and columns of the two square matrices")
    parser.add_argument("--repeats", type=workshop.at_least(1), default=10, help="how many products are timed; the median is reported")
    args = workshop.parse_args(parser, quick_defaults={"size": 256, "repeats": 3})
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    threads = workshop.use_allocated_threads()
    device = workshop.pick_device()
    workshop.log(f"torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none (a CPU-only build)'}")

    a = torch.randn(args.size, args.size)
    b = torch.randn(args.size, args.size)
    seconds = time_product(a.to(device), b.to(device), args.repeats)
    gflops = 2 * args.size**3 / seconds / 1e9  # an n x n product takes n^3 multiplications and n^3 additions
    error = relative_error(a, b, device)
    workshop.log(f"{args.size} x {args.size} product: {seconds * 1000:.1f} ms, {gflops:.1f} GFLOP/s; relative error {error:.1e}")

    metrics = {"size": args.size, "repeats": args.repeats, "seconds_per_product": seconds, "gflops": gflops, "relative_error": error}
    workshop.write_metrics(args.out, metrics, started, device=device, threads=threads)
    workshop.report_result(device=device.type, gflops=gflops, relative_error=error)


def time_product(a: torch.Tensor, b: torch.Tensor, repeats: int) -> float:
    """Median seconds of one product `a @ b`, after one untimed warm-up (the first call on a GPU
    also starts CUDA). A GPU works asynchronously: synchronize before reading the clock."""
    synchronize = torch.cuda.synchronize if a.is_cuda else (lambda: None)
    a @ b
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def relative_error(a: torch.Tensor, b: torch.Tensor, device: torch.device) -> float:
    """How far the product on `device` (single precision) is from the CPU's in double precision:
    about 1e-6 is right for float32; much more means something is broken."""
    product = (a.to(device) @ b.to(device)).cpu().double()
    reference = a.double() @ b.double()
    return float((product - reference).norm() / reference.norm())


if __name__ == "__main__":
    main()
