"""Workarounds that let `VAEModel` train under `MultiWorkerMirroredStrategy`.

TensorFlow backend only (TensorFlow is imported inside the functions, which
only the TF trainer calls). Keras 3.15's TF trainer has two bugs in its
multi-worker branch, so stock `model.fit` under
`tf.distribute.MultiWorkerMirroredStrategy` fails even for a `Sequential`
Dense model (keras-team/keras#20585, open):

1. `reduce_per_replica` (keras/src/backend/tensorflow/trainer.py) reduces
   every value a train/test step returns with
   `strategy.reduce("MEAN", v, axis=0)` in multi-worker mode. Step logs are
   scalars, which have no axis 0: "Invalid reduction dimension 0 for input
   with 0 dimensions". `step_logs` gives each log the shape `(1,)` in that
   mode, so the same reduction averages the workers' values into a scalar
   (the metrics are per-worker running means over equal batches, so their
   mean is the global mean).
2. `_maybe_symbolic_build` (same file) takes the first distributed batch and
   calls `strategy.reduce("MEAN", batch, axis=None)` on the whole batch
   structure, only to learn its shapes. `CollectiveAllReduceStrategy.reduce`
   takes one value, not a structure, so every `(x, y)` batch fails with
   "Attempt to convert a value (PerReplica...) with an unsupported type"
   (and a single `x` is all-reduced across workers for nothing).
   `symbolic_build_inputs` hands Keras this worker's own first batch
   instead; the build needs nothing but its shapes.

Both apply only where Keras takes its multi-worker branch (the test below is
the one Keras uses), so single-process training, with or without
`MirroredStrategy`, is untouched. A third bug, in Keras' saving, is worked
around by `VAECheckpoint` (`_keras_compat.fill_saving_skipset_cache`). The
two-worker test in tests/test_multiworker.py fails if any is removed.
"""

from keras_vae_layers import _keras_compat


def in_multi_worker_mode(strategy=None):
    """Whether Keras' TF trainer uses its multi-worker code with `strategy`.

    Mirrors `_collective_all_reduce_multi_worker` in Keras' TF trainer:
    a `MultiWorkerMirroredStrategy` whose cluster has more than one worker
    (`_in_multi_worker_mode` is TensorFlow's, on every strategy).

    Args:
        strategy: A `tf.distribute.Strategy`; default: the current one (in a
            train step, the strategy running it).

    Returns:
        bool; `False` on other backends (TensorFlow is not imported).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if strategy is None:
        strategy = tf.distribute.get_strategy()
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and strategy.extended._in_multi_worker_mode()


def step_logs(logs):
    """Step logs in a shape Keras' multi-worker reduction accepts (bug 1).

    Called at the end of the train/test step, inside the replica context.

    Args:
        logs: Dict of scalar tensors.

    Returns:
        `logs` unchanged, or, in multi-worker mode, each value reshaped to
        `(1,)` (Keras' `reduce("MEAN", v, axis=0)` turns it back into the
        scalar mean over the workers).
    """
    if not in_multi_worker_mode():
        return logs
    import tensorflow as tf

    return {key: tf.reshape(value, (1,)) for key, value in logs.items()}


def symbolic_build_inputs(model, iterator, data_batch):
    """Arguments for Keras' `_maybe_symbolic_build` that avoid bug 2.

    In multi-worker mode with a data iterator (`fit`/`evaluate`), reads the
    first batch exactly as Keras does and returns `(None, batch)` with each
    distributed value replaced by its first local component, so Keras
    builds from this worker's batch instead of all-reducing the structure.
    Otherwise returns the arguments as given.

    Args:
        model: The model being built.
        iterator: The epoch iterator Keras passes, or `None`.
        data_batch: The batch Keras passes, or `None`.

    Returns:
        `(iterator, data_batch)` to pass on to Keras.
    """
    # The strategy Keras' own method checks (None: it builds nothing).
    strategy = _keras_compat.creation_strategy(model)
    if iterator is None or strategy is None or not in_multi_worker_mode(
        strategy
    ):
        return iterator, data_batch
    import keras
    import tensorflow as tf

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    batch = _keras_compat.first_batch(iterator)
    return None, keras.tree.map_structure(local, batch)
