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
"""Per-layer sparsity distributions: uniform, Erdos-Renyi (ER) and ERK.

Given an overall sparsity S over the maskable layers:

* `uniform`: every layer gets S.
* `er`: density of layer l proportional to (n_in + n_out) / (n_in * n_out).
* `erk`: density proportional to (sum(shape) / prod(shape)) ** p, with
  p = `erk_power_scale` (1 is ERK, 0 is uniform).

Layers the user fixes are outside the budget, for every distribution, as in
google-research/rigl (`sparse_utils.get_sparsities` skips the layers of
`custom_sparsity_map`, and its ImageNet script keeps the first layer dense by
mapping it to 0): a layer in `custom_sparsity_map` gets its given sparsity,
and `dense_layers` and `first_layer_dense` are a custom map to 0. S then
applies to the other layers only, so the model as a whole is a little less
sparse than S.

For ER/ERK the factor epsilon is solved so that the number of non-zeros of
the other layers equals their uniform budget (1 - S) * sum(n). A layer whose
density would exceed 1 becomes dense and epsilon is solved again,
repeatedly; these layers, which ERK itself caps, stay inside the budget.

A layer with sparsity s and n weights has exactly `num_zeros(s, n)` =
floor(s * n) zeros.
"""

import math
from typing import Mapping, Optional, Sequence

DISTRIBUTIONS = ('uniform', 'er', 'erk')


def check_sparsity(sparsity, what='sparsity'):
  """Raises ValueError unless 0 <= sparsity < 1."""
  if (not isinstance(sparsity, (int, float)) or math.isnan(sparsity)
      or not 0.0 <= sparsity < 1.0):
    raise ValueError(
        f'{what} must be in [0, 1) (the fraction of weights that are zero), '
        f'got {sparsity!r}.')


def num_zeros(sparsity: float, size: int) -> int:
  """floor(sparsity * size), robust to float noise such as 0.29 * 100."""
  return int(math.floor(round(sparsity * size, 6)))


def num_ones(sparsity: float, size: int) -> int:
  """Number of active (non-zero) weights of a layer: size - floor(s * size)."""
  return size - num_zeros(sparsity, size)


def _raw_density(shape, method, erk_power_scale):
  if method == 'erk':
    return (sum(shape) / math.prod(shape))**erk_power_scale
  # ER uses only the fan-in/fan-out dimensions (the last two).
  n_in, n_out = (shape[-2], shape[-1]) if len(shape) >= 2 else (shape[0], 1)
  return (n_in + n_out) / (n_in * n_out)


def _solve_epsilon(shapes, sparsity, method, erk_power_scale, custom):
  """ER/ERK's epsilon: (epsilon, raw densities, capped layer names).

  Layers that would exceed density 1 become dense (capped, still inside the
  budget) and epsilon is solved again, repeatedly.
  """
  capped = set()
  while True:
    budget = 0.0
    divisor = 0.0
    raw = {}
    for name, shape in shapes.items():
      if name in custom:
        continue
      size = math.prod(shape)
      budget += size * (1.0 - sparsity)
      if name in capped:
        budget -= size
      else:
        raw[name] = _raw_density(shape, method, erk_power_scale)
        divisor += raw[name] * size
    if not raw or divisor <= 0:
      return 0.0, raw, capped
    epsilon = budget / divisor
    max_raw = max(raw.values())
    if max_raw * epsilon <= 1.0:
      return epsilon, raw, capped
    capped.update(n for n, r in raw.items() if r == max_raw)


def get_sparsities(shapes: Mapping[str, Sequence[int]],
                   sparsity: float,
                   method: str = 'erk',
                   erk_power_scale: float = 1.0,
                   dense_layers: Sequence[str] = (),
                   custom_sparsity_map: Optional[Mapping[str, float]] = None,
                   first_layer_dense: bool = False) -> dict[str, float]:
  """Computes each layer's sparsity.

  Args:
    shapes: ordered mapping layer name -> weight shape (the first entry is the
      "first layer").
    sparsity: overall sparsity S in [0, 1).
    method: 'uniform', 'er' or 'erk'.
    erk_power_scale: the exponent p of ERK.
    dense_layers: names of layers kept dense (outside the budget).
    custom_sparsity_map: name -> sparsity for layers fixed outside the budget.
    first_layer_dense: also keep the first layer dense (outside the budget).

  Returns:
    dict name -> sparsity, in the order of `shapes`.

  Raises:
    ValueError: on an unknown method or layer name, a sparsity outside
      [0, 1), or a layer both in `dense_layers` and mapped to a non-zero
      sparsity.
  """
  if method not in DISTRIBUTIONS:
    raise ValueError(f'Unknown sparsity distribution {method!r}; choose one '
                     f'of {", ".join(DISTRIBUTIONS)}.')
  check_sparsity(sparsity)
  custom = dict(custom_sparsity_map or {})
  dense = set(dense_layers)
  names = list(shapes)
  unknown = sorted((dense | set(custom)) - set(names))
  if unknown:
    raise ValueError(
        f'Unknown layer names {unknown} in dense_layers/custom_sparsity_map; '
        f'maskable layers are {names}.')
  for name, value in custom.items():
    check_sparsity(value, f'custom sparsity of {name!r}')
  if first_layer_dense and names:
    dense.add(names[0])
  conflicting = sorted(n for n in dense if custom.get(n, 0.0) != 0.0)
  if conflicting:
    raise ValueError(
        f'Layers {conflicting} are both kept dense and given a non-zero '
        'sparsity in custom_sparsity_map.')
  # Dense layers are a custom map to 0: outside the budget.
  custom.update({name: 0.0 for name in dense})

  if method == 'uniform':
    return {name: float(custom.get(name, sparsity)) for name in names}
  epsilon, raw, capped = _solve_epsilon(shapes, sparsity, method,
                                        erk_power_scale, custom)
  result = {}
  for name in names:
    if name in custom:
      result[name] = float(custom[name])
    elif name in capped:
      result[name] = 0.0
    else:
      result[name] = 1.0 - epsilon * raw[name]
  return result
