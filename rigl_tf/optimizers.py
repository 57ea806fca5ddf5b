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
"""`SparseOptimizer`: wraps any Keras optimizer to train masked models.

It wraps a tf_keras optimizer (`SparseOptimizer`) or a Keras 3 one
(`Keras3SparseOptimizer`, which `SparseOptimizer(...)` makes of one); the
step both run is `rigl_tf.sparse_step.SparseStep`.

Each step it

1. all-reduces the dense gradients (once, as the wrapped optimizer would),
2. multiplies the gradients of masked weights by their masks, so the wrapped
   optimizer's slots (momentum, Adam m and v) of masked weights stay zero,
3. applies the wrapped optimizer, unless the updater asks to skip the weight
   update on a mask-update step (RigL),
4. re-applies the mask to the weights whose update could move a masked weight
   off zero (`needs_remasking`: optimizers that overwrite weights with their
   moving average, constrained weights, unknown subclasses); for the others
   the masked gradient and the fresh slots keep masked weights at exactly
   zero, so `weight * (1 - mask) == 0` holds after every step either way, and
5. on the steps its `MaskUpdater` names, lets the updater change the masks
   from the all-reduced dense gradients.

Steps 3-5 run in cross-replica context (a `merge_call`, as
`LossScaleOptimizer` does): masks are mirrored variables written with
`strategy.extended.update`, and the update-step condition is a `cond` there,
since a replica-context `cond` may not contain the wrapped optimizer's
`merge_call`. A step on which no mask update fires runs what a static step
runs, plus that condition (and the updater's per-step state, if it keeps
one): everything update-related sits in one branch of one `cond`.

Usage, with `model.fit` or a custom loop:

  model = rigl_tf.layers.sparsify(model)
  ...init masks...
  optimizer = SparseOptimizer(keras.optimizers.SGD(0.1, momentum=0.9), model)
  model.compile(optimizer=optimizer, loss=...)

Mixed precision. Under a float16 dtype policy the loss is scaled, and the
order of the wrappers is fixed: `LossScaleOptimizer(SparseOptimizer(inner))`.
The loss-scale optimizer checks the all-reduced gradients and, on a step with
a non-finite gradient, never calls the SparseOptimizer: weights, masks and
updater state stay as they were (only `iterations` advances, as for any
skipped step). `model.compile` adds the LossScaleOptimizer itself; in a custom
loop build the stack with `sparse_optimizer(inner, model, updater)`, which
adds it when the policy needs one, and scale as Keras documents:

  optimizer = sparse_optimizer(keras.optimizers.SGD(0.1), model, updater)
  ...
  with tf.GradientTape() as tape:
    loss = ...
    scaled = optimizer.get_scaled_loss(loss)
  grads = optimizer.get_unscaled_gradients(tape.gradient(scaled, variables))
  optimizer.apply_gradients(zip(grads, variables))

`find_sparse_optimizer(optimizer)` returns the SparseOptimizer inside such a
stack (for its `updater` and `masked_weights`). Masks stay float32 variables
(never autocast), so `weight * (1 - mask) == 0` holds exactly; bfloat16
policies need no loss scaling and use the SparseOptimizer alone.
"""

import contextlib

from absl import logging
import keras as keras3
import tensorflow as tf
import tf_keras as keras

from rigl_tf import compat
from rigl_tf import flavours
from rigl_tf import sparse_step
from rigl_tf.methods import tfmot_gmp


def _delegated(name):
  """A property read from and written to the wrapped optimizer."""

  def get(self):
    return getattr(self._optimizer, name)  # pylint: disable=protected-access

  def set_(self, value):
    setattr(self._optimizer, name, value)  # pylint: disable=protected-access

  return property(get, set_)


# The methods that need tf_keras models, and why.
_NOT_ON_KERAS3 = {
    tfmot_gmp.TFMOTGMP: (
        'tfmot_gmp trains inside TFMOT wrappers, and TFMOT takes tf_keras '
        "(Keras 2) models only: use 'gmp', the same schedule in rigl_tf, for "
        'a Keras 3 model.'),
}


def keras3_refusal(method_class):
  """Why a method class cannot train a Keras 3 model, or None if it can."""
  return next((message for cls, message in _NOT_ON_KERAS3.items()
               if issubclass(method_class, cls)), None)


@keras.utils.register_keras_serializable(package='rigl_tf')
class SparseOptimizer(sparse_step.SparseStep,
                      compat.DelegatingTrackableMixin,
                      keras.optimizers.Optimizer):
  """Keeps masked weights at zero and runs a `MaskUpdater`.

  Wraps an optimizer of either Keras flavour: for a Keras 3 optimizer,
  `SparseOptimizer(...)` makes a `Keras3SparseOptimizer`, which does the
  same.

  Checkpoints like the wrapped optimizer (its slots and iterations); the
  updater's state is tracked under the wrapped optimizer as `mask_updater`.

  `model.save('m.keras')` works: the config holds the wrapped optimizer and
  the updater's method name. The link to the model cannot be serialised, so
  loading gives back the wrapped optimizer (see `from_config`).
  """

  def __new__(cls, optimizer=None, *args, **kwargs):
    if cls is SparseOptimizer and flavours.is_keras3(optimizer):
      return Keras3SparseOptimizer(optimizer, *args, **kwargs)
    return super().__new__(cls)

  @compat.no_dependency_tracking
  def __init__(self, optimizer, model, updater=None):
    """Wraps `optimizer`.

    Args:
      optimizer: a tf_keras (non-legacy) or Keras 3 optimizer instance.
      model: the model (or list of `MaskedWeight`) whose masks to keep.
      updater: a method (`rigl_tf.methods`); default: static masks.

    Raises:
      TypeError: if `optimizer` is not a Keras optimizer.
      ValueError: if SparseOptimizer does not know the optimizer's slots.
    """
    if not isinstance(optimizer, keras.optimizers.Optimizer):
      raise TypeError(
          'SparseOptimizer wraps a Keras optimizer (tf_keras or Keras 3: '
          f'keras.optimizers.SGD, Adam, ...), got {optimizer!r}.')
    self._init_sparse(optimizer, model, updater)
    # Not calling Optimizer.__init__: state and checkpoints are delegated.
    compat.DelegatingTrackableMixin.__init__(self, self._optimizer)
    self._track_trackable(self._updater, 'mask_updater')

  @compat.no_dependency_tracking
  def _set_untracked(self, name, value):
    setattr(self, name, value)

  # Delegated optimizer state.
  iterations = _delegated('iterations')
  learning_rate = _delegated('learning_rate')
  use_ema = _delegated('use_ema')

  @property
  def variables(self):
    return self._optimizer.variables

  def build(self, var_list):
    return self._build_sparse(var_list)

  # Read by `LossScaleOptimizer.apply_gradients` (mixed precision), which
  # expects a real tf_keras Optimizer: answer for the wrapped one.
  @property
  def _run_with_dtensor(self):
    return compat.run_with_dtensor(self._optimizer)

  @property
  def _mesh(self):
    return compat.dtensor_mesh(self._optimizer)

  def compute_gradients(self, loss, var_list, tape=None):
    return self._optimizer.compute_gradients(loss, var_list, tape=tape)

  def get_config(self):
    """The serialised wrapped optimizer and the updater's method name."""
    return self._sparse_config(keras)

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
    return cls._inner_from_config(keras, config, custom_objects)

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
    aggregate = (not skip_gradients_aggregation
                 and kwargs.pop('experimental_aggregate_gradients', True))
    self._sparse_apply(grads_and_vars, aggregate)

  def _all_reduce(self, grads_and_vars):
    return self._optimizer.aggregate_gradients(grads_and_vars)

  def _reduced_gradients_context(self):
    return contextlib.nullcontext()

  def _apply_inner(self, grads, wrapped_vars):
    self._optimizer.apply_gradients(
        list(zip(grads, wrapped_vars.value)), skip_gradients_aggregation=True)


@keras3.saving.register_keras_serializable(package='rigl_tf')
class Keras3SparseOptimizer(sparse_step.SparseStep,
                            keras3.optimizers.Optimizer):
  """`SparseOptimizer` for a Keras 3 optimizer (what `SparseOptimizer(...)`
  makes of one): the same step, on the TensorFlow backend.

  Like Keras 3's own `LossScaleOptimizer`, it is an optimizer around the
  wrapped one (tracked as `inner_optimizer`), whose `iterations`, learning
  rate and slots it uses.
  """

  def __init__(self, optimizer, model, updater=None):
    if not isinstance(optimizer, keras3.optimizers.Optimizer):
      raise TypeError(
          'Keras3SparseOptimizer wraps a Keras 3 optimizer, got '
          f'{optimizer!r}.')
    flavours.check_keras3_backend()
    message = keras3_refusal(type(updater))
    if message:
      raise ValueError(message)
    super().__init__(learning_rate=0.0, name=f'sparse_{optimizer.name}')
    self._init_sparse(optimizer, model, updater)
    self.wrapped_optimizer = optimizer
    self.mask_updater = self._updater

  def _set_untracked(self, name, value):
    # Out of Keras 3's tracker and TensorFlow's (the model is no checkpoint
    # dependency of its optimizer).
    with compat.keras3_untracked():
      self._set_tf_untracked(name, value)

  @compat.no_dependency_tracking
  def _set_tf_untracked(self, name, value):
    setattr(self, name, value)

  @property
  def iterations(self):
    return self._optimizer.iterations

  @property
  def learning_rate(self):
    return self._optimizer.learning_rate

  @learning_rate.setter
  def learning_rate(self, learning_rate):
    self._optimizer.learning_rate = learning_rate

  @property
  def variables(self):
    return self._optimizer.variables

  def build(self, var_list):
    self._build_sparse(var_list)
    self.built = True

  def get_config(self):
    """The serialised wrapped optimizer and the updater's method name."""
    return self._sparse_config(keras3)

  @classmethod
  def from_config(cls, config, custom_objects=None):
    """The deserialised *wrapped* optimizer (see `SparseOptimizer`)."""
    return cls._inner_from_config(keras3, config, custom_objects)

  def apply(self, grads, trainable_variables=None):
    """Masked `apply`; call it in replica context."""
    if trainable_variables is None:
      trainable_variables = compat.keras3_built_variables(self._optimizer)
    self._sparse_apply(list(zip(grads, trainable_variables)), aggregate=True)

  def apply_gradients(self, grads_and_vars):
    grads_and_vars = list(grads_and_vars)
    self._sparse_apply(grads_and_vars, aggregate=True)
    return self.iterations

  def _all_reduce(self, grads_and_vars):
    return compat.keras3_all_reduce(self._optimizer, grads_and_vars)

  def _reduced_gradients_context(self):
    return compat.gradients_already_reduced(self._optimizer)

  def _apply_inner(self, grads, wrapped_vars):
    self._optimizer.apply(list(grads), list(wrapped_vars.value))


@contextlib.contextmanager
def mask_updates_off(optimizer):
  """Steps traced inside this context take no mask update.

  For a training loop that knows, in Python, that none of the steps a
  function will run is a mask-update step (`MaskUpdater.is_update_step` of
  a Python int is a Python bool): its step is then exactly the static one,
  without the condition on the schedule (which costs a few percent of a
  small model's step). Only the tracing matters: call the `tf.function`
  inside this context, and use it only for steps that take no update.

  Args:
    optimizer: an optimizer stack; a stack without a `SparseOptimizer`
      is left as it is.

  Yields:
    None.
  """
  sparse = find_sparse_optimizer(optimizer)
  if sparse is None:
    yield
    return
  before = sparse._traces_mask_updates  # pylint: disable=protected-access
  sparse._traces_mask_updates = False  # pylint: disable=protected-access
  try:
    yield
  finally:
    sparse._traces_mask_updates = before  # pylint: disable=protected-access


def sparse_optimizer(optimizer, model, updater=None, policy=None):
  """The optimizer stack that trains `model` under a dtype policy.

  Args:
    optimizer: a tf_keras (non-legacy) or Keras 3 optimizer instance.
    model: the masked model (or list of `MaskedWeight`).
    updater: a method (`rigl_tf.methods`); default: static masks.
    policy: a `keras.mixed_precision.Policy` or its name; None: the global
      policy.

  Returns:
    `SparseOptimizer(optimizer, model, updater)`, wrapped in a dynamic
    `keras.mixed_precision.LossScaleOptimizer` when the policy computes in
    float16 (see the module docstring).
  """
  sparse = SparseOptimizer(optimizer, model, updater)
  keras_module = flavours.module(flavours.of(optimizer))
  if policy is None:
    policy = keras_module.mixed_precision.global_policy()
  elif isinstance(policy, str):
    policy = keras_module.mixed_precision.Policy(policy)
  if policy.compute_dtype != 'float16':
    return sparse
  return loss_scale_optimizer(sparse)


def loss_scale_optimizer(optimizer):
  """Its flavour's dynamic `LossScaleOptimizer` around `optimizer`.

  Keras 3's fails under MirroredStrategy on the first step with a
  non-finite gradient: on several replicas it warns.
  """
  if flavours.is_keras3(optimizer) and (
      tf.distribute.get_strategy().num_replicas_in_sync > 1):
    logging.warning(
        "Keras 3's LossScaleOptimizer fails under MirroredStrategy on the "
        'first step with a non-finite gradient (also without rigl_tf): train '
        'float16 on one device, or use mixed_bfloat16 or tf_keras.')
  return flavours.module(
      flavours.of(optimizer)).mixed_precision.LossScaleOptimizer(optimizer)


def find_sparse_optimizer(optimizer):
  """The `SparseOptimizer` in an optimizer stack, or None.

  Args:
    optimizer: a `SparseOptimizer`, a `LossScaleOptimizer` around one, or any
      other optimizer.

  Returns:
    The `SparseOptimizer`, or None if the stack has none.
  """
  while optimizer is not None:
    if isinstance(optimizer, sparse_step.SparseStep):
      return optimizer
    optimizer = getattr(optimizer, 'inner_optimizer', None)
  return None
