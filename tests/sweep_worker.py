"""Run the tiny test sweep in a process of its own (multi-device and multi-host tests).

Usage: python sweep_worker.py OUT CHUNK_SIZE [PORT PROCESS_ID PROCESS_COUNT]
"""

import sys

import jax

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from sweep_case import run_tiny  # noqa: E402

if __name__ == "__main__":
    out, chunk = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3:
        port, pid, count = (int(a) for a in sys.argv[3:6])
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{port}", num_processes=count, process_id=pid
        )
    run_tiny(chunk, out=out, merge_timeout=120)
    print(f"devices={len(jax.local_devices())} process={jax.process_index()}/{jax.process_count()}")
