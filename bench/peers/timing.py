"""The timing rule of every PyTorch peer script: median seconds per call over repeated calls filling
min_time (at least 3 calls), after one untimed warm-up call; on a GPU each call ends with a synchronize.
Also the peers' shared --device / --dtype options and the names their GPU rows take."""
import statistics
import time


def timed(fn, min_time, sync=None):
    if sync is not None:
        call = fn

        def fn():
            call()
            sync()

    fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def add_device_options(ap):
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="with --device cuda: bf16 runs under torch.autocast (float32 parameters)")


def check_device(ap, a, torch):
    """Refuses what makes no sense, at parse time; returns (device, autocast context factory, sync)."""
    if a.device == "cpu" and a.dtype != "fp32":
        ap.error(f"--dtype {a.dtype} needs --device cuda (the CPU peers run in float32)")
    if a.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    import contextlib

    def autocast():
        if a.dtype == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    sync = torch.cuda.synchronize if a.device == "cuda" else None
    return torch.device(a.device), autocast, sync


def row_name(a, name):
    """The CPU name as is; on the GPU bench_cuda's: cuda_<first part>/<dtype>/<rest>."""
    if a.device == "cpu":
        return name
    first, rest = name.split("/", 1)
    return f"cuda_{first}/{a.dtype}/{rest}"
