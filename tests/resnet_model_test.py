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
"""Tests for imagenet_resnet.resnet_model, incl. the RigL FLOPs calibration."""

import contextlib
import io

from absl import flags
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from imagenet_resnet import resnet_model
from rigl_tf import distributions
from rigl_tf import flops
from rigl_tf import flops_cli


def _trainable(model):
  return int(sum(np.prod(w.shape) for w in model.trainable_weights))


class ResNet50Test(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Building ResNet-50 takes seconds: once for the class.
    cls.model = resnet_model.resnet50()
    cls.costs = flops.layer_costs(cls.model)

  def test_parameter_count(self):
    # The standard ResNet-50 (torchvision, the papers): 25,557,032 weights,
    # counting BN scale/offset but not BN's moving statistics.
    self.assertEqual(_trainable(self.model), 25_557_032)
    self.assertEqual(self.model.count_params(), 25_557_032 + 2 * 26_560)
    self.assertEqual(self.model.output_shape, (None, 1000))

  def test_layout(self):
    names = [layer.name for layer in self.model.layers]
    for name in ('conv1', 'conv2_block1_0_conv', 'conv2_block1_1_conv',
                 'conv5_block3_3_conv', 'fc'):
      self.assertIn(name, names)
    conv1 = self.model.get_layer('conv1')
    self.assertEqual(conv1.input_shape, (None, 230, 230, 3))
    self.assertEqual(conv1.output_shape, (None, 112, 112, 64))
    # The stride of a stage sits on its first block's 3x3 convolution.
    self.assertEqual(self.model.get_layer('conv3_block1_1_conv').strides,
                     (1, 1))
    self.assertEqual(self.model.get_layer('conv3_block1_2_conv').strides,
                     (2, 2))
    counted = [c for c in self.costs if c.counted]
    self.assertLen(counted, 53 + 1)

  def test_dense_flops_calibration(self):
    total = flops.summarize(self.costs)
    # RigL paper / README: 8.2023e9 FLOPs (conv1 counted at 115x115).
    self.assertEqual(total.flops, 8_202_340_776)
    self.assertLess(abs(total.flops / 8.2023e9 - 1), 5e-4)

  def test_dense_size_calibration(self):
    total = flops.summarize(self.costs)
    # 102.122 MB with MB = 1e6 bytes (2**20 would give 97.39).
    self.assertEqual(total.bits, 816_975_104)
    self.assertAlmostEqual(total.size_mb, 102.122, delta=1e-3)

  def test_layer_padding_rule_counts_conv1_at_112(self):
    costs = flops.layer_costs(self.model, padding_rule='layer')
    self.assertEqual(costs[1].name, 'conv1')
    self.assertEqual(costs[1].output_shape, (112, 112, 64))
    self.assertEqual(flops.summarize(costs).flops, 8_189_483_496)

  @parameterized.parameters(
      # (distribution, sparsity, first layer dense, README size MB,
      #  README inference FLOPs multiple).
      ('erk', 0.8, False, 23.683, 0.42),
      ('erk', 0.9, False, 13.499, 0.24),
      ('erk', 0.95, False, 8.399, 0.12),
      ('uniform', 0.8, True, None, 0.23),
      ('uniform', 0.9, True, 13.532, 0.13),
      ('uniform', 0.95, True, 8.433, 0.08),
      ('uniform', 0.965, True, 6.904, 0.07),
      # The README's 99% ERK keeps conv1 dense, outside the ERK budget.
      ('erk', 0.99, True, 4.354, 0.05),
  )
  def test_sparse_models_match_rigl_readme(self, method, sparsity,
                                           first_layer_dense, size_mb, ratio):
    sparsities = distributions.get_sparsities(
        flops.kernel_shapes(self.costs), sparsity, method=method,
        first_layer_dense=first_layer_dense)
    if first_layer_dense:  # conv1 named as a dense layer: the same.
      self.assertEqual(sparsities, distributions.get_sparsities(
          flops.kernel_shapes(self.costs), sparsity, method=method,
          dense_layers=['conv1']))
    costs = flops.with_densities(
        self.costs, {name: 1 - s for name, s in sparsities.items()})
    total = flops.summarize(costs)
    dense = flops.summarize(self.costs)
    self.assertAlmostEqual(total.flops / dense.flops, ratio, delta=0.005)
    if size_mb is not None:
      self.assertAlmostEqual(total.size_mb, size_mb, delta=1e-3)


  def test_cli_erk_99_with_dense_conv1_reports_readme_size(self):
    flag_values = flags.FlagValues()
    flops_cli.define_flags(flag_values)
    flops_cli.parse_flags_or_exit(
        ['flops', '--model=resnet50', '--sparsity=0.99',
         '--distribution=erk', '--dense_layers=conv1', '--method=rigl',
         '--update_frequency=100', '--length_multiplier=5', '--json'],
        flag_values)
    with contextlib.redirect_stdout(io.StringIO()):
      report = flops_cli.run(flag_values)
    # RigL README, ERK 0.99 (5x): 4.354 MB, 0.05x inference, 0.29x training.
    self.assertAlmostEqual(report['size_mb'], 4.354, delta=5e-4)
    self.assertAlmostEqual(report['inference_flops_ratio'], 0.05, delta=0.006)
    self.assertAlmostEqual(report['training_flops_ratio'], 0.29, delta=0.005)


class ResNetVariantsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters((18, 11_689_512), (34, 21_797_672))
  def test_parameter_counts(self, depth, expected):
    # torchvision's resnet18 / resnet34.
    self.assertEqual(_trainable(resnet_model.resnet(depth)), expected)

  def test_weight_decay_regularizes_every_kernel(self):
    model = resnet_model.resnet18(weight_decay=1e-4)
    # 20 convolutions (incl. 3 projections) and the dense layer.
    self.assertLen(model.losses, 21)
    kernel = model.get_layer('fc').kernel
    # lambda / 2 * sum(w^2), the RigL (TF1 l2_loss) convention.
    self.assertAllClose(
        model.get_layer('fc').losses[0],
        0.5e-4 * tf.reduce_sum(tf.square(kernel)))

  def test_width_and_classes(self):
    model = resnet_model.resnet18(width=0.5, num_classes=10,
                                  input_shape=(64, 64, 3))
    self.assertEqual(model.get_layer('conv1').filters, 32)
    self.assertEqual(model.get_layer('fc').kernel.shape, (256, 10))
    self.assertEqual(model(tf.zeros((1, 64, 64, 3))).shape, (1, 10))

  def test_bad_depth(self):
    with self.assertRaisesRegex(ValueError, 'depth'):
      resnet_model.resnet(42)

  def test_bad_stem(self):
    with self.assertRaisesRegex(ValueError, "stem must be 'imagenet' or"):
      resnet_model.resnet(18, stem='tiny')


if __name__ == '__main__':
  tf.test.main()
