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
"""Tests for cifar_wrn.wrn_model."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras as keras

from cifar_wrn import wrn_model
from rigl_tf import flops


def _trainable(model):
  return int(sum(np.prod(w.shape) for w in model.trainable_weights))


class WideResNetTest(tf.test.TestCase, parameterized.TestCase):

  def test_wrn_28_10_parameter_count(self):
    # 36.5M in Zagoruyko & Komodakis; 36,479,194 in the reference PyTorch
    # implementation (BN scale/offset counted, moving statistics not).
    self.assertEqual(_trainable(wrn_model.wrn_28_10()), 36_479_194)

  def test_wrn_22_2_parameter_count(self):
    model = wrn_model.wrn_22_2()
    # By hand: conv1 432; group widths 32/64/128, 3 blocks each, two 3x3
    # convs per block, 1x1 shortcuts 16->32, 32->64, 64->128; BN scale and
    # offset on every pre-activation and the final BN; fc 128 * 10 + 10.
    convs = (432 + 9 * (16 * 32 + 32 * 32 * 5) + 16 * 32 +
             9 * (32 * 64 + 64 * 64 * 5) + 32 * 64 +
             9 * (64 * 128 + 128 * 128 * 5) + 64 * 128)
    bn = 2 * (16 + 32 * 5 + 32 + 64 * 5 + 64 + 128 * 5 + 128)
    self.assertEqual(_trainable(model), convs + bn + 1290)
    self.assertEqual(_trainable(model), 1_079_642)  # "1.1M".

  def test_layout_and_forward(self):
    model = wrn_model.wide_resnet(10, 2, num_classes=100, dropout_rate=0.3)
    self.assertEqual(model(tf.zeros((2, 32, 32, 3))).shape, (2, 100))
    names = [layer.name for layer in model.layers]
    # 16 -> 32 channels: a 1x1 shortcut on the pre-activated input.
    self.assertIn('conv2_block1_0_conv', names)
    self.assertEqual(
        model.get_layer('conv2_block1_0_conv').input.name,
        model.get_layer('conv2_block1_preact_relu').output.name)
    self.assertIn('conv2_block1_dropout', names)
    # Width 1 keeps 16 channels in the first group: identity shortcut.
    narrow = wrn_model.wide_resnet(10, 1)
    self.assertNotIn('conv2_block1_0_conv',
                     [layer.name for layer in narrow.layers])
    self.assertEqual(model.get_layer('conv3_block1_1_conv').strides, (2, 2))

  def test_bad_depth(self):
    with self.assertRaisesRegex(ValueError, '6n'):
      wrn_model.wide_resnet(20, 2)


class ResNet20Test(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      # He et al. "0.27M"; option A shortcuts are parameter-free.
      ('zero_pad', {}, 269_722),
      ('projection', {'shortcut': 'projection'}, 272_474),
      # Gem-Miner: no BN scale/offset (2 * 688 fewer), no fc bias (10).
      ('gem_miner', {'use_bn_affine': False, 'fc_use_bias': False},
       269_722 - 1376 - 10),
  )
  def test_parameter_counts(self, kwargs, expected):
    self.assertEqual(_trainable(wrn_model.resnet20(**kwargs)), expected)

  def test_no_bn_affine(self):
    model = wrn_model.resnet20(use_bn_affine=False)
    bns = [
        layer for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    self.assertLen(bns, 19)
    for bn in bns:
      self.assertIsNone(bn.gamma)
      self.assertIsNone(bn.beta)

  def test_zero_pad_shortcut(self):
    x = tf.reshape(tf.range(2 * 4 * 4 * 2, dtype=tf.float32), (2, 4, 4, 2))
    y = wrn_model.ZeroPadShortcut(6, 2)(x)
    self.assertEqual(y.shape, (2, 2, 2, 6))
    self.assertAllEqual(y[..., 2:4], x[:, ::2, ::2, :])
    self.assertAllEqual(y[..., :2], tf.zeros((2, 2, 2, 2)))
    self.assertAllEqual(y[..., 4:], tf.zeros((2, 2, 2, 2)))
    config = wrn_model.ZeroPadShortcut(6, 2).get_config()
    self.assertEqual(
        wrn_model.ZeroPadShortcut.from_config(config).filters, 6)

  def test_forward_and_flops(self):
    model = wrn_model.resnet20()
    self.assertEqual(model(tf.zeros((2, 32, 32, 3))).shape, (2, 10))
    costs = flops.layer_costs(model)
    # 19 convolutions and the dense layer; the pad shortcuts are not counted.
    self.assertLen([c for c in costs if c.counted], 20)
    self.assertEqual(flops.summarize(costs).n_weights, 268_336)


class CifarResNetTest(tf.test.TestCase):

  def test_resnet50_parameter_count_and_stem(self):
    model = wrn_model.cifar_resnet()
    # GraNet's CIFAR ResNet-50 (PyTorch, BN scale/offset counted): 23.5M.
    # By hand: ImageNet ResNet-50's 23,508,032 weights without fc, minus
    # the 7x7 stem (9,408) plus a 3x3 one (1,728), plus fc 2048 * 10 + 10.
    self.assertEqual(_trainable(model), 23_508_032 - 9_408 + 1_728 + 20_490)
    self.assertEqual(model.get_layer('conv1').kernel.shape, (3, 3, 3, 64))
    names = [layer.name for layer in model.layers]
    self.assertNotIn('pool1_pool', names)
    # No stride before stage 3: 32 -> 32 -> 16 -> 8 -> 4.
    self.assertEqual(model.get_layer('conv2_block3_out').output.shape[1], 32)
    self.assertEqual(model.get_layer('conv5_block3_out').output.shape[1:],
                     (4, 4, 2048))

  def test_bad_depth(self):
    with self.assertRaisesRegex(ValueError, 'Unsupported ResNet depth'):
      wrn_model.cifar_resnet(depth=20)


if __name__ == '__main__':
  tf.test.main()
