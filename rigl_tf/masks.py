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
"""Mask initialisation with exact counts.

Every mask has exactly the number of ones its layer's sparsity prescribes.
Randomness is stateless and keyed by (seed, layer index), so a seed gives the
same masks on any machine and on every replica.
"""

import dataclasses
from typing import Callable, Mapping, Optional

import gin
import tensorflow as tf

from rigl_tf import checks
from rigl_tf import distributions
from rigl_tf import layers as masked_layers
from rigl_tf import maskable
from rigl_tf import rng
from rigl_tf import structure as structure_lib
from rigl_tf import topk

MASK_INITS = ('random', 'magnitude')
WEIGHT_SCALINGS = ('none', 'layer', 'unit')


def structured_top_n(scores, layout, per_row, key):
  """Ones at the `per_row` largest `scores` of every row of `layout`.

  Exact ties are broken at random by `key` (`topk.top_n_rows_random_ties`).

  Args:
    scores: float tensor, the weight's shape.
    layout: its `structure.Layout`.
    per_row: int scalar, ones per row.
    key: int64 [2] stateless RNG key.

  Returns:
    float32 0/1 tensor of the weight's shape.
  """
  rows = topk.top_n_rows_random_ties(
      layout.to_rows(tf.cast(scores, tf.float32)), per_row, key)
  return layout.from_rows(rows)


def random_mask(shape, n_ones, seed, index, layout=None):
  """A random 0/1 mask with exactly `n_ones` ones (stateless).

  With a `structure.Layout`, the ones are spread evenly: each of its rows
  keeps n_ones / rows of them, at random.
  """
  noise = tf.random.stateless_uniform(
      shape, seed=rng.stateless_key(seed, index))
  if layout is not None:
    return structured_top_n(noise, layout, n_ones // layout.rows,
                            rng.stateless_key(seed, index))
  return topk.top_n_mask(noise, n_ones)


def magnitude_mask(weight, n_ones, seed, index, layout=None):
  """Ones at the `n_ones` largest |weight|; ties broken at random.

  Args:
    weight: float tensor.
    n_ones: scalar int (Python or tensor), 0 <= n_ones <= size.
    seed: integer seed of the stateless RNG that orders exact ties.
    index: the layer's index (`MaskedWeight.index`), also part of the key.
    layout: optional `structure.Layout`: each row keeps its n_ones / rows
      largest |weight| (`n_ones` a multiple of its rows).

  Returns:
    float32 0/1 tensor of the same shape as `weight`.
  """
  scores = tf.abs(tf.cast(weight, tf.float32))
  key = rng.stateless_key(seed, index)
  if layout is not None:
    return structured_top_n(scores, layout, n_ones // layout.rows, key)
  return topk.top_n_mask_random_ties(scores, n_ones, key)


def get_layer_sparsities(model_or_weights, sparsity, distribution='erk',
                         **kwargs):
  """Per-masked-weight sparsity from a distribution (see distributions.py).

  Args:
    model_or_weights: a model with `MaskedLayer`s or a list of `MaskedWeight`.
    sparsity: overall sparsity of the masked weights.
    distribution: 'uniform', 'er' or 'erk'.
    **kwargs: passed to `distributions.get_sparsities`.

  Returns:
    dict masked-weight name -> sparsity.
  """
  weights = masked_layers.get_masked_weights(model_or_weights)
  # ERK weighs each kernel by its true fan-in and fan-out.
  shapes = {mw.name: tuple(mw.erk_shape) for mw in weights}
  return distributions.get_sparsities(shapes, sparsity, distribution, **kwargs)


@dataclasses.dataclass(frozen=True)
class SparsityPlan:
  """What the configuration says about every masked weight's sparsity.

  The trainer makes one from `train_eval`'s sparsity, distribution,
  `dense_layers`, `first_layer_dense` and `custom_sparsity_map`, and gives it
  to the updater, which draws the initial masks (`MaskUpdater.init_masks`):
  static and dynamic methods start at `final`, gradual methods (GMP,
  GraNet) prune towards it, SNIP keeps `final`'s budget.

  Attributes:
    final: masked-weight name -> sparsity at the end of training.
    fixed: names whose sparsity the user fixed (dense layers, custom map):
      outside the budget, hence outside global pruning.
    at: fn(sparsity, distribution=None) -> dict name -> sparsity: the same
      configuration at another overall sparsity (or distribution).
    structure: the `structure.Structure` of the run.
    layouts: name -> `structure.Layout` of every structured weight.
    unstructured: name -> why it stays unstructured, for the weights a
      structured run leaves unstructured.
  """
  final: Mapping[str, float]
  fixed: frozenset = frozenset()
  at: Optional[Callable[..., dict]] = None
  structure: structure_lib.Structure = structure_lib.Structure()
  layouts: Mapping[str, structure_lib.Layout] = dataclasses.field(
      default_factory=dict)
  unstructured: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def num_ones(self, name, size, sparsity=None):
    """Ones of weight `name` at `sparsity` (default: its final one).

    n - floor(s·n), or for a structured weight rows · ones per row (units ·
    k for constant fan-in).
    """
    sparsity = self.final[name] if sparsity is None else sparsity
    if name in self.layouts:
      return self.layouts[name].num_ones(sparsity)
    return distributions.num_ones(sparsity, size)


def sparsity_plan(model_or_weights, sparsity, distribution='erk',
                  erk_power_scale=1.0, dense_layers=(),
                  first_layer_dense=False, custom_sparsity_map=None,
                  structure='unstructured', on_unfit='error'):
  """The `SparsityPlan` of a masked model (arguments as `get_sparsities`).

  `structure` ('unstructured', 'constant_fan_in' or 'N:M') gives every
  masked weight a `structure.Layout`, except, under N:M, those whose
  sparsity the configuration fixes (dense layers, custom map). A weight
  whose shape cannot take the structure is an error, or with `on_unfit` =
  'unstructured' stays unstructured (`SparsityPlan.unstructured` says why).

  Raises:
    ValueError: as `distributions.get_sparsities`; an unknown structure;
      N:M with a sparsity other than 1 - N/M; a weight that cannot take the
      structure (on_unfit='error').
  """
  weights = masked_layers.get_masked_weights(model_or_weights)
  structure = (structure if isinstance(structure, structure_lib.Structure)
               else structure_lib.Structure.parse(structure))
  checks.check_choice(on_unfit, structure_lib.ON_UNFIT, 'on_unfit')
  if structure.kind == 'n:m' and abs(sparsity - structure.sparsity) > 1e-9:
    raise ValueError(
        f'structure {structure.name!r} keeps {structure.n} of every '
        f'{structure.m} weights, a sparsity of {structure.sparsity:g}, not '
        f'{sparsity:g}: set train_eval.sparsity = {structure.sparsity:g}.')

  def at(overall, method=None):
    return get_layer_sparsities(
        weights, overall, method or distribution,
        erk_power_scale=erk_power_scale, dense_layers=dense_layers,
        first_layer_dense=first_layer_dense,
        custom_sparsity_map=custom_sparsity_map)

  fixed = set(dense_layers) | set(custom_sparsity_map or {})
  if first_layer_dense and weights:
    fixed.add(weights[0].name)
  layouts, unstructured = {}, {}
  for mw in weights if structure.structured else ():
    if structure.kind == 'n:m' and mw.name in fixed:
      unstructured[mw.name] = 'its sparsity is fixed by the configuration'
      continue
    try:
      layouts[mw.name] = structure_lib.layout(structure, mw.owner, mw.weight,
                                             mw.name)
    except structure_lib.UnfitError as e:
      if on_unfit == 'error':
        raise ValueError(
            f'structure {structure.name!r} does not fit {e}; choose another '
            'structure, or train_eval.on_unfit = \'unstructured\' to keep '
            'such layers unstructured.') from e
      unstructured[mw.name] = str(e)
  final = at(sparsity)
  if structure.kind == 'n:m':  # The distribution cannot change N/M.
    final.update({name: structure.sparsity for name in layouts})
  return SparsityPlan(final=final, fixed=frozenset(fixed), at=at,
                      structure=structure, layouts=layouts,
                      unstructured=unstructured)


def _unit_axes(mw):
  """Axes summed to get one output unit's fan-in in `mw.weight`.

  `maskable.contracted_axes`: all but the last of Dense/Conv kernels
  ([..., in, out]); a depthwise kernel [h, w, channels, multiplier] has one
  unit per channel and multiplier, fed by its h*w window only; an
  EinsumDense kernel's axes contracted with its input.
  """
  return maskable.contracted_axes(mw.owner, mw.weight)


def fan_in_scale(mw, mask, weight_scaling):
  """Factor that gives the kept weights the variance of their actual fan-in.

  Keras initialisers draw a weight's scale from the *dense* fan-in F (He,
  LeCun: variance ∝ 1/F; Glorot: ∝ 2/(F + fan-out)). After masking, a unit
  sums only f < F inputs, so its pre-activation variance shrinks by f/F and,
  through several very sparse layers, the signal fades (google-research/rigl
  `init_utils.py` hence draws sparse layers with their real fan-in).
  Multiplying the kept weights by sqrt(F / f) restores the dense variance
  whatever initialiser the model uses.

  Args:
    mw: a `MaskedWeight`.
    mask: its new 0/1 mask (float tensor).
    weight_scaling: 'none' (factor 1); 'layer' (sqrt(1 / density), one
      factor for the whole layer); 'unit' (sqrt(F / f_unit) per output unit,
      f_unit its number of kept inputs; units with none keep factor 1).

  Returns:
    A float32 tensor broadcastable to the weight's shape.
  """
  if weight_scaling == 'none':
    return tf.constant(1.0)
  if weight_scaling == 'layer':
    kept = tf.reduce_sum(mask)
    return tf.sqrt(float(mw.size) / tf.maximum(kept, 1.0))
  axes = _unit_axes(mw)
  dense_fan_in = 1
  for axis in axes:
    dense_fan_in *= int(mw.weight.shape[axis])
  fan_in = tf.reduce_sum(mask, axis=axes, keepdims=True)
  return tf.where(fan_in > 0, tf.sqrt(dense_fan_in / tf.maximum(fan_in, 1.0)),
                  1.0)


@gin.configurable(denylist=['model_or_weights', 'sparsities', 'seed'])
def init_masks(model_or_weights, sparsities, seed=0, method='random',
               weight_scaling='none', layouts=None):
  """Draws every mask with its exact count and zeroes the masked weights.

  Call it in cross-replica context (e.g. inside `strategy.scope()`, outside
  `strategy.run`): mirrored masks receive the same value on every replica.

  Sparse-aware initialisation (`weight_scaling='unit'`, or in a config
  `init_masks.weight_scaling = 'unit'`): rescales the kept weights so that
  each unit's initial scale follows its actual fan-in after masking (see
  `fan_in_scale`). Use it when training a freshly initialised model at high
  sparsity (about 80% and above), above all deep ones; leave it 'none' when
  the weights are pretrained (magnitude pruning of a trained model).

  Args:
    model_or_weights: a model with `MaskedLayer`s or a list of `MaskedWeight`.
    sparsities: dict name -> sparsity (as from `get_layer_sparsities`), or
      one float for every layer.
    seed: integer seed of the stateless RNG.
    method: 'random' (uniform over positions) or 'magnitude' (keep the
      largest |w|, e.g. one-shot pruning of a trained model).
    weight_scaling: 'none', 'layer' or 'unit' (see `fan_in_scale`).
    layouts: optional dict name -> `structure.Layout`: those masks are
      structured, each row keeping size - floor(s·size) ones.

  Returns:
    dict name -> number of ones in the new mask.

  Raises:
    ValueError: unknown method or weight_scaling, or a layer missing from
      `sparsities`.
  """
  checks.check_choice(method, MASK_INITS, 'mask init')
  checks.check_choice(weight_scaling, WEIGHT_SCALINGS, 'weight_scaling')
  weights = masked_layers.get_masked_weights(model_or_weights)
  if not isinstance(sparsities, dict):
    sparsities = {mw.name: float(sparsities) for mw in weights}
  missing = [mw.name for mw in weights if mw.name not in sparsities]
  if missing:
    raise ValueError(f'No sparsity given for masked layers {missing}.')
  counts = {}
  layouts = layouts or {}
  for mw in weights:
    layout = layouts.get(mw.name)
    if layout is not None:
      n_ones = layout.num_ones(sparsities[mw.name])
    else:
      n_ones = distributions.num_ones(sparsities[mw.name], mw.size)
    if method == 'random':
      mask = random_mask(mw.weight.shape, n_ones, seed, mw.index, layout)
    else:
      mask = magnitude_mask(mw.weight, n_ones, seed, mw.index, layout)
    mw.mask.assign(tf.cast(mask, mw.mask.dtype))
    mw.layer.record_dense_init_std(mw.weight)
    scaled = mask * fan_in_scale(mw, mask, weight_scaling)
    mw.weight.assign(mw.weight * tf.cast(scaled, mw.weight.dtype))
    counts[mw.name] = n_ones
  return counts

