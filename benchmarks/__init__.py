"""Development benchmarks, run from the checkout (`make bench`, `make bench-node`, `make bench-models`).

Not part of the installed package: ``perception`` (pipeline stages, classifiers, the `fer` library as
the peer), ``node`` (fer_node + camera processes over DDS), ``models`` (parameters, MACs, training and
inference throughput per architecture). They print figures; nothing here asserts a time.
"""
