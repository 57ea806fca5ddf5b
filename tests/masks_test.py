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
import test_util

from rigl_tf import distributions
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import rng as rng_lib
from rigl_tf import topk


def _fmix32(h):
  """MurmurHash3's finaliser on numpy uint32 (independent of masks.py)."""
  h = h ^ (h >> np.uint32(16))
  h = h * np.uint32(0x85ebca6b)
  h = h ^ (h >> np.uint32(13))
  h = h * np.uint32(0xc2b2ae35)
  return h ^ (h >> np.uint32(16))


def _reference_top_n(scores, n, tie_keys):
  """numpy: the n largest (score, tie key) pairs; NaN lowest, ±0 == 0."""
  x = np.asarray(scores, np.float32).ravel()
  x = np.where(np.abs(x) < np.finfo(np.float32).tiny, 0.0, x)  # Denormals.
  is_number = ~np.isnan(x)
  # lexsort sorts by the last key first: numbers above NaN, then by value
  # (where -0.0 == 0.0), then by tie key.
  order = np.lexsort((tie_keys, np.where(is_number, x, 0.0), is_number))
  chosen = np.zeros(x.size, bool)
  chosen[order[x.size - n:]] = True
  return chosen


def _scores(kind, size, rng):
  if kind == 'distinct':
    return rng.normal(size=size)
  if kind == 'all_equal':
    return np.full(size, 0.25)
  if kind == 'few_values':  # Many exact ties, negatives, -0.0 and +0.0.
    return rng.choice([-2.0, -1.0, -0.0, 0.0, 1.0, 3.0], size=size)
  # 'special': -inf, inf, NaN and huge/tiny values among ties.
  return rng.choice([np.nan, -np.inf, np.inf, -3e38, 3e38, -1e-45, 1e-45,
                     0.0, 0.5, 0.5], size=size)


# Traced once per shape for all tests (XLA compiles once per shape).
_PLAIN = tf.function(topk.top_n_mask_random_ties, reduce_retracing=True)
_XLA = tf.function(topk.top_n_mask_random_ties, jit_compile=True,
                   reduce_retracing=True)


class TopNSelectionTest(tf.test.TestCase, parameterized.TestCase):
  """The counting selection behind every mask: exact, keyed, XLA-identical."""

  def setUp(self):
    super().setUp()
    self.plain = _PLAIN
    self.xla = _XLA

  @parameterized.product(
      kind=('distinct', 'all_equal', 'few_values', 'special'),
      dtype=('float32', 'float16', 'float64'))
  def test_exact_count_and_same_as_numpy_reference(self, kind, dtype):
    rng = np.random.RandomState(len(kind))
    for size in (1, 7, 300):
      with np.errstate(over='ignore'):  # 3e38 is inf in float16.
        scores = _scores(kind, size, rng).astype(dtype)
      key = rng_lib.stateless_key(size, 3)
      tie_keys = topk.tie_break_keys(size, key).numpy()
      for n in sorted({0, 1, size // 3, size // 2, size - 1, size}):
        with self.subTest(size=size, n=n):
          mask = self.plain(tf.constant(scores), tf.constant(n), key).numpy()
          self.assertEqual(int(mask.sum()), n)
          # Ranked at float32 precision, as TensorFlow casts (its casts
          # flush float64 denormals to zero).
          as_float32 = tf.cast(scores, tf.float32).numpy()
          self.assertAllEqual(mask > 0,
                              _reference_top_n(as_float32, n, tie_keys))

  def test_same_masks_with_and_without_xla(self):
    rng = np.random.RandomState(0)
    for kind in ('distinct', 'few_values', 'special'):
      scores = tf.constant(_scores(kind, (40, 25), rng), tf.float32)
      for n in (0, 1, 333, 500, 999, 1000):
        key = rng_lib.stateless_key(n, 1, stream=2)
        xla = self.xla(scores, tf.constant(n), key).numpy()
        self.assertEqual(int(xla.sum()), n)
        self.assertAllEqual(xla, self.plain(scores, tf.constant(n), key))

  def test_special_values(self):
    # NaN ranks below -inf; -0.0, +0.0 and denormals are one value.
    scores = tf.constant([np.nan, -np.inf, -1.0, -0.0, 1e-45, 2.0])
    key = rng_lib.stateless_key(0, 0)
    self.assertAllEqual(self.plain(scores, tf.constant(1), key),
                        [0, 0, 0, 0, 0, 1])
    self.assertAllEqual(self.plain(scores, tf.constant(5), key),
                        [0, 1, 1, 1, 1, 1])
    chosen_zero = set()
    for index in range(20):
      mask = self.plain(scores, tf.constant(2), rng_lib.stateless_key(0, index))
      self.assertAllEqual(mask.numpy()[[0, 1, 2, 5]], [0, 0, 0, 1])
      chosen_zero.add(int(np.argmax(mask.numpy()[3:5])))
    self.assertEqual(chosen_zero, {0, 1})  # Either zero, by the key.

  def test_exact_ties_are_chosen_uniformly_by_the_key(self):
    # 8 tied scores between a larger and a smaller one: the larger one is
    # always kept, the tied one that joins it is uniform over keys.
    scores = tf.constant([0.5] * 4 + [2.0] + [0.5] * 4 + [0.0])
    wins = np.zeros(10)
    trials = 400
    for index in range(trials):
      mask = self.plain(scores, tf.constant(2), rng_lib.stateless_key(7, index))
      self.assertEqual(mask[4], 1)
      wins += mask.numpy()
    tied = np.delete(wins, [4, 9])
    self.assertEqual(wins[9], 0)
    expected = trials / 8
    chi_square = float(np.sum((tied - expected)**2 / expected))
    self.assertLess(chi_square, 24.3)  # 7 degrees of freedom, p = 0.001.

  def test_tie_break_keys_are_distinct_and_keyed(self):
    key = tf.constant([12345, 678], tf.int64)
    tie_keys = topk.tie_break_keys(1 << 20, key).numpy()
    self.assertLen(np.unique(tie_keys), 1 << 20)
    other = topk.tie_break_keys(1 << 20, tf.constant([12345, 679], tf.int64))
    self.assertLess(np.mean(tie_keys == other.numpy()), 0.001)
    # The documented scheme, on numpy: fmix(fmix(i xor k1) + k2).
    words = np.array([12345, 678, 0, 0], np.uint32)
    k1 = np.uint32(0x9e3779b9)
    with np.errstate(over='ignore'):
      for word in words:
        k1 = _fmix32(np.uint32(k1 + word))
      k2 = _fmix32(np.uint32(k1 + np.uint32(0x7f4a7c15)))
      index = np.arange(1000, dtype=np.uint32)
      expected = _fmix32(_fmix32(index ^ k1) + k2).view(np.int32)
    self.assertAllEqual(tie_keys[:1000], expected)

  def test_hashed_uniform(self):
    key = rng_lib.stateless_key(1, 2, stream=3)
    noise = topk.hashed_uniform([300, 100], key).numpy()
    self.assertEqual(noise.shape, (300, 100))
    self.assertTrue(np.all((noise >= 0) & (noise < 1)))
    self.assertNear(noise.mean(), 0.5, 0.01)
    self.assertAllEqual(noise, topk.hashed_uniform([300, 100], key))
    self.assertNotAllEqual(
        noise,
        topk.hashed_uniform([300, 100], rng_lib.stateless_key(1, 2, stream=4)))


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
      return topk.top_n_mask(scores, n)

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
      return topk.top_n_mask_random_ties(scores, n, key)

    patterns = set()
    for index in range(10):
      key = rng_lib.stateless_key(4, index)
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
