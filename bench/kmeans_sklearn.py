#!/usr/bin/env python3
"""scikit-learn's side of bench/kmeans.bench.ts, on the same points.

    python3 bench/kmeans_sklearn.py POINTS.f64 N D K ROUNDS

POINTS.f64 holds N x D float64 (little-endian, row-major). Prints one JSON object: per thread
count (1 and 2), the median milliseconds of one Lloyd iteration (scikit-learn's own
`lloyd_iter_chunked_dense`, assignment and centre update, as in KMeans.fit) and of a whole
`KMeans(k, n_init=1, algorithm="lloyd").fit` (k-means++ included), with the fit's iterations.
"""
import json
import sys
import time

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
from threadpoolctl import threadpool_limits


def median_ms(fn, rounds, warmup=2):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples


def main():
    path, n, d, k, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    x = np.fromfile(path, dtype="<f8").reshape(n, d)
    weights = np.ones(n, dtype=np.float64)
    centers = np.ascontiguousarray(x[np.random.default_rng(0).choice(n, k, replace=False)])
    out = {"sklearn": sklearn.__version__, "numpy": np.__version__, "threads": {}}
    for threads in (1, 2):
        centers_new = np.zeros_like(centers)
        weight_in_clusters = np.zeros(k)
        labels = np.full(n, -1, dtype=np.int32)
        shift = np.zeros(k)

        def iteration():
            lloyd_iter_chunked_dense(x, weights, centers, centers_new, weight_in_clusters, labels, shift, threads)

        it_ms, _ = median_ms(iteration, rounds * 4)
        fits = []

        def fit():
            with threadpool_limits(limits=threads, user_api="openmp"):
                km = KMeans(n_clusters=k, n_init=1, algorithm="lloyd", random_state=0).fit(x)
            fits.append(int(km.n_iter_))

        fit_ms, _ = median_ms(fit, rounds, warmup=1)
        out["threads"][str(threads)] = {
            "iterationMs": it_ms,
            "fitMs": fit_ms,
            "fitIterations": sorted(fits)[len(fits) // 2],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
