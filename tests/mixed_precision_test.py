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
"""Masked training under mixed precision (float16 with loss scaling, bfloat16).

Everything runs under a 2-replica MirroredStrategy over the logical CPUs of
conftest.py: masks must stay exact float32 variables equal on both replicas,
and a loss-scaled step with a non-finite gradient must change nothing.
"""

import functools

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import test_util
import tf_keras as keras

from rigl_tf import flavours
from rigl_tf import layers
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf import slots as slots_lib


def _rigl():
  # An update every 3 steps: the masks change several times in a test.
  return methods.RigL(drop_fraction=0.3, drop_fraction_anneal='constant',
                       update_frequency=3)


def _counts(model):
  return [int(tf.math.count_nonzero(mw.mask))
          for mw in layers.get_masked_weights(model)]


def _masks(model):
  return [mw.mask.numpy() for mw in layers.get_masked_weights(model)]


class MixedPrecisionTest(tf.test.TestCase, parameterized.TestCase):

  def tearDown(self):
    for flavour in flavours.NAMES:
      flavours.module(flavour).mixed_precision.set_global_policy('float32')
    super().tearDown()

  def _check_masks(self, model, strategy, counts, initial_masks):
    masked = layers.get_masked_weights(model)
    for mw in masked:
      # A plain float32 variable, never an autocast float16 view.
      self.assertEqual(mw.mask.dtype, tf.float32)
      self.assertNotIn('AutoCast', type(mw.mask).__name__)
      replicas = test_util.local_values(mw.mask, strategy)
      self.assertLen(replicas, 2)
      self.assertAllEqual(replicas[0], replicas[1])
      self.assertAllInSet(replicas[0], [0.0, 1.0])
    self.assertEqual(_counts(model), counts)
    self.assertEqual(layers.check_invariant(model), [])
    # The RigL updates did run.
    self.assertTrue(any((a != b).any()
                        for a, b in zip(_masks(model), initial_masks)))

  @parameterized.named_parameters(
      ('float16', 'mixed_float16', 'tf_keras'),
      ('bfloat16', 'mixed_bfloat16', 'tf_keras'),
      ('float16_keras3', 'mixed_float16', 'keras3'),
      ('bfloat16_keras3', 'mixed_bfloat16', 'keras3'))
  def test_fit_two_replicas(self, policy, flavour):
    keras = flavours.module(flavour)
    keras.mixed_precision.set_global_policy(policy)
    strategy = test_util.two_replica_strategy()
    model, optimizer = test_util.build_sparse(
        strategy, functools.partial(test_util.small_mlp, flavour=flavour),
        0.8, lambda: keras.optimizers.SGD(0.05, momentum=0.9), _rigl())
    counts, initial = _counts(model), _masks(model)
    with strategy.scope():
      model.compile(optimizer=optimizer,
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    # Keras adds loss scaling for float16 only.
    self.assertEqual(
        isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer),
        policy == 'mixed_float16')
    self.assertIs(optimizers.find_sparse_optimizer(model.optimizer),
                  optimizer)
    history = model.fit(test_util.random_data(12), epochs=1, verbose=0)
    self.assertTrue(np.isfinite(history.history['loss'][0]))
    self.assertEqual(int(optimizer.iterations.numpy()), 12)
    self._check_masks(model, strategy, counts, initial)

  def _step_fn(self, strategy, model, optimizer, poison=None):
    """A loss-scaled custom-loop step; `poison` (a variable) scales grad 0."""

    def replica_step(x, y):
      with tf.GradientTape() as tape:
        logits = tf.cast(model(x, training=True), tf.float32)
        loss = tf.reduce_sum(
            keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True)) / 32.0
        scaled = (optimizer.scale_loss(loss) if flavours.is_keras3(optimizer)
                  else optimizer.get_scaled_loss(loss))
      grads = tape.gradient(scaled, model.trainable_variables)
      if not flavours.is_keras3(optimizer):  # Keras 3 unscales in apply.
        grads = optimizer.get_unscaled_gradients(grads)
      if poison is not None:
        grads[0] = grads[0] * poison
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
      return loss

    @tf.function
    def step(batch):
      return strategy.reduce(
          'SUM', strategy.run(replica_step, args=batch), axis=None)

    def run(dataset):
      return [float(step(batch)) for batch in
              strategy.experimental_distribute_dataset(dataset)]

    return run

  def _build_loss_scaled(self, strategy, updater, flavour='tf_keras'):
    keras = flavours.module(flavour)
    keras.mixed_precision.set_global_policy('mixed_float16')
    model, _ = test_util.build_sparse(
        strategy, functools.partial(test_util.small_mlp, flavour=flavour),
        0.8, keras.optimizers.SGD)
    with strategy.scope():
      optimizer = optimizers.sparse_optimizer(
          keras.optimizers.SGD(0.05, momentum=0.9), model, updater)
    self.assertIsInstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    return model, optimizer

  def test_custom_loop_two_replicas(self):
    strategy = test_util.two_replica_strategy()
    model, optimizer = self._build_loss_scaled(strategy, _rigl())
    counts, initial = _counts(model), _masks(model)
    losses = self._step_fn(strategy, model, optimizer)(
        test_util.random_data(6))
    self.assertTrue(np.all(np.isfinite(losses)))
    self.assertEqual(int(optimizer.iterations.numpy()), 6)
    self._check_masks(model, strategy, counts, initial)

  @parameterized.named_parameters(*[(f, f) for f in flavours.NAMES])
  def test_inf_gradient_step_changes_nothing(self, flavour):
    # Keras 3's own LossScaleOptimizer fails under MirroredStrategy on a
    # non-finite step (also around a plain SGD: "You must feed a value for
    # placeholder tensor 'cond/else/_1/cond/Placeholder'"): one device.
    strategy = (test_util.two_replica_strategy() if flavour == 'tf_keras'
                else tf.distribute.get_strategy())
    # Every step is a mask update, and SNFS keeps a per-step gradient EMA:
    # a step that reached the SparseOptimizer would change both.
    updater = methods.SNFS(drop_fraction=0.3, drop_fraction_anneal='constant',
                            update_frequency=1)
    model, optimizer = self._build_loss_scaled(strategy, updater, flavour)
    with strategy.scope():
      poison = tf.Variable(1.0, trainable=False)
    data = test_util.random_data(2)
    run = self._step_fn(strategy, model, optimizer, poison)
    run(data)

    def state():
      sparse = optimizers.find_sparse_optimizer(optimizer)
      values = [np.array(v) for v in model.weights]
      values += [v.numpy() for v in updater.variables]
      for mw in sparse.masked_weights:
        values += [s.numpy() for s in
                   slots_lib.get_slot_variables(optimizer, mw.weight)]
      return values

    before, masks_before = state(), _masks(model)
    def loss_scale():
      return float(np.array(optimizer.dynamic_scale if flavour == 'keras3'
                            else optimizer.loss_scale))

    scale = loss_scale()
    poison.assign(np.inf)
    run(data.take(1))
    after = state()
    self.assertLen(after, len(before))
    for a, b in zip(after, before):
      self.assertAllEqual(a, b)
    # tf_keras' LossScaleOptimizer counts the skipped step, Keras 3's not.
    self.assertEqual(int(optimizer.iterations.numpy()),
                     3 if flavour == 'tf_keras' else 2)
    self.assertEqual(loss_scale(), scale / 2)
    # The same step with a finite gradient does change masks and weights.
    poison.assign(1.0)
    run(data.take(1))
    self.assertTrue(any((a != b).any()
                        for a, b in zip(_masks(model), masks_before)))
    self.assertEqual(layers.check_invariant(model), [])

  def test_sparse_optimizer_refuses_to_wrap_a_loss_scale_optimizer(self):
    model = layers.sparsify(test_util.small_mlp())
    inner = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.SGD())
    with self.assertRaisesRegex(TypeError, 'nest them the other way'):
      optimizers.SparseOptimizer(inner, model)

  def test_sparse_optimizer_stack_follows_the_policy(self):
    model = layers.sparsify(test_util.small_mlp())
    for policy, scaled in (('float32', False), ('mixed_bfloat16', False),
                           ('mixed_float16', True)):
      stack = optimizers.sparse_optimizer(keras.optimizers.SGD(), model,
                                          policy=policy)
      self.assertEqual(
          isinstance(stack, keras.mixed_precision.LossScaleOptimizer), scaled)
      self.assertIsInstance(optimizers.find_sparse_optimizer(stack),
                            optimizers.SparseOptimizer)


if __name__ == '__main__':
  tf.test.main()
