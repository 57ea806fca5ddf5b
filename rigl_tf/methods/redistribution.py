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
"""Sparsity redistribution: integer budgets shared between layers.

SNFS's and GraNet's growth redistribution (`calc_growth_redistribution`)
shares the weights to grow between layers in proportion to a per-layer
statistic, exactly and within every layer's capacity.
"""

import tensorflow as tf

from rigl_tf import topk


def redistribute_counts(scores, total, capacities):
  """Integer budgets proportional to `scores`, summing to `total` exactly.

  Sparsity redistribution of SNFS / GraNet (`calc_growth_redistribution`):
  the `total` weights to grow are shared between layers in proportion to a
  per-layer statistic, no layer above its capacity; what a full layer cannot
  take goes to the others in proportion to their statistics (water-filling).
  The real shares are rounded down, and the remainder goes to the largest
  fractional parts, so that the sum is `total` exactly. Layers whose scores
  are all zero (or NaN) share in proportion to their capacities.

  Args:
    scores: float [L], non-negative statistics.
    total: int scalar, 0 <= total <= sum(capacities).
    capacities: int [L], the most each layer may receive.

  Returns:
    int64 [L] budgets.
  """
  scores = tf.cast(scores, tf.float32)
  scores = tf.where(scores > 0, scores, 0.0)  # Also maps NaN to 0.
  caps = tf.cast(capacities, tf.int64)
  caps_f = tf.cast(caps, tf.float32)
  total = tf.cast(total, tf.int64)
  total_f = tf.cast(total, tf.float32)

  def shares(capped):
    free = tf.logical_not(capped)
    budget = total_f - tf.reduce_sum(tf.where(capped, caps_f, 0.0))
    weights = tf.where(free, scores, 0.0)
    weights = tf.where(
        tf.reduce_sum(weights) > 0, weights, tf.where(free, caps_f, 0.0))
    denom = tf.maximum(tf.reduce_sum(weights), 1e-30)
    return tf.where(capped, caps_f, budget * weights / denom)

  # Each pass caps at least one more layer, or changes nothing.
  capped = tf.while_loop(
      lambda capped: tf.constant(True),
      lambda capped: (tf.logical_or(capped, shares(capped) > caps_f),),
      (tf.zeros_like(scores, dtype=tf.bool),),
      maximum_iterations=tf.size(scores))[0]
  real = shares(capped)
  counts = tf.clip_by_value(
      tf.cast(tf.floor(real), tf.int64), tf.zeros_like(caps), caps)

  def fix(counts):
    rest = total - tf.reduce_sum(counts)
    add = rest > 0
    eligible = tf.where(add, counts < caps, counts > 0)
    fraction = real - tf.cast(counts, tf.float32)
    priority = tf.where(eligible, tf.where(add, fraction, -fraction),
                        -float('inf'))
    n = tf.minimum(tf.abs(rest),
                   tf.math.count_nonzero(eligible, dtype=tf.int64))
    pick = tf.cast(topk.top_n_mask(priority, n), tf.int64)
    return (counts + tf.sign(rest) * pick,)

  # Float rounding leaves a remainder of at most a few units per layer.
  return tf.while_loop(
      lambda counts: tf.not_equal(tf.reduce_sum(counts), total), fix,
      (counts,), maximum_iterations=4 * tf.size(scores) + 8)[0]
