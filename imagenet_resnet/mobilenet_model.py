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
"""MobileNet v1 and v2 for ImageNet as Functional
models of either Keras flavour.

Both follow the `keras.applications` layouts that the RigL paper's MobileNet
FLOP counts were made with: every stride-2 3x3 layer is an explicit
`ZeroPadding2D(((0, 1), (0, 1)))` followed by a 'valid' convolution, the
other convolutions use 'same' padding, BN follows every convolution and the
activation is ReLU6. The classifier is a dense layer `fc` returning logits
(RigL's own MobileNet v1 uses a fully connected layer too; it costs the same
FLOPs as Keras' 1x1 convolution on the pooled features).
"""

from collections.abc import Sequence

from rigl_tf import flavours
from rigl_tf import regularizers

# The Keras flavour being built (`train_eval.keras`), looked up at each use.
keras = flavours.BUILDING

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-3

# MobileNet v1: (pointwise filters, depthwise stride) of the 13 blocks.
_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2),
              (1024, 1))

# MobileNet v2: (expansion t, output channels c, repeats n, stride s).
_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))



def make_divisible(value: float, divisor: int = 8) -> int:
  """Rounds a channel count to a multiple of `divisor`, losing at most 10%."""
  new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
  if new_value < 0.9 * value:
    new_value += divisor
  return new_value


def _batch_norm(x, name):
  return keras.layers.BatchNormalization(
      momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name)(x)


def _relu6(x, name):
  return keras.layers.ReLU(6.0, name=name)(x)


def _pad_for_stride(x, strides, name):
  """Explicit asymmetric padding before a stride-2 'valid' 3x3 layer."""
  if strides == 1:
    return x, 'same'
  return keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=name)(x), 'valid'


def _conv(x, filters, kernel_size, strides, padding, name, weight_decay):
  return keras.layers.Conv2D(
      filters,
      kernel_size,
      strides=strides,
      padding=padding,
      use_bias=False,
      kernel_regularizer=regularizers.weight_decay_l2(weight_decay),
      name=name)(x)


def _depthwise(x, strides, padding, name, weight_decay):
  return keras.layers.DepthwiseConv2D(
      3,
      strides=strides,
      padding=padding,
      use_bias=False,
      depthwise_regularizer=regularizers.weight_decay_l2(weight_decay),
      name=name)(x)


def _classifier(x, num_classes, weight_decay):
  x = keras.layers.GlobalAveragePooling2D(name='avg_pool')(x)
  return keras.layers.Dense(
      num_classes,
      kernel_regularizer=regularizers.weight_decay_l2(weight_decay),
      name='fc')(x)


def _check_width(width):
  if width <= 0:
    raise ValueError(f'width must be positive, got {width}.')


def mobilenet_v1(num_classes: int = 1000,
                 input_shape: Sequence[int] = (224, 224, 3),
                 weight_decay: float = 0.0,
                 width: float = 1.0,
                 name: str | None = None) -> keras.Model:
  """Builds MobileNet v1 (Howard et al., 2017).

  Args:
    num_classes: number of output logits.
    input_shape: (height, width, channels) of one image.
    weight_decay: L2 coefficient lambda of lambda/2 * sum(w^2) on every
      kernel (0 for none).
    width: the width multiplier alpha (filters are int(alpha * filters)).
    name: model name; defaults to 'mobilenet_v1'.

  Returns:
    A Functional `keras.Model` mapping images to logits. Layers: `conv1`,
    `conv_dw_{i}` / `conv_pw_{i}` for blocks i = 1..13, `fc`.

  Raises:
    ValueError: for a non-positive width.
  """
  _check_width(width)
  inputs = keras.Input(shape=tuple(input_shape), name='images')
  x, padding = _pad_for_stride(inputs, 2, 'conv1_pad')
  x = _conv(x, int(32 * width), 3, 2, padding, 'conv1', weight_decay)
  x = _batch_norm(x, 'conv1_bn')
  x = _relu6(x, 'conv1_relu')
  for i, (filters, strides) in enumerate(_V1_BLOCKS, start=1):
    x, padding = _pad_for_stride(x, strides, f'conv_pad_{i}')
    x = _depthwise(x, strides, padding, f'conv_dw_{i}', weight_decay)
    x = _batch_norm(x, f'conv_dw_{i}_bn')
    x = _relu6(x, f'conv_dw_{i}_relu')
    x = _conv(x, int(filters * width), 1, 1, 'same', f'conv_pw_{i}',
              weight_decay)
    x = _batch_norm(x, f'conv_pw_{i}_bn')
    x = _relu6(x, f'conv_pw_{i}_relu')
  outputs = _classifier(x, num_classes, weight_decay)
  return keras.Model(inputs, outputs, name=name or 'mobilenet_v1')


def _inverted_residual(x, expansion, filters, strides, prefix, weight_decay):
  """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), + identity."""
  in_channels = x.shape[-1]
  shortcut = x
  if expansion != 1:
    x = _conv(x, expansion * in_channels, 1, 1, 'same', f'{prefix}expand',
              weight_decay)
    x = _batch_norm(x, f'{prefix}expand_bn')
    x = _relu6(x, f'{prefix}expand_relu')
  x, padding = _pad_for_stride(x, strides, f'{prefix}pad')
  x = _depthwise(x, strides, padding, f'{prefix}depthwise', weight_decay)
  x = _batch_norm(x, f'{prefix}depthwise_bn')
  x = _relu6(x, f'{prefix}depthwise_relu')
  x = _conv(x, filters, 1, 1, 'same', f'{prefix}project', weight_decay)
  x = _batch_norm(x, f'{prefix}project_bn')
  if strides == 1 and in_channels == filters:
    x = keras.layers.Add(name=f'{prefix}add')([shortcut, x])
  return x


def mobilenet_v2(num_classes: int = 1000,
                 input_shape: Sequence[int] = (224, 224, 3),
                 weight_decay: float = 0.0,
                 width: float = 1.0,
                 name: str | None = None) -> keras.Model:
  """Builds MobileNet v2 (Sandler et al., 2018).

  Args:
    num_classes: number of output logits.
    input_shape: (height, width, channels) of one image.
    weight_decay: L2 coefficient lambda of lambda/2 * sum(w^2) on every
      kernel (0 for none).
    width: the width multiplier alpha; channel counts are rounded to
      multiples of 8 and the last 1x1 layer keeps 1280 filters for
      alpha <= 1, as in the paper.
    name: model name; defaults to 'mobilenet_v2'.

  Returns:
    A Functional `keras.Model` mapping images to logits. Layers: `conv1`,
    `expanded_conv_depthwise`, `expanded_conv_project`, `block_{i}_expand`,
    `block_{i}_depthwise`, `block_{i}_project` (i = 1..16), `conv_last`,
    `fc`.

  Raises:
    ValueError: for a non-positive width.
  """
  _check_width(width)
  inputs = keras.Input(shape=tuple(input_shape), name='images')
  x, padding = _pad_for_stride(inputs, 2, 'conv1_pad')
  x = _conv(x, make_divisible(32 * width), 3, 2, padding, 'conv1',
            weight_decay)
  x = _batch_norm(x, 'conv1_bn')
  x = _relu6(x, 'conv1_relu')
  block_id = 0
  for expansion, channels, repeats, stage_strides in _V2_STAGES:
    filters = make_divisible(channels * width)
    for repeat in range(repeats):
      prefix = f'block_{block_id}_' if block_id else 'expanded_conv_'
      x = _inverted_residual(x, expansion, filters,
                             stage_strides if repeat == 0 else 1, prefix,
                             weight_decay)
      block_id += 1
  last_filters = make_divisible(1280 * width) if width > 1.0 else 1280
  x = _conv(x, last_filters, 1, 1, 'same', 'conv_last', weight_decay)
  x = _batch_norm(x, 'conv_last_bn')
  x = _relu6(x, 'conv_last_relu')
  outputs = _classifier(x, num_classes, weight_decay)
  return keras.Model(inputs, outputs, name=name or 'mobilenet_v2')
