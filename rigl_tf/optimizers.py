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
"""`SparseOptimizer`: wraps any tf_keras optimizer to train masked models.

Each step it

1. all-reduces the dense gradients (once, as the wrapped optimizer would),
2. multiplies the gradients of masked weights by their masks, so the wrapped
   optimizer's slots (momentum, Adam m and v) of masked weights stay zero,
3. applies the wrapped optimizer, unless the updater asks to skip the weight
   update on a mask-update step (RigL),
4. re-applies every mask to its weight, so `weight * (1 - mask) == 0` holds
   exactly after every step, and
5. on the steps its `MaskUpdater` names, lets the updater change the masks
   from the all-reduced dense gradients.

Steps 3-5 run in cross-replica context (a `merge_call`, as
`LossScaleOptimizer` does): masks are mirrored variables written with
`strategy.extended.update`, and the update-step condition is a `cond` there,
since a replica-context `cond` may not contain the wrapped optimizer's
`merge_call`.

Usage, with `model.fit` or a custom loop:

  model = rigl_tf.layers.sparsify(model)
  ...init masks...
  optimizer = SparseOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), model)
  model.compile(optimizer=optimizer, loss=...)
"""

from absl import logging
import tensorflow as tf
import tf_keras as keras

from rigl_tf import layers as masked_layers
from rigl_tf import updaters as updaters_lib


class _UnwrapPreventer:
  """Hides mirrored variables from the strategy's per-replica unwrapping.

  The wrapped optimizer expects the mirrored variables themselves, also when
  called through `call_for_each_replica` (same trick as LossScaleOptimizer).
  """

  def __init__(self, value):
    self.value = value


@keras.utils.register_keras_serializable(package='rigl_tf')
class SparseOptimizer(tf.__internal__.tracking.DelegatingTrackableMixin,
                      keras.optimizers.Optimizer):
  """Keeps masked weights at zero and runs a `MaskUpdater`.

  Checkpoints like the wrapped optimizer (its slots and iterations); the
  updater's state is tracked under the wrapped optimizer as `mask_updater`.

  `model.save('m.keras')` works: the config holds the wrapped optimizer and
  the updater's method name. The link to the model cannot be serialised, so
  loading gives back the wrapped optimizer (see `from_config`).
  """

  @tf.__internal__.tracking.no_automatic_dependency_tracking
  def __init__(self, optimizer, model, updater=None):
    """Wraps `optimizer`.

    Args:
      optimizer: a tf_keras (non-legacy) optimizer instance.
      model: the model (or list of `MaskedWeight`) whose masks to keep.
      updater: a `MaskUpdater`; default: static masks.

    Raises:
      TypeError: if `optimizer` is not a tf_keras optimizer.
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
      raise TypeError(
          'SparseOptimizer wraps a tf_keras optimizer (import tf_keras as '
          f'keras; keras.optimizers.SGD, Adam, ...), got {optimizer!r}.')
    if isinstance(optimizer, SparseOptimizer):
      raise TypeError('SparseOptimizer cannot wrap another SparseOptimizer.')
    self._optimizer = optimizer
    self._model = model
    self._updater = updater if updater is not None else (
        updaters_lib.MaskUpdater())
    self._masked_weights = None
    # Not calling Optimizer.__init__: state and checkpoints are delegated.
    tf.__internal__.tracking.DelegatingTrackableMixin.__init__(
        self, self._optimizer)
    self._track_trackable(self._updater, 'mask_updater')

  @property
  def inner_optimizer(self):
    return self._optimizer

  @property
  def updater(self):
    return self._updater

  @property
  def masked_weights(self):
    """The `MaskedWeight`s this optimizer manages (after the first step)."""
    self._ensure_masked_weights()
    return self._masked_weights

  def _ensure_masked_weights(self):
    if self._masked_weights is None:
      with tf.init_scope():
        weights = masked_layers.get_masked_weights(self._model)
        self._updater.build(weights)
      # Assigned after the build so a failed build is retried, not cached.
      self._set_masked_weights(weights)

  @tf.__internal__.tracking.no_automatic_dependency_tracking
  def _set_masked_weights(self, weights):
    self._masked_weights = weights

  # Delegated optimizer state.
  @property
  def iterations(self):
    return self._optimizer.iterations

  @iterations.setter
  def iterations(self, variable):
    self._optimizer.iterations = variable

  @property
  def variables(self):
    return self._optimizer.variables

  def build(self, var_list):
    return self._optimizer.build(var_list)

  @property
  def learning_rate(self):
    return self._optimizer.learning_rate

  @learning_rate.setter
  def learning_rate(self, learning_rate):
    self._optimizer.learning_rate = learning_rate

  @property
  def use_ema(self):
    return self._optimizer.use_ema

  @use_ema.setter
  def use_ema(self, use_ema):
    self._optimizer.use_ema = use_ema

  def finalize_variable_values(self, var_list):
    return self._optimizer.finalize_variable_values(var_list)

  def compute_gradients(self, loss, var_list, tape=None):
    return self._optimizer.compute_gradients(loss, var_list, tape=tape)

  def get_config(self):
    """The serialised wrapped optimizer and the updater's method name."""
    return {
        'inner_optimizer': keras.optimizers.serialize(self._optimizer),
        'method': getattr(self._updater, 'method_name',
                          type(self._updater).__name__),
    }

  @classmethod
  def from_config(cls, config, custom_objects=None):
    """Returns the deserialised *wrapped* optimizer, not a SparseOptimizer.

    A SparseOptimizer refers to the model it trains, which its config cannot
    hold. The masks are restored with the model's weights; for mask updates
    (and for keeping masked weights at zero), wrap the returned optimizer
    again: `SparseOptimizer(inner, model, updater)`.

    Args:
      config: the output of `get_config`.
      custom_objects: passed to `keras.optimizers.deserialize`.

    Returns:
      The wrapped tf_keras optimizer.
    """
    logging.warning(
        'Loaded a SparseOptimizer (method %r) as its wrapped optimizer: the '
        'masks are restored with the model, but to keep masked weights at '
        'zero and update the masks, recompile with '
        'rigl_tf.optimizers.SparseOptimizer(inner, model, updater).',
        config.get('method'))
    return keras.optimizers.deserialize(
        config['inner_optimizer'], custom_objects=custom_objects)

  def apply_gradients(self, grads_and_vars, skip_gradients_aggregation=False,
                      **kwargs):
    """Masked `apply_gradients`; call it in replica context.

    Args:
      grads_and_vars: list of (gradient, variable).
      skip_gradients_aggregation: the gradients are already all-reduced.
      **kwargs: `experimental_aggregate_gradients`, for compatibility.

    Returns:
      None.
    """
    if tf.distribute.in_cross_replica_context():
      raise ValueError(
          'SparseOptimizer.apply_gradients() must be called in a replica '
          'context (inside strategy.run or a Keras train step).')
    self._ensure_masked_weights()
    grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
    if not grads_and_vars:
      return None
    with tf.init_scope():
      self.build([v for _, v in grads_and_vars])
    if (not skip_gradients_aggregation
        and kwargs.pop('experimental_aggregate_gradients', True)):
      grads_and_vars = self._optimizer.aggregate_gradients(grads_and_vars)

    key = self._optimizer._var_key  # pylint: disable=protected-access
    grad_by_key = {key(v): g for g, v in grads_and_vars}
    mask_by_key = {key(mw.weight): mw.mask for mw in self._masked_weights}
    # Dense gradients of the masked weights, for gradient-based growth.
    dense_grads = [
        grad_by_key.get(key(mw.weight), tf.zeros_like(mw.weight))
        for mw in self._masked_weights
    ]
    masked_grads = []
    for grad, var in grads_and_vars:
      mask = mask_by_key.get(key(var))
      if mask is not None:
        grad = grad * tf.cast(mask, grad.dtype)
      masked_grads.append(grad)
    wrapped_vars = _UnwrapPreventer([v for _, v in grads_and_vars])
    tf.distribute.get_replica_context().merge_call(
        self._cross_replica_apply,
        args=(masked_grads, wrapped_vars, dense_grads))
    return None

  def _apply_inner(self, grads, wrapped_vars):
    self._optimizer.apply_gradients(
        list(zip(grads, wrapped_vars.value)), skip_gradients_aggregation=True)

  def _cross_replica_apply(self, strategy, grads, wrapped_vars, dense_grads):
    """Steps 3-5 of the module docstring, in cross-replica context."""
    step = tf.identity(self._optimizer.iterations)
    is_update = self._updater.is_update_step(step)
    # Per-step updater state (SNFS's gradient EMA), before any mask update.
    self._updater.on_step(strategy, self._masked_weights, dense_grads, step)

    def apply_weights():
      strategy.extended.call_for_each_replica(
          self._apply_inner, args=(grads, wrapped_vars))

    def skip_weights():
      # apply_gradients() increments the step; do it here instead.
      self._optimizer.iterations.assign_add(1, read_value=False)

    if self._updater.skip_weight_update_on_mask_update:
      tf.__internal__.smart_cond.smart_cond(is_update, skip_weights,
                                            apply_weights)
    else:
      apply_weights()

    for mw in self._masked_weights:
      strategy.extended.update(
          mw.weight, _multiply_by_mask, args=(mw.mask,), group=False)

    def update_masks():
      self._updater.update_masks(strategy, self._masked_weights, dense_grads,
                                 step, self._optimizer)

    tf.__internal__.smart_cond.smart_cond(is_update, update_masks,
                                          lambda: None)


def _multiply_by_mask(weight, mask):
  return weight.assign(weight * tf.cast(mask, weight.dtype), read_value=False)


# Lists of the tf_keras optimizer base class that are not slot lists.
_NON_SLOT_LISTS = frozenset({
    '_variables',
    '_trainable_variables',
    '_model_variables_moving_average',  # EMA copies (use_ema=True).
    '_exclude_from_weight_decay',  # Variable keys.
    '_exclude_from_weight_decay_names',  # Strings.
})


def get_slot_variables(optimizer, variable):
  """The wrapped optimizer's slot variables (momentum, m, v, ...) of `variable`.

  Handles the tf_keras optimizers (slots in lists indexed through
  `_index_dict`) and legacy ones (`get_slot`).

  Args:
    optimizer: a tf_keras optimizer (or `SparseOptimizer`).
    variable: a model variable the optimizer has built slots for.

  Returns:
    A list of variables shaped like `variable`, possibly empty.
  """
  if isinstance(optimizer, SparseOptimizer):
    optimizer = optimizer.inner_optimizer
  if hasattr(optimizer, 'get_slot_names'):  # Legacy optimizers.
    return [optimizer.get_slot(variable, n) for n in optimizer.get_slot_names()]
  index_dict = getattr(optimizer, '_index_dict', None)
  if not index_dict:
    return []
  # pylint: disable-next=protected-access
  index = index_dict.get(optimizer._var_key(variable))
  if index is None:
    return []
  slots = []
  # Every list attribute holding one variable per built model variable is a
  # slot list (SGD: momentums; Adam: _momentums, _velocities; ...), except
  # the base class's own lists: all variables, and the EMA copies of the
  # model variables (use_ema=True), which are not slots.
  for name, value in sorted(vars(optimizer).items()):
    if name in _NON_SLOT_LISTS:
      continue
    if (isinstance(value, list) and len(value) == len(index_dict)
        and value and all(isinstance(v, tf.Variable) for v in value)):
      slot = value[index]
      if slot.shape == variable.shape:
        slots.append(slot)
  return slots
