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
"""Tests of the input pipelines on the offline digits data."""

import itertools
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from rigl_tf import data


def _per_example_scale(image, label):
  """`data.scale_image` as a user's map (the per-example path)."""
  return data.scale_image(image, label)


class DefaultPreprocessingTest(tf.test.TestCase):
  """The default pipeline scales whole batches; it must equal per-example."""

  def _batches(self, training, preprocess_fn, count):
    ds = data.get_dataset('digits', 'train' if training else 'eval', 32,
                          training=training, preprocess_fn=preprocess_fn,
                          seed=3)
    return [(x.numpy(), y.numpy()) for x, y in itertools.islice(ds, count)]

  def test_training_batches_equal_the_per_example_pipeline(self):
    fast = self._batches(True, None, 50)  # 50 batches: past one epoch.
    reference = self._batches(True, _per_example_scale, 50)
    for (x, y), (x_ref, y_ref) in zip(fast, reference):
      self.assertEqual(x.dtype, np.float32)
      self.assertAllEqual(y, y_ref)
      self.assertAllEqual(x, x_ref)
    # uint8 pixels over 255: [0, 1], whole multiples of 1/255.
    pixels = np.concatenate([x.ravel() for x, _ in fast])
    self.assertEqual((pixels.min(), pixels.max()), (0.0, 1.0))
    self.assertAllEqual(pixels * 255, np.round(pixels * 255))

  def test_evaluation_batches_equal_the_per_example_pipeline(self):
    fast = self._batches(False, None, 100)
    reference = self._batches(False, _per_example_scale, 100)
    # 360 test images: 11 full batches and the last 8 kept.
    self.assertEqual([len(y) for _, y in fast], [32] * 11 + [8])
    for (x, y), (x_ref, y_ref) in zip(fast, reference, strict=True):
      self.assertAllEqual(y, y_ref)
      self.assertAllEqual(x, x_ref)


class OfflineTest(tf.test.TestCase):
  """A dataset to download on a machine without network fails at once."""

  def test_unreachable_hosts_fail_before_any_download(self):
    attempts, downloads = [], []

    def no_network(address, timeout=None):
      attempts.append((address, timeout))
      raise OSError('Network is unreachable')

    def download(*args, **kwargs):
      downloads.append(args)

    # A stand-in for tfds's own download (a replaced one, as under
    # tfds.testing.mock_data, downloads nothing and is not checked).
    tfds_own = tfds.core.DatasetBuilder.download_and_prepare
    download.__module__ = tfds_own.__module__

    self.enter_context(mock.patch.object(data.socket, 'create_connection',
                                         no_network))
    self.enter_context(mock.patch.object(
        tfds.core.DatasetBuilder, 'download_and_prepare', download))
    with self.assertRaisesRegex(
        data.DatasetUnavailableError,
        r"^Dataset 'mnist' is not prepared in .* and could not be "
        r'downloaded/prepared \(no network: cannot reach '
        r'storage\.googleapis\.com\)\. Pass --data_dir'):
      data.get_builder('mnist', data_dir=self.create_tempdir().full_path)
    # One attempt per host, with a timeout of seconds; no download tried.
    self.assertEqual(attempts, [(('storage.googleapis.com', 443), 3.0)])
    self.assertEqual(downloads, [])


if __name__ == '__main__':
  tf.test.main()
