"""The timing rule of every PyTorch peer script: median seconds per call over repeated calls filling
min_time (at least 3 calls), after one untimed warm-up call."""
import statistics
import time


def timed(fn, min_time):
    fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
