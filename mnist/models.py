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
"""MNIST-sized models: LeNet-300-100 (RigL's MNIST model) and LeNet-5.

Both take any small grayscale input (28x28 MNIST, 8x8 digits) and return
logits.
"""

import gin
import tf_keras as keras

from rigl_tf import regularizers


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
    A tf_keras Sequential model with layers fc1, fc2, logits.
  """
  regularizer = regularizers.weight_decay_l2(l2)
  model = keras.Sequential(name='lenet_300_100')
  model.add(keras.layers.Flatten(input_shape=tuple(input_shape)))
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
    A tf_keras Sequential model.
  """
  padding = 'valid' if min(input_shape[:2]) >= 28 else 'same'
  return keras.Sequential([
      keras.layers.Conv2D(6, 5, padding='same', activation='relu',
                          name='conv1', input_shape=tuple(input_shape)),
      keras.layers.MaxPooling2D(2, name='pool1'),
      keras.layers.Conv2D(16, 5, padding=padding, activation='relu',
                          name='conv2'),
      keras.layers.MaxPooling2D(2, name='pool2'),
      keras.layers.Flatten(),
      keras.layers.Dense(120, activation='relu', name='fc1'),
      keras.layers.Dense(84, activation='relu', name='fc2'),
      keras.layers.Dense(num_classes, name='logits'),
  ], name='lenet5')
