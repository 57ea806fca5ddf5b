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
import test_util
import tf_keras as keras

from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf import rng as rng_lib
from rigl_tf import schedules
from rigl_tf import slots as slots_lib
from rigl_tf.methods import drop_grow
from rigl_tf.methods import redistribution

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
        'slots': [[s.numpy() for s in slots_lib.get_slot_variables(
            optimizer, mw.weight)] for mw in weights],
        'bad': layers.check_invariant(model),
    }
    if isinstance(updater, methods.DropGrowUpdater):
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
    new_mask, new_weight, slot_factor, num_new = drop_grow.drop_and_grow(
        tf.constant(mask.reshape(shape)), tf.constant(weight.reshape(shape)),
        tf.abs(tf.constant(grad.reshape(shape))), tf.constant(n_drop),
        tf.constant(n_drop), rng_lib.stateless_key(0, 0, 5, 1),
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
    new_mask, _, _, num_new = drop_grow.drop_and_grow(
        mask.reshape(shape), weight.reshape(shape),
        np.abs(grad).reshape(shape), tf.constant(5), tf.constant(9),
        rng_lib.stateless_key(0, 0, 5, 1), tf.constant(0.0))
    self.assertEqual(new_mask.numpy().sum(), mask.sum() - 5 + 9)
    self.assertBetween(int(num_new), 9 - 5, 9)

  def test_ties_are_broken_by_the_key_with_exact_counts(self):
    mask = np.ones(100, np.float32)
    weight = np.full(100, 0.5, np.float32)  # All tied.
    score = np.zeros(100, np.float32)
    masks = []
    for step in range(3):
      new_mask, _, _, _ = drop_grow.drop_and_grow(
          mask, weight, score, tf.constant(30), tf.constant(0),
          rng_lib.stateless_key(0, 0, step, 1), tf.constant(0.0))
      self.assertEqual(new_mask.numpy().sum(), 70)
      masks.append(new_mask.numpy())
    self.assertNotAllEqual(masks[0], masks[1])
    # Ties do not fall on the first positions, as a plain stable sort would.
    self.assertLess(masks[0][:70].sum(), 70)

  def test_same_result_with_and_without_xla(self):
    # Many exact ties in |w| (a few values) and in the score (zeros, as
    # the gradients of always-zero inputs): both tie stages run.
    rng = np.random.RandomState(5)
    shape = (30, 20)
    mask = (rng.rand(*shape) < 0.3).astype(np.float32)
    weight = rng.choice([-0.5, -0.25, 0.25, 0.5], shape).astype(np.float32)
    weight *= mask
    score = np.where(rng.rand(*shape) < 0.7, 0.0, rng.rand(*shape))
    score = score.astype(np.float32)
    plain = tf.function(drop_grow.drop_and_grow.python_function)
    n_active = int(mask.sum())
    for n_drop, n_grow in [(0, 0), (n_active // 3, n_active // 3),
                           (n_active, n_active), (5, 40)]:
      args = (tf.constant(mask), tf.constant(weight), tf.constant(score),
              tf.constant(n_drop), tf.constant(n_grow),
              rng_lib.stateless_key(3, 1, n_drop, 1), tf.constant(0.0))
      xla = drop_grow.drop_and_grow(*args)
      self.assertEqual(int(xla[0].numpy().sum()), n_active - n_drop + n_grow)
      for a, b in zip(xla, plain(*args)):
        self.assertAllEqual(a, b)

  def test_grow_init_draws_new_weights(self):
    shape, mask, weight, grad = self._layer()
    new_mask, new_weight, _, _ = drop_grow.drop_and_grow(
        mask.reshape(shape), weight.reshape(shape),
        np.abs(grad).reshape(shape), tf.constant(7), tf.constant(7),
        rng_lib.stateless_key(0, 0, 5, 1), tf.constant(0.5))
    new = (new_mask.numpy().ravel() > 0) & (mask == 0)
    values = new_weight.numpy().ravel()
    self.assertTrue(np.all(values[new] != 0))
    self.assertTrue(np.all(values[new_mask.numpy().ravel() == 0] == 0))


class RedistributeCountsTest(tf.test.TestCase, parameterized.TestCase):

  def test_proportional(self):
    counts = redistribution.redistribute_counts([1.0, 2.0, 1.0], 40,
                                          [100, 100, 100])
    self.assertAllEqual(counts, [10, 20, 10])

  def test_full_layer_passes_its_share_on(self):
    counts = redistribution.redistribute_counts([1.0, 100.0, 1.0], 30,
                                                [20, 5, 20])
    self.assertAllEqual(counts, [12, 5, 13] if counts[0] == 12 else
                        [13, 5, 12])

  def test_zero_scores_share_by_capacity(self):
    counts = redistribution.redistribute_counts([0.0, 0.0], 9, [10, 20])
    self.assertAllEqual(counts, [3, 6])

  @parameterized.parameters(range(5))
  def test_random_cases_exact_total_within_capacity(self, seed):
    rng = np.random.RandomState(seed)
    caps = rng.randint(0, 5000, 12)
    total = rng.randint(0, caps.sum() + 1)
    scores = rng.rand(12) ** 4 * (rng.rand(12) > 0.2)
    counts = redistribution.redistribute_counts(scores, total, caps).numpy()
    self.assertEqual(counts.sum(), total)
    self.assertTrue(np.all(counts >= 0) and np.all(counts <= caps))

  def test_runs_under_xla(self):
    fn = tf.function(redistribution.redistribute_counts, jit_compile=True)
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
    updater = methods.create(
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
      return methods.create(
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
    updater = methods.create(
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
    updater = methods.create(
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
        methods.RigL(skip_weight_update_on_mask_update=False)
        .skip_weight_update_on_mask_update)
    self.assertFalse(methods.SET().skip_weight_update_on_mask_update)
    self.assertFalse(methods.SNFS().skip_weight_update_on_mask_update)
    self.assertTrue(methods.RigL().skip_weight_update_on_mask_update)

  @parameterized.parameters(
      ('snfs', 'momentum'), ('rigl', 'magnitude'), ('set', 'nonzeros'),
      ('rigl', 'momentum'))
  def test_redistribution_preserves_the_total(self, method, redistribution):
    updater = methods.create(
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
    updater = methods.create(
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
      updater = methods.create(
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
    updater = methods.SNFS(begin_step=100, drop_fraction_anneal='constant')
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
    self.assertTrue(methods.SNFS().keeps_grad_ema)
    self.assertFalse(methods.RigL().keeps_grad_ema)
    self.assertTrue(methods.RigL(redistribution='momentum').keeps_grad_ema)


class ITOPAndSummariesTest(tf.test.TestCase):

  def test_static_itop_is_density_and_set_explores_more(self):
    static = methods.create('static')
    _, _, model, _ = _run(tf.distribute.get_strategy(), static, 6)
    masks = [mw.mask.numpy() for mw in layers.get_masked_weights(model)]
    density = sum(m.sum() for m in masks) / sum(m.size for m in masks)
    self.assertAllClose(static.itop_rate(), density)
    for m, (name, rate) in zip(masks, static.layer_itop_rates().items()):
      self.assertAllClose(rate, m.mean(), msg=name)

    dynamic = methods.create(
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
    updater = methods.create(
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
      self.assertIn(method, methods.names())
    self.assertIs(methods.get_class('rigl'), methods.RigL)

  def test_gin_binds_class_names(self):
    with gin.unlock_config():
      gin.bind_parameter('RigL.drop_fraction', 0.5)
      gin.bind_parameter('RigL.end_step', 750)
    try:
      updater = methods.create('rigl')
      self.assertEqual(updater.drop_fraction, 0.5)
      self.assertEqual(updater.end_step, 750)
      self.assertEqual(methods.create('set').drop_fraction, 0.3)
    finally:
      gin.clear_config()

  def test_invalid_values(self):
    with self.assertRaisesRegex(ValueError, 'grow_init'):
      methods.SET(grow_init='ones')
    with self.assertRaisesRegex(ValueError, 'redistribution'):
      methods.SET(redistribution='global')
    with self.assertRaisesRegex(ValueError, 'drop_fraction'):
      methods.SET(drop_fraction=1.5)
    with self.assertRaisesRegex(ValueError, 'drop_fraction_anneal'):
      methods.SET(drop_fraction_anneal='linear')


def _hand_made(updater, mask_counts=(23, 9), shapes=((10, 6), (6, 4)),
               seed=0):
  """Two bias-free Dense layers with hand-set masks and distinct |w|.

  Returns:
    (model, SparseOptimizer(SGD(0)) running `updater`, list of its
    `MaskedWeight`). With a zero learning rate the weights move only by
    the updater, so the kept set is known in advance.
  """
  rng = np.random.RandomState(seed)
  model = keras.Sequential(
      [keras.Input((shapes[0][0],))] +
      [keras.layers.Dense(s[1], use_bias=False, name=f'fc{i + 1}')
       for i, s in enumerate(shapes)])
  model = layers.sparsify(model)
  weights = layers.get_masked_weights(model)
  for mw, n_ones in zip(weights, mask_counts):
    size = mw.size
    mask = np.zeros(size, np.float32)
    mask[rng.permutation(size)[:n_ones]] = 1.0
    # Distinct magnitudes: the kept set is unique.
    values = (rng.permutation(size) + 1.0) * rng.choice([-1, 1], size)
    mw.mask.assign(mask.reshape(mw.weight.shape))
    mw.weight.assign((values * mask).reshape(mw.weight.shape) * 0.01)
  optimizer = optimizers.SparseOptimizer(
      keras.optimizers.SGD(0.0), model, updater)
  return model, optimizer, weights


def _step(optimizer, weights, grads):
  optimizer.apply_gradients(
      zip([tf.constant(g.reshape(mw.weight.shape)) for g, mw in
           zip(grads, weights)], [mw.weight for mw in weights]))


def _flat(variable):
  return variable.numpy().ravel()


class ExactSemanticsTest(tf.test.TestCase, parameterized.TestCase):
  """Through `SparseOptimizer` on hand-made layers, with expected values
  derived here in numpy (not by the code under test)."""

  def test_rigl_grows_the_top_dense_gradients_among_non_kept(self):
    updater = methods.RigL(drop_fraction=0.5,
                            drop_fraction_anneal='constant',
                            update_frequency=10, begin_step=0, end_step=50)
    _, optimizer, weights = _hand_made(updater)
    rng = np.random.RandomState(1)
    # A dense gradient with distinct magnitudes everywhere; those of the
    # active weights are the smallest, so growth must look at the inactive
    # positions (a masked gradient has nothing there).
    grads = []
    for mw in weights:
      mask = _flat(mw.mask)
      g = (rng.permutation(mw.size) + 1.0) * rng.choice([-1, 1], mw.size)
      g = np.where(mask > 0, g * 1e-3, g).astype(np.float32)
      grads.append(g)
    before = [(_flat(mw.mask), _flat(mw.weight)) for mw in weights]
    _step(optimizer, weights, grads)  # Step 0 updates the masks.
    for (mask, weight), g, mw in zip(before, grads, weights):
      active = np.flatnonzero(mask)
      n_drop = int(np.floor(len(active) * 0.5))
      kept = set(active[np.argsort(-np.abs(weight[active]))][
          :len(active) - n_drop].tolist())
      not_kept = np.array([i for i in range(mw.size) if i not in kept])
      grown = set(not_kept[np.argsort(-np.abs(g[not_kept]))][
          :n_drop].tolist())
      self.assertEqual(
          set(np.flatnonzero(_flat(mw.mask)).tolist()), kept | grown,
          f'{mw.name}: RigL must grow the {n_drop} largest |dense gradient| '
          'among the positions it did not keep')
      self.assertEmpty(grown & set(active.tolist()))

  def test_snfs_grows_the_top_gradient_ema_and_keeps_the_exact_ema(self):
    updater = methods.SNFS(drop_fraction=0.5,
                            drop_fraction_anneal='constant',
                            update_frequency=10, begin_step=2, end_step=50)
    _, optimizer, weights = _hand_made(updater)
    rng = np.random.RandomState(2)
    # Step 0 puts a large gradient on set A, step 2 a smaller one on set B:
    # the EMA (0.081 g0 + 0.09 g1 + 0.1 g2) ranks A first, the last raw
    # gradient ranks B first.
    steps = [[], [], []]
    sets = []
    for mw in weights:
      inactive = np.flatnonzero(_flat(mw.mask) == 0)
      order = rng.permutation(inactive)
      n_drop = int(np.floor(_flat(mw.mask).sum() * 0.5))
      a, b = order[:n_drop], order[n_drop:2 * n_drop]
      sets.append((set(a.tolist()), set(b.tolist())))
      for t in range(3):
        g = rng.uniform(0.0, 0.1, mw.size).astype(np.float32)
        g *= rng.choice([-1, 1], mw.size)
        if t == 0:
          g[a] = 10.0 + rng.rand(len(a))
        if t == 2:
          g[b] = -(5.0 + rng.rand(len(b)))
        steps[t].append(g.astype(np.float32))
    before = [_flat(mw.mask) for mw in weights]
    for grads in steps:
      _step(optimizer, weights, grads)
    for i, mw in enumerate(weights):
      expected_ema = (0.1 * 0.9**2 * steps[0][i] + 0.1 * 0.9 * steps[1][i] +
                      0.1 * steps[2][i])
      self.assertAllClose(_flat(updater.grad_ema[i]), expected_ema,
                          rtol=1e-5, atol=1e-7)
      new = set(np.flatnonzero((_flat(mw.mask) > 0) &
                               (before[i] == 0)).tolist())
      self.assertEqual(new, sets[i][0],
                       f'{mw.name}: SNFS must grow the top |EMA| (set A), '
                       'not the top |last gradient| (set B)')

  def test_set_grows_at_random_not_where_the_gradient_is(self):
    grown = {}
    for seed in (0, 1):
      updater = methods.SET(drop_fraction=0.5,
                             drop_fraction_anneal='constant',
                             update_frequency=10, begin_step=0, end_step=50)
      updater.configure_run(train_steps=100, seed=seed)
      _, optimizer, weights = _hand_made(updater, mask_counts=(30, 12))
      mw = weights[0]
      before = _flat(mw.mask)
      inactive = np.flatnonzero(before == 0)
      n_drop = 15
      top = set(inactive[:n_drop].tolist())
      g = np.zeros(mw.size, np.float32)
      g[list(top)] = 100.0
      _step(optimizer, weights, [g, np.zeros(weights[1].size, np.float32)])
      new = set(np.flatnonzero((_flat(mw.mask) > 0) & (before == 0)).tolist())
      # SET picks n_drop of the 45 positions it did not keep uniformly: it
      # meets the 15 largest gradients about 5 times, not 15.
      self.assertLessEqual(len(new & top), 10,
                           'SET grew where the gradient is largest')
      grown[seed] = new
    # The run's seed reaches the updater: another seed grows elsewhere.
    self.assertNotEqual(grown[0], grown[1])

  def test_drops_exactly_floor_n_active_times_annealed_alpha(self):
    updater = methods.RigL(drop_fraction=0.5, drop_fraction_anneal='cosine',
                            update_frequency=4, begin_step=0, end_step=12)
    _, optimizer, weights = _hand_made(updater)
    # Hand-computed α_t = 0.5 / 2 * (1 + cos(π t / 12)) and
    # floor(n_active * α_t) for the layers' 23 and 9 active weights.
    expected = {0: (0.5, [11, 4]), 4: (0.375, [8, 3]), 8: (0.125, [2, 1])}
    for t, (alpha, _) in expected.items():
      self.assertAllClose(updater.drop_fraction_at(t), alpha)
    for step in range(9):
      before = [_flat(mw.mask) for mw in weights]
      # Zero gradient on active weights, distinct elsewhere: every grown
      # position is new, so the number of new positions is n_drop.
      grads = [np.where(m > 0, 0.0,
                        np.arange(1, m.size + 1)).astype(np.float32)
               for m in before]
      _step(optimizer, weights, grads)
      for i, mw in enumerate(weights):
        after = _flat(mw.mask)
        dropped = int(((before[i] > 0) & (after == 0)).sum())
        new = int(((before[i] == 0) & (after > 0)).sum())
        want = expected[step][1][i] if step in expected else 0
        self.assertEqual((dropped, new), (want, want),
                         f'{mw.name} at step {step}')
        self.assertEqual(after.sum(), before[i].sum())
    # The three mask-update steps (weight update skipped) count as steps:
    # RigL's code would not increment its global step there (docs/
    # semantics.md explains why rigl_tf does).
    self.assertEqual(int(optimizer.iterations.numpy()), 9)

  @parameterized.parameters('set', 'snfs', 'rigl')
  def test_masks_change_at_every_update_step_only(self, method):
    updater = methods.create(
        method, drop_fraction=0.3, drop_fraction_anneal='constant',
        update_frequency=3, begin_step=0, end_step=6)
    _, optimizer, weights = _hand_made(updater)
    rng = np.random.RandomState(3)
    for step in range(9):
      before = [_flat(mw.mask) for mw in weights]
      # Small gradients on active weights: a gradient-based method must
      # grow new positions, not regrow the ones it just dropped.
      grads = [(rng.randn(m.size) * np.where(m > 0, 0.01, 1.0)).astype(
          np.float32) for m in before]
      _step(optimizer, weights, grads)
      for i, mw in enumerate(weights):
        changed = int(((before[i] == 0) & (_flat(mw.mask) > 0)).sum())
        if step in (0, 3, 6):
          self.assertGreater(changed, 0, f'{mw.name} at update step {step}')
        else:
          self.assertEqual(changed, 0, f'{mw.name} at step {step}')


class GrowInitAndRunConfigTest(tf.test.TestCase):

  def test_random_normal_uses_the_std_of_the_dense_initial_values(self):
    model = keras.Sequential([keras.Input((100,)),
                              keras.layers.Dense(60, use_bias=False,
                                                 name='fc')])
    model = layers.sparsify(model)
    mw = layers.get_masked_weights(model)[0]
    rng = np.random.RandomState(4)
    dense = rng.randn(100, 60).astype(np.float32) * 0.2 + 0.05
    mw.weight.assign(dense)
    masks.init_masks(model, 0.9, seed=0)
    updater = methods.SET(drop_fraction=0.9, drop_fraction_anneal='constant',
                           update_frequency=5, begin_step=0, end_step=10,
                           grow_init='random_normal')
    optimizer = optimizers.SparseOptimizer(keras.optimizers.SGD(0.0), model,
                                           updater)
    before = _flat(mw.mask)
    _step(optimizer, [mw], [np.zeros(6000, np.float32)])
    self.assertAllClose(updater._initial_std[0].numpy(), np.std(dense),
                        rtol=1e-5)
    new = (_flat(mw.mask) > 0) & (before == 0)
    self.assertGreater(new.sum(), 400)
    values = _flat(mw.weight)[new]
    # Zero-mean normal with the dense std (0.2): not the std of the mostly
    # zero stored tensor (~0.07).
    self.assertAllClose(np.std(values), np.std(dense), rtol=0.1)
    self.assertAllClose(np.mean(values), 0.0, atol=0.03)

  def test_end_step_defaults_to_75_percent_of_train_steps(self):
    updater = methods.RigL(drop_fraction=0.3)
    updater.configure_run(train_steps=1000, seed=3)
    self.assertEqual(updater.end_step, 750)
    self.assertEqual(updater.seed, 3)
    # The cosine anneal reaches 0 at that horizon.
    self.assertAllClose(updater.drop_fraction_at(375), 0.15)
    self.assertAllClose(updater.drop_fraction_at(750), 0.0)
    self.assertTrue(updater.is_update_step(700))
    self.assertFalse(updater.is_update_step(800))
    # Explicit values win.
    explicit = methods.RigL(end_step=-1, seed=9)
    explicit.configure_run(train_steps=1000, seed=3)
    self.assertEqual((explicit.end_step, explicit.seed), (-1, 9))
    self.assertTrue(explicit.is_update_step(900))


if __name__ == '__main__':
  tf.test.main()
