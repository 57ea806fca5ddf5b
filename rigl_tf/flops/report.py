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
"""Reports of a model's cost: the per-layer table, totals, `count(model)`.

  result = flops.count(model, sparsity=0.9, distribution='erk')
  print(result)  # the per-layer table and the totals line

`report_dict` is what a run writes to report.json and what the flops CLI
prints with --json: inference FLOPs and size of the model's masks (or of
planned densities), against the dense model, and the training FLOPs of the
method whose class (or cost rule) it is handed.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
from typing import Any

import tf_keras as keras

from rigl_tf.flops import cost
from rigl_tf.flops import counting

_NO_COUNTED_LAYER = ('The model has no counted (Conv2D, DepthwiseConv2D, '
                     'Dense) layer.')
REPORT_KEYS = ('inference_flops', 'inference_flops_ratio',
               'training_flops_ratio', 'size_mb', 'dense_inference_flops',
               'dense_size_mb', 'sparsity')


def _fmt_shape(shape):
  return 'x'.join('?' if d is None else str(d) for d in shape)


def flops_table_text(costs: Sequence[counting.LayerCost],
                     include_uncounted: bool = False) -> str:
  """A Markdown table of the per-layer costs and their totals.

  Args:
    costs: records from `layer_costs`.
    include_uncounted: also list the layers MicroNet does not count.

  Returns:
    The table, one line per layer plus a total line.
  """
  lines = [
      '| layer | kind | input | kernel | output | density | FLOPs | '
      'size (bytes) |', '|---|---|---|---|---|---:|---:|---:|'
  ]
  for c in costs:
    if not c.counted and not include_uncounted:
      continue
    if c.counted:
      lines.append(f'| {c.name} | {c.kind} | {_fmt_shape(c.input_shape)} | '
                   f'{_fmt_shape(c.kernel_shape)} | '
                   f'{_fmt_shape(c.output_shape)} | {c.density:.4f} | '
                   f'{c.flops:.4g} | {c.bits / 8:,.0f} |')
    else:
      lines.append(f'| {c.name} | {c.kind} | {_fmt_shape(c.input_shape)} | '
                   f'- | {_fmt_shape(c.output_shape)} | not counted | 0 | '
                   '0 |')
  total = counting.summarize(costs)
  lines.append(f'| **total**{uncounted_note(costs)} | | | | | '
               f'{total.density:.4f} | {total.flops:.4g} | '
               f'{total.bytes:,.0f} |')
  return '\n'.join(lines)


def report_dict(costs: Sequence[counting.LayerCost],
                method=None,
                include_layers: bool = True,
                **training_options) -> dict[str, Any]:
  """The FLOPs/size report of a (possibly sparse) model, JSON-ready.

  Args:
    costs: records from `counting.layer_costs`.
    method: the training method's class (a `rigl_tf.methods` class: its
      `method_name` and cost rule), for `training_flops_ratio`; None: no
      training cost (inference and size only).
    include_layers: add the per-layer records under 'layers'.
    **training_options: keyword arguments of `cost.training_flops_ratio`
      (update_frequency, num_steps, flops_at_density, ...).

  Returns:
    dict with `REPORT_KEYS` (`sparsity` is the realised fraction of zero
    weights over the counted layers; `training_flops_ratio` is None without
    a method), 'method' and optionally 'layers'.

  Raises:
    ValueError: for a model without a counted layer, or a missing input of
      the method's rule.
  """
  sparse = counting.summarize(costs)
  dense = counting.summarize(counting.dense_costs(costs))
  if not dense.flops:
    raise ValueError(_NO_COUNTED_LAYER)
  training = None
  if method is not None:
    training = cost.training_flops_ratio(method, dense.flops, sparse.flops,
                                         **training_options)
  report = {
      'inference_flops': sparse.flops,
      'inference_flops_ratio': sparse.flops / dense.flops,
      'training_flops_ratio': training,
      'size_mb': sparse.size_mb,
      'dense_inference_flops': dense.flops,
      'dense_size_mb': dense.size_mb,
      'sparsity': sparse.sparsity,
      'method': getattr(method, 'method_name', None),
  }
  if include_layers:
    report['layers'] = [c.as_dict() for c in costs if c.counted]
  return report


def format_totals(report: Mapping[str, Any]) -> str:
  """The totals of a `report_dict` (or `{'error': ...}`) as a paragraph."""
  if 'error' in report:
    return f'FLOPs: not counted ({report["error"]})'
  lines = [
      f'Inference FLOPs (MicroNet): {report["inference_flops"]:.4g} = '
      f'{report["inference_flops_ratio"]:.4f}x dense '
      f'({report["dense_inference_flops"]:.4g})']
  if report['training_flops_ratio'] is not None:
    lines.append(f'Training FLOPs ({report["method"]}): '
                 f'{report["training_flops_ratio"]:.4f}x dense training')
  lines.append(
      f'Size: {report["size_mb"]:.4f} MB (dense {report["dense_size_mb"]:.4f}'
      f' MB); sparsity of counted layers {report["sparsity"]:.2%}')
  return '\n'.join(lines)


def uncounted_weighted_layers(costs: Sequence[counting.LayerCost]) -> list[str]:
  """'name (Kind)' of the maskable layers MicroNet's rules leave out.

  These are layers `rigl_tf.layers` can mask (LSTM, Embedding, ...) for
  which MicroNet defines no cost: their FLOPs and size are not in the
  totals, and every report says so next to its totals.

  Args:
    costs: records from `layer_costs`.

  Returns:
    A list of strings, in layer order.
  """
  return [f'{c.name} ({c.kind})' for c in costs
          if not c.counted and c.maskable]


def uncounted_note(costs) -> str:
  """' (not counted, no MicroNet rule: ...)' for a totals line, or ''."""
  uncounted = uncounted_weighted_layers(costs)
  if not uncounted:
    return ''
  return f' (not counted, no MicroNet rule: {", ".join(uncounted)})'


@dataclasses.dataclass(frozen=True)
class FlopsCount:
  """What `count` returns: the per-layer table and the totals.

  Attributes:
    layers: one `LayerCost` per layer, uncounted layers included.
    total: totals over the counted layers at their densities.
    dense_total: the same layers at density 1.
    uncounted: 'name (Kind)' of the maskable layers MicroNet does not count
      (see `uncounted_weighted_layers`); they are not in the totals.
  """
  layers: list
  total: counting.CostSummary
  dense_total: counting.CostSummary
  uncounted: list

  def table(self) -> str:
    """The Markdown per-layer table (uncounted layers listed too)."""
    return flops_table_text(self.layers, include_uncounted=True)

  def totals_line(self) -> str:
    """One line: FLOPs, size and sparsity, and what they leave out."""
    return (f'inference FLOPs: {self.total.flops:.4e} '
            f'({self.total.flops / self.dense_total.flops:.3f}x dense '
            f'{self.dense_total.flops:.4e}), size: {self.total.size_mb:.3f} '
            f'MB (dense {self.dense_total.size_mb:.3f} MB), sparsity: '
            f'{self.total.sparsity:.4f}{uncounted_note(self.layers)}')

  def __str__(self) -> str:
    return f'{self.table()}\n\n{self.totals_line()}'




def count(model: keras.Model,
          sparsity: float | None = None,
          distribution: str = 'erk',
          dense_layers: Sequence[str] = (),
          custom_sparsity_map: Mapping[str, float] | None = None,
          *,
          first_layer_dense: bool = False,
          erk_power_scale: float = 1.0,
          mask_depthwise: bool = False,
          padding_rule: str = 'micronet',
          depthwise_as_conv: bool = False) -> FlopsCount:
  """MicroNet FLOPs and size of any built Keras model, masked or planned.

  With `sparsity=None` each layer's density is that of its mask (a model
  from `rigl_tf.layers.sparsify`, trained or not), else 1. With a sparsity,
  the densities are planned as training would draw them
  (`planned_densities`), whatever masks the model has.

    result = flops.count(keras.applications.MobileNet(weights=None),
                         sparsity=0.9, distribution='erk')
    print(result)  # per-layer table, then the totals line
    result.total.flops, result.total.size_mb, result.layers

  Args:
    model: a built tf_keras Functional or Sequential model.
    sparsity: overall sparsity in [0, 1) of the counted layers; None: the
      model's own masks (dense where it has none).
    distribution: 'erk', 'er' or 'uniform'.
    dense_layers: names of layers kept dense (outside the budget).
    custom_sparsity_map: layer name -> sparsity, fixed outside the budget.
    first_layer_dense: also keep the first counted layer dense.
    erk_power_scale: ERK's exponent (1 = ERK, 0 = uniform).
    mask_depthwise: plan sparse depthwise kernels too (by default they stay
      dense and outside the budget, as `rigl_tf.layers.sparsify` leaves
      them).
    padding_rule: 'micronet' or 'layer' (see `layer_costs`).
    depthwise_as_conv: see `layer_costs`.

  Returns:
    A `FlopsCount`.

  Raises:
    ValueError: for an unknown distribution or layer name, a sparsity
      outside [0, 1), dense_layers or custom_sparsity_map without a
      sparsity, a model without a counted layer or with an unknown input
      shape.
  """
  costs = counting.layer_costs(model, padding_rule=padding_rule,
                               depthwise_as_conv=depthwise_as_conv)
  if sparsity is not None:
    costs = counting.with_densities(costs, counting.planned_densities(
        costs, sparsity, distribution, dense_layers, custom_sparsity_map,
        first_layer_dense, erk_power_scale, mask_depthwise))
  elif dense_layers or custom_sparsity_map:
    raise ValueError('dense_layers and custom_sparsity_map plan densities: '
                     'give a sparsity too.')
  total = counting.summarize(costs)
  if not total.n_weights:
    raise ValueError(_NO_COUNTED_LAYER)
  dense_total = counting.summarize(counting.dense_costs(costs))
  return FlopsCount(layers=list(costs), total=total, dense_total=dense_total,
                    uncounted=uncounted_weighted_layers(costs))
