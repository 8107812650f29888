#!/usr/bin/env python
"""Does the stacked trainer's precision change the science? Float64 against the fast modes.

Trains every neuron of a site with the stacked strategy in float64 (the reference) and in
each precision asked for (float32 ``exact``, ``tf32``, ``bf16``), from the same seeds, and
prints per architecture and precision the largest and median change of a neuron's final
validation correlation (at its selected epoch) against float64, the share of neurons whose
selected epoch moved, and the wall time. ``--chunk`` also trains the neurons in chunks of
that size at the first precision and compares them with the whole-site run (a neuron's
result must not depend on its chunk). ``--option KEY=VALUE`` sets a stacked-step setting
of the config's ``training`` section (e.g. ``max_pool=uint8``) for the fast runs (the float64
reference always runs the default step). Issue #19's bar: a median |change| <= 0.008.

The dataset is a canonical site (``.nc``, from ``python -m sacnn.data ingest``) or the
``.npz`` that ``--export`` writes from one (for a machine without netCDF4).

    python scripts/precision_check.py --dataset site.nc --device cuda --epochs 8
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from sacnn.data import TrainingArrays
from sacnn.metrics import pearson
from sacnn.models import get_architecture
from sacnn.training import ModelSpec, TrainConfig, train_chunk

#: What the .npz holds: the arrays training reads (trials, image ids: not needed here).
NPZ_FIELDS = ("fit_images", "fit_responses", "holdout_images", "holdout_responses",
              "val_images", "val_responses", "neuron_ids")


def load(path: Path, neurons: int | None) -> TrainingArrays:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k].astype(np.float32) if k != "neuron_ids" else z[k] for k in NPZ_FIELDS}
        arrays = TrainingArrays(**a, val_responses_trials=a["val_responses"][..., None],
                                val_image_ids=np.arange(len(a["val_images"])),
                                fit_image_ids=np.arange(len(a["fit_images"])))
    else:
        from sacnn.data import open_dataset, training_arrays

        arrays = training_arrays(open_dataset(path), 1.0)
    return arrays.select_neurons(slice(0, neurons)) if neurons else arrays


def export(src: Path, dst: Path) -> None:
    """Write the training arrays of a canonical site as a compact .npz (float16 images)."""
    a = load(src, None)
    np.savez_compressed(dst, **{k: getattr(a, k).astype(np.float16) if "images" in k
                                else getattr(a, k) for k in NPZ_FIELDS})


def final_corr(result, arrays: TrainingArrays) -> np.ndarray:
    return np.array([pearson(p, r) for p, r in zip(result.val_predictions,
                                                    arrays.val_responses)], dtype=np.float64)


def run(spec, arrays: TrainingArrays, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, float]:
    t = time.perf_counter()
    res = train_chunk(spec, ModelSpec("check", spec.name), arrays, cfg, site="check")
    return final_corr(res, arrays), res.best_epoch, time.perf_counter() - t


def compare(ref: tuple, got: tuple) -> dict:
    diff = np.abs(got[0] - ref[0])
    return {"max_abs_diff": float(np.nanmax(diff)), "median_abs_diff": float(np.nanmedian(diff)),
            "mean_corr": float(np.nanmean(got[0])), "ref_mean_corr": float(np.nanmean(ref[0])),
            "best_epoch_moved": float(np.mean(got[1] != ref[1])), "seconds": got[2]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--export", type=Path, help="only write the dataset's arrays to this .npz")
    p.add_argument("--device", default="cuda")
    p.add_argument("--architectures", nargs="+",
                   default=["ff-CNN", "ff+sa-CNN", "rf-CNN", "rf+sa-CNN"])
    p.add_argument("--channels", type=int, help="override the architectures' widths")
    p.add_argument("--precisions", nargs="+", default=["bf16", "tf32", "exact"])
    p.add_argument("--neurons", type=int, help="first N neurons only")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--chunk", type=int, help="also train in chunks of this size")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a stacked-step setting of the training section (repeatable)")
    p.add_argument("--json", type=Path, help="append one JSON line per comparison")
    args = p.parse_args()
    if args.export:
        export(args.dataset, args.export)
        print(f"wrote {args.export}")
        return
    arrays = load(args.dataset, args.neurons)
    n = len(arrays.neuron_ids)
    options = dict(_option(o) for o in args.option)
    base = TrainConfig(epochs=args.epochs, strategy="stacked", device=args.device, **options)
    reference = TrainConfig(epochs=args.epochs, strategy="stacked", device=args.device,
                            dtype="float64", precision="exact")
    print(f"# {n} neurons, {len(arrays.fit_images)} fit / {len(arrays.holdout_images)} "
          f"selection / {len(arrays.val_images)} validation images, {args.epochs} epochs, "
          f"device {args.device}, options {options or 'default'}", flush=True)
    print(f"{'architecture':<12} {'precision':<10} {'max |dr|':>9} {'median':>9} "
          f"{'mean r':>7} {'r64':>7} {'epoch moved':>11} {'seconds':>8}", flush=True)
    for arch in args.architectures:
        spec = get_architecture(arch)
        if args.channels:
            spec = replace(spec, channels=args.channels)
        ref = run(spec, arrays, reference)
        rows = [(prec, compare(ref, run(spec, arrays, replace(base, precision=prec))))
                for prec in args.precisions]
        if args.chunk:
            cfg = replace(base, precision=args.precisions[0])
            whole = run(spec, arrays, cfg)
            parts = [run(spec, arrays.select_neurons(slice(s, s + args.chunk)), cfg)
                     for s in range(0, n, args.chunk)]
            joined = (np.concatenate([q[0] for q in parts]),
                      np.concatenate([q[1] for q in parts]), sum(q[2] for q in parts))
            rows.append((f"{args.precisions[0]} chunks of {args.chunk} vs whole",
                         compare(whole, joined)))
        for prec, row in rows:
            print(f"{arch:<12} {prec:<10} {row['max_abs_diff']:>9.5f} "
                  f"{row['median_abs_diff']:>9.5f} {row['mean_corr']:>7.3f} "
                  f"{row['ref_mean_corr']:>7.3f} {row['best_epoch_moved']:>11.2f} "
                  f"{row['seconds']:>8.1f}", flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps({"architecture": arch, "precision": prec,
                                         "options": options, "neurons": n,
                                         "epochs": args.epochs, **row}) + "\n")


def _option(text: str) -> tuple[str, object]:
    """KEY=VALUE with a YAML value (TrainConfig checks the key and the value)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--option {text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value) if value else ""


if __name__ == "__main__":
    main()
