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
"""MNIST-sized models: LeNet-300-100 (RigL's MNIST model), LeNet-5 and a
small Vision Transformer.

All take a small grayscale input (28x28 MNIST, 8x8 digits) and return
logits. They build in the Keras flavour being built (`train_eval.keras`):
tf_keras by default, Keras 3 inside `rigl_tf.flavours.building('keras3')`.
"""

import gin
import tensorflow as tf

from rigl_tf import flavours
from rigl_tf import regularizers

# The flavour being built (`flavours.keras()`), looked up at each use.
keras = flavours.BUILDING


@gin.configurable
def lenet_300_100(input_shape=(28, 28, 1), num_classes=10, hidden=(300, 100),
                  l2=0.0):
  """Flatten -> Dense 300 relu -> Dense 100 relu -> Dense logits.

  Args:
    input_shape: image shape; the first layer has prod(input_shape) inputs
      (784 for MNIST, 64 for digits).
    num_classes: number of logits.
    hidden: sizes of the hidden layers.
    l2: weight decay λ of the kernels, adding λ/2 · Σw² to the loss (TF1's
      `l2_loss` convention of RigL's MNIST code, which uses 1e-4).

  Returns:
    A Sequential model with layers fc1, fc2, logits.
  """
  regularizer = regularizers.weight_decay_l2(l2)
  model = keras.Sequential(name='lenet_300_100')
  model.add(keras.Input(tuple(input_shape)))
  model.add(keras.layers.Flatten())
  for i, units in enumerate(hidden):
    model.add(keras.layers.Dense(units, activation='relu', name=f'fc{i + 1}',
                                 kernel_regularizer=regularizer))
  model.add(keras.layers.Dense(num_classes, name='logits',
                               kernel_regularizer=regularizer))
  return model


@gin.configurable
def lenet5(input_shape=(28, 28, 1), num_classes=10):
  """LeNet-5: conv 6@5x5, pool, conv 16@5x5, pool, fc 120, fc 84, logits.

  On inputs smaller than 28x28 (digits) the convolutions use 'same' padding
  so that the spatial size stays positive.

  Args:
    input_shape: image shape.
    num_classes: number of logits.

  Returns:
    A Sequential model.
  """
  padding = 'valid' if min(input_shape[:2]) >= 28 else 'same'
  return keras.Sequential([
      keras.Input(tuple(input_shape)),
      keras.layers.Conv2D(6, 5, padding='same', activation='relu',
                          name='conv1'),
      keras.layers.MaxPooling2D(2, name='pool1'),
      keras.layers.Conv2D(16, 5, padding=padding, activation='relu',
                          name='conv2'),
      keras.layers.MaxPooling2D(2, name='pool2'),
      keras.layers.Flatten(),
      keras.layers.Dense(120, activation='relu', name='fc1'),
      keras.layers.Dense(84, activation='relu', name='fc2'),
      keras.layers.Dense(num_classes, name='logits'),
  ], name='lenet5')


def _define_vit_layers(keras):  # pylint: disable=redefined-outer-name
  """The ViT's custom layers, derived from `keras`'s (one flavour's) Layer."""
  register = keras.utils.register_keras_serializable(package='rigl_tf_mnist')

  @register
  class AddPositions(keras.layers.Layer):
    """Adds a learned embedding of each token's position (an `Embedding`)."""

    def __init__(self, num_tokens, dim, **kwargs):
      super().__init__(**kwargs)
      self.num_tokens, self.dim = num_tokens, dim
      self.position = keras.layers.Embedding(num_tokens, dim, name='position')

    def call(self, tokens):
      return tokens + self.position(tf.range(self.num_tokens))

    def get_config(self):
      return {**super().get_config(), 'num_tokens': self.num_tokens,
              'dim': self.dim}

  @register
  class EncoderBlock(keras.layers.Layer):
    """A pre-norm transformer encoder block: x + MHA(LN(x)), + MLP(LN(.))."""

    def __init__(self, dim, heads, mlp_dim, dropout=0.0, **kwargs):
      super().__init__(**kwargs)
      self.dim, self.heads, self.mlp_dim = dim, heads, mlp_dim
      self.dropout = dropout
      self.norm1 = keras.layers.LayerNormalization(epsilon=1e-6, name='norm1')
      self.attention = keras.layers.MultiHeadAttention(
          heads, dim // heads, dropout=dropout, name='attention')
      self.norm2 = keras.layers.LayerNormalization(epsilon=1e-6, name='norm2')
      self.mlp1 = keras.layers.Dense(mlp_dim, activation='gelu', name='mlp1')
      self.mlp2 = keras.layers.Dense(dim, name='mlp2')

    def call(self, x, training=None):
      y = self.norm1(x)
      x = x + self.attention(y, y, training=training)
      return x + self.mlp2(self.mlp1(self.norm2(x)))

    def get_config(self):
      return {**super().get_config(), 'dim': self.dim, 'heads': self.heads,
              'mlp_dim': self.mlp_dim, 'dropout': self.dropout}

  return AddPositions, EncoderBlock


vit_layers = flavours.per_flavour(_define_vit_layers)
# Both flavours' classes, registered at import (for loading a saved ViT);
# the module's names are tf_keras's.
vit_layers(flavours.KERAS3)
AddPositions, EncoderBlock = vit_layers(flavours.TF_KERAS)


@gin.configurable
def vit(input_shape=(8, 8, 1), num_classes=10, patch_size=2, dim=32,
        depth=2, heads=4, mlp_dim=64, dropout=0.0):
  """A small Vision Transformer: patches, encoder blocks, pooled logits.

  On the 8x8 digits, 2x2 patches give 16 tokens. The patch embedding is a
  convolution with stride `patch_size`; each `EncoderBlock` (a custom layer)
  holds a `MultiHeadAttention` (query, key, value and output EinsumDense
  projections) and a two-layer GELU MLP: `layers.sparsify` masks all of
  them, and the position `Embedding` inside `AddPositions`.

  Args:
    input_shape: image shape (height and width multiples of `patch_size`).
    num_classes: number of logits.
    patch_size: side of the square patches.
    dim: token width.
    depth: number of encoder blocks.
    heads: attention heads (`dim` must be a multiple).
    mlp_dim: hidden width of each block's MLP.
    dropout: attention dropout.

  Returns:
    A Functional model.
  """
  height, width = input_shape[:2]
  if height % patch_size or width % patch_size or dim % heads:
    raise ValueError(f'vit: input {input_shape[:2]} must be a multiple of '
                     f'patch_size {patch_size}, and dim {dim} of heads '
                     f'{heads}.')
  num_tokens = (height // patch_size) * (width // patch_size)
  add_positions, encoder_block = vit_layers()
  inputs = keras.Input(tuple(input_shape))
  x = keras.layers.Conv2D(dim, patch_size, strides=patch_size,
                          name='patch_embed')(inputs)
  x = keras.layers.Reshape((num_tokens, dim), name='tokens')(x)
  x = add_positions(num_tokens, dim, name='positions')(x)
  for i in range(depth):
    x = encoder_block(dim, heads, mlp_dim, dropout, name=f'block{i + 1}')(x)
  x = keras.layers.LayerNormalization(epsilon=1e-6, name='norm')(x)
  x = keras.layers.GlobalAveragePooling1D(name='pool')(x)
  logits = keras.layers.Dense(num_classes, name='logits')(x)
  return keras.Model(inputs, logits, name='vit')
