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
"""CIFAR-10/100 preprocessing as in RigL's CIFAR code.

Every image is standardised on its own (`tf.image.per_image_standardization`:
zero mean, unit variance per image). Training then mirror-pads 4 pixels on
every side, as RigL's `pad_input` does (the mirrored strip includes the edge
pixel: `tf.pad` mode SYMMETRIC), takes a random 32x32 crop and flips left to
right with probability 1/2. Evaluation only standardises.

Random choices are stateless, keyed by the per-example seed that
`rigl_tf.data.get_dataset` passes: the same seed gives the same batches.
"""

import gin
import tensorflow as tf

PAD = 4


def _standardize(image):
  return tf.image.per_image_standardization(tf.cast(image, tf.float32))


@gin.configurable
def cifar_train_preprocess(image, label, seed):
  """Standardise, mirror-pad 4, random crop to the input size, random flip.

  Args:
    image: uint8 [height, width, 3] image.
    label: its label.
    seed: int [2] stateless seed of this example.

  Returns:
    (float32 [height, width, 3] image, label).
  """
  height, width, channels = image.shape
  image = _standardize(image)
  image = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]], mode='SYMMETRIC')
  crop_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  image = tf.image.stateless_random_crop(
      image, [height, width, channels], seed=crop_seed)
  image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
  return image, label


@gin.configurable
def cifar_eval_preprocess(image, label):
  """Standardise only: (float32 image, label)."""
  return _standardize(image), label
