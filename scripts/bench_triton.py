#!/usr/bin/env python3
"""Benchmark of the chip Triton backend: a real tritonserver on 127.0.0.1, concurrent clients
sending real photos (IMAGE_BYTES), requests per second and latency percentiles for predictions only
(PROBABILITIES, TOP1) and predictions with CHIP maps (+ CHIP_MAP, BOX) through the same model; then
the server's resident memory sampled over a long run of mixed requests.

Run scripts/test_triton.sh once first (it builds the backend and the test fits), then:
    CHIP_TARGET_DIR=<cargo target dir> third_party/triton-venv/bin/python scripts/bench_triton.py
"""
import argparse
import concurrent.futures as cf
import pathlib
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "triton"))
from harness import MODEL_NAME, PHOTOS, Server, add_model, config_text, make_backend_dir, make_fits, model_files  # noqa: E402

PREDICTIONS = ["PROBABILITIES", "TOP1"]
WITH_MAPS = ["PROBABILITIES", "TOP1", "CHIP_MAP", "BOX"]


def make_request(mod, data):
    arr = np.array([[data]], dtype=np.object_)
    t = mod.InferInput("IMAGE_BYTES", [1, 1], "BYTES")
    t.set_data_from_numpy(arr)
    return [t]


def run_load(server, protocol, outputs, total, concurrency, photos, on_done=None):
    """`total` requests from `concurrency` clients; returns (seconds, latencies in ms)."""
    if protocol == "http":
        import tritonclient.http as mod
    else:
        import tritonclient.grpc as mod
    lock = threading.Lock()
    counter = [0]
    latencies = []

    def worker(k):
        client = server.client(protocol)
        requested = [mod.InferRequestedOutput(o) for o in outputs]
        inputs = [make_request(mod, p) for p in photos]
        mine = []
        while True:
            with lock:
                i = counter[0]
                if i >= total:
                    break
                counter[0] += 1
            t0 = time.perf_counter()
            result = client.infer(MODEL_NAME, inputs[i % len(inputs)], outputs=requested)
            mine.append((time.perf_counter() - t0) * 1e3)
            for o in outputs:
                if result.as_numpy(o) is None:
                    raise RuntimeError(f"output {o} missing")
            if on_done:
                on_done(i)
        return mine

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        for part in pool.map(worker, range(concurrency)):
            latencies.extend(part)
    return time.perf_counter() - t0, np.array(latencies)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=400, help="requests per throughput run")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per protocol")
    ap.add_argument("--soak", type=int, default=10000, help="requests of the memory run")
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads per session")
    args = ap.parse_args()

    fits = make_fits()
    photos = [p.read_bytes() for p in PHOTOS]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        repo = tmp / "repo"
        names = [p.name for p in fits["paths"]]
        add_model(repo, MODEL_NAME, config_text(MODEL_NAME, names, instances=args.instances,
                                                extra_params={"threads": str(args.threads)}),
                  dict(model_files(), **{p.name: p for p in fits["paths"]}))
        backend = make_backend_dir(tmp / "backends")
        server = Server(repo, backend, tmp / "tritonserver.log")
        try:
            server.client().load_model(MODEL_NAME)
            run_load(server, "http", WITH_MAPS, 2 * args.concurrency, args.concurrency, photos)  # warm-up

            # Rounds alternate the two kinds of request so that drifting machine load hits both alike.
            stats = server.client()

            def compute_ns():
                # Model run time summed over executions (each batch once), and images served.
                m = stats.get_inference_statistics(MODEL_NAME)["model_stats"][0]
                ns = sum(int(b["compute_infer"]["ns"]) for b in m.get("batch_stats", []))
                return ns, int(m["inference_count"])

            rows = []
            per_round = max(args.requests // args.rounds, args.concurrency)
            for protocol in ["http", "grpc"]:
                acc = {label: {"secs": 0.0, "lat": [], "rps": [], "ns": 0, "n": 0} for label in ("predictions", "predictions+maps")}
                for _ in range(args.rounds):
                    for label, outputs in [("predictions", PREDICTIONS), ("predictions+maps", WITH_MAPS)]:
                        ns0, n0 = compute_ns()
                        secs, lat = run_load(server, protocol, outputs, per_round, args.concurrency, photos)
                        time.sleep(0.2)  # statistics are reported just after the responses
                        ns1, n1 = compute_ns()
                        a = acc[label]
                        a["secs"] += secs
                        a["lat"].extend(lat)
                        a["rps"].append(per_round / secs)
                        a["ns"] += ns1 - ns0
                        a["n"] += n1 - n0
                for label, a in acc.items():
                    total = per_round * args.rounds
                    rows.append((protocol, label, total / a["secs"], *np.percentile(a["lat"], [50, 90, 99]),
                                 a["ns"] / max(a["n"], 1) / 1e6, a["rps"]))
            print(f"\nchip backend, EfficientNet-Lite0 with {len(names)} fitted layers, {args.concurrency} concurrent "
                  f"clients, {per_round * args.rounds} requests per row in {args.rounds} alternating rounds, "
                  f"{args.instances} instance(s), dynamic batching\n")
            print(f"{'protocol':<9}{'outputs':<18}{'req/s':>8}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}  {'server compute ms/image':>23}")
            for r in rows:
                print(f"{r[0]:<9}{r[1]:<18}{r[2]:>8.1f}{r[3]:>9.1f}{r[4]:>9.1f}{r[5]:>9.1f}  {r[6]:>23.2f}")
            for protocol in ["http", "grpc"]:
                plain = next(r for r in rows if r[0] == protocol and r[1] == "predictions")
                maps = next(r for r in rows if r[0] == protocol and r[1] == "predictions+maps")
                per_round_ratio = np.median(np.array(plain[7]) / np.array(maps[7]))
                print(f"{protocol}: cost ratio maps/predictions: throughput {plain[2] / maps[2]:.3f} "
                      f"(median of rounds {per_round_ratio:.3f}), p50 latency {maps[3] / plain[3]:.3f}, "
                      f"server compute {maps[6] / plain[6]:.3f}")

            if args.soak > 0:
                # Memory: RSS sampled while half the requests ask for maps.
                samples = [(0, server.rss_kib())]
                step = max(args.soak // 20, 1)

                def sample(i):
                    if (i + 1) % step == 0:
                        samples.append((i + 1, server.rss_kib()))

                half = args.soak // 2
                run_load(server, "grpc", PREDICTIONS, half, args.concurrency, photos, on_done=sample)
                run_load(server, "http", WITH_MAPS, args.soak - half, args.concurrency, photos,
                         on_done=lambda i: sample(i + half))
                samples.sort()
                print(f"\nserver RSS over {args.soak} requests (MiB):")
                print("  " + "  ".join(f"{n}:{kib / 1024:.0f}" for n, kib in samples))
                later = [kib for n, kib in samples if n >= args.soak // 5]
                print(f"  after the first {args.soak // 5} requests: min {min(later) / 1024:.1f}, max {max(later) / 1024:.1f}, "
                      f"growth {(later[-1] - later[0]) / 1024:+.1f} MiB")
        finally:
            rc = server.stop()
        print(f"\nserver stopped with exit status {rc}")


if __name__ == "__main__":
    main()
