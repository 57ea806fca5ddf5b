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
"""MicroNet-style FLOP and size counting, as in the RigL paper; and a CLI.

Conv2D, DepthwiseConv2D and Dense layers are counted as in RigL's
`sparse_utils.get_stats` (built on the MicroNet challenge's `counting.py`);
the other layers the wrapper can mask are counted by the same rules:
Conv1D and Conv3D as convolutions over 1 or 3 spatial dimensions, and a
SeparableConv (1D/2D) as its two ops, a depthwise convolution (named
`<layer>/depthwise_kernel`, dot products only: Keras applies no bias or
activation between the two) followed by a 1x1 convolution
(`<layer>/pointwise_kernel`). Every other layer is listed as not counted. A
layer applied several times (shared weights) is counted once per call. For a
counted layer with n
kernel weights of which nnz = n * d are non-zero (density d), applied at P
output positions (out_h * out_w for a convolution, 1 for a dense layer on a
vector) and producing P * c_out output elements:

* each output element is a dot product of the non-zero weights that reach
  it: nnz * P multiplies and nnz * P - P * c_out adds in all;
* plus, always, one bias add and one ReLU (counted as a multiply) per output
  element, whether or not the layer has a bias or a ReLU: this is what the
  MicroNet ops RigL builds (`use_bias=True, activation='relu'`) count;
* FLOPs = multiplies + adds;
* size in bits: 32 * nnz, plus a 1-bit mask per weight when d < 1, plus 32
  per output channel for the bias.

Output spatial size: RigL counts every convolution as 'same'-padded on the
input the layer actually receives: out = ceil((in - k + 1 + 2 * (k // 2)) /
stride), even for the 'valid' convolution that follows an explicit
`ZeroPadding2D`. So ResNet-50's `conv1` (7x7/2 on the 230x230 padded input)
is counted at 115x115, not at the 112x112 Keras computes. That convention
(`padding_rule='micronet'`, the default) is needed to reproduce the paper's
numbers: with it the dense Keras ResNet-50 costs 8,202,340,776 FLOPs and
816,975,104 bits = 102.121888 MB, RigL's 8.2e9 / 102.122 MB; counting
`conv1` at its true 112x112 output gives 8.1895e9 (0.16% lower).
`padding_rule='layer'` uses each layer's own padding ('valid' is pad 0) and
gives the output sizes Keras computes. A megabyte is 1e6 bytes (the 2**20
convention would give 97.39 "MB" for the same model).

Depthwise layers follow MicroNet's `DepthWiseConv2D` op (bias and ReLU per
output channel). RigL's MobileNet numbers (1141.544 MFLOPs, 16.864 MB dense)
were made with a Keras in which `DepthwiseConv2D` subclassed `Conv2D`, so
`get_stats` counted it as a convolution with a single output channel (one
bias and one ReLU per position); `depthwise_as_conv=True` reproduces that.

Training cost per example (f_D, f_S: dense and sparse inference FLOPs; the
backward pass costs twice the forward). Each method's rule lives with its
class in `rigl_tf.updaters` (`training_flops_per_step`), the one registry of
methods; this module looks it up:

  dense              3 f_D
  static, SET        3 f_S
  SNFS               2 f_S + f_D (dense gradients every step)
  RigL               (3 f_S dT + 2 f_S + f_D) / (dT + 1)

reported as a multiple of dense training (3 f_D per step, same number of
steps), times an optional length multiplier (RigL's "5x" runs). For methods
with a density schedule, `gradual_training_flops_per_step` (GMP: the mean of
3 f(d_t); GraNet: regrowth steps cost 2 f(d_t) + f_D as in RigL) and
`search_then_finetune_flops_per_step` (Gem-Miner: 3 f_D per search step,
3 f_S per fine-tuning step) are the rules their classes state.

Any built Keras model, from Python (see `count`):

  result = flops.count(model, sparsity=0.9, distribution='erk')
  print(result)  # the per-layer table and the totals line

Command line, e.g. (--model: a name of `MODEL_BUILDERS` or a builder's
import path 'package.module:function'):

  python -m rigl_tf.flops --model=resnet50 --sparsity=0.9 --distribution=erk \
      --method=rigl --update_frequency=100 [--json]
"""

if __name__ == '__main__':
  # Command line: hide TensorFlow's native start-up notices (see quiet.py),
  # so that output and errors are ours alone. Importers are not affected.
  from rigl_tf import quiet as _quiet
  with _quiet.native_stderr_silenced():
    import tensorflow as _tf
    _tf.config.list_physical_devices('GPU')

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import importlib
import json
import math
import sys
from typing import Any

from absl import app
from absl import flags
import numpy as np
import tf_keras as keras

PARAM_BITS = 32
BYTES_PER_MB = 1e6
PADDING_RULES = ('micronet', 'layer')


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """The MicroNet cost of one layer for one inference example.

  Attributes:
    name: the layer's name (the wrapped layer's name for a masked layer).
    kind: 'Conv2D', 'DepthwiseConv2D', 'Dense', or the class name of a layer
      that is not counted.
    input_shape: the layer's input shape without the batch dimension.
    output_shape: the output shape the count uses (spatial size by the
      padding rule; see the module docstring), without the batch dimension.
    kernel_shape: shape of the counted kernel; () when not counted.
    n_weights: number of kernel weights (for an uncounted layer: its number
      of parameters, for information).
    n_nonzero: number of non-zero kernel weights, n_weights * density.
    positions: output positions at which the kernel is applied (P).
    out_channels: output channels that get a bias add and a ReLU per
      position.
    counted: whether MicroNet counts the layer.
    param_bits: bits per stored non-zero weight or bias.
    bias_relu: whether a bias add and a ReLU follow each output element
      (False for the depthwise half of a separable convolution).
    maskable: for an uncounted layer, whether `rigl_tf.layers` can mask it
      (LSTM, Embedding, ...): sparse weights whose cost is not counted.
  """
  name: str
  kind: str
  input_shape: tuple
  output_shape: tuple
  kernel_shape: tuple = ()
  n_weights: int = 0
  n_nonzero: float = 0.0
  positions: int = 0
  out_channels: int = 0
  counted: bool = False
  param_bits: int = PARAM_BITS
  bias_relu: bool = True
  maskable: bool = False

  @property
  def density(self) -> float:
    """Fraction of non-zero kernel weights (1.0 when there are none)."""
    return self.n_nonzero / self.n_weights if self.n_weights else 1.0

  @property
  def n_outputs(self) -> int:
    return self.positions * self.out_channels

  @property
  def _bias_relu_ops(self) -> int:
    return self.n_outputs if self.bias_relu else 0

  @property
  def mults(self) -> float:
    """Dot-product multiplies plus one ReLU multiply per output element."""
    return self.n_nonzero * self.positions + self._bias_relu_ops

  @property
  def adds(self) -> float:
    """Dot-product adds (n - 1 per dot product) plus one bias add each."""
    dot_adds = self.n_nonzero * self.positions - self.n_outputs
    return dot_adds + self._bias_relu_ops

  @property
  def flops(self) -> float:
    return self.mults + self.adds

  @property
  def bits(self) -> float:
    """Bits to store the kernel's non-zeros, its bitmask and a bias."""
    if not self.counted:
      return 0.0
    mask_bits = self.n_weights if self.n_nonzero < self.n_weights else 0
    bias_bits = self.param_bits * self.out_channels if self.bias_relu else 0
    return self.param_bits * self.n_nonzero + mask_bits + bias_bits

  def as_dict(self) -> dict[str, Any]:
    """JSON-friendly record, derived quantities included."""
    return {
        'name': self.name,
        'kind': self.kind,
        'input_shape': list(self.input_shape),
        'output_shape': list(self.output_shape),
        'kernel_shape': list(self.kernel_shape),
        'n_weights': self.n_weights,
        'density': self.density,
        'mults': self.mults,
        'adds': self.adds,
        'flops': self.flops,
        'bits': self.bits,
        'counted': self.counted,
    }


@dataclasses.dataclass(frozen=True)
class CostSummary:
  """Totals over the counted layers of a model."""
  flops: float
  mults: float
  adds: float
  bits: float
  n_weights: int
  n_nonzero: float

  @property
  def bytes(self) -> float:
    return self.bits / 8.0

  @property
  def size_mb(self) -> float:
    return self.bytes / BYTES_PER_MB

  @property
  def density(self) -> float:
    return self.n_nonzero / self.n_weights if self.n_weights else 1.0

  @property
  def sparsity(self) -> float:
    return 1.0 - self.density


# ----------------------------------------------------------------------------
# Layer geometry: how many positions, which output channels, which kernel.
# ----------------------------------------------------------------------------


def _spatial_output(size, kernel, stride, dilation, padding, padding_rule):
  """Output length along one spatial dimension."""
  effective = (kernel - 1) * dilation + 1
  if padding_rule == 'micronet':
    # MicroNet's 'same': k // 2 on each side, whatever the layer's padding.
    return math.ceil((size - effective + 1 + 2 * (effective // 2)) / stride)
  if padding == 'same':
    return math.ceil(size / stride)  # Keras 'same', any kernel size.
  return math.ceil((size - effective + 1) / stride)  # 'valid'


def _conv_output_spatial(layer, input_shape, padding_rule):
  """Output size along each spatial dimension of a (1D/2D/3D) convolution."""
  if layer.data_format != 'channels_last':
    raise ValueError(f'Layer {layer.name!r}: only channels_last is counted.')
  spatial = tuple(input_shape[1:1 + layer.rank])
  if any(d is None for d in spatial):
    raise ValueError(
        f'Layer {layer.name!r} has an unknown spatial input size '
        f'{tuple(input_shape)}: build the model with a static input shape.')
  return tuple(
      _spatial_output(size, k, s, d, layer.padding, padding_rule)
      for size, k, s, d in zip(spatial, layer.kernel_size, layer.strides,
                               layer.dilation_rate, strict=True))


@dataclasses.dataclass(frozen=True)
class _Op:
  """One counted op of a layer: its kernel and where it is applied."""
  suffix: str  # '' or '/<kernel name>' for a layer with several ops.
  kind: str
  kernel: Any
  positions: int
  out_channels: int
  output_shape: tuple
  bias_relu: bool = True


def _conv_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  del depthwise_as_conv  # Only depthwise layers care.
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  c_out = int(layer.kernel.shape[-1])
  return [_Op('', f'Conv{layer.rank}D', layer.kernel, math.prod(out), c_out,
              (*out, c_out))]


def _depthwise_op(kernel, out, depthwise_as_conv, suffix='', bias_relu=True):
  """A depthwise kernel (k.., C, m) applied at the positions `out`."""
  channels = int(kernel.shape[-2]) * int(kernel.shape[-1])
  # RigL's MobileNet counts: the kernel (k, k, C, m) seen as a convolution
  # with m output channels: one bias and one ReLU per position per m.
  biased = int(kernel.shape[-1]) if depthwise_as_conv else channels
  return _Op(suffix, f'DepthwiseConv{len(out)}D', kernel, math.prod(out),
             biased if bias_relu else channels, (*out, channels), bias_relu)


def _depthwise_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  return [_depthwise_op(layer.depthwise_kernel, out, depthwise_as_conv)]


def _separable_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  """Depthwise (no bias/ReLU between the two) then pointwise 1x1 conv."""
  out = _conv_output_spatial(layer, input_shape, padding_rule)
  depthwise = _depthwise_op(layer.depthwise_kernel, out, depthwise_as_conv,
                            '/depthwise_kernel', bias_relu=False)
  c_out = int(layer.pointwise_kernel.shape[-1])
  pointwise = _Op('/pointwise_kernel', f'Conv{layer.rank}D',
                  layer.pointwise_kernel, math.prod(out), c_out, (*out, c_out))
  return [depthwise, pointwise]


def _dense_ops(layer, input_shape, padding_rule, depthwise_as_conv):
  del padding_rule, depthwise_as_conv
  leading = input_shape[1:-1]
  if any(d is None for d in leading):
    raise ValueError(f'Layer {layer.name!r} has an unknown input size '
                     f'{tuple(input_shape)}.')
  positions = int(np.prod(leading)) if leading else 1
  units = int(layer.kernel.shape[-1])
  return [_Op('', 'Dense', layer.kernel, positions, units, (*leading, units))]


# Layer class -> function giving its counted ops. Looked up in this order
# with isinstance; `_NOT_COUNTED` catches subclasses that are different ops.
_COUNTED_LAYERS = (
    (keras.layers.DepthwiseConv1D, _depthwise_ops),
    (keras.layers.DepthwiseConv2D, _depthwise_ops),
    (keras.layers.SeparableConv1D, _separable_ops),
    (keras.layers.SeparableConv2D, _separable_ops),
    (keras.layers.Conv1D, _conv_ops),
    (keras.layers.Conv2D, _conv_ops),
    (keras.layers.Conv3D, _conv_ops),
    (keras.layers.Dense, _dense_ops),
)
_NOT_COUNTED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
                keras.layers.Conv3DTranspose)


def _ops_function(layer):
  if isinstance(layer, _NOT_COUNTED):
    return None
  for cls, ops_fn in _COUNTED_LAYERS:
    if isinstance(layer, cls):
      return ops_fn
  return None


def _is_masked(layer) -> bool:
  # Duck-typed `rigl_tf.layers.MaskedLayer`: a Wrapper owning mask variables.
  return hasattr(layer, 'masks') and hasattr(layer, 'layer')


def _mask_nonzeros(wrapper, kernel) -> float | None:
  """Number of ones in the mask of `kernel` (None when it has no mask)."""
  weights = list(wrapper.prunable_weights)
  index = next((i for i, w in enumerate(weights) if w is kernel), None)
  if index is None:  # Not masked (e.g. a depthwise kernel kept dense).
    return None
  # get_value also reads mirrored (tf.distribute) variables.
  return float(np.sum(keras.backend.get_value(list(wrapper.masks)[index])))


def _is_maskable(layer) -> bool:
  """Whether `rigl_tf.layers` can mask `layer` (imported only when needed)."""
  if not layer.weights:
    return False
  from rigl_tf import layers  # pylint: disable=g-import-not-at-top
  return layers.is_maskable(layer)


def _shape_without_batch(shape) -> tuple:
  return tuple(shape[1:]) if shape is not None else ()


def _layer_shape(layer, attr):
  try:
    shape = getattr(layer, attr)
  except (AttributeError, RuntimeError):
    return None
  # A layer with several inputs/outputs reports a list of shapes.
  if isinstance(shape, list):
    return None
  return tuple(shape)


def _node_shape(shapes):
  if isinstance(shapes, list) or shapes is None:
    return None
  return tuple(shapes)


def _calls(model, layer):
  """(input shape, output shape) of each call of `layer` inside `model`.

  A Functional/Sequential model knows its calls (graph nodes); a layer used
  twice (shared weights) has two. Otherwise: one call, the layer's shapes.
  """
  network_nodes = getattr(model, '_network_nodes', None)
  nodes = getattr(layer, '_inbound_nodes', None)
  if network_nodes and nodes:
    calls = [(_node_shape(node.input_shapes), _node_shape(node.output_shapes))
             for i, node in enumerate(nodes)
             if f'{layer.name}_ib-{i}' in network_nodes]
    if calls:
      return calls
  return [(_layer_shape(layer, 'input_shape'),
           _layer_shape(layer, 'output_shape'))]


def _walk(model):
  """Yields (layer, input shape, output shape) once per call of each layer."""
  for layer in model.layers:
    if isinstance(layer, keras.layers.InputLayer):
      continue
    calls = _calls(model, layer)
    if isinstance(layer, keras.Model) and not _is_masked(layer):
      for _ in calls:
        yield from _walk(layer)
    else:
      for input_shape, output_shape in calls:
        yield layer, input_shape, output_shape


def layer_costs(model: keras.Model,
                densities: Mapping[str, float] | None = None,
                *,
                padding_rule: str = 'micronet',
                depthwise_as_conv: bool = False,
                param_bits: int = PARAM_BITS) -> list[LayerCost]:
  """Per-layer MicroNet costs of a built model, in layer order.

  A layer's density comes from `densities[name]` when given (planned
  densities, e.g. from `rigl_tf.distributions` before any training), else
  from its masks when it is a masked wrapper (the mean of the kernel's mask),
  else 1 (dense). Nested models are walked recursively; input layers are
  skipped; a layer applied several times gives one record per call (the
  same name; its weights are stored once, see `summarize`). A separable
  convolution gives two records, `<name>/depthwise_kernel` and
  `<name>/pointwise_kernel`.

  Args:
    model: a built tf_keras Functional or Sequential model (static input
      shape).
    densities: optional record name -> density in [0, 1].
    padding_rule: 'micronet' (RigL's: every convolution counted as 'same' on
      its actual input) or 'layer' (each layer's own padding).
    depthwise_as_conv: count a depthwise kernel (k, k, C, m) as a convolution
      with m output channels, as RigL's MobileNet numbers do.
    param_bits: bits per stored weight or bias.

  Returns:
    A list of `LayerCost`, one per counted op and call (uncounted layers
    with `counted=False`).

  Raises:
    ValueError: for an unknown padding rule, a name in `densities` that is
      not a counted layer, a density outside [0, 1], or a layer whose input
      shape is unknown (a subclassed model that was never called).
  """
  if padding_rule not in PADDING_RULES:
    raise ValueError(f'Unknown padding_rule {padding_rule!r}; choose one of '
                     f'{PADDING_RULES}.')
  densities = dict(densities or {})
  costs = []
  for layer, input_shape, output_shape in _walk(model):
    inner = layer.layer if _is_masked(layer) else layer
    ops_fn = _ops_function(inner)
    if ops_fn is None:
      costs.append(
          LayerCost(
              name=inner.name,
              kind=type(inner).__name__,
              input_shape=_shape_without_batch(input_shape),
              output_shape=_shape_without_batch(output_shape),
              n_weights=int(inner.count_params()) if inner.built else 0,
              param_bits=param_bits,
              maskable=_is_masked(layer) or _is_maskable(inner)))
      continue
    if input_shape is None:
      raise ValueError(
          f'Cannot count layer {inner.name!r}: its input shape is unknown. '
          'Count a Functional/Sequential model built on a static input.')
    for op in ops_fn(inner, input_shape, padding_rule, depthwise_as_conv):
      name = inner.name + op.suffix
      n_weights = int(np.prod(op.kernel.shape))
      n_nonzero = None
      if name in densities:
        n_nonzero = n_weights * _check_density(name, densities[name])
      elif _is_masked(layer):
        n_nonzero = _mask_nonzeros(layer, op.kernel)
      if n_nonzero is None:
        n_nonzero = float(n_weights)
      costs.append(
          LayerCost(
              name=name,
              kind=op.kind,
              input_shape=_shape_without_batch(input_shape),
              output_shape=op.output_shape,
              kernel_shape=tuple(int(d) for d in op.kernel.shape),
              n_weights=n_weights,
              n_nonzero=float(n_nonzero),
              positions=op.positions,
              out_channels=op.out_channels,
              counted=True,
              param_bits=param_bits,
              bias_relu=op.bias_relu))
  _check_names(densities, costs)
  return costs


def _check_density(name, density):
  if not 0.0 <= density <= 1.0:
    raise ValueError(f'Density of {name!r} must be in [0, 1], got {density}.')
  return float(density)


def _check_names(densities, costs):
  counted = [c.name for c in costs if c.counted]
  unknown = sorted(set(densities) - set(counted))
  if unknown:
    raise ValueError(f'densities name layers that are not counted: {unknown}; '
                     f'counted layers are {counted}.')


def with_densities(costs: Sequence[LayerCost],
                   densities: Mapping[str, float]) -> list[LayerCost]:
  """Recounts `costs` with new densities for the named layers.

  Cheap (no model needed), e.g. to evaluate every density of a pruning
  schedule.

  Args:
    costs: records from `layer_costs`.
    densities: layer name -> density; layers not named keep theirs.

  Returns:
    New records.

  Raises:
    ValueError: for an unknown layer name or a density outside [0, 1].
  """
  _check_names(densities, costs)
  return [
      dataclasses.replace(
          c, n_nonzero=c.n_weights * _check_density(c.name, densities[c.name]))
      if c.name in densities else c for c in costs
  ]


def dense_costs(costs: Sequence[LayerCost]) -> list[LayerCost]:
  """The same layers at density 1."""
  return with_densities(costs, {c.name: 1.0 for c in costs if c.counted})


def summarize(costs: Sequence[LayerCost]) -> CostSummary:
  """Totals of the counted layers: FLOPs, size and overall density.

  FLOPs add up over every call; weights (size, density) count once per
  layer, however often it is called.
  """
  counted = [c for c in costs if c.counted]
  stored = list({c.name: c for c in reversed(counted)}.values())
  return CostSummary(
      flops=sum(c.flops for c in counted),
      mults=sum(c.mults for c in counted),
      adds=sum(c.adds for c in counted),
      bits=sum(c.bits for c in stored),
      n_weights=sum(c.n_weights for c in stored),
      n_nonzero=sum(c.n_nonzero for c in stored))


def kernel_shapes(costs: Sequence[LayerCost]) -> dict[str, tuple]:
  """Ordered layer name -> kernel shape of the counted layers.

  This is the `shapes` argument of `rigl_tf.distributions.get_sparsities`.
  """
  return {c.name: c.kernel_shape for c in costs if c.counted}


# ----------------------------------------------------------------------------
# Training FLOPs.
# ----------------------------------------------------------------------------

StepFlops = Sequence[float] | np.ndarray | Callable[[int], float]


@dataclasses.dataclass(frozen=True)
class TrainingCostInputs:
  """What a method's training-cost rule may use.

  Attributes:
    f_dense: dense inference FLOPs f_D.
    f_sparse: sparse inference FLOPs f_S.
    update_frequency: mask-update period dT (RigL, GraNet).
    num_steps: the run's number of steps, when known.
    flops_at_density: optional callable density -> inference FLOPs of the
      model at that overall density (for methods with a density schedule).
    options: further inputs a method's rule names itself (e.g. Gem-Miner's
      search_steps and finetune_steps), from its `training_cost_options`.
  """
  f_dense: float
  f_sparse: float
  update_frequency: int | None = None
  num_steps: int | None = None
  flops_at_density: Callable[[float], float] | None = None
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _method_registry():
  """`rigl_tf.updaters`, with the methods defined in other modules loaded."""
  # pylint: disable=g-import-not-at-top
  from rigl_tf import gem_miner  # noqa: F401  (registers 'gem_miner')
  from rigl_tf import updaters
  return updaters


def methods() -> list[str]:
  """Methods with a training-cost rule: every registered updater."""
  return _method_registry().methods()


def training_flops_ratio(method: str,
                         f_dense: float,
                         f_sparse: float | None = None,
                         *,
                         update_frequency: int | None = None,
                         num_steps: int | None = None,
                         flops_at_density: Callable[[float], float]
                         | None = None,
                         length_multiplier: float = 1.0,
                         **method_options) -> float:
  """Training FLOPs of `method` as a multiple of dense training.

  Dense training costs 3 f_D per example and step; the result is the
  method's average per-step cost (its updater class's
  `training_flops_per_step`) over 3 f_D, times `length_multiplier` (the
  method trained that many times longer than the dense baseline).

  Args:
    method: a method registered in `rigl_tf.updaters`.
    f_dense: dense inference FLOPs f_D.
    f_sparse: sparse inference FLOPs f_S; defaults to f_D.
    update_frequency: dT, the mask-update period (rigl).
    num_steps: the run's number of steps.
    flops_at_density: density -> inference FLOPs, for methods with a
      density schedule.
    length_multiplier: training length relative to the dense baseline.
    **method_options: inputs only this method's rule uses
      (`TrainingCostInputs.options`).

  Returns:
    The ratio (1.0 for dense training of the same length).

  Raises:
    ValueError: for an unknown method or a missing method input.
  """
  updater_class = _method_registry().get_updater_class(method)
  if f_dense <= 0:
    raise ValueError(f'f_dense must be positive, got {f_dense}.')
  if update_frequency is not None and update_frequency < 1:
    raise ValueError(f'update_frequency must be >= 1, got {update_frequency}.')
  inputs = TrainingCostInputs(
      f_dense=float(f_dense),
      f_sparse=float(f_dense if f_sparse is None else f_sparse),
      update_frequency=update_frequency,
      num_steps=num_steps,
      flops_at_density=flops_at_density,
      options=method_options)
  per_step = updater_class.training_flops_per_step(inputs)
  return per_step / (3.0 * f_dense) * length_multiplier


def gradual_training_flops_per_step(step_flops: StepFlops,
                                    f_dense: float,
                                    *,
                                    num_steps: int | None = None,
                                    regrowth_steps: Sequence[int] | None = None
                                    ) -> float:
  """The rule of methods with a density schedule (GMP; GraNet).

  The mean over the steps of 3 f(d_t); a regrowth step (GraNet's
  neuroregeneration) needs the dense gradient: 2 f(d_t) + f_D, as RigL's
  update step.

  Args:
    step_flops: per-step inference FLOPs f(d_t) over the whole training (a
      sequence, or a callable step -> FLOPs with `num_steps`); see
      `gradual_schedule_flops`.
    f_dense: dense inference FLOPs f_D.
    num_steps: number of steps, for a callable `step_flops`.
    regrowth_steps: steps with a dense-gradient regrowth (none for GMP).

  Returns:
    Average training FLOPs per step and example.
  """
  per_step = 3.0 * _as_step_array(step_flops, num_steps)
  if regrowth_steps is not None:
    steps = np.asarray(regrowth_steps, dtype=np.int64)
    per_step[steps] = 2.0 * per_step[steps] / 3.0 + f_dense
  return float(np.mean(per_step))


def search_then_finetune_flops_per_step(f_dense: float, f_sparse: float,
                                        search_steps: int,
                                        finetune_steps: int) -> float:
  """The rule of Gem-Miner: a dense-cost search, then sparse fine-tuning.

  The scores of all weights get gradients during the search (3 f_D per
  step); fine-tuning with a fixed mask costs 3 f_S per step.

  Args:
    f_dense: dense inference FLOPs f_D.
    f_sparse: sparse inference FLOPs f_S.
    search_steps: score-search steps.
    finetune_steps: fine-tuning steps.

  Returns:
    Average training FLOPs per step and example.

  Raises:
    ValueError: when there are no steps.
  """
  total_steps = search_steps + finetune_steps
  if total_steps <= 0:
    raise ValueError('search_steps + finetune_steps must be > 0.')
  return (3.0 * f_dense * search_steps +
          3.0 * f_sparse * finetune_steps) / total_steps


def _as_step_array(step_flops: StepFlops, num_steps: int | None) -> np.ndarray:
  if callable(step_flops):
    if num_steps is None:
      raise ValueError('A callable step_flops needs num_steps.')
    return np.array([step_flops(t) for t in range(num_steps)], np.float64)
  values = np.asarray(step_flops, dtype=np.float64)
  if values.ndim != 1 or not values.size:
    raise ValueError('step_flops must be a non-empty sequence.')
  return values.copy()


def gradual_density_schedule(num_steps: int,
                             *,
                             initial_density: float,
                             final_density: float,
                             begin_step: int,
                             end_step: int,
                             update_frequency: int) -> np.ndarray:
  """Per-step density of Zhu & Gupta's cubic schedule (GMP, GraNet).

  d_t = d_f + (d_i - d_f) (1 - (t - t0) / (t_end - t0))^3, recomputed every
  `update_frequency` steps from t0 (so it holds d_i until t0 + dT), d_i
  before t0 and d_f from t_end on.

  Args:
    num_steps: training length T (steps 0 .. T - 1).
    initial_density: d_i.
    final_density: d_f.
    begin_step: t0.
    end_step: t_end > t0.
    update_frequency: dT >= 1.

  Returns:
    Array of T densities.

  Raises:
    ValueError: for inconsistent arguments.
  """
  if end_step <= begin_step or update_frequency < 1 or num_steps < 1:
    raise ValueError(
        'Need num_steps >= 1, end_step > begin_step and update_frequency '
        f'>= 1; got {num_steps}, {begin_step}..{end_step}, {update_frequency}.')
  t = np.arange(num_steps)
  last_update = begin_step + (t - begin_step) // update_frequency * (
      update_frequency)
  progress = np.clip((last_update - begin_step) / (end_step - begin_step), 0,
                     1)
  density = final_density + (initial_density - final_density) * (1 -
                                                                  progress)**3
  density = np.where(t < begin_step, initial_density, density)
  return np.where(t >= end_step, final_density, density)


def gradual_schedule_flops(flops_at_density: Callable[[float], float],
                           num_steps: int, **schedule_kwargs) -> np.ndarray:
  """Per-step inference FLOPs f(d_t) of a cubic density schedule.

  Args:
    flops_at_density: density -> inference FLOPs (e.g. distribute 1 - d over
      the layers, `with_densities`, `summarize`). Called once per distinct
      density.
    num_steps: training length.
    **schedule_kwargs: the keyword arguments of `gradual_density_schedule`.

  Returns:
    Array of `num_steps` FLOP counts, for
    `gradual_training_flops_per_step`.
  """
  densities = gradual_density_schedule(num_steps, **schedule_kwargs)
  unique, inverse = np.unique(densities, return_inverse=True)
  values = np.array([flops_at_density(float(d)) for d in unique], np.float64)
  return values[inverse]


# ----------------------------------------------------------------------------
# Reports.
# ----------------------------------------------------------------------------

REPORT_KEYS = ('inference_flops', 'inference_flops_ratio',
               'training_flops_ratio', 'size_mb', 'dense_inference_flops',
               'dense_size_mb', 'sparsity')


def _fmt_shape(shape):
  return 'x'.join('?' if d is None else str(d) for d in shape)


def flops_table_text(costs: Sequence[LayerCost],
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
  total = summarize(costs)
  lines.append(f'| **total**{_uncounted_note(costs)} | | | | | '
               f'{total.density:.4f} | {total.flops:.4g} | '
               f'{total.bytes:,.0f} |')
  return '\n'.join(lines)


def report_dict(costs: Sequence[LayerCost],
                method: str = 'static',
                include_layers: bool = True,
                **training_options) -> dict[str, Any]:
  """The FLOPs/size report of a (possibly sparse) model, JSON-ready.

  Args:
    costs: records from `layer_costs`.
    method: the training method, for `training_flops_ratio`.
    include_layers: add the per-layer records under 'layers'.
    **training_options: keyword arguments of `training_flops_ratio`
      (update_frequency, num_steps, flops_at_density, ...).

  Returns:
    dict with `REPORT_KEYS` (`sparsity` is the realised fraction of zero
    weights over the counted layers), 'method' and optionally 'layers'.
  """
  sparse = summarize(costs)
  dense = summarize(dense_costs(costs))
  if not dense.flops:
    raise ValueError('The model has no counted (Conv2D, DepthwiseConv2D, '
                     'Dense) layer.')
  report = {
      'inference_flops': sparse.flops,
      'inference_flops_ratio': sparse.flops / dense.flops,
      'training_flops_ratio': training_flops_ratio(
          method, dense.flops, sparse.flops, **training_options),
      'size_mb': sparse.size_mb,
      'dense_inference_flops': dense.flops,
      'dense_size_mb': dense.size_mb,
      'sparsity': sparse.sparsity,
      'method': method,
  }
  if include_layers:
    report['layers'] = [c.as_dict() for c in costs if c.counted]
  return report


# ----------------------------------------------------------------------------
# One call for any model: `count`.
# ----------------------------------------------------------------------------


def uncounted_weighted_layers(costs: Sequence[LayerCost]) -> list[str]:
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


def _uncounted_note(costs) -> str:
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
  total: CostSummary
  dense_total: CostSummary
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
            f'{self.total.sparsity:.4f}{_uncounted_note(self.layers)}')

  def __str__(self) -> str:
    return f'{self.table()}\n\n{self.totals_line()}'


def planned_densities(costs: Sequence[LayerCost],
                      sparsity: float,
                      distribution: str = 'erk',
                      dense_layers: Sequence[str] = (),
                      custom_sparsity_map: Mapping[str, float] | None = None,
                      first_layer_dense: bool = False,
                      erk_power_scale: float = 1.0,
                      mask_depthwise: bool = False) -> dict[str, float]:
  """Counted layer name -> density that training would draw.

  The distribution gives each layer its sparsity s (`rigl_tf.distributions`)
  and `rigl_tf.masks` keeps n - floor(s * n) of a layer's n weights, so the
  planned counts equal those of a trained model. Depthwise kernels stay
  dense and outside the budget unless `mask_depthwise` (as `sparsify`).

  Args:
    costs: records from `layer_costs`.
    sparsity: overall sparsity in [0, 1).
    distribution: 'erk', 'er' or 'uniform'.
    dense_layers: layers kept dense (outside the budget).
    custom_sparsity_map: layer name -> sparsity, outside the budget.
    first_layer_dense: keep the first counted layer dense.
    erk_power_scale: ERK's exponent.
    mask_depthwise: plan sparse depthwise kernels too.

  Returns:
    dict name -> density (layers kept dense may be absent).
  """
  from rigl_tf import distributions  # pylint: disable=g-import-not-at-top
  shapes = kernel_shapes(costs)
  sparsities = distributions.get_sparsities(
      _maskable_shapes(costs, mask_depthwise), sparsity,
      method=distribution, erk_power_scale=erk_power_scale,
      dense_layers=tuple(dense_layers),
      custom_sparsity_map=custom_sparsity_map,
      first_layer_dense=first_layer_dense)
  return {
      name: distributions.num_ones(s, math.prod(shapes[name]))
      / math.prod(shapes[name]) for name, s in sparsities.items()
  }


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
  costs = layer_costs(model, padding_rule=padding_rule,
                      depthwise_as_conv=depthwise_as_conv)
  if sparsity is not None:
    costs = with_densities(costs, planned_densities(
        costs, sparsity, distribution, dense_layers, custom_sparsity_map,
        first_layer_dense, erk_power_scale, mask_depthwise))
  elif dense_layers or custom_sparsity_map:
    raise ValueError('dense_layers and custom_sparsity_map plan densities: '
                     'give a sparsity too.')
  total = summarize(costs)
  if not total.n_weights:
    raise ValueError('The model has no counted (Conv2D, DepthwiseConv2D, '
                     'Dense) layer.')
  return FlopsCount(layers=list(costs), total=total,
                    dense_total=summarize(dense_costs(costs)),
                    uncounted=uncounted_weighted_layers(costs))


# ----------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------


def _lenet_300_100():
  try:
    models = importlib.import_module('mnist.models')
    return models.lenet_300_100(input_shape=(784,), num_classes=10)
  except (ImportError, AttributeError):
    # mnist/models.py not there (yet): the same MLP.
    return keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(300, activation='relu', name='fc1'),
        keras.layers.Dense(100, activation='relu', name='fc2'),
        keras.layers.Dense(10, name='fc3'),
    ], name='lenet_300_100')


def _lazy_builder(module_name, function_name):

  def build():
    return getattr(importlib.import_module(module_name), function_name)()

  return build


def _lenet5():
  return importlib.import_module('mnist.models').lenet5()


# CLI model name -> builder: every model builder of the task folders
# (flops_test checks that none is missing). Imported lazily: the library does
# not depend on the task folders. Other models: --model=module:function.
MODEL_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    **{
        f'resnet{depth}': _lazy_builder('imagenet_resnet.resnet_model',
                                        f'resnet{depth}')
        for depth in (18, 34, 50, 101, 152)
    },
    'mobilenet_v1': _lazy_builder('imagenet_resnet.mobilenet_model',
                                  'mobilenet_v1'),
    'mobilenet_v2': _lazy_builder('imagenet_resnet.mobilenet_model',
                                  'mobilenet_v2'),
    'wrn_22_2': _lazy_builder('cifar_wrn.wrn_model', 'wrn_22_2'),
    'wrn_28_10': _lazy_builder('cifar_wrn.wrn_model', 'wrn_28_10'),
    'resnet20': _lazy_builder('cifar_wrn.wrn_model', 'resnet20'),
    'cifar_resnet': _lazy_builder('cifar_wrn.wrn_model', 'cifar_resnet'),
    'lenet_300_100': _lenet_300_100,
    'lenet5': _lenet5,
}


def build_model(name: str) -> keras.Model:
  """The model a `--model` value names.

  Args:
    name: a key of `MODEL_BUILDERS`, or 'package.module:function', the
      import path of a function that takes no argument and returns a built
      tf_keras model (the module is imported from the current directory or
      PYTHONPATH).

  Returns:
    The built model.

  Raises:
    ValueError: for an unknown name, a module or function that cannot be
      imported, or a builder that does not return a tf_keras model.
  """
  if name in MODEL_BUILDERS:
    return MODEL_BUILDERS[name]()
  if ':' not in name:
    raise ValueError(
        f'Unknown model {name!r}: choose one of '
        f'{", ".join(sorted(MODEL_BUILDERS))}, or give a builder function '
        "as 'package.module:function'.")
  module_name, function_name = name.split(':', 1)
  if '' not in sys.path:
    sys.path.insert(0, '')  # python -m does; a console script may not.
  try:
    builder = getattr(importlib.import_module(module_name), function_name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f'Cannot import model builder {name!r}: {e}') from e
  model = builder()
  if not isinstance(model, keras.Model):
    raise ValueError(f'{name} returned {type(model).__name__}, not a '
                     'tf_keras Model (import tf_keras as keras).')
  return model


DISTRIBUTIONS = ('erk', 'uniform', 'er')


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the CLI flags on `flag_values` (only `main` needs them)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_string(
      'model', 'resnet50',
      f'Model to count: one of {", ".join(sorted(MODEL_BUILDERS))}; or the '
      "import path 'package.module:function' of a function that returns a "
      'built tf_keras model.', **fv)
  flags.DEFINE_float('sparsity', 0.0, 'Overall sparsity in [0, 1).', **fv)
  flags.DEFINE_enum('distribution', 'erk', list(DISTRIBUTIONS),
                    'Per-layer sparsity distribution.', **fv)
  flags.DEFINE_float('erk_power_scale', 1.0, 'ERK exponent (1 = ERK).', **fv)
  flags.DEFINE_list('dense_layers', [], 'Layers kept dense.', **fv)
  flags.DEFINE_bool('first_layer_dense', False,
                    'Keep the first counted layer dense (RigL uniform).', **fv)
  flags.DEFINE_bool('mask_depthwise', False,
                    'Give depthwise kernels the distribution\'s sparsity '
                    '(default: dense and outside the budget, as RigL).', **fv)
  flags.DEFINE_enum('method', 'rigl', methods(),
                    'Training method (a registered updater) for the '
                    'training-FLOPs multiple.', **fv)
  flags.DEFINE_integer('update_frequency', 100,
                       'Mask update period dT.', **fv)
  flags.DEFINE_integer('num_steps', 32000,
                       'Training steps (for methods whose cost depends on '
                       'the run length).', **fv)
  flags.DEFINE_integer('search_steps', None,
                       'gem_miner: score-search steps (dense cost).', **fv)
  flags.DEFINE_integer('finetune_steps', None,
                       'gem_miner: fine-tuning steps (sparse cost).', **fv)
  flags.DEFINE_float('length_multiplier', 1.0,
                     'Training length relative to dense (RigL 5x: 5).', **fv)
  flags.DEFINE_bool('json', False, 'Print one JSON object only.', **fv)
  flags.register_validator(
      'sparsity', lambda s: s is not None and 0.0 <= s < 1.0,
      message='--sparsity must be in [0, 1).', flag_values=flag_values)
  flags.register_validator(
      'update_frequency', lambda n: n is not None and n >= 1,
      message='--update_frequency must be >= 1.', flag_values=flag_values)


def parse_flags_or_exit(argv: Sequence[str],
                        flag_values: flags.FlagValues = flags.FLAGS):
  """Parses `argv`; on a bad value prints one line on stderr and exits 2."""
  try:
    return flag_values(list(argv))
  except flags.Error as e:
    _usage_error(str(e))


def _usage_error(message):
  sys.stderr.write(f'rigl_tf.flops: error: {message}\n')
  sys.exit(2)


def _maskable_shapes(costs, mask_depthwise):
  """Kernel shapes the distribution covers (what `sparsify` would mask)."""
  shapes = kernel_shapes(costs)
  if mask_depthwise:
    return shapes
  # Depthwise kernels stay dense and outside the budget (rigl_tf.layers).
  depthwise = {c.name for c in costs if c.kind.startswith('DepthwiseConv')}
  return {n: s for n, s in shapes.items() if n not in depthwise}


def _densities_for(costs, sparsity, fv) -> dict[str, float]:
  return planned_densities(
      costs, sparsity, fv.distribution, dense_layers=tuple(fv.dense_layers),
      first_layer_dense=fv.first_layer_dense,
      erk_power_scale=fv.erk_power_scale, mask_depthwise=fv.mask_depthwise)


def _training_options(costs, fv) -> dict[str, Any]:
  """Every input a method's cost rule may use; the rule picks its own."""

  def flops_at_density(density):
    densities = _densities_for(costs, 1.0 - density, fv)
    return summarize(with_densities(costs, densities)).flops

  options = {
      'length_multiplier': fv.length_multiplier,
      'update_frequency': fv.update_frequency,
      'num_steps': fv.num_steps,
      'flops_at_density': flops_at_density,
      # Where gradual methods (gmp, granet) end their density schedule.
      'final_density': 1.0 - fv.sparsity,
  }
  # Inputs only one method's rule names (TrainingCostInputs.options).
  for name in ('search_steps', 'finetune_steps'):
    if fv[name].value is not None:
      options[name] = fv[name].value
  return options


def run(flag_values: flags.FlagValues = flags.FLAGS) -> dict[str, Any]:
  """Counts the model the parsed flags describe; returns the report."""
  fv = flag_values
  try:
    model = build_model(fv.model)
  except ValueError as e:
    _usage_error(str(e))
  dense = layer_costs(model)
  try:
    costs = with_densities(dense, _densities_for(dense, fv.sparsity, fv))
    options = _training_options(dense, fv)
    report = report_dict(costs, method=fv.method, **options)
  except ValueError as e:
    _usage_error(str(e))
  report.update(
      model=fv.model,
      distribution=fv.distribution,
      target_sparsity=fv.sparsity,
      not_counted=uncounted_weighted_layers(costs))
  if fv.json:
    print(json.dumps(report))
  else:
    print(_text_report(costs, report, fv))
  return report


def _text_report(costs, report, fv) -> str:
  method = f'{fv.method} (update_frequency={fv.update_frequency})'
  return '\n'.join([
      f'{fv.model}, {fv.distribution} sparsity {fv.sparsity}',
      '',
      flops_table_text(costs),
      '',
      f'inference FLOPs: {report["inference_flops"]:.4e} '
      f'({report["inference_flops_ratio"]:.3f}x dense '
      f'{report["dense_inference_flops"]:.4e})',
      f'training FLOPs, {method}: {report["training_flops_ratio"]:.3f}x '
      'dense training',
      f'size: {report["size_mb"]:.3f} MB (dense {report["dense_size_mb"]:.3f}'
      ' MB)',
      f'sparsity of counted layers: {report["sparsity"]:.4f}'
      f'{_uncounted_note(costs)}',
  ])


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    _usage_error(f'unexpected arguments {list(argv[1:])}')
  run(flags.FLAGS)


if __name__ == '__main__':
  define_flags(flags.FLAGS)
  app.run(main, flags_parser=parse_flags_or_exit)
