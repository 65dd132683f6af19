"""Image shards: conversion and read throughput, memory, and the format.

Measures what decides whether `write_image_shards` / `load_image_shards` /
`ImageBatches(open_image_shards(...))` can replace `load_image_folder` for
image sets larger than memory:

* `conversion`: images/s converting CelebA-like JPEGs (218x178, synthetic:
  `load_shapes` sprites in random colours) to 64x64 and 96x96 shards.
* `scaling`: time and peak RSS (`ru_maxrss` of a child process that imports
  only numpy, Pillow and the datasets package) converting 10k, 50k and 100k
  synthetic JPEGs, next to `load_image_folder` on the same files. Shards
  must stay flat in memory and linear in time.
* `format`: `.npy` shards (the chosen format) against TFRecord (raw bytes,
  and `tf.train.Example`) on the same in-memory images: write and `tf.data`
  read throughput, file sizes, and whether reading needs TensorFlow.
* `reads`: batches/s of both readers (tf.data `load_image_shards`, shuffled;
  `ImageBatches` over the memory-mapped shards, globally shuffled) at batch
  128, interleaved round by round with `VAEModel` training steps of the
  `faces` preset of `kl_strategies.py` (`SHAPES` in `_common.py`: 64x64x3,
  the package's builder) on the same machine. Target: each reader >= 5x the step's images/s.
* `verify`: the cost of `open_image_shards(verify=True)` (every checksum).
* `no_tensorflow`: a child on the JAX backend reads the shards through
  `ImageBatches` and reports that TensorFlow was never imported.

Everything lives in a temporary folder (removed at the end unless
`--keep`); reads come from the page cache (the machine has the RAM), so
they measure the pipeline, not the disk.

    python benchmarks/shards.py            # about 5-8 minutes on 2 CPU cores
    python benchmarks/shards.py --quick    # under a minute (smoke run)

The targets and the markdown report live in `shards_report.py`.
"""

import argparse
import concurrent.futures
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only benchmarks/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

import keras_vae_layers  # noqa: E402
from benchmarks._common import SHAPES  # noqa: E402
from benchmarks._common import add_output_flags  # noqa: E402
from benchmarks._common import apply_preset  # noqa: E402
from benchmarks._common import build_kwargs  # noqa: E402
from benchmarks._common import interleaved  # noqa: E402
from benchmarks._common import loadavg  # noqa: E402
from benchmarks._common import log  # noqa: E402
from benchmarks._common import run_meta  # noqa: E402
from benchmarks._common import split_csv  # noqa: E402
from benchmarks._common import stats  # noqa: E402
from benchmarks._common import write_report  # noqa: E402
from benchmarks.shards_report import judge  # noqa: E402
from benchmarks.shards_report import markdown_report  # noqa: E402
from keras_vae_layers import VAEModel  # noqa: E402
from keras_vae_layers import build_conv_encoder_decoder  # noqa: E402
from keras_vae_layers.datasets import ImageBatches  # noqa: E402
from keras_vae_layers.datasets import load_image_shards  # noqa: E402
from keras_vae_layers.datasets import load_shapes  # noqa: E402
from keras_vae_layers.datasets import open_image_shards  # noqa: E402

PARTS = ("conversion", "scaling", "format", "reads", "verify",
         "no_tensorflow")
READERS = ("format", "reads", "verify", "no_tensorflow")
DEFAULTS = dict(conversion_images=4000, conversion_sizes="64,96",
                source_shape="218x178", scaling_sizes="10000,50000,100000",
                scaling_source=80, images_per_shard=10_000,
                step_shape="faces", batch_size=128, rounds=5,
                read_batches=100, steps=4, format_images=20_000)
QUICK = dict(conversion_images=60, conversion_sizes="16,24",
             source_shape="40x32", scaling_sizes="150,300,600",
             scaling_source=20, images_per_shard=100,
             step_shape="tiny-faces", batch_size=16, rounds=2,
             read_batches=4, steps=2, format_images=300)

_PACKAGE = os.path.dirname(os.path.abspath(keras_vae_layers.__file__))

# A child that imports the datasets package without the package's
# `__init__` (which imports Keras and TensorFlow), so that its peak RSS is
# the conversion's, not the frameworks'.
#
# Peak RSS: the kernel's high-water mark of the child's own address space
# (VmHWM). `ru_maxrss` is not usable here: Linux carries it over from the
# parent's image between fork and exec, so every child would report at least
# this benchmark's RSS (TensorFlow and all, about 900 MB).
_CHILD = """
import json, resource, sys, time, types, warnings
package = types.ModuleType("keras_vae_layers")
package.__path__ = [{package!r}]
sys.modules["keras_vae_layers"] = package
from keras_vae_layers.datasets import load_image_folder, write_image_shards

def rss_mb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

args = json.loads(sys.argv[1])
start_rss = rss_mb("VmRSS")
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("error")  # an unreadable synthetic file is a bug
    if args["mode"] == "shards":
        result = write_image_shards(args["folder"], args["out"],
                                    size=args["size"], verbose=False,
                                    images_per_shard=args["per_shard"])
        count = result["count"]
    else:
        count = len(load_image_folder(args["folder"], size=args["size"],
                                      verbose=False))
seconds = time.perf_counter() - start
print(json.dumps({{"count": count, "seconds": seconds,
                  "start_rss_mb": start_rss,
                  "peak_rss_mb": rss_mb("VmHWM"),
                  "tensorflow_imported": "tensorflow" in sys.modules}}))
"""

_NO_TF_CHILD = """
import json, sys, time, types
package = types.ModuleType("keras_vae_layers")
package.__path__ = [{package!r}]
sys.modules["keras_vae_layers"] = package
import keras
from keras_vae_layers.datasets import ImageBatches, open_image_shards
batches = ImageBatches(open_image_shards(sys.argv[1]), batch_size=int(sys.argv[2]),
                       seed=0)
start = time.perf_counter()
n = min(len(batches), int(sys.argv[3]))
for i in range(n):
    batches[i]
seconds = time.perf_counter() - start
print(json.dumps({{"backend": keras.backend.backend(), "batches": n,
                  "batches_per_s": n / seconds,
                  "tensorflow_imported": "tensorflow" in sys.modules}}))
"""


# ----------------------------------------------------------------------------
# Synthetic JPEG folders
# ----------------------------------------------------------------------------


def make_jpegs(folder, n, shape, seed=0, chunk=2000):
    """Writes `n` JPEGs of `shape` (h, w): a `load_shapes` sprite in a random
    colour on a random background, centred on a canvas of the background."""
    os.makedirs(folder, exist_ok=True)
    height, width = shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    rng = np.random.default_rng(seed)

    def save(item):
        i, image = item
        Image.fromarray(image).save(os.path.join(folder, f"{i:07d}.jpg"),
                                    quality=90)

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for start in range(0, n, chunk):
            count = min(chunk, n - start)
            sprites, _ = load_shapes(count, size=side, seed=seed + start)
            mask = sprites.astype(np.float32) / 255.0
            fg = rng.integers(0, 256, (count, 1, 1, 3)).astype(np.float32)
            bg = rng.integers(0, 256, (count, 1, 1, 3)).astype(np.float32)
            canvas = np.empty((count, height, width, 3), np.uint8)
            canvas[:] = bg.astype(np.uint8)
            canvas[:, top:top + side, left:left + side] = np.round(
                bg * (1.0 - mask) + fg * mask).astype(np.uint8)
            list(pool.map(save, zip(range(start, start + count), canvas)))


def link_subset(source, folder, n):
    """A folder of symlinks to the first `n` files of `source`."""
    os.makedirs(folder, exist_ok=True)
    for name in sorted(os.listdir(source))[:n]:
        os.symlink(os.path.join(source, name), os.path.join(folder, name))


def run_child(args, timeout=1800):
    code = _CHILD.format(package=_PACKAGE)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"child failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
# The parts
# ----------------------------------------------------------------------------


def part_conversion(args, work):
    shape = tuple(int(v) for v in args.source_shape.split("x"))
    folder = os.path.join(work, "celeba_like")
    start = time.perf_counter()
    make_jpegs(folder, args.conversion_images, shape, seed=1)
    log(f"conversion: {args.conversion_images} JPEGs {shape} generated in "
        f"{time.perf_counter() - start:.1f}s")
    result = {"source_shape": list(shape), "images": args.conversion_images,
              "sizes": {}}
    for size in args.conversion_sizes:
        out = os.path.join(work, f"conversion_{size}")
        run = run_child({"mode": "shards", "folder": folder, "out": out,
                         "size": size, "per_shard": args.images_per_shard})
        run["images_per_s"] = run["count"] / run["seconds"]
        result["sizes"][str(size)] = run
        log(f"conversion to {size}x{size}: {run['images_per_s']:.0f} "
            f"images/s, peak RSS {run['peak_rss_mb']:.0f} MB")
        shutil.rmtree(out)
    shutil.rmtree(folder)
    return result


def part_scaling(args, work, size):
    largest = max(args.scaling_sizes)
    pool = os.path.join(work, "scaling_jpegs")
    start = time.perf_counter()
    make_jpegs(pool, largest, (args.scaling_source,) * 2, seed=2)
    log(f"scaling: {largest} JPEGs {args.scaling_source}x"
        f"{args.scaling_source} generated in {time.perf_counter() - start:.1f}s")
    record_mb = size * size * 3 / 2**20
    rows = []
    kept = None
    for n in args.scaling_sizes:
        folder = pool if n == largest else os.path.join(work, f"subset_{n}")
        if n != largest:
            link_subset(pool, folder, n)
        out = os.path.join(work, f"shards_{n}")
        shards = run_child({"mode": "shards", "folder": folder, "out": out,
                            "size": size, "per_shard": args.images_per_shard})
        folder_run = run_child({"mode": "folder", "folder": folder,
                                "size": size})
        row = {
            "images": n,
            "shards": dict(shards, images_per_s=n / shards["seconds"]),
            "load_image_folder": dict(folder_run,
                                      images_per_s=n / folder_run["seconds"]),
            "array_mb": n * record_mb,
            "shard_mb": min(n, args.images_per_shard) * record_mb,
        }
        rows.append(row)
        log(f"scaling {n}: shards {shards['seconds']:.1f}s, peak RSS "
            f"{shards['peak_rss_mb']:.0f} MB; load_image_folder "
            f"{folder_run['seconds']:.1f}s, {folder_run['peak_rss_mb']:.0f} MB")
        if n == largest:
            kept = out
        else:
            shutil.rmtree(out)
            shutil.rmtree(folder)
    shutil.rmtree(pool)
    return {"source_side": args.scaling_source, "size": size,
            "images_per_shard": args.images_per_shard, "rows": rows}, kept


def _tf_read_rate(ds, batches):
    """Batches/s of a fresh iterator over `ds`: `batches` batches after the
    first (which starts the pipeline and fills any shuffle buffer). A fresh
    iterator has an empty prefetch buffer, so nothing read ahead while
    something else ran is counted."""
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - start)


def part_format(args, work, images):
    """The same images as .npy shards and as TFRecords: write and read."""
    n = len(images)
    shape = images.shape[1:]
    record_bytes = int(np.prod(shape))
    per_file = max(1, n // 4)
    result = {"images": n, "record_shape": list(shape), "formats": {}}
    batch = args.batch_size
    batches = n // batch - 2

    def decode_batch(records):
        x = tf.reshape(tf.io.decode_raw(records, tf.uint8), (-1,) + shape)
        return tf.cast(x, tf.float32) * (1.0 / 255.0)

    def parse_examples(records):
        parsed = tf.io.parse_example(
            records, {"image": tf.io.FixedLenFeature([], tf.string)})
        return decode_batch(parsed["image"])

    def pipeline(files, reader, decode):
        ds = tf.data.Dataset.from_tensor_slices(files)
        ds = ds.interleave(reader, cycle_length=len(files),
                           num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def read_rate(ds):
        return statistics.median(_tf_read_rate(ds, batches)
                                 for _ in range(3))

    # The formats alone: plain writes (write_image_shards adds an fsync and
    # a checksum per shard), the same tf.data pipeline shape for reading.
    folder = os.path.join(work, "format_npy")
    os.makedirs(folder)
    start = time.perf_counter()
    npy_files = []
    for k, first in enumerate(range(0, n, per_file)):
        path = os.path.join(folder, f"shard-{k:05d}.npy")
        out = np.lib.format.open_memmap(
            path, mode="w+", dtype=np.uint8,
            shape=images[first:first + per_file].shape)
        out[:] = images[first:first + per_file]
        out.flush()
        del out
        npy_files.append(path)
    write_s = time.perf_counter() - start
    header = os.path.getsize(npy_files[0]) - per_file * record_bytes

    def read_npy(file):
        return tf.data.FixedLengthRecordDataset(file, record_bytes,
                                                header_bytes=header)

    result["formats"]["npy"] = {
        "write_images_per_s": n / write_s,
        "bytes": sum(os.path.getsize(f) for f in npy_files),
        "tf_data_batches_per_s": read_rate(
            pipeline(npy_files, read_npy, decode_batch)),
        "random_access": True, "needs_tensorflow_to_read": False,
    }
    # TFRecord: one raw-bytes record per image, and tf.train.Example.
    for name in ("tfrecord_raw", "tfrecord_example"):
        folder = os.path.join(work, f"format_{name}")
        os.makedirs(folder)
        start = time.perf_counter()
        files = []
        for k, first in enumerate(range(0, n, per_file)):
            path = os.path.join(folder, f"shard-{k:05d}.tfrecord")
            with tf.io.TFRecordWriter(path) as writer:
                for image in images[first:first + per_file]:
                    data = image.tobytes()
                    if name == "tfrecord_example":
                        data = tf.train.Example(features=tf.train.Features(
                            feature={"image": tf.train.Feature(
                                bytes_list=tf.train.BytesList(value=[data]))}
                        )).SerializeToString()
                    writer.write(data)
            files.append(path)
        write_s = time.perf_counter() - start
        decode = decode_batch if name == "tfrecord_raw" else parse_examples
        result["formats"][name] = {
            "write_images_per_s": n / write_s,
            "bytes": sum(os.path.getsize(f) for f in files),
            "tf_data_batches_per_s": read_rate(
                pipeline(files, tf.data.TFRecordDataset, decode)),
            "random_access": False, "needs_tensorflow_to_read": True,
        }
    for name, row in result["formats"].items():
        row["bytes_per_image"] = row["bytes"] / n
        log(f"format {name}: write {row['write_images_per_s']:.0f} images/s,"
            f" tf.data read {row['tf_data_batches_per_s']:.1f} batches/s, "
            f"{row['bytes_per_image']:.0f} bytes/image")
    for name in result["formats"]:
        shutil.rmtree(os.path.join(work, f"format_{name}"))
    return result


def build_step(args):
    spec = SHAPES[args.step_shape]
    # VAEModel owns the KL term: an encoder without the KL layer.
    encoder, decoder = build_conv_encoder_decoder(
        **build_kwargs(spec, spec["z_dim"]), kl_layer=False, seed=0)
    model = VAEModel(encoder, decoder, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(0).random(
        (args.batch_size,) + spec["input_shape"], dtype=np.float32)
    for _ in range(2):  # trace and warm up
        model.train_on_batch(x)

    def step():
        model.train_on_batch(x)

    return step


def part_reads(args, shard_dir):
    """Both readers and the training step, interleaved round by round."""
    batch = args.batch_size
    step = build_step(args)
    first = {}
    start = time.perf_counter()
    dataset = load_image_shards(shard_dir, batch, seed=0, repeat=True)
    next(iter(dataset))
    first["load_image_shards"] = time.perf_counter() - start
    start = time.perf_counter()
    batches = ImageBatches(open_image_shards(shard_dir), batch, seed=0)
    batches[0]
    first["ImageBatches"] = time.perf_counter() - start
    position = 1

    def read_tf():
        return _tf_read_rate(dataset, args.read_batches) * batch

    def read_batches():
        nonlocal position
        start = time.perf_counter()
        for _ in range(args.read_batches):
            if position == len(batches):
                batches.on_epoch_end()
                position = 0
            batches[position]
            position += 1
        return args.read_batches * batch / (time.perf_counter() - start)

    def train():
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        return args.steps * batch / (time.perf_counter() - start)

    def progress(r, per_round):
        log(f"reads round {r + 1}/{args.rounds}: "
            + ", ".join(f"{k} {v[-1]:.0f} images/s"
                        for k, v in per_round.items()))

    per_round = interleaved({"load_image_shards": read_tf,
                             "ImageBatches": read_batches, "step": train},
                            args.rounds, progress)
    result = {"batch_size": batch, "step_shape": args.step_shape,
              "input_shape": list(SHAPES[args.step_shape]["input_shape"]),
              "first_batch_s": first, "images_per_s": {}}
    step_median = statistics.median(per_round["step"])
    step_best = max(per_round["step"])
    for name, values in per_round.items():
        entry = {"per_round": values, **stats(values),
                 "batches_per_s_median": statistics.median(values) / batch}
        if name != "step":
            entry["ratio_to_step_median"] = (statistics.median(values)
                                             / step_median)
            # Slowest read round against the fastest step round.
            entry["ratio_to_step_worst_case"] = min(values) / step_best
        result["images_per_s"][name] = entry
    return result


def part_verify(shard_dir):
    timings = {}
    for verify in (False, True):
        start = time.perf_counter()
        images = open_image_shards(shard_dir, verify=verify)
        timings["verify" if verify else "quick"] = (
            time.perf_counter() - start)
    total = sum(os.path.getsize(f) for f in images.files)
    result = {"bytes": total, "images": len(images),
              "open_seconds": timings["quick"],
              "verify_seconds": timings["verify"],
              "verify_mb_per_s": total / 2**20 / timings["verify"]}
    log(f"verify: open {timings['quick'] * 1000:.1f} ms, full checksums "
        f"{timings['verify']:.2f}s ({result['verify_mb_per_s']:.0f} MB/s)")
    return result


def part_no_tensorflow(args, shard_dir):
    if importlib.util.find_spec("jax") is None:
        reason = ("jax is not installed (pip install "
                  "'keras_vae_layers[jax]')")
        log(f"no_tensorflow: skipped, {reason}")
        return {"skipped": reason}
    code = _NO_TF_CHILD.format(package=_PACKAGE)
    env = dict(os.environ, KERAS_BACKEND="jax")
    out = subprocess.run(
        [sys.executable, "-c", code, shard_dir, str(args.batch_size),
         str(args.read_batches * args.rounds)],
        capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"no-TensorFlow child failed: {out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    log(f"no_tensorflow: backend {result['backend']}, "
        f"{result['batches_per_s']:.1f} batches/s, TensorFlow imported: "
        f"{result['tensorflow_imported']}")
    return result


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: a smoke run in under a minute")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {PARTS}")
    for name, value in DEFAULTS.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, default=None, type=type(value),
                            help=f"default {value} (--quick: "
                                 f"{QUICK[name]})")
    add_output_flags(parser, chart=False)
    parser.add_argument("--work-dir", default=None,
                        help="where the JPEGs and shards go (default: a new "
                             "temporary folder)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder")
    parser.add_argument("--note", default="",
                        help="a remark for the report, e.g. whether the "
                             "machine was shared while measuring")
    args = parser.parse_args(argv)
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    args.parts = split_csv(args.parts)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}; expected some of {PARTS}")
    if not set(args.parts).isdisjoint(READERS):
        # They read the shards of the largest scaling run.
        args.parts.append("scaling")
    args.parts = [p for p in PARTS if p in args.parts]
    if args.step_shape not in SHAPES:
        parser.error(f"unknown --step-shape {args.step_shape!r}; expected "
                     f"one of {sorted(SHAPES)}")
    args.conversion_sizes = [int(v) for v in
                             args.conversion_sizes.split(",")]
    args.scaling_sizes = sorted(int(v) for v in args.scaling_sizes.split(","))
    return args


def main(argv=None):
    """Runs the benchmark; returns the exit status (0)."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    report = {"meta": run_meta(
        args, extra_versions={"pillow": PIL.__version__},
        flags={k: v for k, v in vars(args).items()
               if k not in ("out", "work_dir")})}
    work = args.work_dir or tempfile.mkdtemp(prefix="kvl_shards_bench_")
    os.makedirs(work, exist_ok=True)
    size = SHAPES[args.step_shape]["input_shape"][0]
    try:
        if "conversion" in args.parts:
            report["conversion"] = part_conversion(args, work)
        if "scaling" in args.parts:
            report["scaling"], shard_dir = part_scaling(args, work, size)
        if "format" in args.parts:
            sample = open_image_shards(shard_dir)[:args.format_images]
            report["format"] = part_format(args, work, sample)
            del sample
        if "reads" in args.parts:
            report["reads"] = part_reads(args, shard_dir)
        if "verify" in args.parts:
            report["verify"] = part_verify(shard_dir)
        if "no_tensorflow" in args.parts:
            report["no_tensorflow"] = part_no_tensorflow(args, shard_dir)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report["meta"]["loadavg_end"] = loadavg()
    report["targets"] = judge(report)
    for name, t in report["targets"].items():
        log(f"target {name}: {'met' if t['met'] else 'NOT met'} "
            f"({t['detail']})")
    write_report(args.out, "shards", report, markdown_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
