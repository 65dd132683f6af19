"""Parity of the KL variants: the same loss and gradients as `VAEModel`.

On one fixed batch, with identical weights, each variant's total loss and
gradients are computed the way its training computes them (in a
`tf.function`) and compared with `train_step` (`VAEModel`), once with
deterministic sampling (`z = mu`) and once stochastic with the same seed.
`ae` is checked against `VAEModel`'s reconstruction term with `z = mu` on
the shared variables. See `_compare` for the two relative differences.
"""

import json

import keras
import numpy as np
import tensorflow as tf
from keras import ops

ZERO_GRADIENT_FLOOR = 1e-5
"""A reference gradient whose largest entry is below this fraction of the
model's largest gradient entry is numerically zero (e.g. the bias of a layer
followed by BatchNormalization, whose exact gradient is 0: BN removes any
per-channel constant); its entries are pure float32 round-off."""


def _weight_key(variable):
    # "<layer>/<variable>": builder layer names are unique across the
    # encoder and the decoder, and every variant reuses them.
    return "/".join(variable.path.split("/")[-2:])


def loss_and_grads(variant, x, loss_fn=None):
    """Loss and `{weight key: gradient}` in one traced call, like training.

    The traced function is kept on the variant and reused, so the
    deterministic and the stochastic check share one trace -- except for
    the reference, whose Python-attribute switch needs a fresh trace (the
    very pitfall of docs/design.md, "Inference-time switches live in
    variables").
    """
    model = variant.model
    weights = model.trainable_weights
    keys = [_weight_key(w) for w in weights]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{variant.name}: duplicate weight keys {keys}")
    cache = variant.__dict__.setdefault("_traced", {})
    key = (id(loss_fn), tuple(getattr(s, "parity_deterministic", None)
                              for s in variant.samplers))
    step = cache.get(key)
    if step is None:
        fn = loss_fn or variant.loss_fn

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = fn(x)
            return loss, tape.gradient(loss, weights)

        cache[key] = step
    loss, grads = step(x)
    return float(loss), {
        k: (None if g is None else ops.convert_to_numpy(g))
        for k, g in zip(keys, grads)
    }


def _compare(loss, grads, ref_loss, ref_grads, tolerance, keys=None):
    """Relative loss and gradient differences of a variant vs. reference.

    `grad_rel_diff` (the pass criterion) is the largest `|g - g_ref|` over
    all variables divided by the largest `|g_ref|` entry of the model: the
    gradient scale the optimizer sees. `grad_rel_diff_per_variable` divides
    by each variable's own largest entry instead (numerically zero
    gradients left out); it is reported, not tested, because float32
    summation order alone moves it to ~1e-5 for gradients that are large
    sums with cancellation (e.g. a first-layer BatchNormalization `gamma`,
    a sum over batch x height x width positions).
    """
    loss_rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
    keys = sorted(ref_grads) if keys is None else keys
    global_scale = max(
        (float(np.max(np.abs(ref_grads[k]))) for k in keys
         if ref_grads.get(k) is not None), default=0.0
    ) or 1.0
    worst = worst_var = 0.0
    worst_key = worst_var_key = None
    missing, zero_vars = [], []
    for k in keys:
        g, r = grads.get(k), ref_grads.get(k)
        if g is None or r is None:
            missing.append(k)
            continue
        diff = float(np.max(np.abs(g - r)))
        if diff / global_scale > worst:
            worst, worst_key = diff / global_scale, k
        scale = float(np.max(np.abs(r)))
        if scale <= ZERO_GRADIENT_FLOOR * global_scale:
            zero_vars.append(k)
        elif diff / scale > worst_var:
            worst_var, worst_var_key = diff / scale, k
    return {
        "loss": loss,
        "reference_loss": ref_loss,
        "loss_rel_diff": loss_rel,
        "grad_rel_diff": worst,
        "worst_variable": worst_key,
        "grad_rel_diff_per_variable": worst_var,
        "worst_variable_per_variable": worst_var_key,
        "numerically_zero_gradients": zero_vars,
        "missing_gradients": missing,
        "pass": bool(loss_rel <= tolerance and worst <= tolerance
                     and not missing),
    }


def _check_seed_states(variants, mode):
    """Raises unless every variant's samplers are in the same state."""
    states = {n: v.seed_states() for n, v in variants.items() if v.samplers}
    if len({json.dumps(s) for s in states.values()}) > 1:
        raise RuntimeError(
            f"parity ({mode}): sampling seed states differ before the "
            f"check: {states}"
        )


def run_parity(variants, x, tolerance=1e-5, seed=0):
    """Loss/gradient parity of every variant against `train_step`.

    Returns:
        `{variant: {"deterministic": {...}, "stochastic": {...}}}`; `ae`
        has `"deterministic"` only (it has no sampling) and a `"note"`.
    """
    ref = variants["train_step"]
    results = {name: {} for name in variants if name != "train_step"}
    x = tf.convert_to_tensor(x)

    # -- deterministic: z = mu (every sampler still draws once). --------
    for v in variants.values():
        v.set_deterministic(True)
    _check_seed_states(variants, "deterministic")
    ref_states = ref.seed_states()
    reco_loss, reco_grads = loss_and_grads(
        ref, x, lambda x: ref.model.compute_loss_terms(
            x, training=True)["reco_loss"]
    )
    ref.restore_seed_states(ref_states)  # that extra pass drew once more
    ref_loss, ref_grads = loss_and_grads(ref, x)
    for name, v in variants.items():
        if name == "train_step":
            continue
        loss, grads = loss_and_grads(v, x)
        if name == "ae":
            common = sorted(set(grads) & set(reco_grads))
            results[name]["deterministic"] = _compare(
                loss, grads, reco_loss, reco_grads, tolerance, keys=common
            )
            results[name]["note"] = (
                "no sampling and no KL: compared with VAEModel's "
                "reconstruction term with z = mu, on the shared variables "
                "(all but the logvar head)"
            )
        else:
            results[name]["deterministic"] = _compare(
                loss, grads, ref_loss, ref_grads, tolerance
            )
    # Every sampler drew exactly once above (the extra reconstruction pass
    # of `train_step` was rewound), so the generators are still in step;
    # _check_seed_states verifies it.
    for v in variants.values():
        v.set_deterministic(False)
    _check_seed_states(variants, "stochastic")

    # -- stochastic: the same seed and the same number of draws. --------
    gen_states = [v.seed_states() for v in variants.values() if v.samplers]
    ref_loss, ref_grads = loss_and_grads(ref, x)
    for name, v in variants.items():
        if name in ("train_step", "ae"):
            continue
        loss, grads = loss_and_grads(v, x)
        results[name]["stochastic"] = _compare(
            loss, grads, ref_loss, ref_grads, tolerance
        )
    # The clamp |eps| <= 5 of our layers is the only designed difference
    # from the reference: record the largest |eps| of the stochastic draw.
    if gen_states:
        # Replay the draw: a generator in the state the samplers had.
        gen = keras.random.SeedGenerator(seed)
        gen.state.assign(np.asarray(gen_states[0][0], dtype=gen.state.dtype))
        eps = keras.random.normal(
            (int(x.shape[0]), ref.model.z_dim), seed=gen
        )
        max_eps = float(np.max(np.abs(ops.convert_to_numpy(eps))))
        for name, r in results.items():
            if "stochastic" in r:
                r["stochastic"]["max_abs_eps"] = max_eps
    return results
