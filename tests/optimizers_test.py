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
"""Tests for SparseOptimizer: the invariant, slots, model.fit, replicas."""

import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import test_util
import tf_keras as keras

from rigl_tf import compat
from rigl_tf import layers
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf import slots as slots_lib

OPTIMIZERS = {
    'sgd_momentum': lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    'adam': lambda: keras.optimizers.Adam(1e-3),
}


def _nonzero_counts(model):
  return {mw.name: int(tf.math.count_nonzero(mw.mask))
          for mw in layers.get_masked_weights(model)}


class SparseOptimizerTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('sgd_momentum', 'adam')
  def test_invariant_after_every_step_for_200_steps(self, name):
    strategy = tf.distribute.get_strategy()
    model, optimizer = test_util.build_sparse(
        strategy, test_util.small_mlp, 0.9, OPTIMIZERS[name])
    counts = _nonzero_counts(model)
    initial = [mw.weight.numpy() for mw in optimizer.masked_weights]
    violations = []

    def check(step):
      violations.extend((step, n) for n in layers.check_invariant(model))

    test_util.train(strategy, model, optimizer,
                    test_util.random_data(200, batch_size=16),
                    after_step=check)
    self.assertEqual(int(optimizer.iterations.numpy()), 200)
    self.assertEqual(violations, [])
    self.assertEqual(_nonzero_counts(model), counts)
    for mw, before in zip(optimizer.masked_weights, initial):
      mask = mw.mask.numpy()
      weight = mw.weight.numpy()
      # Exactly zero under the mask; active weights did train.
      self.assertEqual(np.count_nonzero(weight * (1 - mask)), 0)
      self.assertGreater(np.abs(weight - before)[mask == 1].max(), 0)
      # The wrapped optimizer's slots of masked weights stayed zero.
      slots = slots_lib.get_slot_variables(optimizer, mw.weight)
      self.assertLen(slots, 1 if name == 'sgd_momentum' else 2)
      for slot in slots:
        self.assertEqual(np.count_nonzero(slot.numpy() * (1 - mask)), 0)
        self.assertGreater(np.count_nonzero(slot.numpy()), 0)

  def test_model_fit_under_mirrored_strategy(self):
    strategy = test_util.two_replica_strategy()
    model, optimizer = test_util.build_sparse(
        strategy, test_util.small_mlp, 0.8, OPTIMIZERS['sgd_momentum'])
    counts = _nonzero_counts(model)
    with strategy.scope():
      model.compile(optimizer=optimizer,
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    model.fit(test_util.random_data(30), epochs=2, verbose=0)
    self.assertEqual(int(optimizer.iterations.numpy()), 60)
    self.assertEqual(layers.check_invariant(model), [])
    self.assertEqual(_nonzero_counts(model), counts)
    for mw in optimizer.masked_weights:
      replicas = test_util.local_values(mw.weight, strategy)
      self.assertAllEqual(replicas[0], replicas[1])

  @parameterized.parameters(False, True)
  def test_one_device_equals_two_replicas(self, use_fit):
    results = []
    for strategy in (tf.distribute.get_strategy(),
                     test_util.two_replica_strategy()):
      model, optimizer = test_util.build_sparse(
          strategy, test_util.small_mlp, 0.9, OPTIMIZERS['sgd_momentum'],
          seed=7)
      data = test_util.random_data(40, batch_size=32)
      if use_fit:
        with strategy.scope():
          model.compile(optimizer=optimizer,
                        loss=keras.losses.SparseCategoricalCrossentropy(
                            from_logits=True))
        model.fit(data, epochs=1, verbose=0, shuffle=False)
      else:
        test_util.train(strategy, model, optimizer, data)
      results.append([(mw.mask.numpy(), mw.weight.numpy())
                      for mw in layers.get_masked_weights(model)])
    for (mask_1, weight_1), (mask_2, weight_2) in zip(*results):
      self.assertAllEqual(mask_1, mask_2)
      self.assertAllClose(weight_1, weight_2, atol=1e-5, rtol=0)

  def test_jit_compiled_train_step(self):
    strategy = tf.distribute.get_strategy()
    model, optimizer = test_util.build_sparse(
        strategy, test_util.small_mlp, 0.9, OPTIMIZERS['adam'])
    counts = _nonzero_counts(model)
    test_util.train(strategy, model, optimizer, test_util.random_data(10),
                    jit_compile=True)
    self.assertEqual(layers.check_invariant(model), [])
    self.assertEqual(_nonzero_counts(model), counts)

  def test_rejects_non_keras_optimizer(self):
    model = layers.sparsify(test_util.small_mlp())
    with self.assertRaisesRegex(TypeError, 'wraps a Keras optimizer'):
      optimizers.SparseOptimizer(object(), model)
    inner = keras.optimizers.SGD(0.1)
    with self.assertRaisesRegex(TypeError, 'cannot wrap'):
      optimizers.SparseOptimizer(
          optimizers.SparseOptimizer(inner, model), model)

  def test_checkpoint_restores_optimizer_state(self):
    strategy = tf.distribute.get_strategy()
    model, optimizer = test_util.build_sparse(
        strategy, test_util.small_mlp, 0.5, OPTIMIZERS['sgd_momentum'])
    test_util.train(strategy, model, optimizer, test_util.random_data(5))
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
        self.get_temp_dir() + '/ckpt')
    model_2, optimizer_2 = test_util.build_sparse(
        strategy, test_util.small_mlp, 0.5, OPTIMIZERS['sgd_momentum'],
        seed=99)  # Different masks until restored.
    tf.train.Checkpoint(model=model_2, optimizer=optimizer_2).restore(path)
    self.assertEqual(int(optimizer_2.iterations.numpy()), 5)
    for a, b in zip(layers.get_masked_weights(model),
                    layers.get_masked_weights(model_2)):
      self.assertAllEqual(a.mask, b.mask)
      self.assertAllEqual(a.weight, b.weight)
    # Restoration of the slots is deferred until the optimizer creates them:
    # build (no step, which would change them) and compare bitwise.
    optimizer_2.build(model_2.trainable_variables)
    self.assertEqual(int(optimizer_2.iterations.numpy()), 5)
    num_slots = 0
    for a, b in zip(model.trainable_variables, model_2.trainable_variables):
      slots = slots_lib.get_slot_variables(optimizer, a)
      slots_2 = slots_lib.get_slot_variables(optimizer_2, b)
      self.assertLen(slots, 1)
      self.assertLen(slots_2, 1)
      for slot, slot_2 in zip(slots, slots_2):
        self.assertGreater(np.count_nonzero(slot.numpy()), 0)
        self.assertAllEqual(slot, slot_2)
        num_slots += 1
    self.assertEqual(num_slots, len(model.trainable_variables))
    test_util.train(strategy, model_2, optimizer_2, test_util.random_data(1))
    self.assertEqual(int(optimizer_2.iterations.numpy()), 6)

  def test_slot_variables_exclude_ema_copies(self):
    model, optimizer = test_util.build_sparse(
        tf.distribute.get_strategy(), test_util.small_mlp, 0.5,
        lambda: keras.optimizers.SGD(0.05, momentum=0.9, use_ema=True))
    test_util.train(tf.distribute.get_strategy(), model, optimizer,
                    test_util.random_data(2))
    inner = optimizer.inner_optimizer
    for i, variable in enumerate(model.trainable_variables):
      slots = slots_lib.get_slot_variables(optimizer, variable)
      self.assertLen(slots, 1)
      self.assertIs(slots[0], inner.momentums[i])
      self.assertIsNot(slots[0], inner._model_variables_moving_average[i])

  def test_save_and_load_keras_model(self):
    model, optimizer = test_util.build_sparse(
        tf.distribute.get_strategy(), test_util.small_mlp, 0.8,
        OPTIMIZERS['sgd_momentum'])
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(test_util.random_data(2), epochs=1, verbose=0)
    config = optimizer.get_config()
    self.assertEqual(config['method'], 'static')
    self.assertEqual(config['inner_optimizer']['class_name'], 'SGD')
    path = os.path.join(self.get_temp_dir(), 'sparse.keras')
    model.save(path)
    with self.assertLogs(level='WARNING') as logs:
      loaded = keras.models.load_model(path)
    self.assertIn('SparseOptimizer(inner, model, updater)',
                  '\n'.join(logs.output))
    # The wrapped optimizer comes back, with its state.
    self.assertIsInstance(loaded.optimizer, keras.optimizers.SGD)
    self.assertEqual(int(loaded.optimizer.iterations.numpy()), 2)
    self.assertAllClose(loaded.optimizer.momentum, 0.9)
    saved = layers.get_masked_weights(model)
    restored = layers.get_masked_weights(loaded)
    self.assertEqual([w.name for w in restored], [w.name for w in saved])
    for a, b in zip(saved, restored):
      self.assertAllEqual(a.mask, b.mask)
      self.assertAllEqual(a.weight, b.weight)
    for a, b in zip(model.trainable_variables, loaded.trainable_variables):
      self.assertAllEqual(
          slots_lib.get_slot_variables(optimizer, a)[0],
          slots_lib.get_slot_variables(loaded.optimizer, b)[0])


# Optimizer -> (constructor, expected slot lists of a built optimizer).
_KNOWN = {
    'sgd': (lambda: keras.optimizers.SGD(0.05, momentum=0.9), 1),
    'adam': (lambda: keras.optimizers.Adam(1e-3), 2),
    'adam_amsgrad': (lambda: keras.optimizers.Adam(1e-3, amsgrad=True), 3),
    'adamw': (lambda: keras.optimizers.AdamW(1e-3), 2),
    'rmsprop': (lambda: keras.optimizers.RMSprop(1e-3, momentum=0.9,
                                                 centered=True), 3),
    'adagrad': (lambda: keras.optimizers.Adagrad(0.05), 1),
    'lion': (lambda: keras.optimizers.Lion(1e-4), 1),
}


def _per_variable_lists(optimizer):
  """What a generic scan finds: lists holding one variable per model var."""
  n = len(optimizer._index_dict)  # pylint: disable=protected-access
  return {
      name for name, value in vars(optimizer).items()
      if name != '_variables' and isinstance(value, list) and len(value) == n
      and value and all(isinstance(v, tf.Variable) for v in value)
  }


class SlotListsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*[(k, k) for k in _KNOWN])
  def test_table_matches_the_built_optimizer(self, name):
    make, expected = _KNOWN[name]
    optimizer = make()
    variable = tf.Variable(tf.ones([3, 4]))
    optimizer.build([variable])
    slots, fresh = slots_lib.get_slot_resets(optimizer, variable)
    self.assertLen(slots, expected)
    # Every per-variable list the optimizer built is a known slot list
    # (a tf_keras release that adds one fails here).
    self.assertEqual(_per_variable_lists(optimizer),
                     {n for n in slots_lib.slot_lists(optimizer)
                      if getattr(optimizer, n, None)} - {
                          '_model_variables_moving_average'})
    # A fresh slot holds what the optimizer starts it at.
    for slot, value in zip(slots, fresh):
      self.assertAllEqual(slot, np.full([3, 4], value, np.float32))

  # The table test above covers every optimizer's lists; training covers the
  # three with a non-zero fresh value or optional slots (it costs seconds).
  @parameterized.named_parameters(
      ('adagrad', 'adagrad'), ('rmsprop', 'rmsprop'),
      ('adam_amsgrad', 'adam_amsgrad'))
  def test_grown_weights_get_fresh_slots(self, name):
    from rigl_tf import methods  # pylint: disable=g-import-not-at-top
    make, _ = _KNOWN[name]
    updater = methods.SET(drop_fraction=0.5, drop_fraction_anneal='constant',
                           update_frequency=3, begin_step=2, end_step=10)
    model, optimizer = test_util.build_sparse(
        tf.distribute.get_strategy(), test_util.small_mlp, 0.8, make, updater)
    weights = layers.get_masked_weights(model)
    before = {}

    def record(step):
      if step == 1:
        before.update({mw.name: mw.mask.numpy() for mw in weights})

    test_util.train(tf.distribute.get_strategy(), model, optimizer,
                    test_util.random_data(3), after_step=record)
    self.assertEmpty(layers.check_invariant(model))
    for mw in weights:
      mask = mw.mask.numpy()
      grown = (mask > 0) & (before[mw.name] == 0)
      self.assertGreater(grown.sum(), 0)
      slots, fresh = slots_lib.get_slot_resets(optimizer, mw.weight)
      for slot, value in zip(slots, fresh):
        slot = slot.numpy()
        # Grown at step 2 (no step since): fresh; masked: never moved.
        value = np.float32(value)
        self.assertAllEqual(slot[grown], np.full(grown.sum(), value))
        self.assertAllEqual(slot[mask == 0],
                            np.full((mask == 0).sum(), value))
        self.assertNotAllEqual(slot, np.full(slot.shape, value))

  def test_unknown_optimizer_is_a_clear_error(self):

    class Custom(keras.optimizers.Optimizer):

      def __init__(self):
        super().__init__(name='custom')

      def build(self, var_list):
        super().build(var_list)
        self.traces = [self.add_variable_from_reference(v, 'trace')
                       for v in var_list]

      def update_step(self, gradient, variable):
        variable.assign_sub(0.1 * gradient)

    model = layers.sparsify(test_util.small_mlp())
    with self.assertRaisesRegex(ValueError,
                                'does not know where Custom keeps'):
      optimizers.SparseOptimizer(Custom(), model)


# Every optimizer of `compat.SLOT_LISTS`, with its options, and its
# `weight_decay` (decoupled: w -= lr * wd * w) where the name says `_wd`.
_ZERO_KEEPING = {
    'sgd': lambda: keras.optimizers.SGD(0.1),
    'sgd_momentum_wd': lambda: keras.optimizers.SGD(
        0.1, momentum=0.9, weight_decay=0.05),
    'sgd_nesterov_clipnorm': lambda: keras.optimizers.SGD(
        0.1, momentum=0.9, nesterov=True, global_clipnorm=0.5),
    'adam': lambda: keras.optimizers.Adam(0.01),
    'adam_amsgrad_wd': lambda: keras.optimizers.Adam(
        0.01, amsgrad=True, weight_decay=0.05),
    'adamw': lambda: keras.optimizers.AdamW(0.01, weight_decay=0.0),
    'adamw_wd_amsgrad': lambda: keras.optimizers.AdamW(
        0.01, weight_decay=0.1, amsgrad=True),
    'nadam': lambda: keras.optimizers.Nadam(0.01),
    'nadam_wd': lambda: keras.optimizers.Nadam(0.01, weight_decay=0.05),
    'adamax': lambda: keras.optimizers.Adamax(0.01),
    'adamax_wd': lambda: keras.optimizers.Adamax(0.01, weight_decay=0.05),
    'rmsprop': lambda: keras.optimizers.RMSprop(0.01),
    'rmsprop_centered_momentum_wd': lambda: keras.optimizers.RMSprop(
        0.01, momentum=0.9, centered=True, weight_decay=0.05),
    'adagrad': lambda: keras.optimizers.Adagrad(0.1),
    'adagrad_wd': lambda: keras.optimizers.Adagrad(0.1, weight_decay=0.05),
    'adadelta': lambda: keras.optimizers.Adadelta(1.0),
    'adadelta_wd': lambda: keras.optimizers.Adadelta(1.0, weight_decay=0.05),
    'ftrl': lambda: keras.optimizers.Ftrl(0.1),
    'ftrl_l1_l2_shrinkage_wd': lambda: keras.optimizers.Ftrl(
        0.1, l1_regularization_strength=1e-3, l2_regularization_strength=1e-3,
        l2_shrinkage_regularization_strength=1e-2, beta=0.1,
        weight_decay=0.05),
    'lion': lambda: keras.optimizers.Lion(1e-3),
    'lion_wd': lambda: keras.optimizers.Lion(1e-3, weight_decay=0.5),
    # Moving averages only written at the end (finalize_variable_values).
    'sgd_use_ema': lambda: keras.optimizers.SGD(
        0.1, momentum=0.9, use_ema=True),
}


@keras.utils.register_keras_serializable(package='rigl_tf_test')
class _ZeroMean(keras.constraints.Constraint):
  """Centres a kernel (w - mean(w)): moves masked weights off 0."""

  def __call__(self, w):
    return w - tf.reduce_mean(w)


def _drop_grow(method):
  """Drops and regrows half the active weights at steps 2, 4 and 6."""
  from rigl_tf import methods  # pylint: disable=g-import-not-at-top
  return methods.create(
      method, drop_fraction=0.5, drop_fraction_anneal='constant',
      update_frequency=2, begin_step=2, end_step=6)


def _train_and_check(test, make_optimizer, updater, steps=8, strategy=None,
                     model_fn=test_util.small_mlp):
  """Trains; asserts masked weights are 0 and slots fresh after every step."""
  strategy = strategy or tf.distribute.get_strategy()
  model, optimizer = test_util.build_sparse(
      strategy, model_fn, 0.8, make_optimizer, updater)
  weights = optimizer.masked_weights
  initial = [mw.weight.numpy() for mw in weights]
  leaks = []

  def check(step):
    for mw in weights:
      masked = mw.mask.numpy() == 0
      weight_leaks = np.count_nonzero(mw.weight.numpy()[masked] != 0)
      slots, fresh = slots_lib.get_slot_resets(optimizer, mw.weight)
      slot_leaks = sum(
          np.count_nonzero(slot.numpy()[masked] != np.float32(value))
          for slot, value in zip(slots, fresh))
      if weight_leaks or slot_leaks:
        leaks.append((step, mw.name, int(weight_leaks), int(slot_leaks)))

  test_util.train(strategy, model, optimizer,
                  test_util.random_data(steps, batch_size=16),
                  after_step=check)
  test.assertEqual(leaks, [])
  test.assertEqual(int(optimizer.iterations.numpy()), steps)
  # The active weights did train.
  for mw, before in zip(weights, initial):
    test.assertGreater(np.count_nonzero(mw.weight.numpy() != before), 0)
  return optimizer


class MaskedWeightsStayZeroTest(tf.test.TestCase, parameterized.TestCase):
  """Masked weights are exactly 0 after every step, without re-masking.

  The optimizers of `_KEEPS_MASKED_WEIGHTS_AT_ZERO` get no re-masking pass:
  these tests are what keeps them off it. Each trains with drop/grow (SET
  applies the weight update on the mask-update step, RigL skips it; the
  steps in between are static-mask steps) and checks, after every step,
  `weight == 0` and fresh slots wherever the mask is 0.
  """

  @parameterized.named_parameters(*[(k, k) for k in _ZERO_KEEPING])
  def test_no_remasking_and_masked_weights_stay_zero(self, name):
    make = _ZERO_KEEPING[name]
    self.assertFalse(slots_lib.needs_remasking(
        make(), tf.Variable(tf.zeros([2]))))
    # Alternate the updater so each optimizer meets both kinds of step.
    method = 'rigl' if sorted(_ZERO_KEEPING).index(name) % 2 else 'set'
    updater = _drop_grow(method)
    _train_and_check(self, make, updater)
    # The last update (step 6) moved connections in every layer.
    self.assertGreater(updater.layer_connections_changed.numpy().min(), 0)

  def test_static_masks_two_replicas(self):
    _train_and_check(self, _ZERO_KEEPING['adamw_wd_amsgrad'], None, steps=4,
                     strategy=test_util.two_replica_strategy())

  def test_drop_grow_two_replicas(self):
    updater = _drop_grow('set')
    _train_and_check(self, _ZERO_KEEPING['rmsprop_centered_momentum_wd'],
                     updater, strategy=test_util.two_replica_strategy())
    self.assertGreater(int(updater.connections_changed.numpy()), 0)

  def test_every_known_optimizer_states_its_rule(self):
    # pylint: disable=protected-access
    self.assertEqual(set(slots_lib._KEEPS_MASKED_WEIGHTS_AT_ZERO),
                     set(compat.SLOT_LISTS))
    # The Keras 3 classes are trained in flavours_test.py.
    tested = {type(make()) for make in _ZERO_KEEPING.values()}
    self.assertEqual(tested, {cls for cls in compat.SLOT_LISTS
                              if cls.__module__.startswith('tf_keras.')})


class _PruneKeepingSlots(methods.MaskUpdater):
  """At step 2, masks the first half of each mask's active entries.

  It zeroes the pruned weights but, like TFMOT's pruning, leaves their
  optimizer slots as they are.
  """

  def is_update_step(self, step):
    return tf.equal(step, 2)

  def update_masks(self, strategy, masked_weights, dense_grads, step,
                   optimizer):
    del dense_grads, step, optimizer
    for mw in masked_weights:
      strategy.extended.update(mw.mask, _prune_first_half,
                               args=(mw.weight,), group=False)


def _prune_first_half(mask, weight):
  flat = tf.reshape(tf.cast(mask, tf.float32), [-1])
  first_half = tf.cumsum(flat) <= tf.reduce_sum(flat) / 2
  new = tf.reshape(tf.where(first_half, 0.0, flat), tf.shape(mask))
  mask.assign(tf.cast(new, mask.dtype), read_value=False)
  weight.assign(weight * tf.cast(new, weight.dtype), read_value=False)


class RemaskingTest(tf.test.TestCase):
  """Where a step can move a masked weight, the mask is applied again."""

  def test_updater_that_leaves_slots_of_pruned_weights(self):
    # The optimizer resets them after every mask update (momentum would
    # move the pruned weights otherwise).
    updater = _PruneKeepingSlots()
    optimizer = _train_and_check(
        self, _ZERO_KEEPING['sgd_momentum_wd'], updater, steps=5)
    for mw, initial in zip(optimizer.masked_weights, updater.layer_itop_rates(
        ).values()):
      before = round(float(initial) * mw.size)
      self.assertEqual(int(tf.reduce_sum(mw.mask)), before - before // 2)

  def test_ema_overwrite_with_drop_grow(self):
    # Every 2 steps the weights become their moving averages; a dropped
    # weight's average is not 0.
    make = lambda: keras.optimizers.SGD(  # noqa: E731
        0.1, momentum=0.9, use_ema=True, ema_overwrite_frequency=2)
    self.assertTrue(slots_lib.needs_remasking(
        make(), tf.Variable(tf.zeros([2]))))
    _train_and_check(self, make, _drop_grow('set'))

  def test_constrained_kernel(self):

    def model_fn():
      keras.utils.set_random_seed(0)
      return keras.Sequential([
          keras.layers.Flatten(input_shape=(8, 8, 1)),
          keras.layers.Dense(
              16, activation='relu', name='fc1',
              kernel_constraint=_ZeroMean()),
          keras.layers.Dense(10, name='logits'),
      ])

    model = model_fn()
    self.assertTrue(slots_lib.needs_remasking(
        keras.optimizers.SGD(0.1), model.layers[1].kernel))
    self.assertFalse(slots_lib.needs_remasking(
        keras.optimizers.SGD(0.1), model.layers[2].kernel))
    _train_and_check(self, lambda: keras.optimizers.SGD(0.1), None, steps=3,
                     model_fn=model_fn)

  def test_subclass_of_a_known_optimizer(self):

    class NoisySGD(keras.optimizers.SGD):
      """SGD that also adds noise to every weight."""

      def update_step(self, gradient, variable):
        super().update_step(gradient, variable)
        variable.assign_add(tf.fill(tf.shape(variable), 1e-3))

    self.assertTrue(slots_lib.needs_remasking(
        NoisySGD(0.1), tf.Variable(tf.zeros([2]))))
    _train_and_check(self, lambda: NoisySGD(0.1), None, steps=3)


class UseEmaTest(tf.test.TestCase):

  def test_fit_with_use_ema_keeps_the_invariant(self):
    from rigl_tf import methods  # pylint: disable=g-import-not-at-top
    strategy = test_util.two_replica_strategy()
    updater = methods.SET(drop_fraction=0.5, drop_fraction_anneal='constant',
                           update_frequency=4, begin_step=4, end_step=12)
    model, optimizer = test_util.build_sparse(
        strategy, test_util.small_mlp, 0.8,
        lambda: keras.optimizers.SGD(0.1, momentum=0.9, use_ema=True),
        updater)
    counts = _nonzero_counts(model)
    with strategy.scope():
      model.compile(optimizer=optimizer,
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
    model.fit(test_util.random_data(12), epochs=1, verbose=0)
    # fit() wrote the moving averages into the weights, then the masks.
    self.assertGreater(int(updater.connections_changed.numpy()), 0)
    self.assertEqual(layers.check_invariant(model), [])
    self.assertEqual(_nonzero_counts(model), counts)

if __name__ == '__main__':
  tf.test.main()
