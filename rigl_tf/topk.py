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
"""Exact-count selection: the n largest scores, with no sort.

The selections of every method (drop, grow, pruning, SNIP, initial masks)
pick exactly n positions. A threshold is found by bisection with counting
(`top_n_by_keys`), over int32 keys that order like the float32 scores
(`order_keys`); exact ties are broken by a keyed bijective order of positions
(`tie_break_keys`). Integer arithmetic only and static shapes: the same
positions with and without XLA, on every replica and worker, and the count
may be a tensor (TPU).
"""

import tensorflow as tf

_INT32_MIN = -2**31
_INT32_MAX = 2**31 - 1
_SMALLEST_NORMAL_FLOAT32 = 1.1754944e-38


def order_keys(scores):
  """int32 keys that order like the float32 `scores` (flattened).

  A non-negative float32's bit pattern orders like the float as a signed
  integer; a negative one orders backwards, so its 31 low bits are flipped.
  -0.0, +0.0 and the denormals all get the key of 0: TensorFlow's CPU
  kernels may flush denormals to zero and XLA's may not, so they count as
  zero for both. NaN gets the smallest int32, which no number maps to: NaN
  ranks below -inf, so it is chosen last. Other dtypes are ranked at float32
  precision.

  Args:
    scores: float tensor of any shape.

  Returns:
    int32 tensor [size].
  """
  x = tf.reshape(tf.cast(scores, tf.float32), [-1])
  tiny = tf.abs(x) < _SMALLEST_NORMAL_FLOAT32  # Zeros and denormals.
  x = tf.where(tiny, tf.zeros_like(x), x)
  bits = tf.bitcast(x, tf.int32)
  keys = tf.where(bits < 0, tf.bitwise.bitwise_xor(bits, _INT32_MAX), bits)
  return tf.where(tf.math.is_nan(x), tf.fill(tf.shape(keys), _INT32_MIN),
                  keys)


def _fmix32(h):
  """MurmurHash3's 32-bit finaliser: a bijection of uint32 that mixes bits."""

  def shift_xor(h, bits):
    return tf.bitwise.bitwise_xor(
        h, tf.bitwise.right_shift(h, tf.constant(bits, tf.uint32)))

  h = shift_xor(h, 16) * tf.constant(0x85ebca6b, tf.uint32)
  h = shift_xor(h, 13) * tf.constant(0xc2b2ae35, tf.uint32)
  return shift_xor(h, 16)


def tie_break_keys(size, key):
  """A keyed pseudo-random order of `size` positions: distinct int32 keys.

  Position i gets fmix(fmix(i xor k1) + k2), with k1, k2 mixed from the
  four 32-bit words of `key` and fmix MurmurHash3's finaliser. Each step is
  a bijection of 32-bit integers, so no two positions get the same key:
  ranking by (score, tie key) has no ties left. Integer arithmetic only,
  hence the same keys on every device, with and without XLA.

  Args:
    size: int scalar (< 2**31), number of positions.
    key: int64 [2] (e.g. from `rng.stateless_key`).

  Returns:
    int32 tensor [size].
  """
  key = tf.cast(key, tf.int64)
  low = tf.bitwise.bitwise_and(key, 0xffffffff)
  high = tf.bitwise.bitwise_and(tf.bitwise.right_shift(key, 32), 0xffffffff)
  words = tf.cast(tf.concat([low, high], 0), tf.uint32)
  k1 = tf.constant(0x9e3779b9, tf.uint32)
  for i in range(4):
    k1 = _fmix32(k1 + words[i])
  k2 = _fmix32(k1 + tf.constant(0x7f4a7c15, tf.uint32))
  index = tf.cast(tf.range(size, dtype=tf.int32), tf.uint32)
  mixed = _fmix32(_fmix32(tf.bitwise.bitwise_xor(index, k1)) + k2)
  return tf.bitcast(mixed, tf.int32)


def hashed_uniform(shape, key):
  """Stateless uniform [0, 1) floats keyed by `key`, from `tie_break_keys`.

  The top 24 bits of each position's tie-break key. Integer arithmetic:
  the same values with and without XLA, and cheap under XLA on CPU, where
  XLA's `tf.random.stateless_uniform` is a few hundred times slower (see
  `benchmarks/update_cost.py`). Used as SET's random grow score.

  Args:
    shape: output shape.
    key: int64 [2].

  Returns:
    float32 tensor of `shape`.
  """
  size = tf.reduce_prod(shape)
  bits = tf.bitcast(tie_break_keys(size, key), tf.uint32)
  top = tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)),
                tf.float32)
  return tf.reshape(top * (1.0 / (1 << 24)), shape)


def _count_search(keys, n, count_all, within=None):
  """Bisection per row of `keys` (in `within`) for a threshold of n of them.

  Per row, keeps lo < hi (int64) with c(lo) >= n > c(hi), c(t) the number of
  the row's keys (in `within`) >= t, halving [lo, hi) by counting until
  c(lo) = n, when the keys >= lo are exactly the n largest, or hi = lo + 1,
  when lo is the n-th largest key and c(lo) - c(hi) > 1 keys tie there. A
  row that has found its threshold stops moving; the passes (at most 32,
  typically 15-25) go on until every row has. The result does not depend on
  the path: either way the n largest are the keys > lo, plus n - c(hi) of
  those equal to lo (none when c(lo) = n).

  Args:
    keys: int32 [rows, size].
    n: int32 [rows], 0 < n <= count_all (n <= 0: the row takes no pass).
    count_all: int32 [rows], c(INT32_MIN): the size, or the count `within`.
    within: optional bool [rows, size], the keys taking part.

  Returns:
    (lo, c_lo, hi, c_hi): int64 [rows] thresholds and int32 [rows] counts.
  """

  def count(threshold):
    hit = keys >= tf.cast(threshold, tf.int32)[:, None]
    if within is not None:
      hit = tf.logical_and(hit, within)
    return tf.reduce_sum(tf.cast(hit, tf.int32), axis=-1)

  def searching(lo, c_lo, hi):
    return tf.logical_and(tf.logical_and(c_lo != n, hi - lo > 1), n > 0)

  def body(lo, c_lo, hi, c_hi):
    moving = searching(lo, c_lo, hi)
    mid = lo + (hi - lo) // 2
    c_mid = count(mid)
    up = tf.logical_and(moving, c_mid >= n)
    down = tf.logical_and(moving, c_mid < n)
    return (tf.where(up, mid, lo), tf.where(up, c_mid, c_lo),
            tf.where(down, mid, hi), tf.where(down, c_mid, c_hi))

  def not_found(lo, c_lo, hi, c_hi):
    del c_hi
    return tf.reduce_any(searching(lo, c_lo, hi))

  rows = tf.shape(keys)[0]
  return tf.while_loop(
      not_found, body,
      (tf.fill([rows], tf.constant(_INT32_MIN, tf.int64)),
       tf.cast(count_all, tf.int32),
       tf.fill([rows], tf.constant(_INT32_MAX + 1, tf.int64)),
       tf.zeros([rows], tf.int32)),
      maximum_iterations=32)


def top_n_rows_by_keys(keys, tie_keys, n_ones):
  """Bool mask of the `n_ones[r]` largest (keys, tie_keys) pairs of row r.

  The pairs of a row are distinct (`tie_keys` are), so each row's chosen
  set is exactly defined and has exactly `n_ones[r]` members. Found by
  bisection with counting instead of a sort (`_count_search`): a threshold
  on the keys and, in the rows where some of the positions tied at the n-th
  largest key must be left out, a second one on their tie keys. Shapes stay
  static and the counts may be tensors (XLA/TPU); integer arithmetic only,
  so the result is the same with and without XLA. Every row is ranked on
  its own: the selection of structured masks (one row per output unit, or
  per group of M inputs).

  Args:
    keys: int32 [rows, size] (e.g. `order_keys`).
    tie_keys: int32 [rows, size], distinct within a row.
    n_ones: int [rows], or a scalar for every row (Python or tensor);
      clipped to [0, size].

  Returns:
    bool tensor [rows, size].
  """
  rows, size = tf.shape(keys)[0], tf.shape(keys)[1]
  n = tf.clip_by_value(
      tf.broadcast_to(tf.cast(n_ones, tf.int32), [rows]), 0, size)
  lo, c_lo, _, c_hi = _count_search(keys, n, tf.fill([rows], size))
  lo = tf.cast(lo, tf.int32)[:, None]
  # Where c(lo) > n, lo is the n-th largest key and n - c(hi) of the keys
  # equal to it win, by their tie keys (distinct: that search always ends
  # exact); a row with c(lo) = n searches nothing.
  exact = tf.equal(c_lo, n)
  tied = tf.logical_and(tf.equal(keys, lo), tf.logical_not(exact)[:, None])
  tie_lo, _, _, _ = _count_search(
      tie_keys, tf.where(exact, 0, n - c_hi), c_lo - c_hi, tied)
  wins_tie = tf.logical_or(
      exact[:, None], tie_keys >= tf.cast(tie_lo, tf.int32)[:, None])
  chosen = tf.logical_or(
      keys > lo, tf.logical_and(tf.equal(keys, lo), wins_tie))
  return tf.logical_and(chosen, (n > 0)[:, None])


def top_n_by_keys(keys, tie_keys, n_ones):
  """Flat bool mask of the `n_ones` largest (keys, tie_keys) pairs.

  `top_n_rows_by_keys` with one row: exactly `n_ones` members, no sort,
  static shapes, `n_ones` may be a tensor.

  Args:
    keys: int32 [size] (e.g. `order_keys`).
    tie_keys: int32 [size], distinct (e.g. `tie_break_keys`).
    n_ones: scalar int (Python or tensor); clipped to [0, size].

  Returns:
    bool tensor [size].
  """
  return top_n_rows_by_keys(keys[None], tie_keys[None], n_ones)[0]


def top_n_mask(scores, n_ones):
  """A 0/1 mask (shape of `scores`) with ones at the `n_ones` largest scores.

  Ties go to the lower flat index. See `top_n_by_keys`: no sort, `n_ones`
  may be a tensor and the shapes stay static (XLA/TPU).

  Args:
    scores: float tensor.
    n_ones: scalar int (Python or tensor), 0 <= n_ones <= size.

  Returns:
    float32 tensor of the same shape as `scores`.
  """
  keys = order_keys(scores)
  lower_index_first = -tf.range(tf.size(keys), dtype=tf.int32)
  chosen = top_n_by_keys(keys, lower_index_first, n_ones)
  return tf.reshape(tf.cast(chosen, tf.float32), tf.shape(scores))


def top_n_rows_random_ties(scores, n_ones, key):
  """Per row of `scores` [rows, size], a 0/1 mask of its n largest scores.

  Exact ties are broken as in `top_n_mask_random_ties`, by the keyed
  pseudo-random order `tie_break_keys(rows * size, key)` of the flat
  positions: with one row, the same selection as `top_n_mask_random_ties`.

  Args:
    scores: float tensor [rows, size].
    n_ones: int [rows], or a scalar for every row; 0 <= n_ones <= size.
    key: int64 [2] (e.g. from `rng.stateless_key`).

  Returns:
    float32 tensor [rows, size].
  """
  shape = tf.shape(scores)
  keys = tf.reshape(order_keys(scores), shape)
  ties = tf.reshape(tie_break_keys(tf.size(scores), key), shape)
  return tf.cast(top_n_rows_by_keys(keys, ties, n_ones), tf.float32)


def top_n_mask_random_ties(scores, n_ones, key):
  """`top_n_mask`, with exact ties broken in a keyed pseudo-random order.

  Among equal scores, the positions with the larger `tie_break_keys(size,
  key)` win: a pseudo-random order of positions, the same on every replica
  and worker for the same key. No noise is added to the scores: noise small
  enough not to reorder distinct float32 scores is lost to rounding, so it
  could not break ties either. NaN ranks lowest; -0.0, +0.0 and denormals
  are one value (see `order_keys`).

  Args:
    scores: float tensor of any shape.
    n_ones: scalar int (Python or tensor), 0 <= n_ones <= size.
    key: int64 [2] (e.g. from `rng.stateless_key`).

  Returns:
    float32 tensor of the same shape as `scores`.
  """
  flat = tf.reshape(scores, [1, -1])
  return tf.reshape(top_n_rows_random_ties(flat, n_ones, key),
                    tf.shape(scores))


# A global ranking runs over all layers at once (25.5 M scores for ResNet-50),
# compiled with XLA even where the step is not: XLA fuses each counting pass
# into one loop, a few times faster on CPU than TensorFlow's kernels.
_top_n_mask_random_ties_xla = tf.function(
    top_n_mask_random_ties, jit_compile=True, reduce_retracing=True)


def global_top_n_counts(scores, n_ones, key):
  """How many of the `n_ones` largest scores over all tensors each one holds.

  Global selection (GMP/GraNet's global magnitude pruning, global SNIP):
  the tensors are ranked together, exact ties broken at random by `key`;
  a layer then keeps its own top count, which selects the same scores.

  Args:
    scores: list of float tensors (any shapes).
    n_ones: scalar int, 0 <= n_ones <= total size.
    key: int64 [2] stateless RNG key.

  Returns:
    int32 [len(scores)] counts summing to `n_ones`.
  """
  flat = [tf.reshape(tf.cast(s, tf.float32), [-1]) for s in scores]
  chosen = _top_n_mask_random_ties_xla(
      tf.concat(flat, 0), tf.cast(n_ones, tf.int32), key)
  sizes = [int(f.shape.num_elements()) for f in flat]
  return tf.stack([
      tf.cast(tf.reduce_sum(part), tf.int32)
      for part in tf.split(chosen, sizes)
  ])
