"""A child for tests/ui/test_bench_child.py: reports its data folder, or fails when asked to."""
import os
import sys

from simulator.ui.bench_child import child_main


def measure(data: str) -> dict:
    if "--fail" in sys.argv:
        raise RuntimeError("the probe fell over")
    (open(os.path.join(data, "written"), "w")).close()
    return {"data": data, "env": os.environ["NEUROLYSIS_DATA"], "args": sys.argv[1:]}


if __name__ == "__main__":
    child_main(measure, prefix="nt-probe-")
