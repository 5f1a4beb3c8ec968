#!/usr/bin/env python3
"""Statistics passes of a fit in one process and on Ray (1 and 2 workers on this machine), per layer:
images/s, suffix rows/s (image × gate), Ray's overhead per shard, and the extrapolated wall time of a
50,000-image × 256-gate fit on N workers.

    third_party/venv/bin/python scripts/bench_ray.py [--head-images 128 --shard 64 ...]

Ray runs locally with as many CPUs as the machine has (dashboard off); "1 worker" runs one task at
a time with every core, "2 workers" two tasks with half the cores each. Overhead per shard = the
pass's wall time on one worker minus the summed in-task collect time, per shard: scheduling, the
worker's first model load, serializing the statistics, moving them, deserializing and merging.
"""
import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("CHIP_ORT_LIB", str(ROOT / "third_party/onnxruntime/lib/libonnxruntime.so"))
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only

import chip  # noqa: E402
import chip.ray  # noqa: E402

MODEL = ROOT / "data/models/efficientnet_lite0.onnx"
HEAD = "/_swish_1/Clip_output_0"
STEM = "/_conv_stem/Conv_output_0"


def images(n):
    photos = sorted(str(p) for p in (ROOT / "data/images/aib").glob("*.jpg"))
    return [photos[i % len(photos)] for i in range(n)]  # repeated past 100: same cost per image


def one_process(model, layer, imgs, gates):
    t0 = time.perf_counter()
    chip.collect_stats(model, layer, imgs, gates=gates, mosaics=0)
    return time.perf_counter() - t0


def on_ray(layer, imgs, gates, shard, workers, cpus):
    timings = {}
    t0 = time.perf_counter()
    chip.ray.collect_stats(MODEL, layer, imgs, shard_size=shard, num_cpus=cpus // workers, gates=gates, mosaics=0,
                           timings=timings)
    return time.perf_counter() - t0, timings


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--head-images", type=int, default=128)
    ap.add_argument("--head-gates", type=int, default=64)
    ap.add_argument("--stem-images", type=int, default=16)
    ap.add_argument("--stem-gates", type=int, default=16)
    ap.add_argument("--shard", type=int, default=64, help="images per shard (head); the stem uses half its images")
    args = ap.parse_args()

    import ray

    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=200 * 1024 * 1024, log_to_driver=False)
    model = chip.Model(MODEL)
    rows_out = []
    extrapolate = {}
    for name, layer, n, gates, shard in [("conv head", HEAD, args.head_images, args.head_gates, args.shard),
                                         ("stem", STEM, args.stem_images, args.stem_gates, max(1, args.stem_images // 2))]:
        imgs = images(n)
        rows = n * gates
        # Warm: each worker loads the model once; the timed passes then see loaded workers,
        # and the first-load cost is reported apart.
        on_ray(layer, imgs[:2], 2, 1, 1, cpus)
        on_ray(layer, imgs[:2], 2, 1, 2, cpus)
        single = one_process(model, layer, imgs, gates)
        r1, tm1 = on_ray(layer, imgs, gates, shard, 1, cpus)
        r2, tm2 = on_ray(layer, imgs, gates, shard, 2, cpus)
        shards = tm1["shards"]
        collect1 = sum(tm1["collect"])
        over = (r1 - collect1) / shards
        ser = sum(tm1["serialize"]) / shards
        merge = tm1["merge"] / shards
        mb = sum(tm1["bytes"]) / shards / 1e6
        for label, wall in [("1 process", single), ("Ray, 1 worker", r1), ("Ray, 2 workers", r2)]:
            rows_out.append((name, label, n, gates, wall, n / wall, rows / wall))
        extrapolate[name] = dict(rate=rows / r1, per_shard=over, shard=shard, collect=collect1 / shards,
                                 ser=ser, merge=merge, mb=mb)

    print(f"\nmachine: {cpus} cores; ONNX Runtime {chip.ort_library()}; chip {chip.__version__}, ray {ray.__version__}\n")
    print("| layer | run | images | gates | wall s | images/s | suffix rows/s |")
    print("|---|---|---|---|---|---|---|")
    for name, label, n, gates, wall, ips, rps in rows_out:
        print(f"| {name} | {label} | {n} | {gates} | {wall:.2f} | {ips:.1f} | {rps:.0f} |")
    print("\n| layer | images/shard | collect s/shard | Ray overhead s/shard | of which serialize | merge | statistics MB/shard | overhead / collect |")
    print("|---|---|---|---|---|---|---|---|")
    for name, e in extrapolate.items():
        print(f"| {name} | {e['shard']} | {e['collect']:.2f} | {e['per_shard']:.3f} | {e['ser']:.3f} | {e['merge']:.3f} | "
              f"{e['mb']:.1f} | {100 * e['per_shard'] / e['collect']:.1f}% |")
    total_rows = 50_000 * 256
    print("\nExtrapolated statistics pass of 50,000 images × 256 gates (shards of 64 images, 782 shards),")
    print("from the measured rows/s of one Ray worker with all cores and its overhead per shard:\n")
    print("| layer | 1 worker | 8 workers | 32 workers | 128 workers |")
    print("|---|---|---|---|---|")
    for name, e in extrapolate.items():
        cells = []
        for w in (1, 8, 32, 128):
            s = total_rows / (e["rate"] * w) + 782 * max(e["per_shard"], 0.0) / w
            cells.append(f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min")
        print(f"| {name} | " + " | ".join(cells) + " |")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
