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
"""Tests for rigl_tf.masks: exact counts, determinism, magnitude masks."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from rigl_tf import distributions
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import test_util


class MasksTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters((10, 0), (10, 10), (1000, 1), (4608, 461),
                            (777, 500))
  def test_random_mask_exact_count(self, size, n_ones):
    mask = masks.random_mask((size,), n_ones, seed=3, index=7).numpy()
    self.assertEqual(int(mask.sum()), n_ones)
    self.assertTrue(np.all((mask == 0) | (mask == 1)))

  def test_random_mask_is_keyed_by_seed_and_index(self):
    a = masks.random_mask((30, 20), 60, seed=1, index=0).numpy()
    self.assertAllEqual(a, masks.random_mask((30, 20), 60, 1, 0).numpy())
    self.assertNotAllEqual(a, masks.random_mask((30, 20), 60, 1, 1).numpy())
    self.assertNotAllEqual(a, masks.random_mask((30, 20), 60, 2, 0).numpy())

  def test_top_n_mask_dynamic_count_under_xla(self):
    scores = tf.constant([[0.5, 3.0, -1.0], [2.0, 2.0, 0.0]])

    @tf.function(jit_compile=True)
    def fn(n):
      return masks.top_n_mask(scores, n)

    self.assertAllEqual(fn(tf.constant(2)), [[0, 1, 0], [1, 0, 0]])
    # Ties go to the lower flat index (stable sort).
    self.assertAllEqual(fn(tf.constant(3)), [[0, 1, 0], [1, 1, 0]])
    self.assertAllEqual(fn(tf.constant(0)), [[0, 0, 0], [0, 0, 0]])

  def test_magnitude_mask_keeps_largest(self):
    w = tf.constant([0.1, -5.0, 0.3, 2.0, -0.2])
    self.assertAllEqual(masks.magnitude_mask(w, 2, 0, 0), [0, 1, 0, 1, 0])

  def test_magnitude_mask_breaks_ties_at_random(self):
    tied = tf.constant([0.5] * 8)
    results = set()
    for seed, index in [(s, i) for s in range(2) for i in range(5)]:
      mask = masks.magnitude_mask(tied, 2, seed, index).numpy()
      self.assertEqual(int(mask.sum()), 2)
      # The same key gives the same mask.
      self.assertAllEqual(
          mask, masks.magnitude_mask(tied, 2, seed, index).numpy())
      results.add(tuple(mask.tolist()))
    # Not always the lowest indices, as with noise below float32 precision.
    self.assertGreater(len(results), 1)

  def test_top_n_mask_random_ties_any_shape_under_xla(self):
    scores = tf.constant([[1.0, 1.0, 3.0], [1.0, 0.0, 1.0]])

    @tf.function(jit_compile=True)
    def fn(n, key):
      return masks.top_n_mask_random_ties(scores, n, key)

    patterns = set()
    for index in range(10):
      key = masks.stateless_key(4, index)
      mask = fn(tf.constant(3), key).numpy()
      self.assertEqual(mask.shape, (2, 3))
      # The 3.0 is always kept; two of the four tied 1.0s join it.
      self.assertEqual(mask[0, 2], 1)
      self.assertEqual(mask[1, 1], 0)
      self.assertEqual(int(mask.sum()), 3)
      self.assertAllEqual(mask, fn(tf.constant(3), key))
      patterns.add(tuple(mask.ravel().tolist()))
    self.assertGreater(len(patterns), 1)

  def test_magnitude_mask_under_xla(self):
    fn = tf.function(masks.magnitude_mask, jit_compile=True)
    w = tf.constant([[0.1, -5.0], [0.3, 2.0]])
    self.assertAllEqual(fn(w, tf.constant(2), 0, 0), [[0, 1], [0, 1]])
    self.assertEqual(
        int(tf.reduce_sum(fn(tf.fill([4, 4], 0.5), tf.constant(5), 1, 2))), 5)

  @parameterized.parameters('random', 'magnitude')
  def test_init_masks_counts_and_zeros(self, method):
    model = layers.sparsify(test_util.small_mlp(hidden=(40, 20)))
    sparsities = masks.get_layer_sparsities(model, 0.9, 'erk')
    counts = masks.init_masks(model, sparsities, seed=5, method=method)
    for mw in layers.get_masked_weights(model):
      expected = mw.size - distributions.num_zeros(sparsities[mw.name],
                                                   mw.size)
      self.assertEqual(counts[mw.name], expected)
      self.assertEqual(int(tf.math.count_nonzero(mw.mask)), expected)
      # The weights under the mask are zero; the others are untouched.
      self.assertEqual(int(tf.math.count_nonzero(mw.weight)), expected)
    self.assertEqual(layers.check_invariant(model), [])

  def test_init_masks_same_on_every_replica(self):
    strategy = test_util.two_replica_strategy()
    with strategy.scope():
      model = layers.sparsify(test_util.small_mlp())
      masks.init_masks(model, 0.8, seed=11)
    reference = layers.sparsify(test_util.small_mlp())
    masks.init_masks(reference, 0.8, seed=11)
    for mw, ref in zip(layers.get_masked_weights(model),
                       layers.get_masked_weights(reference)):
      replicas = test_util.local_values(mw.mask, strategy)
      self.assertLen(replicas, 2)
      self.assertAllEqual(replicas[0], replicas[1])
      self.assertAllEqual(replicas[0], ref.mask.numpy())

  def test_bad_init(self):
    model = layers.sparsify(test_util.small_mlp())
    with self.assertRaisesRegex(ValueError, 'Unknown mask init'):
      masks.init_masks(model, 0.5, method='snip-ish')
    with self.assertRaisesRegex(ValueError, 'No sparsity given'):
      masks.init_masks(model, {'fc1': 0.5})


if __name__ == '__main__':
  tf.test.main()
