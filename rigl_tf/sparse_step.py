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
"""The step of `SparseOptimizer`, for both Keras flavours.

`rigl_tf.optimizers` wraps a tf_keras or a Keras 3 optimizer; the two
wrapper classes differ only in their base class, the all-reduce and how
they call the wrapped optimizer on all-reduced gradients. Everything else
(masking the gradients, the one condition on the update schedule, the mask
update, fresh slots) is `SparseStep`, here. See `rigl_tf.optimizers` for
the order of the step.
"""

from absl import logging
import tensorflow as tf

from rigl_tf import compat
from rigl_tf import flavours
from rigl_tf import layers as masked_layers
from rigl_tf import slots
from rigl_tf.methods import static


class _UnwrapPreventer:
  """Hides mirrored variables from the strategy's per-replica unwrapping.

  The wrapped optimizer expects the mirrored variables themselves, also when
  called through `call_for_each_replica` (same trick as LossScaleOptimizer).
  """

  def __init__(self, value):
    self.value = value


class SparseStep:
  """The step of a SparseOptimizer of either Keras flavour (see the module
  docstring). The flavour's class adds the base class, the all-reduce and
  the call of the wrapped optimizer on all-reduced gradients."""

  def _init_sparse(self, optimizer, model, updater):
    if isinstance(optimizer, SparseStep):
      raise TypeError('SparseOptimizer cannot wrap another SparseOptimizer.')
    if isinstance(optimizer, compat.LOSS_SCALE_OPTIMIZERS):
      raise TypeError(
          'SparseOptimizer cannot wrap a LossScaleOptimizer; nest them the '
          'other way: LossScaleOptimizer(SparseOptimizer(inner, model)), or '
          'use rigl_tf.optimizers.sparse_optimizer(inner, model, updater).')
    slots.slot_lists(optimizer)  # An optimizer with unknown slots fails here.
    self._set_untracked('_optimizer', optimizer)
    self._set_untracked('_model', model)
    self._set_untracked(
        '_updater', updater if updater is not None else static.Static())
    self._set_untracked('_masked_weights', None)
    # False while a step that takes no mask update is traced (see
    # `mask_updates_off`): the step is then the static one, with no
    # condition on the update schedule.
    self._set_untracked('_traces_mask_updates', True)
    # Lets the masked layers check, when trained, that they are managed.
    if isinstance(model, (list, tuple)):
      managed = [mw.layer for mw in model]
    else:
      managed = masked_layers.get_masked_layers(model)
    for layer in managed:
      if flavours.of(layer) != flavours.of(optimizer):
        raise TypeError(
            f'The model is {flavours.of(layer)} and the optimizer '
            f'{flavours.of(optimizer)}: build both with one Keras (tf_keras: '
            '`import tf_keras as keras`; Keras 3: `import keras`).')
    for layer in managed:
      layer.managed_by_sparse_optimizer = True

  inner_optimizer = property(lambda self: self._optimizer,
                             doc='The wrapped optimizer.')
  updater = property(lambda self: self._updater,
                     doc='The method (a `MaskUpdater`) that changes masks.')

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
      self._set_untracked('_masked_weights', weights)

  def _build_sparse(self, var_list):
    """Creates the wrapped optimizer's slots and the method's state.

    The first step does it; a resumed run calls it before restoring, so that
    the checkpoint finds every variable it holds.
    """
    self._ensure_masked_weights()
    return self._optimizer.build(var_list)

  def finalize_variable_values(self, var_list):
    """The wrapped optimizer's, then the masks again.

    With `use_ema=True`, `model.fit` ends by writing each variable's moving
    average into it; the average of a weight dropped during training is not
    zero, so the masks are applied again afterwards.

    Args:
      var_list: the model's trainable variables.
    """
    self._optimizer.finalize_variable_values(var_list)
    if self._masked_weights is not None:
      for mw in self._masked_weights:
        mw.weight.assign(mw.weight * tf.cast(mw.mask, mw.weight.dtype),
                         read_value=False)

  def _sparse_config(self, keras_module):
    return {
        'inner_optimizer': keras_module.optimizers.serialize(self._optimizer),
        'method': getattr(self._updater, 'method_name',
                          type(self._updater).__name__),
    }

  @staticmethod
  def _inner_from_config(keras_module, config, custom_objects):
    logging.warning(
        'Loaded a SparseOptimizer (method %r) as its wrapped optimizer: the '
        'masks are restored with the model, but to keep masked weights at '
        'zero and update the masks, recompile with '
        'rigl_tf.optimizers.SparseOptimizer(inner, model, updater).',
        config.get('method'))
    return keras_module.optimizers.deserialize(
        config['inner_optimizer'], custom_objects=custom_objects)

  def _sparse_apply(self, grads_and_vars, aggregate):
    """Masked `apply_gradients`, in replica context.

    Args:
      grads_and_vars: list of (gradient, variable).
      aggregate: whether to all-reduce the gradients first.
    """
    if tf.distribute.in_cross_replica_context():
      raise ValueError(
          'SparseOptimizer.apply_gradients() must be called in a replica '
          'context (inside strategy.run or a Keras train step).')
    self._ensure_masked_weights()
    grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
    if not grads_and_vars:
      return
    with tf.init_scope():
      self.build([v for _, v in grads_and_vars])
    if aggregate:
      grads_and_vars = self._all_reduce(grads_and_vars)

    def key(variable):
      return compat.var_key(self._optimizer, variable)

    grad_by_key = {key(v): g for g, v in grads_and_vars}
    mask_by_key = {key(mw.weight): mw.mask for mw in self._masked_weights}
    # Dense gradients of the masked weights, for gradient-based growth (a
    # weight without a gradient has a zero one; built only for those).
    dense_grads = [
        grad_by_key[key(mw.weight)] if key(mw.weight) in grad_by_key
        else tf.zeros_like(mw.weight) for mw in self._masked_weights
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

  def _cross_replica_apply(self, strategy, grads, wrapped_vars, dense_grads):
    """Steps 3-5 of the module docstring, in cross-replica context."""
    # The step being taken: read before the weight update increments it.
    step = tf.identity(self._optimizer.iterations)
    if self._traces_mask_updates:
      is_update = self._updater.is_update_step(step)
    else:
      is_update = False
    # Per-step updater state (SNFS's gradient EMA), before any mask update.
    self._updater.on_step(strategy, self._masked_weights, dense_grads, step)
    # Decided when tracing: most optimizers need no re-masking at all.
    remasked = [
        mw for mw in self._masked_weights
        if slots.needs_remasking(self._optimizer, mw.layer_variable)
    ]

    def apply_weights():
      with self._reduced_gradients_context():
        strategy.extended.call_for_each_replica(
            self._apply_inner, args=(grads, wrapped_vars))
      for mw in remasked:
        strategy.extended.update(
            mw.weight, _multiply_by_mask, args=(mw.mask,), group=False)

    def update_step():
      if self._updater.skip_weight_update_on_mask_update:
        # apply_gradients() increments the step; do it here instead.
        self._optimizer.iterations.assign_add(1)
      else:
        apply_weights()
      self._updater.update_masks(strategy, self._masked_weights, dense_grads,
                                 step, self._optimizer)
      if not self._updater.update_leaves_masked_state:
        self._zero_masked_state(strategy)

    # One condition: a step without a mask update runs the static step.
    compat.smart_cond(is_update, update_step, apply_weights)

  def _zero_masked_state(self, strategy):
    """After a mask update: masked weights 0, their slots fresh.

    What every step without a mask update preserves (see
    `slots.needs_remasking`). The drop/grow engine leaves this state
    already; an updater that only zeroes the weights it prunes (TFMOT's GMP)
    or zeroes slots whose fresh value is not 0 (SNIP with Adagrad) would
    leave masked weights free to move. Runs on mask-update steps only.

    Args:
      strategy: the current `tf.distribute.Strategy` (cross-replica context).
    """
    for mw in self._masked_weights:
      slot_variables, fresh = slots.get_slot_resets(self._optimizer,
                                                    mw.weight)
      strategy.extended.update(
          mw.weight, _zero_masked, args=(mw.mask, slot_variables, fresh),
          group=False)


def _zero_masked(weight, mask, slot_variables, fresh):
  """Zeroes masked entries of `weight`, sets those of its slots to `fresh`."""
  _multiply_by_mask(weight, mask)
  for slot, value in zip(slot_variables, fresh):
    slot.assign(slots.fresh_where_dropped(slot, mask, value),
                read_value=False)


def _multiply_by_mask(weight, mask):
  return weight.assign(weight * tf.cast(mask, weight.dtype), read_value=False)
