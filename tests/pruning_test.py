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
"""Tests for rigl_tf.pruning: GMP, GraNet and SNIP through SparseOptimizer.

Expected masks and counts are derived here from numpy and the closed forms,
not from the code under test.
"""

import math

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import test_util
import tf_keras as keras

from rigl_tf import flops
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf import slots as slots_lib


def _sgd(lr=0.1):
  return lambda: keras.optimizers.SGD(lr, momentum=0.9)


def _build(strategy, updater, sparsity, train_steps, distribution='erk',
           optimizer_fn=None, custom_sparsity_map=None, model_fn=None,
           seed=0):
  """A masked MLP whose updater drew its own initial masks."""
  with strategy.scope():
    model = layers.sparsify((model_fn or test_util.small_mlp)())
    plan = masks.sparsity_plan(model, sparsity, distribution,
                               custom_sparsity_map=custom_sparsity_map)
    updater.init_masks(model, plan, seed=seed, train_steps=train_steps)
    optimizer = optimizers.SparseOptimizer(
        (optimizer_fn or _sgd())(), model, updater)
  return model, optimizer, plan


def _run(strategy, updater, num_steps, sparsity=0.9, jit_compile=False,
         **kwargs):
  """Trains `num_steps` steps on random data; records every step."""
  model, optimizer, plan = _build(strategy, updater, sparsity, num_steps,
                                  **kwargs)
  with strategy.scope():  # As the trainer: the model the steps call.
    train_model = updater.wrap_model(model)
  weights = layers.get_masked_weights(model)
  initial = [mw.mask.numpy() for mw in weights]
  records = []

  def after_step(step):
    del step
    records.append({
        'masks': [mw.mask.numpy() for mw in weights],
        'replica_masks': [test_util.local_values(mw.mask, strategy)
                          for mw in weights],
        'bad': layers.check_invariant(model),
        'weights': [mw.weight.numpy() for mw in weights],
        # TFMOT's own masks (tfmot_gmp), in the order of `weights`.
        'tfmot_masks': [
            [m.numpy() for _, m, _ in wrapper.pruning_vars]
            for wrapper in _prune_low_magnitude_layers(train_model)],
    })

  test_util.train(strategy, train_model, optimizer,
                  test_util.random_data(num_steps, seed=1),
                  jit_compile=jit_compile, after_step=after_step)
  _run.last_model = model
  _run.last_train_model = train_model
  return initial, records, weights, plan


# TFMOT's wrapper class, as its public `prune_low_magnitude` makes it.
_PRUNE_LOW_MAGNITUDE = type(tfmot.sparsity.keras.prune_low_magnitude(
    keras.layers.Dense(1)))


def _prune_low_magnitude_layers(model):
  return [layer for layer in model.layers
          if isinstance(layer, _PRUNE_LOW_MAGNITUDE)]


def _cubic_ones(size, initial_ones, final_ones, k, num_updates):
  """Closed form: ones after pruning update k of K (written independently)."""
  s_i = 1 - initial_ones / size
  s_f = 1 - final_ones / size
  s = s_f + (s_i - s_f) * (1 - min(k / num_updates, 1)) ** 3
  return final_ones if k >= num_updates else size - math.floor(
      round(s * size, 6))


class ScheduleTest(tf.test.TestCase):

  def test_cubic_sparsity_closed_form(self):
    from rigl_tf import schedules  # pylint: disable=g-import-not-at-top
    args = dict(initial_sparsity=0.0, final_sparsity=0.9, begin_step=200,
                end_step=1200, update_frequency=100)
    # t - t0 = 0, 50 (last update at 0), 500, 999 (last 900), >= 1000.
    for step, expected in [(50, 0.0), (200, 0.0), (250, 0.0),
                           (700, 0.9 * (1 - 0.5**3)),
                           (1199, 0.9 * (1 - 0.1**3)), (1200, 0.9),
                           (5000, 0.9)]:
      self.assertAlmostEqual(
          schedules.cubic_sparsity(step, **args), expected, places=12,
          msg=step)
    counts = schedules.cubic_counts(1000, 1000, 100, 200, 1200, 100)
    self.assertLen(counts, 11)
    self.assertEqual(counts[0], 1000)
    # k = 1: s = 0.9 (1 - 0.9^3) = 0.2439 -> 243 zeros.
    self.assertEqual(counts[1], 757)
    self.assertEqual(counts[-1], 100)

  def test_regrowth_fraction_closed_form(self):
    from rigl_tf import schedules  # pylint: disable=g-import-not-at-top
    for step, expected in [(0, 0.5), (500, 0.005 + 0.495 * 0.5),
                           (250, 0.005 + 0.495 * 0.5 *
                            (1 + math.cos(math.pi / 4))),
                           (1000, 0.005), (2000, 0.005)]:
      self.assertAlmostEqual(
          schedules.regrowth_fraction_at(step, 0.5, 1000), expected,
          places=12)
      self.assertAlmostEqual(
          float(schedules.regrowth_fraction_at(tf.constant(step), 0.5,
                                               1000)), expected, places=6)


class GMPTest(tf.test.TestCase, parameterized.TestCase):

  def test_layerwise_counts_follow_the_schedule(self):
    updater = methods.GMP(update_frequency=2, final_prune_step=8,
                          scope='layerwise')
    initial, records, weights, plan = _run(
        tf.distribute.get_strategy(), updater, 14, sparsity=0.9)
    for m in initial:  # Dense-to-sparse.
      self.assertEqual(m.min(), 1.0)
    for t, record in enumerate(records):
      self.assertEmpty(record['bad'])
      k = t // 2  # Updates at 0, 2, ..., 8 (K = 4), none after.
      for mw, mask in zip(weights, record['masks']):
        final = masks.distributions.num_ones(plan.final[mw.name], mw.size)
        self.assertEqual(int(mask.sum()),
                         _cubic_ones(mw.size, mw.size, final, k, 4),
                         msg=(t, mw.name))
        if t >= 8:
          self.assertEqual(int(mask.sum()), final)
      if t >= 1:  # Pruned weights never come back.
        for old, new in zip(records[t - 1]['masks'], record['masks']):
          self.assertTrue(np.all(new <= old))
    # Training FLOPs follow the densities of every step: step t trains with
    # the masks of the last update before t (t = 0: dense).
    costs = flops.layer_costs(_run.last_model)
    expected = []
    for t in range(14):
      k = min((t - 1) // 2, 4) if t > 0 else None
      densities = {
          mw.name: 1.0 if k is None else _cubic_ones(
              mw.size, mw.size, masks.distributions.num_ones(
                  plan.final[mw.name], mw.size), k, 4) / mw.size
          for mw in weights}
      expected.append(flops.summarize(
          flops.with_densities(costs, densities)).flops)
    options = updater.training_cost_options(14, costs)
    np.testing.assert_allclose(options['density_schedule_flops'], expected,
                               rtol=1e-12)

  def test_global_keeps_the_largest_magnitudes_across_layers(self):
    # lr = 0: the weights stay the hand-made ones; one pruning step (t = 1)
    # reaches the final count of the pool (fc1, fc2); logits is fixed dense.
    updater = methods.GMP(update_frequency=1, final_prune_step=1)
    model, optimizer, plan = _build(
        tf.distribute.get_strategy(), updater, 0.9, 2,
        optimizer_fn=_sgd(0.0), custom_sparsity_map={'logits': 0.0})
    weights = layers.get_masked_weights(model)
    rng = np.random.RandomState(3)
    values = []
    for mw in weights:
      # Distinct magnitudes, different scales per layer.
      v = (rng.permutation(mw.size) + 1.0) * (0.3 if mw.name == 'fc1' else 1)
      v = (v * rng.choice([-1, 1], mw.size)).reshape(mw.weight.shape)
      mw.weight.assign(v.astype(np.float32))
      values.append(v)
    test_util.train(tf.distribute.get_strategy(), model, optimizer,
                    test_util.random_data(2))
    pool = [i for i, mw in enumerate(weights) if mw.name != 'logits']
    keep = sum(masks.distributions.num_ones(plan.final[weights[i].name],
                                            weights[i].size) for i in pool)
    magnitudes = np.concatenate([np.abs(values[i]).ravel() for i in pool])
    threshold = np.sort(magnitudes)[::-1][keep - 1]
    for i in pool:
      np.testing.assert_array_equal(
          weights[i].mask.numpy(),
          (np.abs(values[i]) >= threshold).astype(np.float32))
    # The fixed layer stays dense; the layer-wise budgets are not kept.
    self.assertEqual(weights[-1].mask.numpy().min(), 1.0)
    self.assertNotEqual(
        int(weights[0].mask.numpy().sum()),
        masks.distributions.num_ones(plan.final['fc1'], weights[0].size))

  def test_layerwise_keeps_each_layers_budget_by_magnitude(self):
    updater = methods.GMP(update_frequency=1, final_prune_step=1,
                          scope='layerwise')
    model, optimizer, plan = _build(
        tf.distribute.get_strategy(), updater, 0.9, 2,
        optimizer_fn=_sgd(0.0))
    weights = layers.get_masked_weights(model)
    before = [mw.weight.numpy() for mw in weights]
    test_util.train(tf.distribute.get_strategy(), model, optimizer,
                    test_util.random_data(2))
    for mw, w in zip(weights, before):
      n = masks.distributions.num_ones(plan.final[mw.name], mw.size)
      expected = np.zeros(mw.size, np.float32)
      expected[np.argsort(-np.abs(w).ravel(), kind='stable')[:n]] = 1.0
      np.testing.assert_array_equal(mw.mask.numpy().ravel(), expected)


class GraNetTest(tf.test.TestCase, parameterized.TestCase):

  def test_regrown_positions_are_the_top_dense_gradients(self):
    # One layer; lr = 0 keeps w fixed so the expected sets come from numpy.
    def model_fn():
      return test_util.small_mlp(hidden=(), num_classes=10)

    updater = methods.GraNet(update_frequency=1, final_prune_step=1,
                             scope='layerwise', prune_rate=0.5)
    strategy = tf.distribute.get_strategy()
    model, optimizer, plan = _build(strategy, updater, 0.8, 4,
                                    optimizer_fn=_sgd(0.0), model_fn=model_fn)
    (mw,) = layers.get_masked_weights(model)
    data = list(test_util.random_data(2))
    w = mw.weight.numpy().ravel()
    x, y = data[1]
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
          y, model(x), from_logits=True)) / 32.0
    grad = tape.gradient(loss, mw.weight).numpy().ravel()
    test_util.train(strategy, model, optimizer,
                    tf.data.Dataset.from_tensor_slices(
                        tuple(np.stack(t) for t in zip(*data))))
    final = masks.distributions.num_ones(plan.final[mw.name], mw.size)
    r_1 = 0.005 + 0.495 * 0.5 * (1 + math.cos(math.pi * 1 / 4))
    n_regrow = math.floor(final * np.float32(r_1))
    self.assertAllClose(float(updater.current_drop_fraction), r_1)
    kept = np.argsort(-np.abs(w), kind='stable')[:final - n_regrow]
    rest = np.setdiff1d(np.arange(mw.size), kept)
    grown = rest[np.argsort(-np.abs(grad[rest]), kind='stable')[:n_regrow]]
    expected = np.zeros(mw.size, np.float32)
    expected[kept] = 1.0
    expected[grown] = 1.0
    new_mask = mw.mask.numpy().ravel()
    self.assertEqual(int(new_mask.sum()), final)
    np.testing.assert_array_equal(new_mask, expected)
    # Regrown positions the schedule pruned start at zero (GraNet zeroes
    # pruned weights before regrowing); those the regeneration dropped keep
    # their values.
    pruned = np.argsort(-np.abs(w), kind='stable')[final:]
    from_pruned = np.intersect1d(grown, pruned)
    from_dropped = np.setdiff1d(grown, pruned)
    self.assertGreater(len(from_pruned), 0)
    self.assertGreater(len(from_dropped), 0)
    new_weight = mw.weight.numpy().ravel()
    np.testing.assert_array_equal(new_weight[from_pruned], 0.0)
    np.testing.assert_array_equal(new_weight[from_dropped], w[from_dropped])

  @parameterized.parameters('global', 'layerwise')
  def test_counts_and_regeneration_after_final_prune_step(self, scope):
    updater = methods.GraNet(update_frequency=2, final_prune_step=6,
                             scope=scope)
    initial, records, weights, plan = _run(
        tf.distribute.get_strategy(), updater, 16, sparsity=0.9)
    finals = [masks.distributions.num_ones(plan.final[mw.name], mw.size)
              for mw in weights]
    total = sum(mw.size for mw in weights)
    for t, record in enumerate(records):
      self.assertEmpty(record['bad'])
      k = t // 2
      counts = [int(m.sum()) for m in record['masks']]
      if scope == 'layerwise':
        self.assertEqual(counts, [
            _cubic_ones(mw.size, mw.size, f, k, 3)
            for mw, f in zip(weights, finals)], msg=t)
      else:
        self.assertEqual(sum(counts),
                         _cubic_ones(total, total, sum(finals), k, 3), msg=t)
      if t >= 6 and t % 2 == 0:
        # Regeneration after the final pruning step moves the masks.
        self.assertFalse(all(
            np.array_equal(a, b)
            for a, b in zip(records[t - 1]['masks'], record['masks'])),
                         msg=t)
        self.assertGreater(int(updater.connections_changed), 0)
    self.assertEqual(sum(int(m.sum()) for m in records[-1]['masks']),
                     sum(finals))
    # Summaries: r_t of the last update (step 14 of 16), the density after
    # it, the connections it changed.
    summaries = updater.summaries()
    self.assertAllClose(
        float(summaries['regrowth_fraction']),
        0.005 + 0.495 * 0.5 * (1 + math.cos(math.pi * 14 / 16)))
    self.assertAllClose(float(summaries['density/after_last_update']),
                        sum(finals) / total)
    self.assertGreater(int(summaries['connections_changed']), 0)
    self.assertNotIn('drop_fraction', summaries)

  def test_sparse_to_sparse_starts_from_erk_at_init_density(self):
    updater = methods.GraNet(update_frequency=2, final_prune_step=6,
                             init_density=0.5, initial_mask='ERK',
                             scope='layerwise')
    strategy = tf.distribute.get_strategy()
    model, _, plan = _build(strategy, updater, 0.9, 10)
    erk = plan.at(0.5, 'erk')
    for mw in layers.get_masked_weights(model):
      self.assertEqual(int(mw.mask.numpy().sum()),
                       masks.distributions.num_ones(erk[mw.name], mw.size))

  @parameterized.parameters('momentum', 'random')
  def test_growth_and_redistribution_options(self, growth):
    updater = methods.GraNet(update_frequency=2, final_prune_step=4,
                             growth=growth, redistribution='magnitude')
    _, records, weights, plan = _run(tf.distribute.get_strategy(), updater,
                                     8)
    self.assertEqual(
        sum(int(m.sum()) for m in records[-1]['masks']),
        sum(masks.distributions.num_ones(plan.final[mw.name], mw.size)
            for mw in weights))

  def test_invalid_options(self):
    for kwargs in [dict(growth='best'), dict(redistribution='momentum'),
                   dict(initial_mask='dense', init_density=0.5),
                   dict(scope='local'), dict(init_density=0.0)]:
      with self.assertRaises(ValueError, msg=kwargs):
        methods.GraNet(**kwargs)


class SNIPTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters('layerwise', 'global')
  def test_keeps_top_gradient_times_weight(self, scope):
    updater = methods.SNIP(scope=scope)
    strategy = tf.distribute.get_strategy()
    model, optimizer, plan = _build(strategy, updater, 0.9, 4,
                                    distribution='uniform')
    weights = layers.get_masked_weights(model)
    for mw in weights:
      self.assertEqual(mw.mask.numpy().min(), 1.0)  # Dense at step 0.
    data = list(test_util.random_data(4))
    before = [mw.weight.numpy() for mw in weights]
    x, y = data[0]
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
          y, model(x), from_logits=True)) / 32.0
    grads = tape.gradient(loss, [mw.weight for mw in weights])
    scores = [np.abs(g.numpy() * w) for g, w in zip(grads, before)]
    budgets = [masks.distributions.num_ones(plan.final[mw.name], mw.size)
               for mw in weights]
    if scope == 'layerwise':
      expected = []
      for s, n in zip(scores, budgets):
        e = np.zeros(s.size, np.float32)
        e[np.argsort(-s.ravel(), kind='stable')[:n]] = 1.0
        expected.append(e.reshape(s.shape))
    else:
      threshold = np.sort(np.concatenate(
          [s.ravel() for s in scores]))[::-1][sum(budgets) - 1]
      expected = [(s >= threshold).astype(np.float32) for s in scores]

    def after_step(step):
      for mw, e, w in zip(weights, expected, before):
        np.testing.assert_array_equal(mw.mask.numpy(), e)
        if step == 0:  # No weight update on the SNIP step.
          np.testing.assert_array_equal(mw.weight.numpy(), w * e)

    test_util.train(strategy, model, optimizer,
                    tf.data.Dataset.from_tensor_slices(
                        tuple(np.stack(t) for t in zip(*data))).unbatch()
                    .batch(32), after_step=after_step)
    # Training went on after step 0, with the masks fixed.
    self.assertNotAllClose(weights[0].weight.numpy(),
                           before[0] * expected[0])
    # Only the kept weights count as explored.
    self.assertAllClose(float(updater.itop_rate()),
                        sum(budgets) / sum(mw.size for mw in weights))


def _tfmot_sparsity(step, final, begin, end):
  """PolynomialDecay's sparsity, power 3, from 0 (written independently)."""
  p = min(max((step - begin) / (end - begin), 0.0), 1.0)
  return final * (1 - (1 - p) ** 3)


def _tfmot_ones(size, sparsity):
  """What TFMOT keeps of `size` weights at `sparsity` (its rounding)."""
  return max(round(size * (1 - sparsity)), 1)


class TFMOTGMPTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(('eager', False), ('jit_compile', True))
  def test_trains_through_prune_low_magnitude_with_its_masks(self,
                                                             jit_compile):
    # TFMOT prunes at its steps 2, 4, 6: in the forward pass of the
    # optimizer's steps 1, 3, 5 (the wrappers count training calls from 1).
    updater = methods.TFMOTGMP(update_frequency=2, final_prune_step=6)
    initial, records, weights, plan = _run(
        tf.distribute.get_strategy(), updater, 10, jit_compile=jit_compile)
    train_model = _run.last_train_model
    wrappers = _prune_low_magnitude_layers(train_model)
    # Every masked layer trains inside TFMOT's wrapper (the same layer).
    self.assertLen(wrappers, 3)
    self.assertEqual([id(w.layer) for w in wrappers],
                     [id(mw.layer) for mw in weights])
    self.assertEqual(
        [type(layer).__name__ for layer in
         tfmot.sparsity.keras.strip_pruning(train_model).layers],
        ['Flatten', 'MaskedLayer', 'MaskedLayer', 'MaskedLayer'])
    for wrapper, mw in zip(wrappers, weights):
      self.assertEqual(int(wrapper.pruning_step.numpy()), 10)
      self.assertEqual(
          wrapper.pruning_schedule.get_config(),
          {'class_name': 'PolynomialDecay',
           'config': {'initial_sparsity': 0.0,
                      'final_sparsity': plan.final[mw.name],
                      'power': 3, 'begin_step': 0, 'end_step': 6,
                      'frequency': 2}})
    for m in initial:  # Dense-to-sparse.
      self.assertEqual(m.min(), 1.0)
    for t, record in enumerate(records):
      self.assertEmpty(record['bad'])
      last = (t + 1) // 2 * 2  # TFMOT's last pruning step, t + 1 at most.
      for mw, mask, tfmot_masks in zip(weights, record['masks'],
                                       record['tfmot_masks']):
        np.testing.assert_array_equal(mask, tfmot_masks[0],
                                      err_msg=str((t, mw.name)))
        expected = mw.size if last == 0 else _tfmot_ones(
            mw.size, _tfmot_sparsity(min(last, 6), plan.final[mw.name], 0,
                                     6))
        self.assertEqual(int(mask.sum()), expected, msg=(t, mw.name))
    # The FLOP count follows the masks each step trained with: TFMOT's
    # pruning at step s shapes the optimizer's step s - 1 already.
    costs = flops.layer_costs(_run.last_model)
    expected = []
    for t in range(10):
      densities = {mw.name: float(record_mask.sum()) / mw.size
                   for mw, record_mask in zip(
                       weights, records[t - 1]['masks'] if t % 2 == 0
                       and t > 0 else records[t]['masks'])}
      expected.append(flops.summarize(
          flops.with_densities(costs, densities)).flops)
    options = updater.training_cost_options(10, costs)
    np.testing.assert_allclose(options['density_schedule_flops'], expected,
                               rtol=1e-12)

  def test_keeps_the_largest_magnitudes_of_each_layer(self):
    # lr = 0: TFMOT ranks the initial weights at each pruning step.
    updater = methods.TFMOTGMP(update_frequency=1, final_prune_step=2)
    initial_weights = None
    with tf.distribute.get_strategy().scope():
      model = layers.sparsify(test_util.small_mlp())
      initial_weights = [mw.weight.numpy()
                         for mw in layers.get_masked_weights(model)]
    _, records, weights, plan = _run(tf.distribute.get_strategy(), updater,
                                     3, optimizer_fn=_sgd(0.0))
    for mw, w, mask in zip(weights, initial_weights, records[-1]['masks']):
      keep = masks.distributions.num_ones(plan.final[mw.name], mw.size)
      order = np.argsort(-np.abs(w).ravel(), kind='stable')
      expected = np.zeros(mw.size)
      expected[order[:_tfmot_ones(mw.size, plan.final[mw.name])]] = 1
      np.testing.assert_array_equal(mask.ravel(), expected)
      # TFMOT rounds where this library floors: at most one weight apart.
      self.assertLessEqual(abs(int(mask.sum()) - keep), 1)

  def test_pruned_slots_are_fresh_with_adagrad(self):
    # Copying TFMOT's masks zeroes the pruned accumulators; a fresh Adagrad
    # accumulator is 0.1 here, which the optimizer's pass after the update
    # restores (`update_leaves_masked_state` is False for tfmot_gmp).
    built = []

    def adagrad():
      built.append(keras.optimizers.Adagrad(
          0.1, initial_accumulator_value=0.1))
      return built[-1]

    updater = methods.TFMOTGMP(update_frequency=1, final_prune_step=2)
    _, records, weights, _ = _run(tf.distribute.get_strategy(), updater, 3,
                                  optimizer_fn=adagrad)
    for mw, mask in zip(weights, records[-1]['masks']):
      self.assertLess(int(mask.sum()), mw.size)  # Pruned.
      (accumulator,) = slots_lib.get_slot_variables(built[0], mw.weight)
      np.testing.assert_array_equal(
          accumulator.numpy()[mask == 0], np.float32(0.1), err_msg=mw.name)
    self.assertEmpty(records[-1]['bad'])

  def test_schedule_is_the_cubic_schedule(self):
    from rigl_tf import schedules  # pylint: disable=g-import-not-at-top
    updater = methods.TFMOTGMP(update_frequency=100, begin_step=200,
                               final_prune_step=1200)
    schedule = updater.polynomial_decay(0.9)
    # TFMOT's step s is the optimizer's step s - 1.
    for step in range(0, 1500, 50):
      prunes, sparsity = schedule(tf.constant(step, tf.int64))
      self.assertEqual(bool(prunes), updater.is_update_step(step - 1),
                       msg=step)
      if not bool(prunes):
        continue
      closed = schedules.cubic_sparsity(step, 0.0, 0.9, 200, 1200, 100)
      self.assertAlmostEqual(float(sparsity), closed, places=6, msg=step)
      self.assertAlmostEqual(float(sparsity),
                             _tfmot_sparsity(step, 0.9, 200, 1200),
                             places=6, msg=step)
    self.assertEqual([t for t in range(1500) if updater.is_update_step(t)],
                     list(range(199, 1200, 100)))
    # The counts: TFMOT's max(round(n (1 - s)), 1) against this library's
    # n - floor(s n): equal, or TFMOT one below where n (1 - s) has a
    # fractional part under 1/2.
    for size in (77, 1000, 19_200):
      ours = schedules.cubic_counts(size, size, size - math.floor(
          0.9 * size), 200, 1200, 100)
      for k, count in enumerate(ours):
        step = 200 + 100 * k
        tfmot_count = _tfmot_ones(size, _tfmot_sparsity(step, 0.9, 200, 1200))
        self.assertIn(count - tfmot_count, (0, 1), msg=(size, step))

  def test_needs_the_wrapped_model(self):
    updater = methods.TFMOTGMP(update_frequency=2, final_prune_step=6)
    model, optimizer, _ = _build(tf.distribute.get_strategy(), updater, 0.9,
                                 10)
    with self.assertRaisesRegex(ValueError, 'wrap_model'):
      test_util.train(tf.distribute.get_strategy(), model, optimizer,
                      test_util.random_data(1))


class DistributedTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ('gmp', lambda: methods.GMP(update_frequency=2, final_prune_step=6)),
      ('granet', lambda: methods.GraNet(update_frequency=2,
                                        final_prune_step=6)),
      ('tfmot_gmp', lambda: methods.TFMOTGMP(update_frequency=2,
                                             final_prune_step=6)),
      ('snip', lambda: methods.SNIP(scope='global')))
  def test_two_replicas_give_the_masks_of_one_device(self, make):
    _, one, _, _ = _run(tf.distribute.get_strategy(), make(), 10)
    _, two, _, _ = _run(test_util.two_replica_strategy(), make(), 10)
    for t, (a, b) in enumerate(zip(one, two)):
      for mask_a, mask_b, replicas in zip(a['masks'], b['masks'],
                                          b['replica_masks']):
        np.testing.assert_array_equal(mask_a, mask_b, err_msg=str(t))
        np.testing.assert_array_equal(replicas[0], replicas[1])

  # GMP's update is GraNet's without the regeneration pass.
  @parameterized.named_parameters(
      ('granet', lambda: methods.GraNet(update_frequency=2,
                                        final_prune_step=4)),
      ('snip', lambda: methods.SNIP(scope='global')))
  def test_update_runs_inside_a_jit_compiled_step(self, make):
    updater = make()
    _, records, weights, plan = _run(tf.distribute.get_strategy(), updater,
                                     6, jit_compile=True)
    finals = sum(masks.distributions.num_ones(plan.final[mw.name], mw.size)
                 for mw in weights)
    self.assertEqual(sum(int(m.sum()) for m in records[-1]['masks']),
                     finals)
    for record in records:
      self.assertEmpty(record['bad'])


class RegistryTest(tf.test.TestCase):

  def test_registered_and_need_a_plan(self):
    for name in ('gmp', 'granet', 'snip'):
      self.assertIn(name, methods.names())
    # Without the trainer's plan (masks drawn by masks.init_masks), the
    # first step says what to call.
    model, optimizer = test_util.build_sparse(
        tf.distribute.get_strategy(), test_util.small_mlp, 0.9, _sgd(),
        methods.GMP(final_prune_step=10))
    with self.assertRaisesRegex(ValueError, 'init_masks'):
      test_util.train(tf.distribute.get_strategy(), model, optimizer,
                      test_util.random_data(1))


if __name__ == '__main__':
  tf.test.main()
