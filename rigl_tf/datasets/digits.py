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
"""`digits`: the UCI handwritten digits as a tfds dataset, offline.

1,797 grayscale 8x8 images of the digits 0-9, from scikit-learn's bundled
copy (no download). Pixel values 0..16 are scaled to 0..255. The split is
fixed: a permutation with seed 0, the first 360 images are `test`, the
other 1,437 `train`.
"""

import numpy as np
import tensorflow_datasets as tfds

NUM_TEST = 360


def _split_indices():
  order = np.random.RandomState(0).permutation(1797)
  return {'test': np.sort(order[:NUM_TEST]), 'train': np.sort(order[NUM_TEST:])}


class Digits(tfds.core.GeneratorBasedBuilder):
  """UCI ML hand-written digits (8x8), from scikit-learn, offline."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Fixed 1437/360 train/test split, seed 0.'}

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description='UCI ML hand-written digits, 8x8 grayscale, 10 classes.',
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(8, 8, 1)),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://archive.ics.uci.edu/dataset/80',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    indices = _split_indices()
    return {
        split: self._generate_examples(idx) for split, idx in indices.items()
    }

  def _generate_examples(self, indices):
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
    digits = datasets.load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    for i in indices:
      yield int(i), {
          'image': images[i][:, :, None],
          'label': int(digits.target[i]),
      }
