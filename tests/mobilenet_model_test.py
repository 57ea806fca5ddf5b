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
"""Tests for imagenet_resnet.mobilenet_model."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from imagenet_resnet import mobilenet_model
from rigl_tf import flops


class MobileNetTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      # keras.applications.MobileNet / MobileNetV2 (1.0, 224): same layers,
      # a dense `fc` instead of the 1x1 `conv_preds` (same weights).
      (mobilenet_model.mobilenet_v1, 4_253_864, 4_231_976),
      (mobilenet_model.mobilenet_v2, 3_538_984, 3_504_872),
  )
  def test_parameter_counts(self, builder, total, trainable):
    model = builder()
    self.assertEqual(model.count_params(), total)
    self.assertEqual(
        sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        trainable)
    self.assertEqual(model.output_shape, (None, 1000))

  def test_mobilenet_v1_rigl_calibration(self):
    # The RigL MobileNet colab: 1141.544 MFLOPs and 16.864 MB dense. It
    # counted depthwise layers as convolutions with one output channel.
    costs = flops.layer_costs(mobilenet_model.mobilenet_v1(),
                              depthwise_as_conv=True)
    total = flops.summarize(costs)
    self.assertEqual(total.flops, 1_141_543_864)
    self.assertAlmostEqual(total.size_mb, 16.864, delta=1e-3)
    # MicroNet's own depthwise op: bias and ReLU per channel.
    micronet = flops.layer_costs(mobilenet_model.mobilenet_v1())
    self.assertEqual(flops.summarize(micronet).flops, 1_143_483_400)

  def test_mobilenet_v1_layout(self):
    model = mobilenet_model.mobilenet_v1(width=0.5, num_classes=10)
    self.assertEqual(model.get_layer('conv1').filters, 16)
    self.assertEqual(model.get_layer('conv_pw_13').filters, 512)
    self.assertEqual(model.get_layer('conv_dw_2').strides, (2, 2))
    self.assertEqual(model.get_layer('conv_dw_2').input_shape,
                     (None, 113, 113, 32))
    self.assertEqual(model.get_layer('fc').kernel.shape, (512, 10))

  def test_mobilenet_v2_layout(self):
    model = mobilenet_model.mobilenet_v2(width=0.35)
    self.assertEqual(model.get_layer('conv1').filters, 16)
    self.assertEqual(model.get_layer('expanded_conv_project').filters, 8)
    self.assertEqual(model.get_layer('block_16_project').filters, 112)
    self.assertEqual(model.get_layer('conv_last').filters, 1280)
    self.assertEqual(mobilenet_model.make_divisible(1280 * 1.4), 1792)

  def test_weight_decay(self):
    model = mobilenet_model.mobilenet_v1(weight_decay=1e-4)
    # conv1, 13 depthwise, 13 pointwise, fc.
    self.assertLen(model.losses, 28)


if __name__ == '__main__':
  tf.test.main()
