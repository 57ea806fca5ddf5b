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
"""Tests for rigl_tf.updaters: the drop/grow engine, SET, SNFS, RigL, ITOP."""

from absl.testing import parameterized
import gin
import numpy as np
import tensorflow as tf
import tf_keras as keras

from rigl_tf import layers
from rigl_tf import optimizers
from rigl_tf import schedules
from rigl_tf import test_util
from rigl_tf import updaters

_DYNAMIC = ('set', 'snfs', 'rigl')


def _sgd():
  return keras.optimizers.SGD(0.1, momentum=0.9)


def _adam():
  return keras.optimizers.Adam(0.01)


def _run(strategy, updater, num_steps, optimizer_fn=_sgd, jit_compile=False,
         sparsity=0.8, data_seed=1):
  """Trains a small masked MLP; records masks, weights, slots every step.

  Returns:
    (initial masks, list of per-step records, model, optimizer).
  """
  model, optimizer = test_util.build_sparse(
      strategy, test_util.small_mlp, sparsity, optimizer_fn, updater)
  weights = layers.get_masked_weights(model)
  initial = [mw.mask.numpy() for mw in weights]
  records = []

  def after_step(step):
    del step
    record = {
        'masks': [mw.mask.numpy() for mw in weights],
        'replica_masks': [
            test_util.local_values(mw.mask, strategy) for mw in weights
        ],
        'weights': [mw.weight.numpy() for mw in weights],
        'slots': [[s.numpy() for s in optimizers.get_slot_variables(
            optimizer, mw.weight)] for mw in weights],
        'bad': layers.check_invariant(model),
    }
    if isinstance(updater, updaters.DropGrowUpdater):
      record['changed'] = updater.layer_connections_changed.numpy()
      record['drop_fraction'] = float(updater.current_drop_fraction.numpy())
    records.append(record)

  test_util.train(strategy, model, optimizer,
                  test_util.random_data(num_steps, seed=data_seed),
                  jit_compile=jit_compile, after_step=after_step)
  return initial, records, model, optimizer


def _expected_n_drop(n_active, updater, step):
  """floor(n_active · α_t), in float32 as the updater computes it."""
  alpha = np.float32(updater.drop_fraction_at(tf.constant(step, tf.int64)))
  return int(np.floor(np.float32(n_active) * alpha))


def _numpy_top(scores, n):
  """Indices of the n largest scores (scores are distinct)."""
  return set(np.argsort(-scores, kind='stable')[:n].tolist())


class DropAndGrowTest(tf.test.TestCase, parameterized.TestCase):
  """The per-layer XLA function, on hand-made tensors."""

  def _layer(self, seed=0):
    rng = np.random.RandomState(seed)
    shape = (6, 10)
    mask = np.zeros(60, np.float32)
    mask[rng.permutation(60)[:20]] = 1.0
    # Distinct magnitudes: the kept set and the grown set are unique.
    weight = rng.permutation(60).astype(np.float32) + 1.0
    weight *= rng.choice([-1.0, 1.0], 60) * 0.01 * mask
    grad = (rng.permutation(60).astype(np.float32) + 1.0) * rng.choice(
        [-1.0, 1.0], 60)
    # Large gradients on the two smallest active weights: those are dropped
    # first and regrown at once (for n_drop >= 2).
    active = np.flatnonzero(mask)
    smallest = active[np.argsort(np.abs(weight[active]))[:2]]
    grad[smallest] = [1000.0, -999.0]
    return shape, mask, weight, grad

  @parameterized.parameters(0, 1, 2, 7, 20)
  def test_rigl_grows_exactly_the_top_gradients(self, n_drop):
    shape, mask, weight, grad = self._layer()
    new_mask, new_weight, slot_factor, num_new = updaters.drop_and_grow(
        tf.constant(mask.reshape(shape)), tf.constant(weight.reshape(shape)),
        tf.abs(tf.constant(grad.reshape(shape))), tf.constant(n_drop),
        tf.constant(n_drop), updaters.layer_key(0, 0, 5, 1),
        tf.constant(0.0))
    new_mask = new_mask.numpy().ravel()
    new_weight = new_weight.numpy().ravel()
    slot_factor = slot_factor.numpy().ravel()

    active = np.flatnonzero(mask)
    kept = {int(active[i]) for i in _numpy_top(
        np.abs(weight[active]), len(active) - n_drop)}
    not_kept = np.array([i for i in range(60) if i not in kept])
    grown = {int(not_kept[i]) for i in _numpy_top(
        np.abs(grad[not_kept]), n_drop)}
    dropped = set(active.tolist()) - kept
    regrown_same = grown & dropped
    self.assertEqual(set(np.flatnonzero(new_mask).tolist()), kept | grown)
    self.assertEqual(new_mask.sum(), mask.sum())
    self.assertEqual(int(num_new), n_drop - len(regrown_same))
    if n_drop >= 2:
      self.assertGreaterEqual(len(regrown_same), 2)
    # Kept and regrown-in-place weights keep their values, new ones are 0.
    for i in range(60):
      if i in kept or i in regrown_same:
        self.assertEqual(new_weight[i], weight[i])
        self.assertEqual(slot_factor[i], 1.0)
      else:
        self.assertEqual(new_weight[i], 0.0)
        self.assertEqual(slot_factor[i], 0.0)

  def test_grow_count_may_differ_from_drop_count(self):
    shape, mask, weight, grad = self._layer()
    new_mask, _, _, num_new = updaters.drop_and_grow(
        mask.reshape(shape), weight.reshape(shape),
        np.abs(grad).reshape(shape), tf.constant(5), tf.constant(9),
        updaters.layer_key(0, 0, 5, 1), tf.constant(0.0))
    self.assertEqual(new_mask.numpy().sum(), mask.sum() - 5 + 9)
    self.assertBetween(int(num_new), 9 - 5, 9)

  def test_ties_are_broken_by_the_key_with_exact_counts(self):
    mask = np.ones(100, np.float32)
    weight = np.full(100, 0.5, np.float32)  # All tied.
    score = np.zeros(100, np.float32)
    masks = []
    for step in range(3):
      new_mask, _, _, _ = updaters.drop_and_grow(
          mask, weight, score, tf.constant(30), tf.constant(0),
          updaters.layer_key(0, 0, step, 1), tf.constant(0.0))
      self.assertEqual(new_mask.numpy().sum(), 70)
      masks.append(new_mask.numpy())
    self.assertNotAllEqual(masks[0], masks[1])
    # Ties do not fall on the first positions, as a plain stable sort would.
    self.assertLess(masks[0][:70].sum(), 70)

  def test_grow_init_draws_new_weights(self):
    shape, mask, weight, grad = self._layer()
    new_mask, new_weight, _, _ = updaters.drop_and_grow(
        mask.reshape(shape), weight.reshape(shape),
        np.abs(grad).reshape(shape), tf.constant(7), tf.constant(7),
        updaters.layer_key(0, 0, 5, 1), tf.constant(0.5))
    new = (new_mask.numpy().ravel() > 0) & (mask == 0)
    values = new_weight.numpy().ravel()
    self.assertTrue(np.all(values[new] != 0))
    self.assertTrue(np.all(values[new_mask.numpy().ravel() == 0] == 0))


class RedistributeCountsTest(tf.test.TestCase, parameterized.TestCase):

  def test_proportional(self):
    counts = updaters.redistribute_counts([1.0, 2.0, 1.0], 40,
                                          [100, 100, 100])
    self.assertAllEqual(counts, [10, 20, 10])

  def test_full_layer_passes_its_share_on(self):
    counts = updaters.redistribute_counts([1.0, 100.0, 1.0], 30, [20, 5, 20])
    self.assertAllEqual(counts, [12, 5, 13] if counts[0] == 12 else
                        [13, 5, 12])

  def test_zero_scores_share_by_capacity(self):
    counts = updaters.redistribute_counts([0.0, 0.0], 9, [10, 20])
    self.assertAllEqual(counts, [3, 6])

  @parameterized.parameters(range(5))
  def test_random_cases_exact_total_within_capacity(self, seed):
    rng = np.random.RandomState(seed)
    caps = rng.randint(0, 5000, 12)
    total = rng.randint(0, caps.sum() + 1)
    scores = rng.rand(12) ** 4 * (rng.rand(12) > 0.2)
    counts = updaters.redistribute_counts(scores, total, caps).numpy()
    self.assertEqual(counts.sum(), total)
    self.assertTrue(np.all(counts >= 0) and np.all(counts <= caps))

  def test_runs_under_xla(self):
    fn = tf.function(updaters.redistribute_counts, jit_compile=True)
    counts = fn(tf.constant([3.0, 1.0, 0.5]), tf.constant(1001),
                tf.constant([2000, 2000, 10]))
    self.assertEqual(int(tf.reduce_sum(counts)), 1001)
    self.assertEqual(int(counts[2]), 10)


class DropGrowTrainingTest(tf.test.TestCase, parameterized.TestCase):
  """SET, SNFS and RigL inside SparseOptimizer."""

  @parameterized.parameters(
      [(m, f, 'sgd') for m in _DYNAMIC for f in (0.0, 0.3, 0.7)] +
      [('set', 0.5, 'adam'), ('rigl', 0.3, 'adam')])
  def test_update_semantics(self, method, drop_fraction, optimizer):
    updater = updaters.get_updater(
        method, drop_fraction=drop_fraction, drop_fraction_anneal='cosine',
        update_frequency=4, begin_step=2, end_step=14)
    optimizer_fn = _sgd if optimizer == 'sgd' else _adam
    initial, records, _, _ = _run(
        tf.distribute.get_strategy(), updater, 11, optimizer_fn)
    update_steps = [2, 6, 10]
    self.assertEqual(
        [t for t in range(11) if updater.is_update_step(t)], update_steps)
    previous = initial
    for step, record in enumerate(records):
      self.assertEmpty(record['bad'], f'invariant broken at step {step}')
      masks = record['masks']
      for mask, slots in zip(masks, record['slots']):
        for slot in slots:  # Slots of masked weights stay zero.
          self.assertAllEqual(slot * (1 - mask), np.zeros_like(slot))
      if step not in update_steps or drop_fraction == 0.0:
        for old, new in zip(previous, masks):
          self.assertAllEqual(old, new)
        if step in update_steps:
          self.assertAllEqual(record['changed'], [0] * len(masks))
        previous = masks
        continue
      self.assertAllClose(record['drop_fraction'],
                          updater.drop_fraction_at(step))
      for i, (old, new) in enumerate(zip(previous, masks)):
        n_active = int(old.sum())
        self.assertEqual(int(new.sum()), n_active)
        new_positions = (new > 0) & (old == 0)
        dropped = (old > 0) & (new == 0)
        n_drop = _expected_n_drop(n_active, updater, step)
        self.assertEqual(new_positions.sum(), dropped.sum())
        self.assertEqual(new_positions.sum(), record['changed'][i])
        self.assertLessEqual(new_positions.sum(), n_drop)
        self.assertAllEqual(record['weights'][i][new_positions], np.zeros(
            new_positions.sum()))
        for slot in record['slots'][i]:
          self.assertAllEqual(slot[new_positions],
                              np.zeros(new_positions.sum()))
      # Some connection changes in the largest layer at every update.
      self.assertGreater(record['changed'][0], 0)
      previous = masks

  @parameterized.parameters(('set', 'nonzeros'), ('snfs', 'momentum'),
                            ('rigl', 'none'))
  def test_two_replicas_give_the_masks_of_one_device(self, method,
                                                     redistribution):

    def make():
      return updaters.get_updater(
          method, drop_fraction=0.3, drop_fraction_anneal='constant',
          update_frequency=3, redistribution=redistribution)

    _, single, _, _ = _run(tf.distribute.get_strategy(), make(), 10)
    _, mirrored, _, optimizer = _run(test_util.two_replica_strategy(),
                                     make(), 10)
    self.assertGreater(optimizer.updater.connections_changed.numpy(), 0)
    for step, (one, two) in enumerate(zip(single, mirrored)):
      for i, (a, b) in enumerate(zip(one['masks'], two['masks'])):
        self.assertAllEqual(a, b, msg=f'layer {i} step {step}')
      for replicas in two['replica_masks']:
        self.assertAllEqual(replicas[0], replicas[1])
      self.assertEmpty(two['bad'])

  @parameterized.parameters(('set', 'magnitude'), ('snfs', 'momentum'),
                            ('rigl', 'none'))
  def test_update_runs_inside_a_jit_compiled_step(self, method,
                                                  redistribution):
    updater = updaters.get_updater(
        method, drop_fraction=0.3, drop_fraction_anneal='constant',
        update_frequency=3, redistribution=redistribution)
    initial, records, _, _ = _run(tf.distribute.get_strategy(), updater, 7,
                                  jit_compile=True)
    self.assertGreater(int(updater.connections_changed), 0)
    total = sum(int(m.sum()) for m in initial)
    for record in records:
      self.assertEmpty(record['bad'])
      self.assertEqual(sum(int(m.sum()) for m in record['masks']), total)

  def test_rigl_skips_the_weight_update_on_mask_update_steps(self):
    updater = updaters.get_updater(
        'rigl', drop_fraction=0.3, drop_fraction_anneal='constant',
        update_frequency=3, begin_step=2)
    self.assertTrue(updater.skip_weight_update_on_mask_update)
    _, records, _, _ = _run(tf.distribute.get_strategy(), updater, 6)
    before, after = records[1], records[2]  # Step 2 updates the masks.
    for w0, w1, m0, m1 in zip(before['weights'], after['weights'],
                              before['masks'], after['masks']):
      both = (m0 > 0) & (m1 > 0)
      self.assertAllEqual(w0[both], w1[both])
    # Other steps do update the weights.
    self.assertNotAllEqual(records[2]['weights'][0], records[3]['weights'][0])

  def test_skip_is_an_option(self):
    self.assertFalse(
        updaters.RigL(skip_weight_update_on_mask_update=False)
        .skip_weight_update_on_mask_update)
    self.assertFalse(updaters.SET().skip_weight_update_on_mask_update)
    self.assertFalse(updaters.SNFS().skip_weight_update_on_mask_update)
    self.assertTrue(updaters.RigL().skip_weight_update_on_mask_update)

  @parameterized.parameters(
      ('snfs', 'momentum'), ('rigl', 'magnitude'), ('set', 'nonzeros'),
      ('rigl', 'momentum'))
  def test_redistribution_preserves_the_total(self, method, redistribution):
    updater = updaters.get_updater(
        method, drop_fraction=0.5, drop_fraction_anneal='constant',
        update_frequency=2, redistribution=redistribution)
    initial, records, model, _ = _run(tf.distribute.get_strategy(), updater,
                                      9)
    sizes = [mw.size for mw in layers.get_masked_weights(model)]
    total = sum(int(m.sum()) for m in initial)
    for record in records:
      self.assertEmpty(record['bad'])
      counts = [int(m.sum()) for m in record['masks']]
      self.assertEqual(sum(counts), total)
      self.assertTrue(all(c <= s for c, s in zip(counts, sizes)))
    # The layers' shares did move.
    self.assertNotEqual([int(m.sum()) for m in records[-1]['masks']],
                        [int(m.sum()) for m in initial])

  def test_grow_init_initial_dist(self):
    reference, _ = test_util.build_sparse(
        tf.distribute.get_strategy(), test_util.small_mlp, 0.8, _sgd)
    first = layers.get_masked_weights(reference)[0]
    initial_std = np.std(first.weight.numpy()[first.mask.numpy() > 0])
    updater = updaters.get_updater(
        'set', drop_fraction=0.3, drop_fraction_anneal='constant',
        update_frequency=3, begin_step=1, grow_init='initial_dist')
    _, records, _, _ = _run(tf.distribute.get_strategy(), updater, 2)
    # Built before the first step: the std of the initial active weights.
    self.assertAllClose(updater._initial_std[0].numpy(), initial_std)
    new = (records[1]['masks'][0] > 0) & (records[0]['masks'][0] == 0)
    self.assertGreater(new.sum(), 0)
    values = records[1]['weights'][0][new]
    self.assertTrue(np.all(values != 0))
    self.assertAllClose(np.std(values), initial_std, rtol=0.5)


class CheckpointTest(tf.test.TestCase):

  def test_state_survives_a_restore_before_the_first_step(self):
    strategy = tf.distribute.get_strategy()

    def make():
      updater = updaters.get_updater(
          'snfs', drop_fraction=0.3, drop_fraction_anneal='constant',
          update_frequency=2)
      model, optimizer = test_util.build_sparse(
          strategy, test_util.small_mlp, 0.8, _sgd, updater)
      return updater, model, optimizer

    updater, model, optimizer = make()
    test_util.train(strategy, model, optimizer, test_util.random_data(3))
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
        self.get_temp_dir() + '/ckpt')
    restored, model2, optimizer2 = make()
    status = tf.train.Checkpoint(model=model2, optimizer=optimizer2).restore(
        path)
    # One more step (an update step) from the same state on both.
    for m, o in ((model, optimizer), (model2, optimizer2)):
      test_util.train(strategy, m, o, test_util.random_data(1, seed=7))
    status.assert_consumed()
    for a, b in zip(updater.variables, restored.variables):
      self.assertAllEqual(a, b, msg=a.name)
    for a, b in zip(layers.get_masked_weights(model),
                    layers.get_masked_weights(model2)):
      self.assertAllEqual(a.mask, b.mask)


class SNFSGradientEMATest(tf.test.TestCase):

  def test_ema_equals_closed_form(self):
    updater = updaters.SNFS(begin_step=100, drop_fraction_anneal='constant')
    model, optimizer = test_util.build_sparse(
        tf.distribute.get_strategy(), test_util.small_mlp, 0.8,
        lambda: keras.optimizers.SGD(0.0), updater)
    variables = model.trainable_variables
    rng = np.random.RandomState(0)
    grads = [[rng.randn(*v.shape).astype(np.float32) for v in variables]
             for _ in range(3)]
    for step_grads in grads:
      optimizer.apply_gradients(zip(step_grads, variables))
    keys = [v.ref() for v in variables]
    beta = 0.9
    for mw, ema in zip(optimizer.masked_weights, updater.grad_ema):
      g = [step_grads[keys.index(mw.weight.ref())] for step_grads in grads]
      expected = (1 - beta) * (beta**2 * g[0] + beta * g[1] + g[2])
      self.assertAllClose(ema.numpy(), expected, rtol=1e-5, atol=1e-7)

  def test_only_ema_users_keep_it(self):
    self.assertTrue(updaters.SNFS().keeps_grad_ema)
    self.assertFalse(updaters.RigL().keeps_grad_ema)
    self.assertTrue(updaters.RigL(redistribution='momentum').keeps_grad_ema)


class ITOPAndSummariesTest(tf.test.TestCase):

  def test_static_itop_is_density_and_set_explores_more(self):
    static = updaters.get_updater('static')
    _, _, model, _ = _run(tf.distribute.get_strategy(), static, 6)
    masks = [mw.mask.numpy() for mw in layers.get_masked_weights(model)]
    density = sum(m.sum() for m in masks) / sum(m.size for m in masks)
    self.assertAllClose(static.itop_rate(), density)
    for m, (name, rate) in zip(masks, static.layer_itop_rates().items()):
      self.assertAllClose(rate, m.mean(), msg=name)

    dynamic = updaters.get_updater(
        'set', drop_fraction=0.3, drop_fraction_anneal='constant',
        update_frequency=2)
    initial, records, _, _ = _run(tf.distribute.get_strategy(), dynamic, 6)
    self.assertGreater(float(dynamic.itop_rate()),
                       float(static.itop_rate()) + 0.01)
    ever = [e.numpy() for e in dynamic._ever_active]
    union = [np.maximum.reduce([m0] + [r['masks'][i] for r in records])
             for i, m0 in enumerate(initial)]
    for e, u in zip(ever, union):
      self.assertAllEqual(e, u)
    expected = sum(u.sum() for u in union) / sum(u.size for u in union)
    self.assertAllClose(dynamic.itop_rate(), expected)

  def test_summaries(self):
    updater = updaters.get_updater(
        'rigl', drop_fraction=0.4, drop_fraction_anneal='cosine',
        update_frequency=2, end_step=8)
    _, records, model, _ = _run(tf.distribute.get_strategy(), updater, 5)
    summaries = updater.summaries()
    names = [mw.name for mw in layers.get_masked_weights(model)]
    self.assertCountEqual(
        summaries,
        ['drop_fraction', 'connections_changed', 'itop_rate'] +
        [f'density/{n}' for n in names] + [f'itop/{n}' for n in names])
    # The last update was at step 4.
    self.assertAllClose(summaries['drop_fraction'],
                        schedules.cosine_drop_fraction(4, 0.4, 0, 8))
    self.assertEqual(int(summaries['connections_changed']),
                     int(records[4]['changed'].sum()))
    for name, mask in zip(names, records[-1]['masks']):
      self.assertAllClose(summaries[f'density/{name}'], mask.mean())


class RegistryAndConfigTest(tf.test.TestCase):

  def test_registered(self):
    for method in ('static', 'dense') + _DYNAMIC:
      self.assertIn(method, updaters.methods())
    self.assertIs(updaters.get_updater_class('rigl'), updaters.RigL)

  def test_gin_binds_class_names(self):
    with gin.unlock_config():
      gin.bind_parameter('RigL.drop_fraction', 0.5)
      gin.bind_parameter('RigL.end_step', 750)
    try:
      updater = updaters.get_updater('rigl')
      self.assertEqual(updater.drop_fraction, 0.5)
      self.assertEqual(updater.end_step, 750)
      self.assertEqual(updaters.get_updater('set').drop_fraction, 0.3)
    finally:
      gin.clear_config()

  def test_invalid_values(self):
    with self.assertRaisesRegex(ValueError, 'grow_init'):
      updaters.SET(grow_init='ones')
    with self.assertRaisesRegex(ValueError, 'redistribution'):
      updaters.SET(redistribution='global')
    with self.assertRaisesRegex(ValueError, 'drop_fraction'):
      updaters.SET(drop_fraction=1.5)
    with self.assertRaisesRegex(ValueError, 'drop_fraction_anneal'):
      updaters.SET(drop_fraction_anneal='linear')


if __name__ == '__main__':
  tf.test.main()
