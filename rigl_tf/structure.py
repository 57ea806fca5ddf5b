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
"""Structured masks: constant fan-in (SRigL) and N:M.

An output unit of a masked weight is what one output of its op sums over: a
column of a Dense or EinsumDense kernel, an output channel of a convolution
(its k×k×c_in inputs), a channel and multiplier of a depthwise kernel
(`maskable.contracted_axes`). A structure splits every mask into *rows* that
each keep the same number of ones:

* `constant_fan_in`: one row per unit, all its n_in inputs; at sparsity s a
  unit keeps k = n_in - floor(s·n_in), so the layer holds units·k ones
  (not n - floor(s·n));
* `N:M` (e.g. `2:4`): one row per group of M consecutive inputs of a unit
  (in the kernel's order of its fan-in axes, the input channels fastest),
  N of which are kept: the layer's sparsity is 1 - N/M.

`Layout` is the row view of one weight: every selection of a structured
method ranks within each row (`topk.top_n_rows_random_ties`), so the
per-row counts hold after every update.
"""

import dataclasses
import math
from typing import NamedTuple, Optional, Tuple

import tensorflow as tf

from rigl_tf import maskable
from rigl_tf import topk

UNSTRUCTURED = 'unstructured'
CONSTANT_FAN_IN = 'constant_fan_in'
# What a layer whose shape cannot take the structure gets.
ON_UNFIT = ('error', 'unstructured')
# Streams folded into a layer update's key: which rows drop one more, and
# SRigL's salient weights (two).
_SPREAD_STREAM = 3
_SALIENT_STREAM = 4


@dataclasses.dataclass(frozen=True)
class Structure:
  """A parsed `train_eval.structure`.

  Attributes:
    kind: 'unstructured', 'constant_fan_in' or 'n:m'.
    n: N of N:M (0 otherwise).
    m: M of N:M (0 otherwise).
  """
  kind: str = UNSTRUCTURED
  n: int = 0
  m: int = 0

  @classmethod
  def parse(cls, text):
    """'unstructured', 'constant_fan_in' or 'N:M' with 0 < N < M.

    Raises:
      ValueError: for anything else (one line).
    """
    text = str(text).strip()
    if text in (UNSTRUCTURED, CONSTANT_FAN_IN):
      return cls(text)
    parts = text.split(':')
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
      n, m = (int(p) for p in parts)
      if 0 < n < m:
        return cls('n:m', n, m)
    raise ValueError(
        f'Unknown structure {text!r}: use {UNSTRUCTURED!r}, '
        f'{CONSTANT_FAN_IN!r} or N:M with 0 < N < M (e.g. \'2:4\').')

  @property
  def structured(self):
    return self.kind != UNSTRUCTURED

  @property
  def name(self):
    return f'{self.n}:{self.m}' if self.kind == 'n:m' else self.kind

  @property
  def sparsity(self):
    """The one sparsity an N:M layer has (1 - N/M); None otherwise."""
    return 1.0 - self.n / self.m if self.kind == 'n:m' else None


class Layout(NamedTuple):
  """The rows of one structured weight.

  A named tuple of Python ints: a compiled function that takes it is traced
  once per distinct layout (by value), whichever model it comes from.

  Attributes:
    shape: the weight's shape.
    perm: transposition that puts the unit axes first, the fan-in axes
      last (in their order).
    rows: number of rows (units, or units × n_in / M).
    size: positions per row (n_in, or M).
    units: number of output units.
    n_in: fan-in of a unit.
    per_row: ones per row at the N:M sparsity (N); None for constant fan-in,
      where it follows the layer's sparsity (`ones_per_row`).
  """
  shape: Tuple[int, ...]
  perm: Tuple[int, ...]
  rows: int
  size: int
  units: int
  n_in: int
  per_row: Optional[int] = None

  def to_rows(self, tensor):
    """`tensor` (the weight's shape) as [rows, size]."""
    return tf.reshape(tf.transpose(tensor, self.perm), [self.rows, self.size])

  def from_rows(self, rows):
    """Inverse of `to_rows`."""
    permuted = [self.shape[axis] for axis in self.perm]
    inverse = [self.perm.index(axis) for axis in range(len(self.shape))]
    return tf.transpose(tf.reshape(rows, permuted), inverse)

  def ones_per_row(self, sparsity):
    """Ones each row keeps at a layer sparsity: size - floor(s·size).

    For N:M the sparsity must be 1 - N/M (or less, during gradual pruning,
    which keeps more than N of every M).
    """
    return self.size - int(math.floor(float(sparsity) * self.size + 1e-9))

  def num_ones(self, sparsity):
    """Ones of the whole layer at `sparsity` (rows · `ones_per_row`)."""
    return self.rows * self.ones_per_row(sparsity)

  def row_counts(self, mask):
    """int32 [rows]: ones per row of `mask`."""
    return tf.cast(tf.reduce_sum(self.to_rows(tf.cast(mask, tf.float32)), 1),
                   tf.int32)

  def describe(self, structure):
    if structure.kind == 'n:m':
      return (f'{structure.name}: {self.rows} groups of {self.size} inputs '
              f'({self.units} units of {self.n_in})')
    return f'constant fan-in: {self.units} units of {self.n_in} inputs'


class UnfitError(ValueError):
  """A weight whose shape cannot take the structure."""


def layout(structure, owner, weight, name=None):
  """The `Layout` of `weight` (of layer `owner`) under `structure`.

  Args:
    structure: a `Structure` (structured).
    owner: the Keras layer that owns the weight.
    weight: the weight (a variable or tensor with a static shape).
    name: the weight's name in messages (default: the variable's).

  Returns:
    A `Layout`.

  Raises:
    UnfitError: the unit's fan-in is not a multiple of M (N:M), or the
      weight has no fan-in axis.
  """
  shape = tuple(int(d) for d in weight.shape)
  name = name or weight.name
  fan_in_axes = list(maskable.contracted_axes(owner, weight))
  unit_axes = [a for a in range(len(shape)) if a not in fan_in_axes]
  if not fan_in_axes:
    raise UnfitError(f'{name} {shape} has no fan-in axis')
  units = math.prod(shape[a] for a in unit_axes)
  n_in = math.prod(shape[a] for a in fan_in_axes)
  perm = tuple(unit_axes + fan_in_axes)
  if structure.kind == 'n:m':
    if n_in % structure.m:
      raise UnfitError(
          f'{name} {shape}: a unit\'s fan-in {n_in} is not a '
          f'multiple of M = {structure.m}')
    return Layout(shape, perm, units * n_in // structure.m, structure.m,
                  units, n_in, per_row=structure.n)
  return Layout(shape, perm, units, n_in, units, n_in)


def spread_over_rows(magnitude, n_drop, live, key):
  """int32 [rows]: the live rows' shares of a layer's `n_drop`.

  Every live row drops floor(n_drop / live rows); the n_drop mod live rows
  live rows whose smallest active |w| are the smallest drop one more (exact
  ties in a keyed random order), so that the layer drops what an
  unstructured one would, also where a row keeps few weights (2:4 drops
  floor(2·α) = 0 per group for α < 0.5). Other rows drop nothing.

  Args:
    magnitude: float32 [rows, size], |w| of active positions, -1 elsewhere.
    n_drop: int32 scalar, 0 <= n_drop <= the active count.
    live: bool [rows], the rows that take part.
    key: int64 [2], the layer's and step's stateless key.
  """
  n_live = tf.maximum(tf.reduce_sum(tf.cast(live, tf.int32)), 1)
  n_drop = tf.cast(n_drop, tf.int32)
  base = n_drop // n_live
  weakest = tf.reduce_min(
      tf.where(magnitude >= 0, magnitude, float('inf')), axis=1)
  extra = topk.top_n_rows_random_ties(
      tf.where(live, -weakest, -float('inf'))[None], n_drop - base * n_live,
      tf.random.experimental.stateless_fold_in(key, _SPREAD_STREAM))[0]
  return tf.where(live, base + tf.cast(extra, tf.int32), 0)


def live_units(magnitude, score, n_drop, live, counts, threshold, key):
  """bool [rows]: the units that survive SRigL's neuron ablation.

  A unit's salient weights are those an unstructured update of the whole
  layer would keep (the n_active - n_drop largest active |w|) or grow (the
  n_drop best grow scores of the rest). A live unit with fewer than
  threshold · k of them (k its count) is ablated, unless that would leave
  no unit.
  """
  flat = lambda t: tf.reshape(t, [1, -1])  # noqa: E731
  kept = topk.top_n_rows_random_ties(
      flat(magnitude), tf.reduce_sum(counts) - n_drop,
      tf.random.experimental.stateless_fold_in(key, _SALIENT_STREAM))
  grown = topk.top_n_rows_random_ties(
      tf.where(kept > 0, -float('inf'), flat(score)), n_drop,
      tf.random.experimental.stateless_fold_in(key, _SALIENT_STREAM + 1))
  salient = tf.reduce_sum(tf.reshape(kept + grown, tf.shape(magnitude)), 1)
  keep = tf.logical_and(
      live, salient >= threshold * tf.cast(counts, tf.float32))
  return tf.cond(tf.reduce_any(keep), lambda: keep, lambda: live)
