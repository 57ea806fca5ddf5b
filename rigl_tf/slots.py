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
"""Optimizer slots of masked weights: where they are and their fresh values.

A masked weight's optimizer slots (momentum, Adam's m and v, ...) must hold
a fresh slot's value while the weight is masked, so that the weight stays
exactly 0 and a regrown weight starts as a new one would. This module knows,
for every supported optimizer of either Keras flavour, which slots a weight has
(`get_slot_resets`), what a fresh slot holds, and whether the optimizer's
update can move a masked weight off 0 (`needs_remasking`). It also holds the
two elementwise rules every mask update applies: a slot reset where a weight
was dropped or grown (`fresh_where_dropped`), and the OR into the "ever
active" masks (`ever_or`).
"""

import tensorflow as tf

from rigl_tf import compat
from rigl_tf import flavours


def ever_or(ever, mask):
  """The "ever active" 0/1 values OR the 0/1 `mask` (in `ever`'s dtype)."""
  return tf.maximum(ever, tf.cast(mask, ever.dtype))


def fresh_where_dropped(slot, keep, fresh):
  """`slot` where `keep` is 1, a fresh slot's value `fresh` where it is 0."""
  keep = tf.cast(keep, slot.dtype)
  return slot * keep + fresh * (1 - keep)


# Why each optimizer of `compat.SLOT_LISTS` (the tf_keras and the Keras 3
# class of each name: their update rules are the same) leaves a masked
# weight at exactly 0
# without re-masking. Before a step, a masked weight is 0 (the initial masks
# zero it; `update_masks` zeroes dropped weights) and its slots hold their
# fresh value (0, or Adagrad's / Ftrl's initial accumulator): slots of
# masked weights only ever see masked (zero) gradients, and `update_masks`
# resets the slots of dropped and grown positions. With g = 0, w = 0 and
# fresh slots, each update rule below gives 0 (or -0.0, which `== 0`), in any
# float dtype, with and without the options named. Decoupled weight decay
# (`weight_decay=` of every tf_keras optimizer, AdamW's, Lion's) is
# w -= lr * wd * w: 0 stays 0. Clipping (clipnorm, clipvalue,
# global_clipnorm) scales or clips the zero gradient: 0. A non-finite value
# (e.g. eps = 0 giving 0 / 0) is no case for re-masking either: NaN * 0 is
# NaN. `MaskedWeightsStayZeroTest` (tests/optimizers_test.py) trains every
# entry, with its options and with drop/grow updates, without re-masking.
_KEEPS_MASKED_WEIGHTS_AT_ZERO_BY_NAME = {
    'SGD':
        'm = momentum * 0 - lr * 0 = 0; w += m (nesterov: w += -lr * 0 + '
        'momentum * m): 0',
    'Adam':
        'm = v = 0 (amsgrad: v_hat = max(0, 0) = 0); w -= alpha * 0 / '
        '(sqrt(0) + eps): 0',
    'AdamW':
        'as Adam; the decay w -= lr * wd * w keeps 0',
    'Nadam':
        'm = v = 0; m_hat = u * 0 / (1 - p) + (1 - u) * 0 / (1 - p) = 0; '
        'w -= lr * 0 / (sqrt(0) + eps): 0',
    'Adamax':
        'm = 0, u = max(beta_2 * 0, |0|) = 0; w -= lr * 0 / (c * (0 + eps)): 0',
    'RMSprop':
        'v = 0 (centered: average 0, denominator eps); increment = lr * 0 * '
        'rsqrt(eps) = 0; momentum = momentum * 0 + 0: 0',
    'Adagrad':
        'accumulator = a0 + 0; w -= lr * 0 / sqrt(a0 + eps): 0',
    'Adadelta':
        'accumulated grad = 0; delta = -sqrt(0 + eps) * 0 / sqrt(0 + eps) = '
        '0; accumulated delta = 0; w += lr * 0: 0',
    'Ftrl':
        'w is recomputed from the linear slot: linear += (0 + 2 * l2_shrinkage '
        '* 0) - 0 * 0 = 0, so w = (clip(0, -l1, l1) - 0) / quadratic = 0, for '
        'any l1, l2, l2_shrinkage, beta',
    'Lion':
        'w -= lr * sign(beta_1 * 0 + (1 - beta_1) * 0) = lr * sign(0) = 0; '
        'm = 0',
}
_KEEPS_MASKED_WEIGHTS_AT_ZERO = {
    cls: _KEEPS_MASKED_WEIGHTS_AT_ZERO_BY_NAME[path.split('.')[-1]]
    for cls, path in flavours.class_pairs(
        [f'optimizers.{n}' for n in _KEEPS_MASKED_WEIGHTS_AT_ZERO_BY_NAME])
}


def needs_remasking(optimizer, variable):
  """Whether `variable` must be multiplied by its mask after each step.

  Not for the optimizers of `_KEEPS_MASKED_WEIGHTS_AT_ZERO` (whose update of
  a masked weight is exactly 0, see there), except where a step writes the
  weight otherwise:

  * `use_ema=True` with `ema_overwrite_frequency`: every so many steps the
    weights are overwritten with their moving averages, and the average of
    a weight dropped by a mask update is not 0;
  * a weight with a `constraint`, which the optimizer applies after the
    update (an arbitrary function of the weight);
  * a subclass of a known optimizer: it may change the update rule.

  Args:
    optimizer: a Keras optimizer (either flavour), or a wrapper with
      `inner_optimizer`.
    variable: a masked weight (the layer's variable: a Keras 3 weight's
      constraint is on it, not on the TensorFlow variable behind it).

  Returns:
    bool, decided when the train step is traced.
  """
  optimizer = unwrap(optimizer)
  if type(optimizer) not in _KEEPS_MASKED_WEIGHTS_AT_ZERO:
    return True
  if optimizer.use_ema and optimizer.ema_overwrite_frequency:
    return True
  return getattr(variable, 'constraint', None) is not None


def unwrap(optimizer):
  """The innermost optimizer of a wrapper stack, which keeps the slots.

  `SparseOptimizer` and `LossScaleOptimizer` keep the slots in their inner
  one (`inner_optimizer`).
  """
  while hasattr(optimizer, 'inner_optimizer'):
    optimizer = optimizer.inner_optimizer
  return optimizer


def slot_lists(optimizer):
  """{slot list attribute: fresh slot value} of a Keras optimizer.

  Args:
    optimizer: a Keras optimizer (either flavour), or a wrapper with
      `inner_optimizer`.

  Returns:
    dict attribute name -> float.

  Raises:
    ValueError: for an optimizer whose slots are not known: resetting the
      slots of grown weights would silently fail.
  """
  optimizer = unwrap(optimizer)
  for cls in type(optimizer).__mro__:
    if cls in compat.SLOT_LISTS:
      return compat.SLOT_LISTS[cls](optimizer)
  known = ', '.join(sorted({c.__name__ for c in compat.SLOT_LISTS}))
  raise ValueError(
      f'SparseOptimizer does not know where {type(optimizer).__name__} keeps '
      'its per-weight state (momentum, ...), which must be reset for grown '
      f'weights. Use one of the Keras optimizers {known} (or a subclass).')


def get_slot_resets(optimizer, variable):
  """(slot variables of `variable`, the fresh value of each).

  Args:
    optimizer: a Keras optimizer (either flavour; or `SparseOptimizer`).
    variable: a model variable the optimizer has built slots for.

  Returns:
    (list of variables shaped like `variable`, list of floats), aligned.

  Raises:
    ValueError: for an optimizer whose slots are not known.
  """
  optimizer = unwrap(optimizer)
  fresh = slot_lists(optimizer)
  index = compat.slot_index(optimizer, variable)
  if index is None:
    return [], []
  slots, values = [], []
  for name, value in fresh.items():
    # Optional slots (amsgrad, centered, momentum) are absent or empty.
    slot_list = compat.slot_list(optimizer, name)
    if slot_list:
      slots.append(compat.tf_variable(slot_list[index]))
      values.append(value)
  return slots, values


def get_slot_variables(optimizer, variable):
  """The wrapped optimizer's slot variables (momentum, m, v, ...) of `variable`.

  Args:
    optimizer: a Keras optimizer (either flavour; or `SparseOptimizer`).
    variable: a model variable the optimizer has built slots for.

  Returns:
    A list of variables shaped like `variable`, possibly empty.

  Raises:
    ValueError: for an optimizer whose slots are not known.
  """
  return get_slot_resets(optimizer, variable)[0]
