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
"""ResNet-18/34/50/101/152 for ImageNet as Functional
models of either Keras flavour.

The layout is the Keras ResNet-50 that the RigL paper's FLOP counts use
(tensorflow/tpu `models/experimental/resnet50_keras`, "ResNet v1.5"):

* `ZeroPadding2D(3)` then a 7x7/2 'valid' convolution `conv1` (it sees a
  230x230 input), BN, ReLU, `ZeroPadding2D(1)` and a 3x3/2 max-pool;
* four stages of residual blocks; the first block of each stage has a
  projection shortcut (1x1 convolution + BN); the stride of a stage sits on
  the 3x3 convolution of its first block (and on the shortcut), not on the
  first 1x1 convolution: this is the convention that gives RigL's
  8.2023e9 FLOPs for the dense ResNet-50 (see `rigl_tf/flops.py`);
* global average pooling and a dense layer `fc` that returns logits.

Convolutions have no bias (BN follows each). Layer names follow
`keras.applications`: `conv1`, `conv2_block1_1_conv`, `conv2_block1_0_conv`
(the shortcut), ..., `fc`.
"""

from collections.abc import Sequence
import functools

from rigl_tf import flavours
from rigl_tf import regularizers

# The Keras flavour being built (`train_eval.keras`), looked up at each use.
keras = flavours.BUILDING

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5

# depth -> (block kind, blocks per stage).
_DEPTHS = {
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
}
_STAGE_FILTERS = (64, 128, 256, 512)



def _conv(x, filters, kernel_size, name, weight_decay, strides=1,
          padding='same'):
  return keras.layers.Conv2D(
      filters,
      kernel_size,
      strides=strides,
      padding=padding,
      use_bias=False,
      kernel_initializer='he_normal',
      kernel_regularizer=regularizers.weight_decay_l2(weight_decay),
      name=name)(x)


def _batch_norm(x, name):
  return keras.layers.BatchNormalization(
      momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name)(x)


def _bottleneck_block(x, filters, strides, name, weight_decay):
  """1x1 -> 3x3 (strided) -> 1x1 (4 x filters), projection when needed."""
  out_filters = 4 * filters
  shortcut = x
  if strides != 1 or x.shape[-1] != out_filters:
    shortcut = _conv(x, out_filters, 1, f'{name}_0_conv', weight_decay,
                     strides=strides)
    shortcut = _batch_norm(shortcut, f'{name}_0_bn')
  x = _conv(x, filters, 1, f'{name}_1_conv', weight_decay)
  x = _batch_norm(x, f'{name}_1_bn')
  x = keras.layers.Activation('relu', name=f'{name}_1_relu')(x)
  x = _conv(x, filters, 3, f'{name}_2_conv', weight_decay, strides=strides)
  x = _batch_norm(x, f'{name}_2_bn')
  x = keras.layers.Activation('relu', name=f'{name}_2_relu')(x)
  x = _conv(x, out_filters, 1, f'{name}_3_conv', weight_decay)
  x = _batch_norm(x, f'{name}_3_bn')
  x = keras.layers.Add(name=f'{name}_add')([shortcut, x])
  return keras.layers.Activation('relu', name=f'{name}_out')(x)


def _basic_block(x, filters, strides, name, weight_decay):
  """3x3 (strided) -> 3x3, projection shortcut when the shape changes."""
  shortcut = x
  if strides != 1 or x.shape[-1] != filters:
    shortcut = _conv(x, filters, 1, f'{name}_0_conv', weight_decay,
                     strides=strides)
    shortcut = _batch_norm(shortcut, f'{name}_0_bn')
  x = _conv(x, filters, 3, f'{name}_1_conv', weight_decay, strides=strides)
  x = _batch_norm(x, f'{name}_1_bn')
  x = keras.layers.Activation('relu', name=f'{name}_1_relu')(x)
  x = _conv(x, filters, 3, f'{name}_2_conv', weight_decay)
  x = _batch_norm(x, f'{name}_2_bn')
  x = keras.layers.Add(name=f'{name}_add')([shortcut, x])
  return keras.layers.Activation('relu', name=f'{name}_out')(x)


_BLOCKS = {'basic': _basic_block, 'bottleneck': _bottleneck_block}


def resnet(depth: int = 50,
           num_classes: int = 1000,
           input_shape: Sequence[int] = (224, 224, 3),
           weight_decay: float = 0.0,
           width: float = 1.0,
           stem: str = 'imagenet',
           name: str | None = None) -> keras.Model:
  """Builds an ImageNet ResNet in the Keras layout described above.

  Args:
    depth: 18, 34, 50, 101 or 152.
    num_classes: number of output logits.
    input_shape: (height, width, channels) of one image.
    weight_decay: L2 coefficient lambda of the penalty lambda/2 * sum(w^2)
      on every convolution and dense kernel (0 for none).
    width: multiplier of every layer's number of filters (RigL's "small
      dense" baselines); the input channels and `num_classes` are unchanged.
    stem: 'imagenet' (7x7/2 convolution and 3x3/2 max-pool) or 'cifar'
      (one 3x3/1 convolution, no max-pool: the CIFAR ResNets of GraNet and
      most sparse-training papers).
    name: model name; defaults to f'resnet{depth}'.

  Returns:
    A Functional `keras.Model` mapping images to logits.

  Raises:
    ValueError: for an unsupported depth, a non-positive width or an
      unknown stem.
  """
  if depth not in _DEPTHS:
    raise ValueError(f'Unsupported ResNet depth {depth}; choose one of '
                     f'{sorted(_DEPTHS)}.')
  if width <= 0:
    raise ValueError(f'width must be positive, got {width}.')
  if stem not in ('imagenet', 'cifar'):
    raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}.")
  kind, blocks_per_stage = _DEPTHS[depth]
  block_fn = _BLOCKS[kind]

  inputs = keras.Input(shape=tuple(input_shape), name='images')
  if stem == 'imagenet':
    x = keras.layers.ZeroPadding2D(3, name='conv1_pad')(inputs)
    x = _conv(x, int(64 * width), 7, 'conv1', weight_decay, strides=2,
              padding='valid')
  else:
    x = _conv(inputs, int(64 * width), 3, 'conv1', weight_decay)
  x = _batch_norm(x, 'conv1_bn')
  x = keras.layers.Activation('relu', name='conv1_relu')(x)
  if stem == 'imagenet':
    x = keras.layers.ZeroPadding2D(1, name='pool1_pad')(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name='pool1_pool')(x)
  for stage, (filters, n_blocks) in enumerate(
      zip(_STAGE_FILTERS, blocks_per_stage, strict=True)):
    for block in range(n_blocks):
      # Stage 2 follows the max-pool and keeps the resolution.
      strides = 2 if block == 0 and stage > 0 else 1
      x = block_fn(x, int(filters * width), strides,
                   f'conv{stage + 2}_block{block + 1}', weight_decay)
  x = keras.layers.GlobalAveragePooling2D(name='avg_pool')(x)
  outputs = keras.layers.Dense(
      num_classes,
      kernel_regularizer=regularizers.weight_decay_l2(weight_decay),
      name='fc')(x)
  return keras.Model(inputs, outputs, name=name or f'resnet{depth}')


resnet18 = functools.partial(resnet, 18)
resnet34 = functools.partial(resnet, 34)
resnet50 = functools.partial(resnet, 50)
resnet101 = functools.partial(resnet, 101)
resnet152 = functools.partial(resnet, 152)
