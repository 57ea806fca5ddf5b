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
"""ImageNet preprocessing: the standard ResNet pipeline, at any image size.

Training: a random crop covering 8% to 100% of the image's area with an
aspect ratio in [3/4, 4/3] (Inception-style "random-resized crop"), resized
to `image_size` x `image_size`, then a random left-right flip. Evaluation:
resize so that the shorter side is `image_size * 256 / 224` (256 for 224),
then take the central `image_size` x `image_size` crop. Both normalise each
channel with the ImageNet mean and standard deviation, as RigL's ImageNet
code does. Images of any size and aspect ratio are accepted.

Random choices are stateless, keyed by the per-example seed that
`rigl_tf.data.get_dataset` passes: the same seed gives the same batches.
"""

import gin
import tensorflow as tf

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# Evaluation resizes the shorter side to this multiple of the crop.
EVAL_RESIZE_RATIO = 256 / 224


def _normalize(image):
  image = tf.cast(image, tf.float32)
  return (image - MEAN_RGB) / STDDEV_RGB


@gin.configurable
def imagenet_train_preprocess(image, label, seed, image_size=224,
                              area_range=(0.08, 1.0),
                              aspect_ratio_range=(3 / 4, 4 / 3)):
  """Random-resized crop to `image_size`, random flip, normalise.

  Args:
    image: uint8 [height, width, 3] image of any size.
    label: its label.
    seed: int [2] stateless seed of this example.
    image_size: side of the square output.
    area_range: fraction of the image's area the crop covers.
    aspect_ratio_range: width / height of the crop.

  Returns:
    (float32 [image_size, image_size, 3] image, label).
  """
  box_seed, flip_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
      seed=box_seed, min_object_covered=0.1,
      aspect_ratio_range=aspect_ratio_range, area_range=area_range,
      max_attempts=10, use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, size)
  crop = tf.image.resize(crop, [image_size, image_size], method='bilinear')
  crop = tf.image.stateless_random_flip_left_right(crop, seed=flip_seed)
  crop = tf.ensure_shape(crop, [image_size, image_size, 3])
  return _normalize(crop), label


@gin.configurable
def imagenet_eval_preprocess(image, label, image_size=224):
  """Resize the shorter side to image_size * 256/224, centre crop, normalise.

  Args:
    image: uint8 [height, width, 3] image of any size.
    label: its label.
    image_size: side of the square output.

  Returns:
    (float32 [image_size, image_size, 3] image, label).
  """
  resize = round(image_size * EVAL_RESIZE_RATIO)
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = resize / tf.reduce_min(shape)
  new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32),
                         image_size)
  image = tf.image.resize(image, new_shape, method='bilinear')
  top = (new_shape[0] - image_size) // 2
  left = (new_shape[1] - image_size) // 2
  image = image[top:top + image_size, left:left + image_size]
  image = tf.ensure_shape(image, [image_size, image_size, 3])
  return _normalize(image), label
