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
"""Tests for rigl_tf.flops: hand-computed MicroNet counts, training FLOPs, CLI.

The small test model is

  Input 9x9x3 -> conv: Conv2D(4, 3x3, stride 2, 'valid')
              -> dw: DepthwiseConv2D(3x3, 'same') -> Flatten -> fc: Dense(5)

Keras gives conv a 4x4 output; MicroNet's rule counts it at
ceil((9 - 3 + 1 + 2) / 2) = 5, i.e. P = 25 positions. dw sees the real 4x4x4
input (P = 16). By hand, with nnz non-zero weights, P positions and c output
channels: mults = nnz * P + P * c (ReLU), adds = nnz * P - P * c (dot
products) + P * c (bias), bits = 32 nnz + n [if sparse] + 32 c.
"""

import dataclasses
import json

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import test_util
import tf_keras as keras

from rigl_tf import flops
from rigl_tf import methods


def _small_model(name='small'):
  inputs = keras.Input((9, 9, 3))
  x = keras.layers.Conv2D(4, 3, strides=2, padding='valid', name='conv')(inputs)
  x = keras.layers.DepthwiseConv2D(3, padding='same', name='dw')(x)
  x = keras.layers.Flatten(name='flat')(x)
  outputs = keras.layers.Dense(5, name='fc')(x)
  return keras.Model(inputs, outputs, name=name)


def _by_name(costs):
  return {c.name: c for c in costs}


# name -> (mults, adds, flops, bits), computed by hand (module docstring).
_DENSE = {
    # n = 108, P = 25, c = 4: 108 * 25 + 100; 108 * 25; 32 * 108 + 32 * 4.
    'conv': (2800, 2700, 5500, 3584),
    # n = 36, P = 16, c = 4: 36 * 16 + 64; 36 * 16; 32 * 36 + 32 * 4.
    'dw': (640, 576, 1216, 1280),
    # n = 320, P = 1, c = 5: 320 + 5; 320; 32 * 320 + 32 * 5.
    'fc': (325, 320, 645, 10400),
}
_SPARSE_DENSITIES = {'conv': 0.5, 'dw': 0.25, 'fc': 0.1}
_SPARSE = {
    # nnz = 54: 54 * 25 + 100; 54 * 25; 32 * 54 + 108 (mask) + 128.
    'conv': (1450, 1350, 2800, 1964),
    # nnz = 9: 9 * 16 + 64; 9 * 16; 32 * 9 + 36 + 128.
    'dw': (208, 144, 352, 452),
    # nnz = 32: 32 + 5; 32; 32 * 32 + 320 + 160.
    'fc': (37, 32, 69, 1504),
}


class LayerCostsTest(tf.test.TestCase, parameterized.TestCase):

  def _assert_counts(self, costs, expected):
    by_name = _by_name(costs)
    for name, (mults, adds, total, bits) in expected.items():
      c = by_name[name]
      self.assertEqual((c.mults, c.adds, c.flops, c.bits),
                       (mults, adds, total, bits), name)

  @parameterized.named_parameters(('dense', None, _DENSE),
                                  ('sparse', _SPARSE_DENSITIES, _SPARSE))
  def test_hand_computed_counts(self, densities, expected):
    costs = flops.layer_costs(_small_model(), densities)
    self._assert_counts(costs, expected)
    self.assertEqual([c.name for c in costs], ['conv', 'dw', 'flat', 'fc'])
    self.assertEqual([c.counted for c in costs], [True, True, False, True])
    self.assertEqual(_by_name(costs)['conv'].output_shape, (5, 5, 4))
    self.assertEqual(_by_name(costs)['flat'].kind, 'Flatten')

  def test_summary(self):
    costs = flops.layer_costs(_small_model(), _SPARSE_DENSITIES)
    total = flops.summarize(costs)
    self.assertEqual(total.flops, 2800 + 352 + 69)
    self.assertEqual(total.bits, 1964 + 452 + 1504)
    self.assertEqual(total.bytes, (1964 + 452 + 1504) / 8)
    self.assertAlmostEqual(total.size_mb, (1964 + 452 + 1504) / 8e6)
    self.assertEqual(total.n_weights, 108 + 36 + 320)
    self.assertAlmostEqual(total.density, (54 + 9 + 32) / (108 + 36 + 320))
    dense = flops.summarize(flops.dense_costs(costs))
    self.assertEqual(dense.flops, 5500 + 1216 + 645)
    self.assertEqual(dense.sparsity, 0.0)

  def test_layer_padding_rule_uses_keras_output_size(self):
    costs = _by_name(
        flops.layer_costs(_small_model(), padding_rule='layer'))
    # Keras' 'valid' output is 4x4: P = 16.
    self.assertEqual(costs['conv'].output_shape, (4, 4, 4))
    self.assertEqual(costs['conv'].flops, 108 * 16 + 64 + 108 * 16)

  def test_depthwise_as_conv(self):
    # RigL's MobileNet convention: one bias and one ReLU per position.
    dw = _by_name(flops.layer_costs(_small_model(),
                                    depthwise_as_conv=True))['dw']
    self.assertEqual((dw.mults, dw.adds, dw.bits),
                     (36 * 16 + 16, 36 * 16, 32 * 36 + 32))

  def test_with_densities_matches_layer_costs(self):
    dense = flops.layer_costs(_small_model())
    self.assertEqual(
        flops.with_densities(dense, _SPARSE_DENSITIES),
        flops.layer_costs(_small_model(), _SPARSE_DENSITIES))
    self.assertEqual(
        flops.kernel_shapes(dense), {
            'conv': (3, 3, 3, 4),
            'dw': (3, 3, 4, 1),
            'fc': (64, 5)
        })

  def test_nested_model_is_walked(self):
    inner = _small_model('inner')
    inputs = keras.Input((9, 9, 3))
    outputs = keras.layers.Dense(2, name='head')(inner(inputs))
    outer = keras.Model(inputs, outputs)
    costs = _by_name(flops.layer_costs(outer, _SPARSE_DENSITIES))
    self._assert_counts(costs.values(), _SPARSE)
    # head: n = 10, P = 1, c = 2.
    self.assertEqual(costs['head'].flops, 10 + 2 + 10)

  def test_sequential_and_dense_on_sequences(self):
    model = keras.Sequential([
        keras.Input((7, 3)),
        keras.layers.Dense(4, name='per_step'),
    ])
    cost = flops.layer_costs(model)[0]
    # A Dense on a (7, 3) input is applied at 7 positions.
    self.assertEqual((cost.positions, cost.mults, cost.adds),
                     (7, 12 * 7 + 28, 12 * 7))

  def test_bad_arguments(self):
    model = _small_model()
    with self.assertRaisesRegex(ValueError, 'not counted'):
      flops.layer_costs(model, {'flat': 0.5})
    with self.assertRaisesRegex(ValueError, r'\[0, 1\]'):
      flops.layer_costs(model, {'conv': 1.5})
    with self.assertRaisesRegex(ValueError, 'padding_rule'):
      flops.layer_costs(model, padding_rule='valid')

  def test_unknown_spatial_size_raises(self):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name='c')(inputs))
    with self.assertRaisesRegex(ValueError, 'static input shape'):
      flops.layer_costs(model)

  def test_table_text(self):
    text = flops.flops_table_text(
        flops.layer_costs(_small_model(), _SPARSE_DENSITIES),
        include_uncounted=True)
    lines = text.splitlines()
    self.assertLen(lines, 2 + 4 + 1)
    self.assertIn('| conv | Conv2D | 9x9x3 | 3x3x3x4 | 5x5x4 | 0.5000 | 2800 |',
                  text)
    self.assertIn('| flat | Flatten |', text)
    self.assertIn('not counted', text)
    self.assertTrue(lines[-1].startswith('| **total** |'))


class _FakeMaskedLayer(keras.layers.Wrapper):
  """The masked-layer contract, independently of rigl_tf.layers."""

  def __init__(self, layer, **kwargs):
    super().__init__(layer, name=layer.name, **kwargs)

  def build(self, input_shape):
    self.layer.build(input_shape)
    self.mask = self.add_weight(
        'mask', shape=self.layer.kernel.shape, initializer='ones',
        trainable=False)
    super().build(input_shape)

  @property
  def prunable_weights(self):
    return [self.layer.kernel]

  @property
  def masks(self):
    return [self.mask]

  def call(self, inputs):
    return self.layer(inputs)


class MaskedLayerTest(tf.test.TestCase):

  def _set_conv_mask(self, wrapper, n_ones):
    mask = np.zeros(wrapper.masks[0].shape, np.float32)
    mask.reshape(-1)[:n_ones] = 1.0
    wrapper.masks[0].assign(mask)

  def test_duck_typed_wrapper(self):
    inputs = keras.Input((9, 9, 3))
    x = _FakeMaskedLayer(
        keras.layers.Conv2D(4, 3, strides=2, padding='valid', name='conv'))(
            inputs)
    model = keras.Model(inputs, x)
    self._set_conv_mask(model.layers[1], 54)
    cost = flops.layer_costs(model)[0]
    self.assertEqual((cost.name, cost.kind, cost.density), ('conv', 'Conv2D',
                                                             0.5))
    self.assertEqual((cost.mults, cost.adds, cost.flops, cost.bits),
                     _SPARSE['conv'])

  def test_rigl_tf_masked_layers(self):
    from rigl_tf import layers  # pylint: disable=g-import-not-at-top
    model = layers.sparsify(_small_model(), mask_depthwise=True)
    wrappers = {w.name: w for w in model.layers if hasattr(w, 'masks')}
    self.assertCountEqual(wrappers, ['conv', 'dw', 'fc'])
    for name, density in _SPARSE_DENSITIES.items():
      n = int(np.prod(wrappers[name].masks[0].shape))
      self._set_conv_mask(wrappers[name], round(n * density))
    costs = flops.layer_costs(model)
    self.assertEqual([c.density for c in costs if c.counted], [0.5, 0.25, 0.1])
    # The same costs as the planned densities; only the masks' names differ.
    self.assertEqual([c.mask_name for c in costs if c.counted],
                     ['conv', 'dw', 'fc'])
    self.assertEqual(
        [dataclasses.replace(c, mask_name='') for c in costs],
        flops.layer_costs(_small_model(), _SPARSE_DENSITIES))
    # Explicit densities take precedence over the masks.
    self.assertEqual(
        _by_name(flops.layer_costs(model, {'conv': 1.0}))['conv'].flops,
        _DENSE['conv'][2])

  def test_mirrored_masks(self):
    from rigl_tf import layers  # pylint: disable=g-import-not-at-top
    # conftest.py splits the CPU into two logical devices.
    with test_util.two_replica_strategy().scope():
      model = layers.sparsify(_small_model())
    conv = model.get_layer('conv')
    self._set_conv_mask(conv, 54)
    self.assertEqual(_by_name(flops.layer_costs(model))['conv'].flops,
                     _SPARSE['conv'][2])


class MaskedLayerKindsTest(tf.test.TestCase):
  """Layers the wrapper masks beyond Conv2D/Depthwise/Dense, by hand."""

  def _costs(self, input_shape, layer, **kwargs):
    inputs = keras.Input(input_shape)
    return flops.layer_costs(keras.Model(inputs, layer(inputs)), **kwargs)

  def _counts(self, cost):
    return (cost.mults, cost.adds, cost.flops, cost.bits)

  def test_separable_conv2d_is_depthwise_then_pointwise(self):
    costs = self._costs((9, 9, 3), keras.layers.SeparableConv2D(
        4, 3, padding='same', name='sep'))
    self.assertEqual([(c.name, c.kind) for c in costs],
                     [('sep/depthwise_kernel', 'DepthwiseConv2D'),
                      ('sep/pointwise_kernel', 'Conv2D')])
    # P = 81. Depthwise n = 27, 3 channels, no bias/ReLU between the ops:
    # 27 * 81; 27 * 81 - 81 * 3; 32 * 27.
    self.assertEqual(self._counts(costs[0]), (2187, 1944, 4131, 864))
    # Pointwise 1x1, n = 12, c = 4: 12 * 81 + 324; 12 * 81; 32 * 12 + 128.
    self.assertEqual(self._counts(costs[1]), (1296, 972, 2268, 512))
    # Planned densities by record name; the pointwise half alone sparse.
    sparse = flops.with_densities(costs, {'sep/pointwise_kernel': 0.5})
    self.assertEqual(sparse[1].flops, 6 * 81 + 324 + 6 * 81)

  def test_conv1d_and_conv3d(self):
    (c1,) = self._costs((10, 2), keras.layers.Conv1D(4, 3, strides=2,
                                                     name='c1'))
    # out = ceil((10 - 3 + 1 + 2) / 2) = 5, n = 24, c = 4.
    self.assertEqual((c1.kind, c1.output_shape), ('Conv1D', (5, 4)))
    self.assertEqual(self._counts(c1), (140, 120, 260, 896))
    (c3,) = self._costs((4, 4, 4, 2), keras.layers.Conv3D(3, 2, name='c3'))
    # out = ceil((4 - 2 + 1 + 2)) = 5 per dimension, P = 125, n = 48.
    self.assertEqual((c3.kind, c3.positions), ('Conv3D', 125))
    self.assertEqual(self._counts(c3), (6375, 6000, 12375, 1632))

  def test_a_shared_layer_counts_once_per_call(self):
    inputs = keras.Input((6,))
    shared = keras.layers.Dense(6, name='shared')
    model = keras.Model(inputs, shared(shared(inputs)))
    costs = flops.layer_costs(model)
    # Two calls of n = 36, c = 6: 42 mults and 36 adds each.
    self.assertEqual([c.flops for c in costs], [78, 78])
    total = flops.summarize(costs)
    self.assertEqual(total.flops, 156)
    # Stored once: 32 * 36 + 32 * 6 bits, 36 weights.
    self.assertEqual((total.bits, total.n_weights), (1344, 36))

  def test_depthwise_kernels_outside_the_cli_budget(self):
    costs = flops.layer_costs(_small_model())
    self.assertEqual(list(flops.counting._maskable_shapes(costs, False)),
                     ['conv', 'fc'])
    self.assertEqual(list(flops.counting._maskable_shapes(costs, True)),
                     ['conv', 'dw', 'fc'])


class TrainingFlopsTest(tf.test.TestCase, parameterized.TestCase):
  F_DENSE = 100.0
  F_SPARSE = 20.0

  @parameterized.parameters('static', 'set')
  def test_fixed_mask_equals_inference_ratio(self, method):
    self.assertAlmostEqual(
        flops.training_flops_ratio(methods.get_class(method), self.F_DENSE,
                                   self.F_SPARSE), 0.2)

  def test_dense_is_one(self):
    self.assertEqual(
        flops.training_flops_ratio(methods.DenseTraining, self.F_DENSE), 1.0)

  def test_snfs(self):
    # (2 * 20 + 100) / 300.
    self.assertAlmostEqual(
        flops.training_flops_ratio(methods.SNFS, self.F_DENSE, self.F_SPARSE),
        140 / 300)

  def test_rigl(self):
    # (3 * 20 * 100 + 2 * 20 + 100) / 101 / 300.
    ratio = flops.training_flops_ratio(
        methods.RigL, self.F_DENSE, self.F_SPARSE, update_frequency=100)
    self.assertAlmostEqual(ratio, 6140 / 30300)
    self.assertAlmostEqual(
        flops.training_flops_ratio(
            methods.RigL, self.F_DENSE, self.F_SPARSE, update_frequency=100,
            length_multiplier=5), 5 * 6140 / 30300)

  def test_search_then_finetune_rule(self):
    # Gem-Miner: 3 * 100 * 10 + 3 * 20 * 30 over 40 steps.
    self.assertAlmostEqual(
        flops.search_then_finetune_flops_per_step(
            self.F_DENSE, self.F_SPARSE, search_steps=10, finetune_steps=30),
        4800 / 40)
    # The registered method states that rule; its lengths are its own inputs.
    self.assertAlmostEqual(
        flops.training_flops_ratio(
            methods.GemMiner, self.F_DENSE, self.F_SPARSE, search_steps=10,
            finetune_steps=30), 4800 / 40 / 300)
    with self.assertRaisesRegex(ValueError, 'search_steps'):
      flops.training_flops_ratio(methods.GemMiner, self.F_DENSE,
                                 self.F_SPARSE)

  def test_gradual_density_schedule_closed_form(self):
    schedule = flops.gradual_density_schedule(
        10, initial_density=1.0, final_density=0.2, begin_step=2, end_step=8,
        update_frequency=2)
    mid1 = 0.2 + 0.8 * (2 / 3)**3
    mid2 = 0.2 + 0.8 * (1 / 3)**3
    self.assertAllClose(
        schedule, [1.0, 1.0, 1.0, 1.0, mid1, mid1, mid2, mid2, 0.2, 0.2])

  def test_gmp_lies_between_sparse_and_dense(self):
    # f(d) linear in d from f_D(d=1) down to f_S (d = 0.2).
    def flops_at_density(d):
      return self.F_SPARSE + (self.F_DENSE - self.F_SPARSE) * (d - 0.2) / 0.8

    step_flops = flops.gradual_schedule_flops(
        flops_at_density, 100, initial_density=1.0, final_density=0.2,
        begin_step=20, end_step=80, update_frequency=10)
    ratio = flops.gradual_training_flops_per_step(
        step_flops, self.F_DENSE) / (3 * self.F_DENSE)
    self.assertGreater(ratio, self.F_SPARSE / self.F_DENSE)
    self.assertLess(ratio, 1.0)
    self.assertAlmostEqual(ratio, np.mean(step_flops) / self.F_DENSE)
    # A callable schedule gives the same.
    self.assertAlmostEqual(
        flops.gradual_training_flops_per_step(
            step_flops.__getitem__, self.F_DENSE, num_steps=100) /
        (3 * self.F_DENSE), ratio)

  def test_granet_adds_dense_gradient_on_regrowth_steps(self):
    step_flops = np.full(10, self.F_SPARSE)
    # Steps 3, 6, 9 cost 2 * 20 + 100 instead of 3 * 20.
    self.assertAlmostEqual(
        flops.gradual_training_flops_per_step(
            step_flops, self.F_DENSE, regrowth_steps=[3, 6, 9]),
        (7 * 60 + 3 * 140) / 10)
    self.assertAlmostEqual(
        flops.gradual_training_flops_per_step(step_flops, self.F_DENSE),
        60.0)

  def test_methods_are_the_updater_registry(self):
    self.assertEqual(methods.names(), methods.names())

  def test_a_newly_registered_method_states_its_own_rule(self):
    # One registry: a method registered in rigl_tf.methods states its rule
    # on its class, which reports hand to flops (no change to flops).
    @methods.register('half_dense_test_method')
    class HalfDense(methods.MaskUpdater):

      @classmethod
      def training_flops_per_step(cls, costs):
        return 1.5 * costs.f_dense

    del HalfDense
    try:
      self.assertAlmostEqual(
          flops.training_flops_ratio(
              methods.get_class('half_dense_test_method'), self.F_DENSE,
              self.F_SPARSE), 0.5)
      costs = flops.layer_costs(_small_model(), _SPARSE_DENSITIES)
      report = flops.report_dict(
          costs, method=methods.get_class('half_dense_test_method'))
      self.assertAlmostEqual(report['training_flops_ratio'], 0.5)
    finally:
      methods.registry.unregister('half_dense_test_method')  # pylint: disable=protected-access

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, 'Unknown sparse training method'):
      methods.get_class('nope')
    # flops is handed a method's rule or class, never a name to look up.
    with self.assertRaisesRegex(TypeError, 'needs a cost rule'):
      flops.training_flops_ratio('rigl', 1.0, 1.0)
    with self.assertRaisesRegex(ValueError, 'update_frequency'):
      flops.training_flops_ratio(methods.RigL, 1.0, 0.5)
    with self.assertRaisesRegex(ValueError, 'step_flops'):
      flops.gradual_training_flops_per_step([], 1.0)
    with self.assertRaisesRegex(ValueError, 'search_steps'):
      flops.search_then_finetune_flops_per_step(1.0, 0.5, 0, 0)


class ReportTest(tf.test.TestCase):

  def test_report_dict(self):
    costs = flops.layer_costs(_small_model(), _SPARSE_DENSITIES)
    report = flops.report_dict(costs, method=methods.RigL,
                               update_frequency=10)
    self.assertEqual(report['inference_flops'], 3221)
    self.assertEqual(report['dense_inference_flops'], 7361)
    self.assertAlmostEqual(report['inference_flops_ratio'], 3221 / 7361)
    self.assertAlmostEqual(report['training_flops_ratio'],
                           (3 * 3221 * 10 + 2 * 3221 + 7361) / 11 / 22083)
    self.assertAlmostEqual(report['size_mb'], 3920 / 8e6)
    self.assertAlmostEqual(report['sparsity'], 1 - 95 / 464)
    self.assertLen(report['layers'], 3)
    json.dumps(report)  # JSON-serialisable.


_JSON_KEYS = set(flops.REPORT_KEYS) | {
    'method', 'layers', 'model', 'distribution', 'target_sparsity',
    'not_counted'
}


class CommandLineTest(tf.test.TestCase):

  def test_json_output(self):
    report, out = test_util.run_flops_cli(
        '--model=lenet_300_100', '--sparsity=0.9', '--distribution=uniform',
        '--method=rigl', '--update_frequency=100', '--json')
    parsed = json.loads(out)
    self.assertEqual(set(parsed), _JSON_KEYS)
    self.assertEqual(parsed['inference_flops'], report['inference_flops'])
    # LeNet-300-100: 784*300 + 300*100 + 100*10 kernel weights.
    n = 784 * 300 + 300 * 100 + 100 * 10
    self.assertAlmostEqual(parsed['sparsity'], 0.9)
    self.assertAlmostEqual(parsed['size_mb'],
                           (32 * 0.1 * n + n + 32 * 410) / 8e6)
    # n multiplies and adds per dense weight, one ReLU per output unit.
    self.assertEqual(parsed['dense_inference_flops'], 2 * n + 410)

  def test_planned_counts_equal_trained_masks(self):
    from mnist import models  # pylint: disable=g-import-not-at-top
    from rigl_tf import layers  # pylint: disable=g-import-not-at-top
    from rigl_tf import masks  # pylint: disable=g-import-not-at-top
    report, _ = test_util.run_flops_cli(
        '--model=lenet_300_100', '--sparsity=0.9', '--distribution=erk',
        '--method=static', '--json')
    model = layers.sparsify(models.lenet_300_100(input_shape=(28, 28, 1)))
    masks.init_masks(model, masks.get_layer_sparsities(model, 0.9, 'erk'))
    trained = flops.report_dict(flops.layer_costs(model),
                                method=methods.Static)
    # The same integer counts: planned numbers are those a run reports.
    self.assertEqual(report['inference_flops'], trained['inference_flops'])
    self.assertEqual(report['size_mb'], trained['size_mb'])
    self.assertEqual(report['inference_flops'],
                     round(report['inference_flops']))

  def test_text_output_and_snfs(self):
    report, out = test_util.run_flops_cli(
        '--model=lenet_300_100', '--sparsity=0.8', '--method=snfs')
    self.assertIn('| **total** |', out)
    self.assertIn('training FLOPs, snfs', out)
    # SNFS: (2 f_S + f_D) / 3 f_D.
    self.assertAlmostEqual(report['training_flops_ratio'],
                           (2 * report['inference_flops_ratio'] + 1) / 3)

  def test_bad_values_are_one_error_line(self):
    # sys.exit(message): the message on stderr, exit status 1.
    for args in (['--sparsity=1.0'], ['--method=nope'],
                 ['--distribution=nope'], ['--dense_layers=nope']):
      with self.assertRaises(SystemExit) as e:
        test_util.run_flops_cli('--model=lenet_300_100', *args)
      self.assertRegex(e.exception.code, r'^error: [^\n]+$', args)


if __name__ == '__main__':
  tf.test.main()
