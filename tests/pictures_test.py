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
"""Tests of the curves figure and of the connectivity counts (hand-made)."""

import warnings

import numpy as np
import tensorflow as tf

from rigl_tf import pictures


class CurvesFigureTest(tf.test.TestCase):

  def _history(self, num_layers):
    history = {'itop_rate': ([0, 10], [0.1, 0.2])}
    for i in range(num_layers):
      history[f'density/layer{i}'] = ([0, 10], [0.1, 0.1])
      history[f'itop/layer{i}'] = ([0, 10], [0.1, 0.2])
    return history

  def test_few_layers_get_a_legend(self):
    density_ax, itop_ax = pictures.curves_figure(self._history(3)).axes
    self.assertEqual(
        [t.get_text() for t in density_ax.get_legend().get_texts()],
        ['layer0', 'layer1', 'layer2'])
    self.assertLen(itop_ax.get_legend().get_texts(), 4)  # overall + 3.

  def test_many_layers_draw_without_a_legend_or_warning(self):
    # 54 legend entries made tight_layout fail with a UserWarning.
    with warnings.catch_warnings():
      warnings.simplefilter('error')
      density_ax, itop_ax = pictures.curves_figure(self._history(54)).axes
    self.assertIsNone(density_ax.get_legend())
    self.assertIsNone(itop_ax.get_legend())
    self.assertEqual(density_ax.get_title(), 'density per layer (54 lines)')
    self.assertLen(itop_ax.lines, 55)


class ConnectivityCountsTest(tf.test.TestCase):

  def test_dense_kernel_counts_per_pixel_over_channels_and_units(self):
    # A 2x2 image with 2 channels, flattened in (h, w, c) order: 8 inputs,
    # 3 output units.
    mask = np.zeros((8, 3))
    mask[0, :] = 1        # pixel (0, 0), channel 0: 3 connections
    mask[1, 2] = 1        # pixel (0, 0), channel 1: 1 more
    mask[3, 0:2] = 1      # pixel (0, 1), channel 1: 2
    mask[6, 1] = 1        # pixel (1, 1), channel 0: 1
    counts, dense_count = pictures.connectivity_counts(mask, (2, 2, 2))
    self.assertAllEqual(counts, [[4, 2], [0, 1]])
    self.assertEqual(dense_count, 6)

  def test_conv_kernel_counts_per_tap(self):
    mask = np.zeros((3, 3, 2, 4))
    mask[0, 2, 1, :] = 1     # tap (0, 2): 4
    mask[1, 1, :, 0] = 1     # tap (1, 1): 2
    counts, dense_count = pictures.connectivity_counts(mask, (8, 8, 2))
    expected = np.zeros((3, 3))
    expected[0, 2], expected[1, 1] = 4, 2
    self.assertAllEqual(counts, expected)
    self.assertEqual(dense_count, 8)

  def test_other_kernels_are_refused(self):
    with self.assertRaisesRegex(ValueError, 'neither'):
      pictures.connectivity_counts(np.ones((10, 3)), (2, 2, 1))

  def test_uint8_scale_rounds_half_up_against_the_largest_count(self):
    self.assertAllEqual(pictures.counts_to_uint8([[0, 1, 2, 3]]),
                        [[0, 85, 170, 255]])
    # 255 * 1 / 2 = 127.5 rounds up; an all-zero picture stays black.
    self.assertAllEqual(pictures.counts_to_uint8([1, 2]), [128, 255])
    self.assertAllEqual(pictures.counts_to_uint8([0, 0]), [0, 0])


if __name__ == '__main__':
  tf.test.main()
