"""The report of `shards.py`: its targets and the markdown tables."""

from benchmarks._common import targets_table

TARGET_READ_RATIO = 5.0
# Peak RSS may exceed the smallest run's by this share of one shard (or
# by the floor, for allocator noise when shards are tiny).
RSS_FLAT_SHARE = 0.5
RSS_FLAT_FLOOR_MB = 16.0
# Throughput (images/s) of the largest run may fall this far below the
# smallest's (linear time, with room for a shared machine's noise).
LINEAR_TOLERANCE = 0.25


def judge(report):
    """The targets, each `{"met": bool, "detail": str}`."""
    targets = {}
    reads = report.get("reads")
    if reads:
        ratios = {k: v["ratio_to_step_median"]
                  for k, v in reads["images_per_s"].items() if k != "step"}
        targets["reads_at_least_5x_step"] = {
            "met": all(r >= TARGET_READ_RATIO for r in ratios.values()),
            "detail": ", ".join(f"{k} {r:.1f}x" for k, r in ratios.items())
                      + " the step's images/s (medians)"}
    scaling = report.get("scaling")
    if scaling:
        rows = scaling["rows"]
        peaks = [r["shards"]["peak_rss_mb"] for r in rows]
        shard_mb = max(r["shard_mb"] for r in rows)
        targets["shards_rss_flat"] = {
            "met": max(peaks) - min(peaks) <= max(RSS_FLAT_SHARE * shard_mb,
                                                  RSS_FLAT_FLOOR_MB),
            "detail": f"peak RSS {min(peaks):.0f}-{max(peaks):.0f} MB for "
                      f"{rows[0]['images']}-{rows[-1]['images']} images "
                      f"(one shard: {shard_mb:.0f} MB)"}
        rates = [r["shards"]["images_per_s"] for r in rows]
        targets["shards_time_linear"] = {
            "met": rates[-1] >= (1 - LINEAR_TOLERANCE) * rates[0],
            "detail": "images/s " + ", ".join(f"{v:.0f}" for v in rates)}
    return targets


def _fmt_int(value):
    return f"{value:,.0f}"


def _section(title, intro, header, rule, rows, after=()):
    """A `## title` section: an intro line, a table, closing lines."""
    return [f"## {title}", "", intro, "", header, rule, *rows, "", *after]


def markdown_report(report):
    """The report as markdown: environment, one section per part, targets.
    """
    meta = report["meta"]
    lines = ["# Image shards: conversion, reading, memory", "",
             f"- date: {meta['date']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in
                                         meta["versions"].items()),
             f"- machine: {meta['machine']}, {meta['cpu_count']} CPUs, "
             f"no GPU use",
             f"- load average (1, 5, 15 min) at start / end: "
             f"{meta['loadavg_start']} / {meta.get('loadavg_end')}",
             *([f"- note: {meta['flags']['note']}"]
               if meta["flags"]["note"] else []),
             "- flags: " + ", ".join(f"`{k}={v}`" for k, v in
                                     meta["flags"].items() if k != "note"),
             ""]
    for part, section in (("conversion", _conversion), ("scaling", _scaling),
                          ("format", _format), ("reads", _reads),
                          ("verify", _verify),
                          ("no_tensorflow", _no_tensorflow)):
        if report.get(part):
            lines += section(report[part], meta["flags"])
    if report["targets"]:
        lines += targets_table(report["targets"], "detail")
    return "\n".join(lines)


def _conversion(conv, flags):
    return _section(
        "Conversion throughput",
        f"{conv['images']} synthetic JPEGs "
        f"{conv['source_shape'][0]}x{conv['source_shape'][1]} "
        "(CelebA-like), `write_image_shards`, default threads:",
        "| target size | images/s | peak RSS (MB) |", "|---|---:|---:|",
        [f"| {size}x{size} | {_fmt_int(run['images_per_s'])}"
         f" | {run['peak_rss_mb']:.0f} |"
         for size, run in conv["sizes"].items()])


def _scaling(scaling, flags):
    rows = []
    for row in scaling["rows"]:
        s, f = row["shards"], row["load_image_folder"]
        rows.append(
            f"| {_fmt_int(row['images'])} | {s['seconds']:.1f} | "
            f"{_fmt_int(s['images_per_s'])} | {s['peak_rss_mb']:.0f} | "
            f"{f['seconds']:.1f} | {f['peak_rss_mb']:.0f} | "
            f"{row['array_mb']:.0f} |")
    return _section(
        "Memory and time against the number of images",
        f"Synthetic JPEGs {scaling['source_side']}x"
        f"{scaling['source_side']} to {scaling['size']}x"
        f"{scaling['size']}x3, {scaling['images_per_shard']} "
        "images per shard; each run in a fresh child process "
        "(numpy + Pillow + the datasets package, no Keras).",
        "| images | shards: s | images/s | peak RSS (MB) | "
        "load_image_folder: s | peak RSS (MB) | the array (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|", rows,
        [f"Child RSS right after its imports: "
         f"{scaling['rows'][0]['shards']['start_rss_mb']:.0f} MB.", ""])


def _format(fmt, flags):
    return _section(
        "Record format",
        f"{fmt['images']} images {'x'.join(map(str, fmt['record_shape']))}"
        " from memory, 4 files, tf.data read at batch "
        f"{flags['batch_size']} (interleave, "
        "batch, decode, prefetch; no shuffle):",
        "| format | write images/s | tf.data batches/s | "
        "bytes/image | random access | TensorFlow to read |",
        "|---|---:|---:|---:|---|---|",
        [f"| {name} | {_fmt_int(row['write_images_per_s'])} | "
         f"{row['tf_data_batches_per_s']:.1f} | "
         f"{row['bytes_per_image']:.0f} | "
         f"{'yes' if row['random_access'] else 'no'} | "
         f"{'yes' if row['needs_tensorflow_to_read'] else 'no'} |"
         for name, row in fmt["formats"].items()])


def _reads(reads, flags):
    rows = []
    for name, entry in reads["images_per_s"].items():
        ratio = entry.get("ratio_to_step_median")
        worst = entry.get("ratio_to_step_worst_case")
        rows.append(
            f"| {name} | {_fmt_int(entry['min'])} | "
            f"{_fmt_int(entry['median'])} | {_fmt_int(entry['max'])} | "
            f"{entry['batches_per_s_median']:.1f} | "
            f"{'-' if ratio is None else f'{ratio:.1f}x'} | "
            f"{'-' if worst is None else f'{worst:.1f}x'} |")
    return _section(
        "Reading against training",
        f"Batch {reads['batch_size']}, "
        f"{'x'.join(map(str, reads['input_shape']))}, "
        f"{flags['rounds']} interleaved rounds "
        f"({flags['read_batches']} batches per reader, "
        f"{flags['steps']} `VAEModel` steps of the "
        f"`{reads['step_shape']}` preset per round); images/s:",
        "| source | min | median | max | batches/s (median) | "
        "/ step (median) | worst case |",
        "|---|---:|---:|---:|---:|---:|---:|", rows,
        ["Time to the first batch: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in reads["first_batch_s"].items())
         + ". Worst case: the slowest read round against the fastest "
         "step round.", ""])


def _verify(verify, flags):
    return ["## Checksums on open", "",
            f"{_fmt_int(verify['images'])} images, "
            f"{verify['bytes'] / 2**20:.0f} MB: the default checks "
            f"(manifest, sizes, headers) take "
            f"{verify['open_seconds'] * 1000:.1f} ms; `verify=True` "
            f"(every SHA-256) {verify['verify_seconds']:.2f} s "
            f"({verify['verify_mb_per_s']:.0f} MB/s from the page "
            "cache).", ""]


def _no_tensorflow(no_tf, flags):
    if "skipped" in no_tf:
        return ["## Reading without TensorFlow", "",
                f"Not measured: {no_tf['skipped']}.", ""]
    return ["## Reading without TensorFlow", "",
            f"A child on the `{no_tf['backend']}` backend read "
            f"{no_tf['batches']} batches through "
            "`ImageBatches(open_image_shards(...))` at "
            f"{no_tf['batches_per_s']:.1f} batches/s; TensorFlow "
            f"imported: {no_tf['tensorflow_imported']}.", ""]
