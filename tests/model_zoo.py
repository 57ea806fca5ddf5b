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
"""The three kinds of model the any-model tests use (importable in a fresh
process, so that saved models load with their classes).

* `attention_model`: Functional, with a `MultiHeadAttention` block;
* `SubclassedNet`: a subclassed model holding a custom `Block`;
* `sequence_model`: Functional, with `TimeDistributed`, `Bidirectional`
  and a custom `Block` (two Dense sublayers).

`KERNELS[kind]` lists each one's masked kernels and their sizes.
"""

import tensorflow as tf
import tf_keras as keras

INPUT_SHAPES = {'attention': (8, 6), 'subclassed': (6,), 'sequence': (4, 6)}
NUM_CLASSES = 5

KERNELS = {
    'attention': {'embed': 48, 'mha/query': 64, 'mha/key': 64,
                  'mha/value': 64, 'mha/attention_output': 64, 'head': 40},
    'subclassed': {'stem': 48, 'block/fc1': 128, 'block/fc2': 128,
                   'head': 40},
    'sequence': {'td/proj': 48, 'bi/forward_lstm/kernel': 128,
                 'bi/forward_lstm/recurrent_kernel': 64,
                 'bi/backward_lstm/kernel': 128,
                 'bi/backward_lstm/recurrent_kernel': 64,
                 'block/fc1': 128, 'block/fc2': 128, 'head': 40},
}


@keras.utils.register_keras_serializable(package='rigl_tf_tests')
class Block(keras.layers.Layer):
  """A residual MLP block: norm(x + fc2(relu(fc1(x))))."""

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.fc1 = keras.layers.Dense(2 * units, activation='relu', name='fc1')
    self.fc2 = keras.layers.Dense(units, name='fc2')
    self.norm = keras.layers.LayerNormalization(name='norm')

  def call(self, x):
    return self.norm(x + self.fc2(self.fc1(x)))

  def get_config(self):
    return {**super().get_config(), 'units': self.units}


@keras.utils.register_keras_serializable(package='rigl_tf_tests')
class SubclassedNet(keras.Model):
  """stem Dense, a Block, head Dense."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.stem = keras.layers.Dense(8, activation='relu', name='stem')
    self.block = Block(8, name='block')
    self.head = keras.layers.Dense(NUM_CLASSES, name='head')

  def call(self, x):
    return self.head(self.block(self.stem(x)))

  def get_config(self):
    return {}


class Gated(keras.layers.Layer):
  """A custom layer that owns its kernel: x * (x @ kernel). rigl_tf has no
  rule for it until `register_maskable(Gated, ['kernel'])`."""

  def build(self, input_shape):
    self.kernel = self.add_weight('kernel', (input_shape[-1],) * 2)

  def call(self, x):
    return x * tf.matmul(x, self.kernel)


def attention_model():
  inputs = keras.Input(INPUT_SHAPES['attention'])
  x = keras.layers.Dense(8, name='embed')(inputs)
  attended = keras.layers.MultiHeadAttention(2, 4, name='mha')(x, x)
  x = keras.layers.LayerNormalization(name='norm')(x + attended)
  x = keras.layers.GlobalAveragePooling1D(name='pool')(x)
  return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name='head')(x))


def subclassed_model():
  model = SubclassedNet(name='subclassed')
  model(tf.zeros((1, *INPUT_SHAPES['subclassed'])))
  return model


def sequence_model():
  inputs = keras.Input(INPUT_SHAPES['sequence'])
  x = keras.layers.TimeDistributed(keras.layers.Dense(8, name='proj'),
                                   name='td')(inputs)
  x = keras.layers.Bidirectional(keras.layers.LSTM(4, name='lstm'),
                                 name='bi')(x)
  x = Block(8, name='block')(x)
  return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name='head')(x))


BUILDERS = {'attention': attention_model, 'subclassed': subclassed_model,
            'sequence': sequence_model}


def build(kind, seed=0):
  keras.utils.set_random_seed(seed)
  return BUILDERS[kind]()
