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
"""Tests for rigl_tf.distributions against hand-computed closed forms."""

import math

from absl.testing import parameterized
import tensorflow as tf

from imagenet_resnet import resnet_model
from rigl_tf import distributions

# Two Dense layers: 100x50 (5,000 weights) and 50x10 (500 weights).
TWO_LAYERS = {'a': (100, 50), 'b': (50, 10)}


class ClosedFormTest(parameterized.TestCase):

  def test_erk_two_layers(self):
    # raw density: a (100+50)/5000 = 0.03, b (50+10)/500 = 0.12.
    # budget (1 - 0.8) * 5500 = 1100 = eps * (0.03*5000 + 0.12*500) = 210 eps.
    eps = 1100 / 210
    got = distributions.get_sparsities(TWO_LAYERS, 0.8, 'erk')
    self.assertAlmostEqual(got['a'], 1 - 0.03 * eps, places=12)
    self.assertAlmostEqual(got['b'], 1 - 0.12 * eps, places=12)

  def test_er_uses_fan_in_fan_out_of_conv_kernels(self):
    shapes = {'conv': (3, 3, 16, 32), 'fc': (32, 10)}
    # ER: conv (16+32)/(16*32) = 0.09375, fc (32+10)/320 = 0.13125.
    # ERK would use (3+3+16+32)/4608 for the conv instead.
    budget = 0.1 * (4608 + 320)
    eps = budget / (0.09375 * 4608 + 0.13125 * 320)
    got = distributions.get_sparsities(shapes, 0.9, 'er')
    self.assertAlmostEqual(got['conv'], 1 - 0.09375 * eps, places=12)
    self.assertAlmostEqual(got['fc'], 1 - 0.13125 * eps, places=12)

  def test_erk_layer_exceeding_density_one_becomes_dense(self):
    # At S=0.5: eps = 2750/210 = 13.1 so b would get density 1.57 > 1.
    # b becomes dense (500 ones), a gets the rest: 2750 - 500 = 2250 of 5000.
    got = distributions.get_sparsities(TWO_LAYERS, 0.5, 'erk')
    self.assertEqual(got['b'], 0.0)
    self.assertAlmostEqual(got['a'], 1 - 2250 / 5000, places=12)

  def test_erk_power_scale_zero_is_uniform(self):
    got = distributions.get_sparsities(TWO_LAYERS, 0.8, 'erk',
                                       erk_power_scale=0.0)
    self.assertAlmostEqual(got['a'], 0.8, places=12)
    self.assertAlmostEqual(got['b'], 0.8, places=12)

  def test_uniform_first_layer_dense(self):
    got = distributions.get_sparsities(TWO_LAYERS, 0.9, 'uniform',
                                       first_layer_dense=True)
    self.assertEqual(got, {'a': 0.0, 'b': 0.9})

  @parameterized.parameters('erk', 'er', 'uniform')
  def test_dense_layers_are_outside_the_budget(self, method):
    # b dense is a custom map to 0: a, alone in the budget, gets S exactly
    # (inside the budget a would have to give up b's 0.2 * 500 zeros and
    # get 1 - 3900 / 5000).
    for kwargs in ({'dense_layers': ['b']},
                   {'custom_sparsity_map': {'b': 0.0}}):
      got = distributions.get_sparsities(TWO_LAYERS, 0.2, method, **kwargs)
      self.assertEqual(got['b'], 0.0)
      self.assertAlmostEqual(got['a'], 0.2, places=12, msg=kwargs)
    got = distributions.get_sparsities(TWO_LAYERS, 0.95, method,
                                       first_layer_dense=True)
    self.assertEqual(got['a'], 0.0)
    self.assertAlmostEqual(got['b'], 0.95, places=12)

  def test_erk_with_a_dense_layer_outside_the_budget(self):
    three = {'a': (100, 50), 'b': (50, 10), 'c': (10, 10)}
    # c outside; a, b share (1 - 0.8) * 5500 = 1100 as in
    # test_erk_two_layers, whatever c is.
    eps = 1100 / 210
    got = distributions.get_sparsities(three, 0.8, 'erk',
                                       dense_layers=['c'])
    self.assertEqual(got['c'], 0.0)
    self.assertAlmostEqual(got['a'], 1 - 0.03 * eps, places=12)
    self.assertAlmostEqual(got['b'], 1 - 0.12 * eps, places=12)

  def test_dense_and_custom_sparsity_conflict_is_an_error(self):
    with self.assertRaisesRegex(ValueError, "\\['b'\\] are both kept dense"):
      distributions.get_sparsities(TWO_LAYERS, 0.5, 'erk', dense_layers=['b'],
                                   custom_sparsity_map={'b': 0.5})

  def test_custom_map_outside_budget(self):
    got = distributions.get_sparsities(TWO_LAYERS, 0.8, 'erk',
                                       custom_sparsity_map={'b': 0.5})
    self.assertEqual(got['b'], 0.5)
    self.assertAlmostEqual(got['a'], 0.8, places=12)  # Only layer left.

  def test_num_zeros_is_floor(self):
    self.assertEqual(distributions.num_zeros(0.29, 100), 29)  # Not 28.
    self.assertEqual(distributions.num_zeros(0.9, 1001), 900)
    self.assertEqual(distributions.num_ones(0.9, 1001), 101)

  @parameterized.parameters(1.2, 1.0, -0.1, float('nan'))
  def test_bad_sparsity(self, sparsity):
    with self.assertRaisesRegex(ValueError, r'must be in \[0, 1\)'):
      distributions.get_sparsities(TWO_LAYERS, sparsity, 'erk')

  def test_unknown_method_and_layer(self):
    with self.assertRaisesRegex(ValueError, 'Unknown sparsity distribution'):
      distributions.get_sparsities(TWO_LAYERS, 0.5, 'random')
    with self.assertRaisesRegex(ValueError, "Unknown layer names \\['c'\\]"):
      distributions.get_sparsities(TWO_LAYERS, 0.5, 'erk', dense_layers=['c'])


class ResNet50Test(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    model = resnet_model.resnet(50)
    cls.shapes = {}
    for layer in model.layers:
      kernel = getattr(layer, 'kernel', None)
      if kernel is not None:
        cls.shapes[layer.name] = tuple(kernel.shape)

  def test_has_54_kernels(self):
    self.assertLen(self.shapes, 54)

  @parameterized.product(method=['erk', 'er'],
                         sparsity=[0.5, 0.8, 0.9, 0.95, 0.99])
  def test_total_zeros_match_uniform_budget(self, method, sparsity):
    got = distributions.get_sparsities(self.shapes, sparsity, method)
    total = sum(math.prod(s) for s in self.shapes.values())
    zeros = sum(distributions.num_zeros(got[n], math.prod(s))
                for n, s in self.shapes.items())
    # Each layer floors its zero count: at most one zero short per layer.
    budget = sparsity * total
    self.assertLessEqual(zeros, budget + 1e-6)
    self.assertGreater(zeros, budget - len(self.shapes))
    for name, value in got.items():
      self.assertGreaterEqual(value, 0.0, name)
      self.assertLess(value, 1.0, name)

  def test_low_sparsity_makes_small_layers_dense(self):
    got = distributions.get_sparsities(self.shapes, 0.5, 'erk')
    dense = [n for n, s in got.items() if s == 0.0]
    # conv1 (7x7x3x64) has the largest ERK ratio and is the first to be dense.
    self.assertIn('conv1', dense)
    total = sum(math.prod(s) for s in self.shapes.values())
    ones = sum(math.prod(s) * (1 - got[n]) for n, s in self.shapes.items())
    self.assertAlmostEqual(ones / total, 0.5, places=9)

  def test_erk_99_with_conv1_dense_by_hand(self):
    # RigL's 99% ERK ResNet-50: conv1 dense and outside the budget. The 53
    # other kernels share 1% of their weights; by hand, no layer reaches
    # density 1 at 99%, so eps = budget / sum(raw * n) in one solve.
    others = {n: s for n, s in self.shapes.items() if n != 'conv1'}
    budget = 0.01 * sum(math.prod(s) for s in others.values())
    raw = {n: sum(s) / math.prod(s) for n, s in others.items()}
    eps = budget / sum(raw[n] * math.prod(s) for n, s in others.items())
    self.assertLess(max(raw.values()) * eps, 1.0)
    for kwargs in ({'dense_layers': ['conv1']},
                   {'first_layer_dense': True},
                   {'custom_sparsity_map': {'conv1': 0.0}}):
      got = distributions.get_sparsities(self.shapes, 0.99, 'erk', **kwargs)
      self.assertEqual(got['conv1'], 0.0)
      for name in others:
        self.assertAlmostEqual(got[name], 1 - eps * raw[name], places=12,
                               msg=f'{name} {kwargs}')


if __name__ == '__main__':
  tf.test.main()
