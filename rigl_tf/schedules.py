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
"""Schedules of dynamic sparse training: when masks change, and how much.

* `is_update_step`: masks change at step t when begin <= t <= end (end < 0:
  never stop) and (t - begin) is a multiple of the update frequency ΔT. With
  updates only at such steps this is RigL's "t - last_update >= ΔT".
* The drop fraction α_t, annealed from α:
  `constant` α;
  `cosine` α/2 (1 + cos(π min(t, end - begin) / (end - begin))), with t the
  global step, as google-research/rigl (`cosine_decay(α, global_step,
  end - begin)`), hence identical to measuring t from begin when begin = 0;
  `exponential_k` α (1 - (t - begin) / (end - begin))^k ('exponential' is
  k = 1), the progress clipped to [0, 1].

Every function takes Python numbers (and returns Python values) or tensors
(and returns tensors, built from tf ops that trace under `tf.function` and
XLA). With end < 0 there is no horizon to anneal over: the annealed
fractions stay at α (the limit of both formulas as end grows).
"""

import math
import re

import gin
import tensorflow as tf

from rigl_tf import distributions

ANNEALS = ('constant', 'cosine', 'exponential')

_EXPONENTIAL = re.compile(r'^exponential(?:_(\d+(?:\.\d*)?|\.\d+))?$')


def _any_tensor(*values):
  # Python numbers first: tf.is_tensor is a slow protocol check, and the
  # trainer asks for the schedule of every step in Python.
  return any(
      not isinstance(v, (int, float))
      and (tf.is_tensor(v) or isinstance(v, tf.Variable)) for v in values)


def is_update_step(step, begin_step=0, end_step=-1, update_frequency=100):
  """Whether the masks change at `step`.

  Args:
    step: the step being taken (the optimizer's iterations before it); a
      Python int or an integer scalar tensor.
    begin_step: first step that may update the masks.
    end_step: last step that may update the masks; < 0: no last step.
    update_frequency: ΔT, steps between two updates (>= 1).

  Returns:
    A Python bool, or a scalar bool tensor when any argument is a tensor.

  Raises:
    ValueError: if `update_frequency` is a Python number below 1.
  """
  if not _any_tensor(update_frequency) and update_frequency < 1:
    raise ValueError(
        f'update_frequency must be >= 1, got {update_frequency}.')
  if not _any_tensor(step, begin_step, end_step, update_frequency):
    in_range = step >= begin_step and (end_step < 0 or step <= end_step)
    return in_range and (step - begin_step) % update_frequency == 0
  step = tf.cast(step, tf.int64)
  begin_step = tf.cast(begin_step, tf.int64)
  end_step = tf.cast(end_step, tf.int64)
  update_frequency = tf.cast(update_frequency, tf.int64)
  in_range = tf.logical_and(
      step >= begin_step, tf.logical_or(end_step < 0, step <= end_step))
  on_period = tf.equal(
      tf.math.floormod(step - begin_step, update_frequency), 0)
  return tf.logical_and(in_range, on_period)


@gin.configurable
def constant_drop_fraction(step, drop_fraction, begin_step=0, end_step=-1):
  """α at every step."""
  del begin_step, end_step
  if _any_tensor(step, drop_fraction):
    return tf.cast(drop_fraction, tf.float32)
  return float(drop_fraction)


@gin.configurable
def cosine_drop_fraction(step, drop_fraction, begin_step=0, end_step=-1):
  """α/2 (1 + cos(π min(t, end - begin) / (end - begin))), t the global step.

  As google-research/rigl, which decays with `cosine_decay(α, global_step,
  end_step - begin_step)`: t is the global step, not the steps since
  `begin_step` (the two agree for the usual begin_step = 0).

  Args:
    step: the global step t (Python number or tensor).
    drop_fraction: α, the initial fraction.
    begin_step: first mask-update step.
    end_step: last mask-update step; < 0 (no horizon): the fraction stays α.

  Returns:
    α_t, a Python float or a float32 scalar tensor.
  """
  if not _any_tensor(step, drop_fraction, begin_step, end_step):
    if end_step < 0:
      return float(drop_fraction)
    decay_steps = max(end_step - begin_step, 1)
    progress = min(max(step, 0), decay_steps) / decay_steps
    return 0.5 * drop_fraction * (1.0 + math.cos(math.pi * progress))
  step = tf.cast(step, tf.float32)
  drop_fraction = tf.cast(drop_fraction, tf.float32)
  end_step = tf.cast(end_step, tf.float32)
  decay_steps = tf.maximum(end_step - tf.cast(begin_step, tf.float32), 1.0)
  progress = tf.clip_by_value(step, 0.0, decay_steps) / decay_steps
  annealed = 0.5 * drop_fraction * (1.0 + tf.cos(math.pi * progress))
  return tf.where(end_step < 0, drop_fraction, annealed)


@gin.configurable
def exponential_drop_fraction(step, drop_fraction, begin_step=0, end_step=-1,
                              exponent=1.0):
  """α (1 - (t - begin) / (end - begin))^k, progress clipped to [0, 1].

  Args:
    step: the global step t (Python number or tensor).
    drop_fraction: α, the initial fraction.
    begin_step: first mask-update step.
    end_step: last mask-update step; < 0 (no horizon): the fraction stays α.
    exponent: k.

  Returns:
    α_t, a Python float or a float32 scalar tensor.
  """
  if not _any_tensor(step, drop_fraction, begin_step, end_step, exponent):
    if end_step < 0:
      return float(drop_fraction)
    decay_steps = max(end_step - begin_step, 1)
    progress = min(max(step - begin_step, 0), decay_steps) / decay_steps
    return drop_fraction * (1.0 - progress)**exponent
  step = tf.cast(step, tf.float32)
  drop_fraction = tf.cast(drop_fraction, tf.float32)
  begin_step = tf.cast(begin_step, tf.float32)
  end_step = tf.cast(end_step, tf.float32)
  decay_steps = tf.maximum(end_step - begin_step, 1.0)
  progress = tf.clip_by_value(step - begin_step, 0.0, decay_steps) / (
      decay_steps)
  annealed = drop_fraction * tf.pow(1.0 - progress,
                                    tf.cast(exponent, tf.float32))
  return tf.where(end_step < 0, drop_fraction, annealed)


def parse_anneal(anneal):
  """Splits an anneal name into (kind, exponent).

  Args:
    anneal: 'constant', 'cosine', 'exponential' or 'exponential_<k>'
      (e.g. 'exponential_3'; k may be fractional).

  Returns:
    (kind, exponent): kind in `ANNEALS`; exponent is k (1.0 otherwise).

  Raises:
    ValueError: for an unknown name.
  """
  if anneal in ('constant', 'cosine'):
    return anneal, 1.0
  match = _EXPONENTIAL.match(anneal) if isinstance(anneal, str) else None
  if match:
    return 'exponential', float(match.group(1) or 1.0)
  raise ValueError(
      f'Unknown drop_fraction_anneal {anneal!r}; choose constant, cosine, '
      'exponential or exponential_<k> (e.g. exponential_3).')


@gin.configurable
def drop_fraction_at(step, drop_fraction, anneal='constant', begin_step=0,
                     end_step=-1):
  """α_t for an anneal name (see `parse_anneal`).

  Args:
    step: the global step t (Python number or tensor).
    drop_fraction: α.
    anneal: 'constant', 'cosine' or 'exponential[_<k>]'.
    begin_step: first mask-update step.
    end_step: last mask-update step (< 0: none).

  Returns:
    α_t, a Python float or a float32 scalar tensor.
  """
  kind, exponent = parse_anneal(anneal)
  if kind == 'exponential':
    return exponential_drop_fraction(step, drop_fraction, begin_step,
                                     end_step, exponent)
  return _ANNEAL_FNS[kind](step, drop_fraction, begin_step, end_step)


_ANNEAL_FNS = {
    'constant': constant_drop_fraction,
    'cosine': cosine_drop_fraction,
}


# ---------------------------------------------------------------------------
# Gradual pruning (GMP, GraNet).


def cubic_sparsity(step, initial_sparsity, final_sparsity, begin_step,
                   end_step, update_frequency):
  """Sparsity of Zhu & Gupta's cubic schedule at `step` (Python numbers).

  s_t = s_f + (s_i - s_f) (1 - (t_k - t_0) / (t_end - t_0))^3, where t_k is
  the last pruning step t_0 + k ΔT <= t (the schedule changes only when the
  masks do), s_i before t_0 and s_f from t_end on. In densities d = 1 - s
  this is d_t = d_f + (d_i - d_f) (1 - progress)^3.

  Args:
    step: the global step t.
    initial_sparsity: s_i (0 for dense-to-sparse).
    final_sparsity: s_f.
    begin_step: t_0, the first pruning step.
    end_step: t_end > t_0, the step that reaches s_f.
    update_frequency: ΔT >= 1.

  Returns:
    s_t, a Python float.
  """
  check_gradual_steps(begin_step, end_step, update_frequency)
  if step < begin_step:
    return float(initial_sparsity)
  last = begin_step + (step - begin_step) // update_frequency * (
      update_frequency)
  progress = min((last - begin_step) / (end_step - begin_step), 1.0)
  return final_sparsity + (initial_sparsity - final_sparsity) * (
      1.0 - progress)**3


def check_gradual_steps(begin_step, end_step, update_frequency):
  """Raises ValueError unless 0 <= begin_step < end_step, ΔT >= 1."""
  if update_frequency < 1:
    raise ValueError(
        f'update_frequency must be >= 1, got {update_frequency}.')
  if not 0 <= begin_step < end_step:
    raise ValueError(
        'The gradual pruning steps need 0 <= begin_step < final_prune_step, '
        f'got {begin_step} and {end_step}.')


def num_pruning_updates(begin_step, end_step, update_frequency):
  """K: pruning happens at t_0 + k ΔT, k = 0..K; t_0 + K ΔT >= t_end."""
  check_gradual_steps(begin_step, end_step, update_frequency)
  return -(-(end_step - begin_step) // update_frequency)


def cubic_counts(size, initial_ones, final_ones, begin_step, end_step,
                 update_frequency):
  """Active counts of a layer (or pool of layers) at every pruning update.

  Entry k is the number of ones after the update at t_0 + k ΔT:
  size - floor(s_k · size), with s_k the cubic sparsity between
  s_i = 1 - initial_ones / size and s_f = 1 - final_ones / size, never above
  the previous count; the last entry (reached at t_end) is `final_ones`
  exactly, so a run ends with the floor counts of its final sparsity.

  Args:
    size: number of weights n.
    initial_ones: active weights before pruning.
    final_ones: active weights from t_end on (<= initial_ones).
    begin_step: t_0.
    end_step: t_end.
    update_frequency: ΔT.

  Returns:
    list of K + 1 ints (see `num_pruning_updates`).
  """
  num = num_pruning_updates(begin_step, end_step, update_frequency)
  s_i = 1.0 - initial_ones / size
  s_f = 1.0 - final_ones / size
  counts = []
  for k in range(num + 1):
    sparsity = cubic_sparsity(begin_step + k * update_frequency, s_i, s_f,
                              begin_step, end_step, update_frequency)
    ones = distributions.num_ones(sparsity, size)
    counts.append(max(min(ones, initial_ones), final_ones))
  counts[-1] = final_ones
  return counts


def regrowth_fraction_at(step, prune_rate, train_steps, minimum=0.005):
  """GraNet's neuroregeneration fraction r_t: cosine from `prune_rate`.

  r_t = r_min + (r_0 - r_min) (1 + cos(π min(t, T) / T)) / 2, over the
  whole training T = `train_steps` (GraNet's `CosineDecay(prune_rate,
  steps_per_epoch * epochs)`, eta_min 0.005).

  Args:
    step: the global step t (Python number or tensor).
    prune_rate: r_0.
    train_steps: T (> 0).
    minimum: r_min.

  Returns:
    r_t, a Python float or a float32 scalar tensor.
  """
  if not _any_tensor(step):
    progress = min(max(step, 0), train_steps) / train_steps
    return minimum + (prune_rate - minimum) * 0.5 * (
        1.0 + math.cos(math.pi * progress))
  progress = tf.clip_by_value(
      tf.cast(step, tf.float32), 0.0, float(train_steps)) / float(train_steps)
  return minimum + (prune_rate - minimum) * 0.5 * (
      1.0 + tf.cos(math.pi * progress))
