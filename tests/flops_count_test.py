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
"""Tests for `flops.count` (any model) and the CLI's model choice.

Expected numbers are derived by hand from the MicroNet rule (module docstring
of flops.py): a layer with nnz non-zero weights applied at P positions with
C output channels costs 2 * nnz * P + P * C FLOPs, and stores
32 * nnz + (n if sparse) + 32 * C bits.
"""

import inspect
import json
import math

import model_zoo
import tensorflow as tf
import test_util
import tf_keras as keras

from rigl_tf import flops
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import tasks


def _flops(nnz, positions, channels):
  return 2 * nnz * positions + positions * channels


def tiny_model():
  """Conv2D 3x3 (3 -> 4) on 8x8x3, Flatten, Dense 256 -> 5 (CLI builder)."""
  return keras.Sequential([
      keras.Input((8, 8, 3)),
      keras.layers.Conv2D(4, 3, padding='same', name='c1'),
      keras.layers.Flatten(),
      keras.layers.Dense(5, name='fc'),
  ])


def custom_kernel_model():
  """A registered custom layer (maskable, no MicroNet rule), a Dense."""
  layers.register_maskable(model_zoo.Gated, ['kernel'])
  return keras.Sequential([
      keras.Input((4,)), model_zoo.Gated(name='gate'),
      keras.layers.Dense(2, name='fc')
  ])


def sequence_model():
  """Embedding and LSTM before a Dense (CLI builder)."""
  return keras.Sequential([
      keras.Input((5,), dtype='int32'),
      keras.layers.Embedding(20, 4, name='emb'),
      keras.layers.LSTM(3, name='lstm'),
      keras.layers.Dense(2, name='fc'),
  ])


def not_a_model():
  return 42


# c1: kernel 3*3*3*4 = 108 weights at 64 positions, 4 channels; fc: 256*5.
_C1_DENSE = _flops(108, 64, 4)  # 14,080
_FC_DENSE = _flops(1280, 1, 5)  # 2,565


def _mobilenet_expected(padding_rule):
  """MobileNet(alpha=0.25) on 32x32x3 with 10 classes, dense, by hand."""
  size = 16  # conv1: 3x3, stride 2, 'same'.
  total = _flops(3 * 3 * 3 * 8, size * size, 8)
  channels = 8
  # (pointwise filters, depthwise stride) of the 13 blocks, times alpha.
  blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)]
  blocks += [(128, 1)] * 5 + [(256, 2), (256, 1)]
  for filters, stride in blocks:
    if stride == 2:
      # Keras pads by one pixel and convolves 'valid': out = size // 2;
      # MicroNet counts 'same' on the padded input: ceil((size + 1) / 2).
      padded = size + 1
      size_out = (size // 2 if padding_rule == 'layer'
                  else math.ceil(padded / 2))
      size = size // 2  # What the next layer actually receives.
    else:
      size_out = size
    total += _flops(9 * channels, size_out * size_out, channels)  # depthwise
    total += _flops(channels * filters, size * size, filters)  # pointwise
    channels = filters
  return total + _flops(channels * 10, 1, 10)  # conv_preds, 1x1.


class CountTest(tf.test.TestCase):

  def test_model_built_in_the_test_dense_planned_and_masked(self):
    model = tiny_model()
    dense = flops.count(model)
    self.assertEqual(dense.total.flops, _C1_DENSE + _FC_DENSE)
    self.assertEqual(dense.total.bits,
                     32 * 108 + 32 * 4 + 32 * 1280 + 32 * 5)
    self.assertEqual([c.name for c in dense.layers if c.counted],
                     ['c1', 'fc'])
    # Uniform 50%: c1 keeps 108 - floor(54) = 54, fc keeps 640.
    half = flops.count(model, sparsity=0.5, distribution='uniform')
    self.assertEqual(half.total.flops,
                     _flops(54, 64, 4) + _flops(640, 1, 5))
    self.assertEqual(half.total.bits, (32 * 54 + 108 + 32 * 4) +
                     (32 * 640 + 1280 + 32 * 5))
    self.assertEqual(half.dense_total.flops, _C1_DENSE + _FC_DENSE)
    # Layers kept dense or fixed by a custom map are outside the budget.
    self.assertEqual(
        flops.count(model, 0.5, 'uniform', dense_layers=['fc']).total.flops,
        _flops(54, 64, 4) + _FC_DENSE)
    self.assertEqual(
        flops.count(model, 0.5, 'uniform',
                    custom_sparsity_map={'c1': 0.75}).total.flops,
        _flops(27, 64, 4) + _flops(640, 1, 5))
    # A masked model counts its own masks: the planned numbers exactly.
    masked = layers.sparsify(model)
    masks.init_masks(masked, 0.5)
    self.assertEqual(flops.count(masked).total.flops, half.total.flops)
    self.assertIn('| c1 | Conv2D | 8x8x3 | 3x3x3x4 | 8x8x4 | 0.5000 |',
                  str(half))

  def test_mobilenet_from_keras_applications(self):
    model = keras.applications.MobileNet(
        input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=10)
    for rule in ('layer', 'micronet'):
      self.assertEqual(
          flops.count(model, padding_rule=rule).total.flops,
          _mobilenet_expected(rule), rule)
    # 13 depthwise, 14 pointwise/first convolutions and conv_preds.
    result = flops.count(model)
    self.assertLen([c for c in result.layers if c.counted], 28)
    self.assertEqual(result.uncounted, [])
    # Depthwise kernels stay dense (outside the budget), the rest uniform 90%.
    depthwise = [c.name for c in result.layers if c.kind == 'DepthwiseConv2D']
    self.assertLen(depthwise, 13)
    planned = flops.count(model, sparsity=0.9, distribution='uniform')
    self.assertEqual(
        flops.count(model, sparsity=0.9, distribution='uniform',
                    dense_layers=depthwise, mask_depthwise=True).total.flops,
        planned.total.flops)
    for c in planned.layers:
      if c.counted:
        expected = (c.n_weights if c.name in depthwise else
                    c.n_weights - math.floor(0.9 * c.n_weights))
        self.assertEqual(c.n_nonzero, expected, c.name)
    self.assertLess(planned.total.flops, result.total.flops)

  def test_lstm_and_embedding_by_hand(self):
    result = flops.count(sequence_model())
    self.assertEqual(result.uncounted, [])
    by_name = {c.name: c for c in result.layers}
    self.assertEqual(list(by_name), ['emb', 'lstm/kernel',
                                     'lstm/recurrent_kernel', 'fc'])
    # A lookup: no multiply-add, 20 x 4 stored weights.
    self.assertEqual(by_name['emb'].flops, 0)
    self.assertEqual(by_name['emb'].bits, 80 * 32)
    # 5 steps of a 4 -> 4 x 3 input kernel: 48 multiplies, 47 adds, a bias
    # and a gate activation per gate output.
    self.assertEqual(by_name['lstm/kernel'].flops, 5 * (48 * 2 + 12))
    # 5 steps of the 3 x 12 recurrent kernel (36 multiplies, 36 - 12 adds
    # in the dot products, 12 adds onto the input part) and the cell:
    # 4 multiplies and 1 add per unit.
    self.assertEqual(by_name['lstm/recurrent_kernel'].mults, 5 * (36 + 12))
    self.assertEqual(by_name['lstm/recurrent_kernel'].adds,
                     5 * (36 - 12 + 12 + 3))
    self.assertEqual(result.total.flops, 540 + 435 + _flops(6, 1, 2))
    masked = layers.sparsify(sequence_model(), mask_recurrent=False)
    masks.init_masks(masked, {'emb': 0.5, 'lstm/kernel': 0.75, 'fc': 0.0},
                     seed=0)
    by_name = {c.name: c for c in flops.count(masked).layers}
    self.assertEqual(by_name['lstm/kernel'].n_nonzero, 12)
    self.assertEqual(by_name['lstm/kernel'].flops, 5 * (12 * 2 + 12))
    self.assertEqual(by_name['lstm/recurrent_kernel'].n_nonzero, 36)
    self.assertEqual(by_name['emb'].bits, 40 * 32 + 80)

  def test_uncounted_layers_are_named_in_the_totals_line(self):
    try:
      result = flops.count(custom_kernel_model())
    finally:
      layers.unregister_maskable(model_zoo.Gated)
    self.assertEqual(result.uncounted, ['gate (Gated)'])
    self.assertEqual(result.total.flops, _flops(8, 1, 2))
    self.assertIn('(not counted, no MicroNet rule: gate (Gated))',
                  result.totals_line())
    self.assertIn('| **total** (not counted', result.table())

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, 'give a sparsity'):
      flops.count(tiny_model(), dense_layers=['fc'])
    with self.assertRaisesRegex(ValueError, 'distribution'):
      flops.count(tiny_model(), 0.5, 'nope')
    with self.assertRaisesRegex(ValueError, 'no counted'):
      flops.count(keras.Sequential([keras.Input((3,)),
                                    keras.layers.Flatten()]))


class CommandLineModelTest(tf.test.TestCase):

  def test_resnet18(self):
    report, _ = test_util.run_flops_cli('--model=resnet18', '--json')
    counted = [r for r in report['layers'] if r['counted']]
    # 17 3x3/7x7 convolutions, 3 projection shortcuts, the classifier.
    self.assertLen(counted, 21)
    self.assertEqual(counted[-1]['flops'], _flops(512 * 1000, 1, 1000))

  def test_builder_given_by_import_path(self):
    report, out = test_util.run_flops_cli(
        '--model=flops_count_test:tiny_model', '--sparsity=0.5',
        '--distribution=uniform', '--method=static', '--json')
    self.assertEqual(report['inference_flops'],
                     _flops(54, 64, 4) + _flops(640, 1, 5))
    self.assertEqual(json.loads(out)['model'],
                     'flops_count_test:tiny_model')
    _, out = test_util.run_flops_cli(
        '--model=flops_count_test:custom_kernel_model', '--method=static')
    self.assertRegex(
        out, r'sparsity of counted layers: 0\.0000 \(not counted, no '
        r'MicroNet rule: gate \(Gated\)\)')

  def test_bad_model_values_are_one_error_line(self):
    for value in ('nope', 'rigl_tf.nope:f', 'flops_count_test:nope',
                  'flops_count_test:not_a_model'):
      with self.assertRaises(SystemExit) as e:
        test_util.run_flops_cli(f'--model={value}')
      # sys.exit(message): the message on stderr, exit status 1.
      self.assertRegex(e.exception.code, r'^error: [^\n]+$', value)

  def test_registry_names_every_model_builder_of_the_project(self):
    from cifar_wrn import wrn_model  # pylint: disable=g-import-not-at-top
    from imagenet_resnet import mobilenet_model  # pylint: disable=g-import-not-at-top
    from imagenet_resnet import resnet_model  # pylint: disable=g-import-not-at-top
    from mnist import models  # pylint: disable=g-import-not-at-top
    # Generic builders whose named variants are listed (resnet(50) is
    # resnet50, wide_resnet(22, 2) is wrn_22_2).
    generic = {'resnet', 'wide_resnet'}
    builders = set()
    for module in (wrn_model, mobilenet_model, resnet_model, models):
      for name, fn in vars(module).items():
        if name.startswith('_') or name in generic or not callable(fn):
          continue
        if getattr(fn, '__module__', None) != module.__name__ and not (
            hasattr(fn, 'func')):
          continue  # Imported helpers.
        try:
          params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
          continue
        if inspect.isclass(fn):
          continue
        # A builder: every argument has a default and it returns a model.
        if all(p.default is not p.empty for p in params):
          builders.add(name)
    self.assertContainsSubset({'resnet18', 'resnet50', 'lenet5'}, builders)
    self.assertEqual(builders - set(tasks.MODEL_BUILDERS), set())


if __name__ == '__main__':
  tf.test.main()
