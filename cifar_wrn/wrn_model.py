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
"""CIFAR models as plain Functional models, in either Keras flavour.

* Wide ResNets WRN-d-k (Zagoruyko & Komodakis, 2016), pre-activation:
  a 3x3 convolution with 16 filters, three groups of n = (d - 4) / 6 blocks
  of widths 16k, 32k, 64k (stride 2 at the start of the 2nd and 3rd group),
  then BN, ReLU, global average pooling and a dense layer. A block is
  BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3; when the number of channels
  changes, the shortcut is a 1x1 convolution of the block's pre-activated
  input, as in the RigL code and the reference implementation.
  WRN-22-2 and WRN-28-10 are the RigL paper's CIFAR models.
* ResNet-20 (He et al., 2016, CIFAR variant): 3x3 conv (16), three stages of
  3 basic blocks (16, 32, 64 filters); the shortcut of a block that changes
  shape is parameter-free by default ("option A": subsample by 2 and zero-pad
  the channels), as in the paper and in Gem-Miner ("Rare Gems").
  `use_bn_affine=False` removes BN's scale and offset (Gem-Miner).
* `cifar_resnet`: the bottleneck ResNet-18/34/50 of `imagenet_resnet` with
  the CIFAR stem (3x3/1 convolution with 64 filters, no max-pool), as in
  GraNet's CIFAR ResNet-50 (23.5M parameters for 10 classes).

Layer names: `conv1`, `conv{stage}_block{b}_{1,2}_conv`, shortcut
`conv{stage}_block{b}_0_conv`, `fc`.
"""

from collections.abc import Sequence

import tensorflow as tf

from imagenet_resnet import resnet_model
from rigl_tf import flavours
from rigl_tf import regularizers

# The Keras flavour being built (`train_eval.keras`), looked up at each use.
keras = flavours.BUILDING

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5



def _conv(x, filters, kernel_size, name, weight_decay, strides=1):
  return keras.layers.Conv2D(
      filters,
      kernel_size,
      strides=strides,
      padding='same',
      use_bias=False,
      kernel_initializer='he_normal',
      kernel_regularizer=regularizers.weight_decay_l2(weight_decay),
      name=name)(x)


def _batch_norm(x, name, affine=True):
  return keras.layers.BatchNormalization(
      momentum=BATCH_NORM_MOMENTUM,
      epsilon=BATCH_NORM_EPSILON,
      center=affine,
      scale=affine,
      name=name)(x)


def _relu(x, name):
  return keras.layers.Activation('relu', name=name)(x)


def wide_resnet(depth: int,
                width: int,
                num_classes: int = 10,
                input_shape: Sequence[int] = (32, 32, 3),
                weight_decay: float = 0.0,
                dropout_rate: float = 0.0,
                name: str | None = None) -> keras.Model:
  """Builds a pre-activation Wide ResNet WRN-`depth`-`width`.

  Args:
    depth: total depth d; (d - 4) must be divisible by 6.
    width: widening factor k.
    num_classes: number of output logits.
    input_shape: (height, width, channels) of one image.
    weight_decay: L2 coefficient lambda of lambda/2 * sum(w^2) on every
      kernel (0 for none).
    dropout_rate: dropout between the two convolutions of a block.
    name: model name; defaults to f'wrn_{depth}_{width}'.

  Returns:
    A Functional `keras.Model` mapping images to logits.

  Raises:
    ValueError: if (depth - 4) is not a positive multiple of 6.
  """
  if depth < 10 or (depth - 4) % 6:
    raise ValueError(f'WRN depth must be 6n + 4 with n >= 1, got {depth}.')
  blocks = (depth - 4) // 6
  inputs = keras.Input(shape=tuple(input_shape), name='images')
  x = _conv(inputs, 16, 3, 'conv1', weight_decay)
  for stage, filters in enumerate((16 * width, 32 * width, 64 * width)):
    for block in range(blocks):
      prefix = f'conv{stage + 2}_block{block + 1}'
      strides = 2 if block == 0 and stage > 0 else 1
      shortcut = x
      x = _batch_norm(x, f'{prefix}_preact_bn')
      x = _relu(x, f'{prefix}_preact_relu')
      if shortcut.shape[-1] != filters or strides != 1:
        shortcut = _conv(x, filters, 1, f'{prefix}_0_conv', weight_decay,
                         strides=strides)
      x = _conv(x, filters, 3, f'{prefix}_1_conv', weight_decay,
                strides=strides)
      x = _batch_norm(x, f'{prefix}_1_bn')
      x = _relu(x, f'{prefix}_1_relu')
      if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name=f'{prefix}_dropout')(x)
      x = _conv(x, filters, 3, f'{prefix}_2_conv', weight_decay)
      x = keras.layers.Add(name=f'{prefix}_add')([shortcut, x])
  x = _batch_norm(x, 'post_bn')
  x = _relu(x, 'post_relu')
  x = keras.layers.GlobalAveragePooling2D(name='avg_pool')(x)
  outputs = keras.layers.Dense(
      num_classes,
      kernel_regularizer=regularizers.weight_decay_l2(weight_decay),
      name='fc')(x)
  return keras.Model(inputs, outputs, name=name or f'wrn_{depth}_{width}')


def wrn_22_2(**kwargs) -> keras.Model:
  """WRN-22-2 (about 1.1M parameters); kwargs as `wide_resnet`."""
  return wide_resnet(22, 2, **kwargs)


def wrn_28_10(**kwargs) -> keras.Model:
  """WRN-28-10 (36.5M parameters); kwargs as `wide_resnet`."""
  return wide_resnet(28, 10, **kwargs)


def _define_zero_pad_shortcut(keras):  # pylint: disable=redefined-outer-name
  """`ZeroPadShortcut`, derived from `keras`'s (one flavour's) Layer."""

  @keras.utils.register_keras_serializable(package='rigl_tf')
  class ZeroPadShortcut(keras.layers.Layer):
    """He et al.'s parameter-free shortcut ("option A").

    Keeps every `strides`-th row and column and zero-pads the channels
    symmetrically up to `filters`.
    """

    def __init__(self, filters: int, strides: int = 2, **kwargs):
      super().__init__(**kwargs)
      self.filters = filters
      self.strides = strides

    def call(self, inputs):
      x = inputs[:, ::self.strides, ::self.strides, :]
      extra = self.filters - x.shape[-1]
      return tf.pad(
          x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
      spatial = [None if d is None else -(-d // self.strides)
                 for d in tuple(input_shape)[1:3]]
      return (input_shape[0], *spatial, self.filters)

    def get_config(self):
      return {
          **super().get_config(), 'filters': self.filters,
          'strides': self.strides
      }

  return ZeroPadShortcut


zero_pad_shortcut = flavours.per_flavour(_define_zero_pad_shortcut)
# Both flavours' classes, registered at import (for loading a saved
# ResNet-20); the module's name is tf_keras's.
zero_pad_shortcut(flavours.KERAS3)
ZeroPadShortcut = zero_pad_shortcut(flavours.TF_KERAS)


def resnet20(num_classes: int = 10,
             input_shape: Sequence[int] = (32, 32, 3),
             weight_decay: float = 0.0,
             use_bn_affine: bool = True,
             shortcut: str = 'zero_pad',
             fc_use_bias: bool = True,
             name: str | None = None) -> keras.Model:
  """Builds ResNet-20 for CIFAR (He et al., 2016, section 4.2).

  Args:
    num_classes: number of output logits.
    input_shape: (height, width, channels) of one image.
    weight_decay: L2 coefficient lambda of lambda/2 * sum(w^2) on every
      kernel (0 for none).
    use_bn_affine: False builds BatchNormalization without scale and offset
      (Gem-Miner's frozen, signed-constant networks).
    shortcut: 'zero_pad' (parameter-free, option A) or 'projection' (a 1x1
      convolution + BN, option B) where a block changes shape.
    fc_use_bias: whether the final dense layer has a bias (Gem-Miner's has
      none).
    name: model name; defaults to 'resnet20'.

  Returns:
    A Functional `keras.Model` mapping images to logits.

  Raises:
    ValueError: for an unknown `shortcut`.
  """
  if shortcut not in ('zero_pad', 'projection'):
    raise ValueError(f"shortcut must be 'zero_pad' or 'projection', got "
                     f'{shortcut!r}.')
  inputs = keras.Input(shape=tuple(input_shape), name='images')
  x = _conv(inputs, 16, 3, 'conv1', weight_decay)
  x = _batch_norm(x, 'conv1_bn', use_bn_affine)
  x = _relu(x, 'conv1_relu')
  for stage, filters in enumerate((16, 32, 64)):
    for block in range(3):
      prefix = f'conv{stage + 2}_block{block + 1}'
      strides = 2 if block == 0 and stage > 0 else 1
      residual = x
      if strides != 1 or x.shape[-1] != filters:
        if shortcut == 'zero_pad':
          residual = zero_pad_shortcut()(filters, strides,
                                         name=f'{prefix}_0_pad')(x)
        else:
          residual = _conv(x, filters, 1, f'{prefix}_0_conv', weight_decay,
                           strides=strides)
          residual = _batch_norm(residual, f'{prefix}_0_bn', use_bn_affine)
      x = _conv(x, filters, 3, f'{prefix}_1_conv', weight_decay,
                strides=strides)
      x = _batch_norm(x, f'{prefix}_1_bn', use_bn_affine)
      x = _relu(x, f'{prefix}_1_relu')
      x = _conv(x, filters, 3, f'{prefix}_2_conv', weight_decay)
      x = _batch_norm(x, f'{prefix}_2_bn', use_bn_affine)
      x = keras.layers.Add(name=f'{prefix}_add')([residual, x])
      x = _relu(x, f'{prefix}_out')
  x = keras.layers.GlobalAveragePooling2D(name='avg_pool')(x)
  outputs = keras.layers.Dense(
      num_classes,
      use_bias=fc_use_bias,
      kernel_regularizer=regularizers.weight_decay_l2(weight_decay),
      name='fc')(x)
  return keras.Model(inputs, outputs, name=name or 'resnet20')


def cifar_resnet(depth: int = 50,
                 num_classes: int = 10,
                 input_shape: Sequence[int] = (32, 32, 3),
                 weight_decay: float = 0.0,
                 width: float = 1.0,
                 name: str | None = None) -> keras.Model:
  """Builds a CIFAR ResNet-`depth`: ImageNet's stages, a 3x3/1 stem.

  Args:
    depth: 18, 34, 50, 101 or 152 (GraNet's CIFAR model: 50).
    num_classes: number of output logits.
    input_shape: (height, width, channels) of one image.
    weight_decay: L2 coefficient lambda of lambda/2 * sum(w^2) on every
      kernel (0 for none).
    width: multiplier of every layer's number of filters.
    name: model name; defaults to f'cifar_resnet{depth}'.

  Returns:
    A Functional `keras.Model` mapping images to logits.

  Raises:
    ValueError: for an unsupported depth or a non-positive width.
  """
  return resnet_model.resnet(depth, num_classes=num_classes,
                             input_shape=input_shape,
                             weight_decay=weight_decay, width=width,
                             stem='cifar',
                             name=name or f'cifar_resnet{depth}')
