"""``python -m benchmarks``: run every benchmark with sizes that fit a 2-core machine."""

from benchmarks import bench_runtime

if __name__ == "__main__":
    bench_runtime.main()
