"""Development benchmarks, run from the checkout (`make bench`, `make bench-node`, `make bench-stop`,
`make bench-models`).

Not part of the installed package: ``perception`` (pipeline stages, classifiers, the `fer` library as
the peer), ``node`` (fer_node + camera processes over DDS), ``models`` (parameters, MACs, training and
inference throughput per architecture), ``stop`` (STOP and the command channel's contract, from another
process). They print figures; nothing here asserts a time.
"""
from __future__ import annotations

import json
import os


def write_report(path: str | None, results: dict, name: str) -> None:
    """Write a benchmark's figures as JSON to ``path`` (when given) and print where, then the load average."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'{name}: wrote {path}')
    print(f'{name}: load average at the end {[round(v, 2) for v in os.getloadavg()]}')
