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
"""`tfmot_gmp`: GMP run by TensorFlow Model Optimization, the reference.

TensorFlow Model Optimization prunes layer-wise to `PolynomialDecay(power=3)`,
the model trained through `tfmot.sparsity.keras.prune_low_magnitude`
wrappers around the masked layers (`TFMOTGMP.wrap_model`), its masks copied
into this library's after each of its pruning steps: an independent check
of `gmp`.
"""

import gin
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from rigl_tf import compat
from rigl_tf import layers as masked_layers
from rigl_tf import schedules
from rigl_tf import slots
from rigl_tf.methods import gradual
from rigl_tf.methods import registry


@registry.register('tfmot_gmp')
@gin.configurable
class TFMOTGMP(gradual.GradualPruning):
  """GMP by TensorFlow Model Optimization: the independent reference.

  `wrap_model` returns the model the trainer trains: every pruned masked
  layer wrapped by `tfmot.sparsity.keras.prune_low_magnitude` (a
  `PruneLowMagnitude` layer, sharing the masked layer's variables) with
  `tfmot.sparsity.keras.PolynomialDecay(power=3)` from sparsity 0 to the
  layer's final sparsity of the distribution; `begin_step`,
  `final_prune_step` and `update_frequency` are the schedule's
  `begin_step`, `end_step` and `frequency`. TFMOT does the pruning: every
  training call of a wrapper counts one step of its `pruning_step` (from 1:
  the `UpdatePruningStep` callback sets 0 before training, as `wrap_model`
  does) and, on the schedule's steps, recomputes the mask from |w| and
  zeroes the pruned weights before the forward pass. So TFMOT's step s is
  the optimizer's step s - 1, and its pruning at s ranks the weights left
  by the update of step s - 2 (where `gmp` would prune after step s - 2).

  After a step where TFMOT pruned, `update_masks` copies TFMOT's masks into
  this library's masks and zeroes the pruned weights and their optimizer
  slots: the invariant, the sparsity table, the FLOP count of the density
  schedule reached, the ITOP record and the summaries are those of every
  other method. TFMOT is layer-wise, and keeps the max(round(n (1 - s)), 1)
  largest |w| of a layer of n weights, s its schedule's float32 sparsity
  (this library: n - floor(s n)); weights tied with the threshold are kept
  too. Layers fixed by the user are not wrapped.
  """

  # Copying TFMOT's masks zeroes the pruned slots, where a fresh slot may
  # not be 0 (Adagrad): the optimizer's pass after the update sets them.
  update_leaves_masked_state = False

  def __init__(self, update_frequency=100, begin_step=0,
               final_prune_step=None, seed=None, name=None):
    """Configures TFMOT's GMP (gin binds these on `TFMOTGMP`).

    Args:
      update_frequency: `PolynomialDecay.frequency`.
      begin_step: `PolynomialDecay.begin_step`.
      final_prune_step: `PolynomialDecay.end_step`; None: 110/160 of
        `train_steps`, as `gmp`.
      seed: unused (TFMOT's selection is deterministic).
      name: module name.
    """
    super().__init__(update_frequency=update_frequency,
                     begin_step=begin_step,
                     final_prune_step=final_prune_step, scope='layerwise',
                     seed=seed, name=name)
    # TFMOT's wrappers: tracked, so that their state (mask, threshold,
    # pruning_step) is checkpointed with the updater.
    self._wrappers = []
    self._set_tfmot_masks(None)

  @compat.no_dependency_tracking
  def _set_tfmot_masks(self, tfmot_masks):
    # Per masked weight, TFMOT's mask variable (None: not pruned). Already
    # tracked through the wrappers.
    self._tfmot_masks = tfmot_masks

  def polynomial_decay(self, final_sparsity):
    """TFMOT's schedule of a layer pruned to `final_sparsity`."""
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=final_sparsity,
        begin_step=self.begin_step, end_step=self.final_prune_step,
        power=3, frequency=self.update_frequency)

  def wrap_model(self, model):
    """The model with `prune_low_magnitude` around the pruned layers.

    Args:
      model: the sparsified (Sequential or Functional) model after
        `init_masks`.

    Returns:
      A clone of `model` made of the same layers, each pruned masked layer
      inside TFMOT's `PruneLowMagnitude`.

    Raises:
      ValueError: before `init_masks`, if called twice, or for a layer
        whose masked weights have different final sparsities (TFMOT prunes
        a layer's weights to one schedule).
    """
    if self._table is None:
      raise ValueError('TFMOTGMP.wrap_model needs the schedule: call '
                       'updater.init_masks(model, plan, ...) first.')
    if self._wrappers:
      raise ValueError('TFMOTGMP wraps one model.')
    masked_layers.check_graph_model(
        model, 'tfmot_gmp (TFMOT wraps the layers of a clone)',
        'Use the gmp method: the same schedule, on the masks in place.')
    finals = {}
    for mw, sparsity in zip(masked_layers.get_masked_weights(model),
                            self._final_sparsities):
      finals.setdefault(id(mw.layer), []).append(sparsity)

    def wrap(layer):
      if isinstance(layer, keras.Model):
        return keras.models.clone_model(layer, clone_function=wrap)
      sparsities = finals.get(id(layer))
      if not sparsities or None in sparsities:  # Unmasked or user-fixed.
        return layer
      if len(set(sparsities)) > 1:
        raise ValueError(
            f'tfmot_gmp prunes all masked weights of layer {layer.name!r} to '
            f'one sparsity (TFMOT wraps whole layers), but the plan gives '
            f'{len(set(sparsities))} different ones: use '
            "train_eval.distribution = 'uniform', or the gmp method (the "
            'same schedule, a sparsity per weight).')
      wrapper = tfmot.sparsity.keras.prune_low_magnitude(
          layer, pruning_schedule=self.polynomial_decay(sparsities[0]))
      self._wrappers.append(wrapper)
      return wrapper

    wrapped = keras.models.clone_model(model, clone_function=wrap)
    if not wrapped.built:
      wrapped.build(model.input_shape)
    for wrapper in self._wrappers:
      # What UpdatePruningStep does before training; the wrappers count
      # from there and are checkpointed with their counts.
      wrapper.pruning_step.assign(0)
    return wrapped

  def build(self, masked_weights):
    super().build(masked_weights)
    by_weight = {}
    for wrapper in self._wrappers:
      for weight, mask, _ in compat.tfmot_pruning_vars(wrapper):
        by_weight[id(weight)] = mask
    tfmot_masks = [by_weight.get(id(mw.weight)) for mw in masked_weights]
    pruned = [s is not None for s in self._final_sparsities]
    if [m is not None for m in tfmot_masks] != pruned:
      raise ValueError(
          'tfmot_gmp prunes through TFMOT\'s wrappers: train the model that '
          'updater.wrap_model(model) returns (rigl_tf.train_lib does), with '
          'an optimizer around `model`.')
    self._set_tfmot_masks(tfmot_masks)

  def is_update_step(self, step):
    """Whether TFMOT pruned in this step's forward pass (its step + 1)."""
    return schedules.is_update_step(step + 1, self.begin_step,
                                    self.final_prune_step,
                                    self.update_frequency)

  def update_masks(self, strategy, masked_weights, dense_grads, step,
                   optimizer):
    """Copies TFMOT's new masks into this library's (cross-replica)."""
    del dense_grads
    for mw, tfmot_mask in zip(masked_weights, self._tfmot_masks):
      if tfmot_mask is not None:
        strategy.extended.update(
            mw.mask, _copy_mask,
            args=(tfmot_mask, mw.weight,
                  slots.get_slot_variables(optimizer, mw.weight)),
            group=False)
    self.record_ever_active(strategy)
    # The row of TFMOT's step.
    self._record_counts(masked_weights, step + 1)

  def _mask_change_steps(self):
    # TFMOT's pruning at step s already shapes the optimizer's step s - 1.
    return self.pruning_steps() - 1


def _copy_mask(mask, tfmot_mask, weight, slots):
  """This library's mask := TFMOT's; pruned weights and slots zeroed."""
  new_mask = tf.cast(tfmot_mask, mask.dtype)
  mask.assign(new_mask, read_value=False)
  weight.assign(weight * tf.cast(new_mask, weight.dtype), read_value=False)
  for slot in slots:
    slot.assign(slot * tf.cast(new_mask, slot.dtype), read_value=False)
  return new_mask
