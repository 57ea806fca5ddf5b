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
"""Any tf_keras model: attention, subclassed models, nested and custom layers.

For each of the three kinds in `model_zoo`: every kernel masked with its
exact count, RigL on 2 replicas (counts kept, masks moved, identical on both
replicas, invariant exact; the attention model under mixed bfloat16), strip
then save (.keras, SavedModel) and load in a fresh process with identical
predictions. Then bit-exact resume, every method, the methods' limits,
unknown layers, ERK's true fan-in/out and the FLOPs of EinsumDense,
attention and RNNs, by hand.
"""

import math
import os

from absl.testing import parameterized
import model_zoo
import numpy as np
import tensorflow as tf
import test_util
import tf_keras as keras

from rigl_tf import distributions
from rigl_tf import flops
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf.methods import scored
from rigl_tf.train import report

_KINDS = [(kind, kind) for kind in model_zoo.BUILDERS]
_SPARSITY = 0.75


def _expected_counts(kind):
  return {name: n - math.floor(_SPARSITY * n)
          for name, n in model_zoo.KERNELS[kind].items()}


def _counts(model):
  return {mw.name: int(tf.math.count_nonzero(mw.mask))
          for mw in layers.get_masked_weights(model)}


def _data(kind, num_batches, seed=0):
  return test_util.random_data(
      num_batches, batch_size=8, input_shape=model_zoo.INPUT_SHAPES[kind],
      num_classes=model_zoo.NUM_CLASSES, seed=seed)


def _sparse(kind):
  model = layers.sparsify(model_zoo.build(kind))
  masks.init_masks(
      model, masks.get_layer_sparsities(model, _SPARSITY, 'uniform'), seed=0)
  return model


class ThreeKindsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*_KINDS)
  def test_every_kernel_is_masked_with_its_exact_count(self, kind):
    model = _sparse(kind)
    self.assertEqual(_counts(model), _expected_counts(kind))
    self.assertEqual(layers.check_invariant(model), [])
    for mw in layers.get_masked_weights(model):
      self.assertEqual(int(tf.math.count_nonzero(mw.weight)),
                       int(tf.math.count_nonzero(mw.mask)), mw.name)
    # The report accounts for every weight: none is left dense.
    sparsity = report.sparsity_report(model)
    self.assertEqual(sparsity['dense'], [])
    masked = sum(model_zoo.KERNELS[kind].values())
    self.assertEqual(sparsity['overall']['weights'], masked)
    everything = sum(int(w.shape.num_elements()) for w in model.weights
                     if '_mask' not in w.name)
    self.assertEqual(sparsity['overall']['all_weights'], everything)
    self.assertEqual(masked + sum(sparsity['other'].values()), everything)
    self.assertAlmostEqual(sparsity['overall']['all_sparsity'],
                           (masked - sum(_expected_counts(kind).values()))
                           / everything)
    # Every masked kernel is a counted op, at its mask's density.
    costs = {c.mask_name: c for c in flops.layer_costs(model) if c.mask_name}
    self.assertEqual({name: c.n_nonzero for name, c in costs.items()},
                     {n: float(k) for n, k in _expected_counts(kind).items()})

  @parameterized.named_parameters(*_KINDS)
  def test_rigl_on_two_replicas(self, kind):
    # The attention model under a mixed policy: bfloat16 compute, float32
    # masks (bfloat16 needs no loss scaling in this custom loop).
    policy = 'mixed_bfloat16' if kind == 'attention' else 'float32'
    keras.mixed_precision.set_global_policy(policy)
    self.addCleanup(keras.mixed_precision.set_global_policy, 'float32')
    strategy = test_util.two_replica_strategy()
    updater = methods.RigL(drop_fraction=0.3, drop_fraction_anneal='constant',
                           update_frequency=2, begin_step=0, end_step=8)
    model, optimizer = test_util.build_sparse(
        strategy, lambda: model_zoo.build(kind), _SPARSITY,
        lambda: keras.optimizers.SGD(0.1), updater, distribution='uniform')
    before = {mw.name: mw.mask.numpy()
              for mw in layers.get_masked_weights(model)}
    losses = test_util.train(strategy, model, optimizer, _data(kind, 4))
    self.assertTrue(np.all(np.isfinite(losses)))
    self.assertEqual(_counts(model), _expected_counts(kind))
    for mw in layers.get_masked_weights(model):
      self.assertEqual(mw.mask.dtype, tf.float32, mw.name)
      copies = test_util.local_values(mw.mask, strategy)
      self.assertAllEqual(copies[0], copies[1], msg=mw.name)
      self.assertFalse(np.array_equal(copies[0], before[mw.name]),
                       f'{mw.name}: RigL did not move its mask')
      weights = test_util.local_values(mw.weight, strategy)
      self.assertAllEqual(weights[0], weights[1], msg=mw.name)
    self.assertEqual(layers.check_invariant(model), [])


class StripSaveLoadTest(tf.test.TestCase):

  def test_strip_save_and_load_in_a_fresh_process(self):
    """Each kind, masked, stripped, saved as .keras and SavedModel, then
    loaded in one fresh process: identical predictions."""
    directory = self.create_tempdir().full_path
    expected = {}
    for kind in model_zoo.BUILDERS:
      model = _sparse(kind)
      x = next(iter(_data(kind, 1, seed=3)))[0].numpy()
      expected[kind] = model.predict(x, verbose=0)
      plain = layers.strip(model)
      self.assertEmpty(layers.get_masked_layers(plain), kind)
      self.assertAllEqual(plain.predict(x, verbose=0), expected[kind])
      plain.save(os.path.join(directory, f'{kind}.keras'))
      plain.save(os.path.join(directory, f'{kind}_saved_model'),
                 save_format='tf')
      np.save(os.path.join(directory, f'{kind}_x.npy'), x)
    script = (
        'import sys, numpy as np, model_zoo, tf_keras as keras\n'
        'd = sys.argv[1]\n'
        'for kind in model_zoo.BUILDERS:\n'
        '  x = np.load(f"{d}/{kind}_x.npy")\n'
        '  for name in (f"{kind}.keras", f"{kind}_saved_model"):\n'
        '    m = keras.models.load_model(f"{d}/{name}")\n'
        '    np.save(f"{d}/{name}.npy", m.predict(x, verbose=0))\n')
    result = test_util.run_python(script, directory)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    for kind in model_zoo.BUILDERS:
      for name in (f'{kind}.keras', f'{kind}_saved_model'):
        self.assertAllEqual(np.load(os.path.join(directory, name + '.npy')),
                            expected[kind], msg=name)


def _gated_model():
  keras.utils.set_random_seed(0)
  inputs = keras.Input((6,))
  x = keras.layers.Dense(8, name='first')(inputs)
  x = model_zoo.Gated(name='gate')(x)
  return keras.Model(inputs, keras.layers.Dense(3, name='last')(x))


class UnknownLayerTest(tf.test.TestCase):

  def test_warned_once_and_reported_dense_until_registered(self):
    with self.assertLogs('absl', 'WARNING') as logs:
      model = layers.sparsify(_gated_model())
    self.assertLen(logs.output, 1)
    self.assertRegex(logs.output[0], r'gate/kernel .*Gated.* stays dense.*'
                     r"register_maskable\(Gated, \['kernel'\]\)")
    masks.init_masks(model, {'first': 0.5, 'last': 0.5}, seed=0)
    sparsity = report.sparsity_report(model)
    self.assertEqual(sparsity['dense'], [
        {'name': 'gate/kernel', 'weights': 64,
         'reason': 'not maskable: Gated'}])
    self.assertEqual(sparsity['overall']['weights'], 48 + 24)
    self.assertEqual(sparsity['overall']['all_weights'], 48 + 24 + 64 + 11)
    self.assertIn('gate/kernel', report.format_sparsity_report(sparsity))
    self.assertIn('not maskable: Gated',
                  report.format_sparsity_report(sparsity))

    layers.register_maskable(model_zoo.Gated, ['kernel'])
    self.addCleanup(layers.unregister_maskable, model_zoo.Gated)
    with self.assertNoLogs('absl', 'WARNING'):
      model = layers.sparsify(_gated_model())
    masks.init_masks(model, {'first': 0.5, 'gate': 0.75, 'last': 0.5},
                     seed=0)
    self.assertEqual(_counts(model), {'first': 24, 'gate': 16, 'last': 12})
    self.assertEqual(report.sparsity_report(model)['dense'], [])

  def test_kept_dense_by_config_and_by_option(self):
    model = layers.sparsify(model_zoo.build('sequence'),
                            dense_layers=['head'], mask_recurrent=False)
    self.assertEqual(
        [(row['name'], row['weights'], row['reason'].split(' (')[0])
         for row in report.sparsity_report(model)['dense']],
        [('bi/forward_lstm/recurrent_kernel', 64, 'dense by option'),
         ('bi/backward_lstm/recurrent_kernel', 64, 'dense by option'),
         ('head/kernel', 40, 'dense by config')])


class FanInOutTest(tf.test.TestCase):

  def test_erk_weighs_true_fan_in_and_fan_out(self):
    weights = {mw.name: mw for mw in layers.get_masked_weights(
        layers.sparsify(model_zoo.build('attention')))}
    # query (8 in, 2 heads x 4): 8 -> 8; output (2 x 4 -> 8): 8 -> 8.
    self.assertEqual(tuple(weights['mha/query'].weight.shape), (8, 2, 4))
    self.assertEqual(weights['mha/query'].erk_shape, (8, 8))
    self.assertEqual(tuple(weights['mha/attention_output'].weight.shape),
                     (2, 4, 8))
    self.assertEqual(weights['mha/attention_output'].erk_shape, (8, 8))
    sparsities = masks.get_layer_sparsities(list(weights.values()), 0.8)
    self.assertEqual(sparsities, distributions.get_sparsities(
        {'embed': (6, 8), 'mha/query': (8, 8), 'mha/key': (8, 8),
         'mha/value': (8, 8), 'mha/attention_output': (8, 8),
         'head': (8, 5)}, 0.8, 'erk'))
    local = layers.MaskedLayer(keras.layers.LocallyConnected2D(4, 3))
    local.build((None, 6, 6, 2))
    (mw,) = layers.get_masked_weights(local)
    # [16 positions, 3 x 3 x 2 window, 4 filters]: fan-in 18, fan-out 64.
    self.assertEqual(mw.erk_shape, (18, 64))
    lstm = {mw.name: mw.erk_shape for mw in layers.get_masked_weights(
        layers.sparsify(model_zoo.build('sequence')))}
    self.assertEqual(lstm['bi/forward_lstm/kernel'], (8, 16))
    self.assertEqual(lstm['bi/forward_lstm/recurrent_kernel'], (4, 16))


def _flops(nnz, positions, channels):
  """A kernel of nnz weights at P positions, C outputs: nnz*P multiplies,
  nnz*P - P*C adds, and a bias add and activation per output."""
  return 2 * nnz * positions + positions * channels


class FlopsByHandTest(tf.test.TestCase):

  def test_einsum_dense(self):
    inputs = keras.Input((5, 3))
    x = keras.layers.EinsumDense('abc,cde->abde', (5, 2, 4), name='e1')(
        inputs)
    x = keras.layers.Reshape((5, 8))(x)
    x = keras.layers.EinsumDense('abc,cd->abd', (5, 4), name='e2')(x)
    model = keras.Model(inputs, x)
    costs = {c.name: c for c in flops.layer_costs(model) if c.counted}
    # e1: kernel 3x2x4 (fan-in 3) at 5 positions, 8 outputs each.
    self.assertEqual(costs['e1'].flops, _flops(24, 5, 8))
    # e2: kernel 8x4 at 5 positions.
    self.assertEqual(costs['e2'].flops, _flops(32, 5, 4))
    sparse = layers.sparsify(model)
    masks.init_masks(sparse, {'e1': 0.5, 'e2': 0.75}, seed=0)
    costs = {c.name: c for c in flops.layer_costs(sparse) if c.counted}
    self.assertEqual(costs['e1'].flops, _flops(12, 5, 8))
    self.assertEqual(costs['e2'].flops, _flops(8, 5, 4))

  def test_attention_block(self):
    costs = flops.layer_costs(model_zoo.build('attention'))
    counted = {c.name: c.flops for c in costs if c.counted}
    # Projections: 8 positions of 8 -> 2 heads x 4 (and back).
    projection = _flops(64, 8, 8)
    # Scores: 2 heads x 8 queries x 8 keys, dot products of 4 (4 multiplies,
    # 3 adds); context: 2 x 8 queries x 4 values, sums over 8 keys.
    scores = 2 * 8 * 8 * (4 + 3)
    context = 2 * 8 * 4 * (8 + 7)
    self.assertEqual(counted, {
        'embed': _flops(48, 8, 8), 'mha/query': projection,
        'mha/key': projection, 'mha/value': projection,
        'mha/scores': scores, 'mha/context': context,
        'mha/attention_output': projection, 'head': _flops(40, 1, 5)})
    self.assertEqual(flops.summarize(costs).flops,
                     832 + 4 * 1088 + 896 + 960 + 85)
    # Softmax and LayerNorm are listed, not counted.
    uncounted = [c.kind for c in costs if not c.counted]
    self.assertIn('Softmax', uncounted)
    self.assertIn('LayerNormalization', uncounted)
    # At 75% sparsity the projections shrink; the products do not.
    sparse = {c.name: c.flops for c in flops.layer_costs(_sparse('attention'))
              if c.counted}
    self.assertEqual(sparse['mha/query'], _flops(16, 8, 8))
    self.assertEqual((sparse['mha/scores'], sparse['mha/context']),
                     (scores, context))

  def test_subclassed_model_is_traced(self):
    counted = {c.name: c.flops for c in
               flops.layer_costs(model_zoo.build('subclassed')) if c.counted}
    self.assertEqual(counted, {
        'stem': _flops(48, 1, 8), 'block/fc1': _flops(128, 1, 16),
        'block/fc2': _flops(128, 1, 8), 'head': _flops(40, 1, 5)})

  def test_time_distributed_and_bidirectional(self):
    counted = {c.name: c.flops for c in
               flops.layer_costs(model_zoo.build('sequence')) if c.counted}
    # An LSTM step: the input kernel (a bias and a gate activation per gate
    # output), the recurrent kernel added onto it, then the cell's 4
    # multiplies and 1 add per unit.
    kernel = _flops(128, 4, 16)
    recurrent = 4 * (2 * 64 - 16 + 16 + 4 * (4 + 1))
    self.assertEqual(counted, {
        'td/proj': _flops(48, 4, 8),
        'bi/forward_lstm/kernel': kernel,
        'bi/forward_lstm/recurrent_kernel': recurrent,
        'bi/backward_lstm/kernel': kernel,
        'bi/backward_lstm/recurrent_kernel': recurrent,
        'block/fc1': _flops(128, 1, 16), 'block/fc2': _flops(128, 1, 8),
        'head': _flops(40, 1, 5)})


def _rigl():
  return methods.RigL(drop_fraction=0.3, drop_fraction_anneal='constant',
                      update_frequency=2, begin_step=0, end_step=20)


class ResumeTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(('subclassed', 'subclassed'))
  def test_checkpoint_resume_is_bit_exact(self, kind):
    strategy = tf.distribute.get_strategy()
    batches = list(_data(kind, 8))
    first, second = (tf.data.Dataset.from_tensor_slices(
        tuple(np.concatenate([b[i].numpy() for b in part])
              for i in range(2))).batch(8) for part in (batches[:4],
                                                        batches[4:]))

    def build():
      return test_util.build_sparse(
          strategy, lambda: model_zoo.build(kind), _SPARSITY,
          lambda: keras.optimizers.SGD(0.1, momentum=0.9), _rigl(),
          distribution='uniform')

    model, optimizer = build()
    test_util.train(strategy, model, optimizer, first)
    path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
        os.path.join(self.create_tempdir().full_path, 'ckpt'))
    test_util.train(strategy, model, optimizer, second)
    resumed, resumed_optimizer = build()
    tf.train.Checkpoint(model=resumed, optimizer=resumed_optimizer).restore(
        path).assert_existing_objects_matched()
    test_util.train(strategy, resumed, resumed_optimizer, second)
    self.assertEqual(int(resumed_optimizer.iterations), 8)
    for a, b in zip(model.weights, resumed.weights):
      self.assertAllEqual(a.numpy(), b.numpy(), msg=a.name)


class SubclassedSparsifyTest(tf.test.TestCase):

  def test_in_place_with_dense_layers_and_refusals(self):
    model = model_zoo.build('subclassed')
    same = layers.sparsify(model, dense_layers=['stem'])
    self.assertIs(same, model)
    self.assertEqual([mw.name for mw in layers.get_masked_weights(model)],
                     ['block/fc1', 'block/fc2', 'head'])
    with self.assertRaisesRegex(ValueError, r"unknown layers \['nope'\]"):
      layers.sparsify(model_zoo.build('subclassed'), dense_layers=['nope'])
    with self.assertRaisesRegex(ValueError, 'never called'):
      layers.sparsify(model_zoo.SubclassedNet())
    with self.assertRaisesRegex(
        ValueError, 'subclassed model: tfmot_gmp clones .* gmp method'):
      layers.check_graph_model(model, 'tfmot_gmp', 'Use the gmp method.')


class MethodLimitsTest(tf.test.TestCase):

  def test_gem_miner_refuses_kernels_it_cannot_score(self):
    with self.assertRaisesRegex(
        ValueError, r'Gem-Miner scores Dense and Conv2D layers only; mha '
        r'\(MultiHeadAttention\) would stay dense'):
      scored.check_scorable(model_zoo.build('attention'))
    scored.check_scorable(test_util.small_mlp())  # Dense only: fine.

  def test_tfmot_gmp_takes_one_sparsity_per_wrapped_layer(self):
    model = layers.sparsify(model_zoo.build('sequence'))
    updater = methods.create('tfmot_gmp', update_frequency=1,
                             final_prune_step=4)
    updater.init_masks(model, masks.sparsity_plan(model, 0.75, 'erk'),
                       train_steps=8)
    with self.assertRaisesRegex(ValueError, "layer 'bi' to one sparsity"):
      updater.wrap_model(model)
    model = layers.sparsify(model_zoo.build('sequence'))
    updater = methods.create('tfmot_gmp', update_frequency=1,
                             final_prune_step=4)
    updater.init_masks(model, masks.sparsity_plan(model, 0.75, 'uniform'),
                       train_steps=8)
    wrapped = updater.wrap_model(model)
    optimizer = optimizers.SparseOptimizer(keras.optimizers.SGD(0.1), model,
                                           updater)
    wrapped.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    wrapped.fit(_data('sequence', 8), epochs=1, verbose=0)
    self.assertEqual(_counts(model), _expected_counts('sequence'))
    self.assertEqual(layers.check_invariant(model), [])


_DST = dict(update_frequency=2, end_step=6)
_GRADUAL = dict(update_frequency=2, final_prune_step=6, scope='layerwise')
_METHODS = {'static': {}, 'set': _DST, 'snfs': _DST, 'rigl': _DST,
            'gmp': _GRADUAL, 'granet': _GRADUAL, 'snip': {}}


class EveryMethodTest(tf.test.TestCase, parameterized.TestCase):
  """Every mask method on the attention model (tfmot_gmp and gem_miner:
  `MethodLimitsTest`)."""

  @parameterized.named_parameters(*[(name, name) for name in _METHODS])
  def test_reaches_the_exact_counts_with_the_invariant(self, name):
    model = layers.sparsify(model_zoo.build('attention'))
    updater = methods.create(name, **_METHODS[name])
    updater.configure_run(train_steps=8, seed=0)
    updater.init_masks(model, masks.sparsity_plan(model, _SPARSITY,
                                                  'uniform'),
                       seed=0, train_steps=8)
    optimizer = optimizers.SparseOptimizer(keras.optimizers.SGD(0.1), model,
                                           updater)
    before = [mw.mask.numpy() for mw in layers.get_masked_weights(model)]
    losses = test_util.train(tf.distribute.get_strategy(), model, optimizer,
                             _data('attention', 8))
    self.assertTrue(np.all(np.isfinite(losses)))
    self.assertEqual(_counts(model), _expected_counts('attention'))
    self.assertEqual(layers.check_invariant(model), [])
    moved = [not np.array_equal(mw.mask.numpy(), initial) for mw, initial in
             zip(layers.get_masked_weights(model), before)]
    self.assertEqual(all(moved), name != 'static', moved)
