# Copyright 2026 The rigl_tf Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The one training loop: distributed steps in a `tf.function`.

`make_train_loop` returns `loop(iterator, num_steps)`, which runs that many
steps of the replica step under the strategy: cross-entropy (with label
smoothing) plus the model's regularization losses and an optional extra loss,
loss scaling when the optimizer is a `LossScaleOptimizer`, gradients of the
chosen variables (the model's trainable ones; Gem-Miner's search: the
scores) applied by the optimizer, and an optional cross-replica hook after
each step (Gem-Miner clips its scores there). Steps known to take no mask
update run in a loop traced without the update's condition
(`update_segments`).
"""

import tensorflow as tf
import tf_keras as keras

from rigl_tf import compat
from rigl_tf import optimizers as optimizers_lib


def uses_distributed_dataset(strategy):
  """TPUs need `experimental_distribute_dataset`; others split on the host.

  A host iterator over global batches is checkpointable (exact resume), and
  `MirroredStrategy`'s distributed iterators are not.
  """
  return isinstance(strategy, tf.distribute.TPUStrategy)


def make_metrics(strategy):
  """The loop's metrics: mean cross-entropy and training accuracy."""
  with strategy.scope():
    return {'loss': keras.metrics.Mean(),
            'accuracy': keras.metrics.SparseCategoricalAccuracy()}


def _replica_step_fn(model, optimizer, num_classes, global_batch,
                     label_smoothing, metrics, variables, extra_loss):
  """The step one replica runs on its part of a global batch."""
  loss_obj = keras.losses.CategoricalCrossentropy(
      from_logits=True, label_smoothing=label_smoothing,
      reduction=keras.losses.Reduction.NONE)

  def replica_step(images, labels):
    trained = variables() if callable(variables) else model.trainable_variables
    with tf.GradientTape() as tape:
      # Mixed precision computes in 16 bits; the loss is float32.
      logits = tf.cast(model(images, training=True), tf.float32)
      per_example = loss_obj(tf.one_hot(labels, num_classes), logits)
      loss = tf.nn.compute_average_loss(per_example,
                                        global_batch_size=global_batch)
      extra = [tf.cast(x, tf.float32) for x in model.losses]
      if extra_loss is not None:
        extra.append(tf.cast(extra_loss(), tf.float32))
      if extra:
        loss += tf.nn.scale_regularization_loss(tf.add_n(extra))
      loss = compat.scaled_loss(optimizer, loss)  # float16: loss scaling.
    grads = compat.unscaled_gradients(optimizer, tape.gradient(loss, trained))
    optimizer.apply_gradients(zip(grads, trained))
    metrics['loss'].update_state(per_example)
    metrics['accuracy'].update_state(labels, logits)

  return replica_step


def _splitter(strategy, global_batch):
  """Host global batch -> per-replica rows [r * n, (r + 1) * n)."""
  per_replica = global_batch // strategy.num_replicas_in_sync

  def split(batch):
    def take(context):
      start = context.replica_id_in_sync_group * per_replica
      return tf.nest.map_structure(lambda t: t[start:start + per_replica],
                                   batch)

    return strategy.experimental_distribute_values_from_function(take)

  return split


def make_train_loop(strategy, model, optimizer, num_classes, global_batch,
                    label_smoothing, metrics, jit_compile=False,
                    variables=None, extra_loss=None, after_step=None):
  """A function running `num_steps` distributed training steps.

  Args:
    strategy: the tf.distribute strategy the model was built under.
    model: the model the steps call (with training=True).
    optimizer: its optimizer stack (a `SparseOptimizer`, possibly inside a
      `LossScaleOptimizer`, or any optimizer, of either Keras flavour).
    num_classes: number of classes.
    global_batch: global batch size.
    label_smoothing: label smoothing of the cross-entropy.
    metrics: from `make_metrics`, updated every step.
    jit_compile: XLA-compile the replica step.
    variables: fn() -> the variables to train; default the model's
      trainable variables.
    extra_loss: optional fn() -> scalar added to the loss as a
      regularization loss (scaled by the number of replicas).
    after_step: optional fn() run in cross-replica context after each step.

  Returns:
    loop(iterator, num_steps); its `with_updates` and `without_updates`
    attributes are the two traced loops.
  """
  replica_step = _replica_step_fn(model, optimizer, num_classes, global_batch,
                                  label_smoothing, metrics, variables,
                                  extra_loss)
  num_replicas = strategy.num_replicas_in_sync
  split = _splitter(strategy, global_batch)

  def compiled_loop():
    # Each loop has its own (jit-compiled) step: their traces differ.
    step_fn = (tf.function(replica_step, jit_compile=True) if jit_compile
               else replica_step)

    @tf.function
    def loop(iterator, num_steps):
      for _ in tf.range(num_steps):
        batch = next(iterator)
        # One replica takes the whole batch: no slicing ops in its step.
        if num_replicas > 1 and not uses_distributed_dataset(strategy):
          batch = split(batch)
        strategy.run(step_fn, args=batch)
        if after_step is not None:
          after_step()

    return loop

  with_updates = compiled_loop()
  without_updates = compiled_loop()
  sparse = optimizers_lib.find_sparse_optimizer(optimizer)

  def train_loop(iterator, num_steps):
    num_steps = int(num_steps)
    if sparse is None:
      with_updates(iterator, tf.constant(num_steps))
      return
    step = int(sparse.iterations.numpy())
    for count, may_update in update_segments(sparse.updater, step, num_steps):
      if may_update:
        with_updates(iterator, tf.constant(count))
      else:
        with optimizers_lib.mask_updates_off(optimizer):
          without_updates(iterator, tf.constant(count))

  train_loop.with_updates = with_updates
  train_loop.without_updates = without_updates
  return train_loop


def update_segments(updater, step, num_steps):
  """Splits steps [step, step + num_steps) around the mask updates.

  Steps that are known, in Python, to take no mask update run in a loop
  traced without the update's condition (`optimizers.mask_updates_off`):
  they cost what a static-mask step costs.

  Args:
    updater: the method (a `MaskUpdater`).
    step: the first step (the optimizer's iterations).
    num_steps: how many steps.

  Returns:
    A list of (count, may_update): consecutive runs of steps, in order.
    may_update is False for a run with no update step, True for one update
    step, or for all the steps when the updater's schedule is not a Python
    function of the step (its `is_update_step` gives a tensor).
  """
  segments = []
  for s in range(step, step + num_steps):
    flag = updater.is_update_step(s)
    if not isinstance(flag, bool):
      return [(num_steps, True)] if num_steps else []
    if flag or not segments or segments[-1][1]:
      segments.append([1, flag])
    else:
      segments[-1][0] += 1
  return [tuple(x) for x in segments]
