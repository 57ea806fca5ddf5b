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

Only Conv2D, DepthwiseConv2D and Dense layers are counted (as in RigL's
`sparse_utils.get_stats`, built on the MicroNet challenge's `counting.py`);
every other layer is listed as not counted. For a counted layer with n
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
backward pass costs twice the forward):

  dense              3 f_D
  static, SET, SNIP  3 f_S
  SNFS               2 f_S + f_D (dense gradients every step)
  RigL               (3 f_S dT + 2 f_S + f_D) / (dT + 1)
  GMP                mean over steps of 3 f(d_t) (density schedule d_t)
  GraNet             as GMP, regrowth steps cost 2 f(d_t) + f_D as in RigL
  Gem-Miner          3 f_D per search step, 3 f_S per fine-tuning step

reported as a multiple of dense training (3 f_D per step, same number of
steps), times an optional length multiplier (RigL's "5x" runs).

Command line, e.g.:

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
from collections.abc import Iterable
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

  @property
  def density(self) -> float:
    """Fraction of non-zero kernel weights (1.0 when there are none)."""
    return self.n_nonzero / self.n_weights if self.n_weights else 1.0

  @property
  def n_outputs(self) -> int:
    return self.positions * self.out_channels

  @property
  def mults(self) -> float:
    """Dot-product multiplies plus one ReLU multiply per output element."""
    return self.n_nonzero * self.positions + self.n_outputs

  @property
  def adds(self) -> float:
    """Dot-product adds (n - 1 per dot product) plus one bias add each."""
    dot_adds = self.n_nonzero * self.positions - self.n_outputs
    return dot_adds + self.n_outputs

  @property
  def flops(self) -> float:
    return self.mults + self.adds

  @property
  def bits(self) -> float:
    """Bits to store the kernel's non-zeros, its bitmask and a bias."""
    if not self.counted:
      return 0.0
    mask_bits = self.n_weights if self.n_nonzero < self.n_weights else 0
    return (self.param_bits * self.n_nonzero + mask_bits +
            self.param_bits * self.out_channels)

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


def _conv_output_hw(layer, input_shape, padding_rule):
  if layer.data_format != 'channels_last':
    raise ValueError(f'Layer {layer.name!r}: only channels_last is counted.')
  spatial = input_shape[1:3]
  if any(d is None for d in spatial):
    raise ValueError(
        f'Layer {layer.name!r} has an unknown spatial input size '
        f'{tuple(input_shape)}: build the model with a static input shape.')
  return tuple(
      _spatial_output(size, k, s, d, layer.padding, padding_rule)
      for size, k, s, d in zip(spatial, layer.kernel_size, layer.strides,
                               layer.dilation_rate, strict=True))


def _conv2d_geometry(layer, input_shape, padding_rule, depthwise_as_conv):
  del depthwise_as_conv  # Only depthwise layers care.
  kernel = layer.kernel
  out_h, out_w = _conv_output_hw(layer, input_shape, padding_rule)
  c_out = int(kernel.shape[-1])
  return kernel, out_h * out_w, c_out, (out_h, out_w, c_out)


def _depthwise_geometry(layer, input_shape, padding_rule, depthwise_as_conv):
  kernel = layer.depthwise_kernel
  out_h, out_w = _conv_output_hw(layer, input_shape, padding_rule)
  channels = int(kernel.shape[2]) * int(kernel.shape[3])
  # RigL's MobileNet counts: the kernel (k, k, C, m) seen as a convolution
  # with m output channels: one bias and one ReLU per position per m.
  biased = int(kernel.shape[3]) if depthwise_as_conv else channels
  return kernel, out_h * out_w, biased, (out_h, out_w, channels)


def _dense_geometry(layer, input_shape, padding_rule, depthwise_as_conv):
  del padding_rule, depthwise_as_conv
  kernel = layer.kernel
  leading = input_shape[1:-1]
  if any(d is None for d in leading):
    raise ValueError(f'Layer {layer.name!r} has an unknown input size '
                     f'{tuple(input_shape)}.')
  positions = int(np.prod(leading)) if leading else 1
  units = int(kernel.shape[-1])
  return kernel, positions, units, (*leading, units)


# Kind -> (layer class, geometry function). Looked up in this order with
# isinstance; `_NOT_COUNTED` catches subclasses that are different ops.
_COUNTED_KINDS = {
    'DepthwiseConv2D': (keras.layers.DepthwiseConv2D, _depthwise_geometry),
    'Conv2D': (keras.layers.Conv2D, _conv2d_geometry),
    'Dense': (keras.layers.Dense, _dense_geometry),
}
_NOT_COUNTED = (keras.layers.Conv2DTranspose,)


def _counted_kind(layer) -> str | None:
  if isinstance(layer, _NOT_COUNTED):
    return None
  for kind, (cls, _) in _COUNTED_KINDS.items():
    if isinstance(layer, cls):
      return kind
  return None


def _is_masked(layer) -> bool:
  # Duck-typed `rigl_tf.layers.MaskedLayer`: a Wrapper owning mask variables.
  return hasattr(layer, 'masks') and hasattr(layer, 'layer')


def _mask_nonzeros(wrapper, kernel) -> float | None:
  """Number of ones in the mask of `kernel` (None when it has no mask)."""
  masks = list(wrapper.masks)
  if not masks:
    return None
  weights = list(wrapper.prunable_weights)
  index = next((i for i, w in enumerate(weights) if w is kernel), 0)
  # get_value also reads mirrored (tf.distribute) variables.
  return float(np.sum(keras.backend.get_value(masks[index])))


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


def _walk(model) -> Iterable[keras.layers.Layer]:
  for layer in model.layers:
    if isinstance(layer, keras.Model) and not _is_masked(layer):
      yield from _walk(layer)
    else:
      yield layer


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
  skipped; a layer applied several times is counted once.

  Args:
    model: a built tf_keras Functional or Sequential model (static input
      shape).
    densities: optional layer name -> density in [0, 1].
    padding_rule: 'micronet' (RigL's: every convolution counted as 'same' on
      its actual input) or 'layer' (each layer's own padding).
    depthwise_as_conv: count a depthwise kernel (k, k, C, m) as a convolution
      with m output channels, as RigL's MobileNet numbers do.
    param_bits: bits per stored weight or bias.

  Returns:
    A list of `LayerCost`, one per layer (uncounted ones with
    `counted=False`).

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
  for layer in _walk(model):
    if isinstance(layer, keras.layers.InputLayer):
      continue
    inner = layer.layer if _is_masked(layer) else layer
    input_shape = _layer_shape(layer, 'input_shape')
    kind = _counted_kind(inner)
    if kind is None:
      costs.append(
          LayerCost(
              name=inner.name,
              kind=type(inner).__name__,
              input_shape=_shape_without_batch(input_shape),
              output_shape=_shape_without_batch(
                  _layer_shape(layer, 'output_shape')),
              n_weights=int(inner.count_params()) if inner.built else 0,
              param_bits=param_bits))
      continue
    if input_shape is None:
      raise ValueError(
          f'Cannot count layer {inner.name!r}: its input shape is unknown. '
          'Count a Functional/Sequential model built on a static input.')
    geometry_fn = _COUNTED_KINDS[kind][1]
    kernel, positions, out_channels, output_shape = geometry_fn(
        inner, input_shape, padding_rule, depthwise_as_conv)
    n_weights = int(np.prod(kernel.shape))
    n_nonzero = None
    if inner.name in densities:
      n_nonzero = n_weights * _check_density(inner.name,
                                             densities[inner.name])
    elif _is_masked(layer):
      n_nonzero = _mask_nonzeros(layer, kernel)
    if n_nonzero is None:
      n_nonzero = float(n_weights)
    costs.append(
        LayerCost(
            name=inner.name,
            kind=kind,
            input_shape=_shape_without_batch(input_shape),
            output_shape=output_shape,
            kernel_shape=tuple(int(d) for d in kernel.shape),
            n_weights=n_weights,
            n_nonzero=float(n_nonzero),
            positions=positions,
            out_channels=out_channels,
            counted=True,
            param_bits=param_bits))
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
  """Totals of the counted layers: FLOPs, size and overall density."""
  counted = [c for c in costs if c.counted]
  return CostSummary(
      flops=sum(c.flops for c in counted),
      mults=sum(c.mults for c in counted),
      adds=sum(c.adds for c in counted),
      bits=sum(c.bits for c in counted),
      n_weights=sum(c.n_weights for c in counted),
      n_nonzero=sum(c.n_nonzero for c in counted))


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
  """What the per-method training-cost functions may use.

  Attributes:
    f_dense: dense inference FLOPs f_D.
    f_sparse: sparse inference FLOPs f_S.
    update_frequency: mask-update period dT (RigL, GraNet).
    step_flops: per-step inference FLOPs f(d_t) of a gradual schedule (GMP,
      GraNet), as a sequence.
    regrowth_steps: GraNet's steps with a dense-gradient regrowth.
    search_steps: Gem-Miner's score-search steps.
    finetune_steps: Gem-Miner's fine-tuning steps.
  """
  f_dense: float
  f_sparse: float
  update_frequency: int | None = None
  step_flops: np.ndarray | None = None
  regrowth_steps: np.ndarray | None = None
  search_steps: int | None = None
  finetune_steps: int | None = None


def _require(inputs, method, *names):
  missing = [n for n in names if getattr(inputs, n) is None]
  if missing:
    raise ValueError(f'Training FLOPs of {method!r} need {", ".join(missing)}.')


def _dense_cost(x: TrainingCostInputs) -> float:
  return 3.0 * x.f_dense


def _fixed_mask_cost(x: TrainingCostInputs) -> float:
  # Sparse forward, sparse input-gradients, sparse weight-gradients. SNIP's
  # single scoring step and SET's random growth are negligible.
  return 3.0 * x.f_sparse


def _snfs_cost(x: TrainingCostInputs) -> float:
  # The momentum of every weight needs the dense weight-gradient each step.
  return 2.0 * x.f_sparse + x.f_dense


def _rigl_cost(x: TrainingCostInputs) -> float:
  _require(x, 'rigl', 'update_frequency')
  dt = x.update_frequency
  # Every dT steps one extra step computes the dense gradient (and skips the
  # weight update, as the RigL code does).
  return (3.0 * x.f_sparse * dt + 2.0 * x.f_sparse + x.f_dense) / (dt + 1)


def _gmp_cost(x: TrainingCostInputs) -> float:
  _require(x, 'gmp', 'step_flops')
  return 3.0 * float(np.mean(x.step_flops))


def _granet_cost(x: TrainingCostInputs) -> float:
  _require(x, 'granet', 'step_flops')
  per_step = 3.0 * np.asarray(x.step_flops, dtype=np.float64)
  if x.regrowth_steps is not None:
    steps = np.asarray(x.regrowth_steps, dtype=np.int64)
  else:
    _require(x, 'granet', 'update_frequency')
    steps = np.arange(x.update_frequency, len(per_step), x.update_frequency)
  # A regrowth step needs the dense gradient, as RigL's update step does.
  per_step[steps] = 2.0 * per_step[steps] / 3.0 + x.f_dense
  return float(np.mean(per_step))


def _gem_miner_cost(x: TrainingCostInputs) -> float:
  _require(x, 'gem_miner', 'search_steps', 'finetune_steps')
  total_steps = x.search_steps + x.finetune_steps
  if total_steps <= 0:
    raise ValueError('gem_miner needs search_steps + finetune_steps > 0.')
  # The scores of all weights get gradients during the search: dense cost.
  return (3.0 * x.f_dense * x.search_steps +
          3.0 * x.f_sparse * x.finetune_steps) / total_steps


# Method name -> average training FLOPs per step (per example).
TRAINING_COSTS: dict[str, Callable[[TrainingCostInputs], float]] = {
    'dense': _dense_cost,
    'static': _fixed_mask_cost,
    'set': _fixed_mask_cost,
    'snip': _fixed_mask_cost,
    'snfs': _snfs_cost,
    'rigl': _rigl_cost,
    'gmp': _gmp_cost,
    'granet': _granet_cost,
    'gem_miner': _gem_miner_cost,
}
METHODS = tuple(TRAINING_COSTS)


def _as_step_array(step_flops: StepFlops | None,
                   num_steps: int | None) -> np.ndarray | None:
  if step_flops is None:
    return None
  if callable(step_flops):
    if num_steps is None:
      raise ValueError('A callable density_schedule_flops needs num_steps.')
    return np.array([step_flops(t) for t in range(num_steps)], np.float64)
  values = np.asarray(step_flops, dtype=np.float64)
  if values.ndim != 1 or not values.size:
    raise ValueError('density_schedule_flops must be a non-empty sequence.')
  return values


def training_flops_ratio(method: str,
                         f_dense: float,
                         f_sparse: float | None = None,
                         *,
                         update_frequency: int | None = None,
                         density_schedule_flops: StepFlops | None = None,
                         num_steps: int | None = None,
                         regrowth_steps: Sequence[int] | None = None,
                         search_steps: int | None = None,
                         finetune_steps: int | None = None,
                         length_multiplier: float = 1.0) -> float:
  """Training FLOPs of `method` as a multiple of dense training.

  Dense training costs 3 f_D per example and step; the result is the
  method's average per-step cost over 3 f_D, times `length_multiplier` (the
  method trained that many times longer than the dense baseline).

  Args:
    method: one of `METHODS`.
    f_dense: dense inference FLOPs f_D.
    f_sparse: sparse inference FLOPs f_S (the final model's, for GMP/GraNet
      it is unused); defaults to f_D.
    update_frequency: dT, the mask-update period (rigl; granet's default
      regrowth steps are dT, 2 dT, ...).
    density_schedule_flops: per-step inference FLOPs f(d_t) over the whole
      training (gmp, granet): a sequence, or a callable step -> FLOPs with
      `num_steps`. See `gradual_schedule_flops`.
    num_steps: number of steps, for a callable `density_schedule_flops`.
    regrowth_steps: granet's regrowth steps (default every dT steps).
    search_steps: gem_miner's search steps (dense cost).
    finetune_steps: gem_miner's fine-tuning steps (sparse cost).
    length_multiplier: training length relative to the dense baseline.

  Returns:
    The ratio (1.0 for dense training of the same length).

  Raises:
    ValueError: for an unknown method or a missing method input.
  """
  if method not in TRAINING_COSTS:
    raise ValueError(f'Unknown method {method!r}; choose one of {METHODS}.')
  if f_dense <= 0:
    raise ValueError(f'f_dense must be positive, got {f_dense}.')
  if update_frequency is not None and update_frequency < 1:
    raise ValueError(f'update_frequency must be >= 1, got {update_frequency}.')
  inputs = TrainingCostInputs(
      f_dense=float(f_dense),
      f_sparse=float(f_dense if f_sparse is None else f_sparse),
      update_frequency=update_frequency,
      step_flops=_as_step_array(density_schedule_flops, num_steps),
      regrowth_steps=(None if regrowth_steps is None else
                      np.asarray(regrowth_steps, dtype=np.int64)),
      search_steps=search_steps,
      finetune_steps=finetune_steps)
  per_step = TRAINING_COSTS[method](inputs)
  return per_step / (3.0 * f_dense) * length_multiplier


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
    Array of `num_steps` FLOP counts, for `training_flops_ratio`'s
    `density_schedule_flops`.
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
  lines.append(f'| **total** | | | | | {total.density:.4f} | '
               f'{total.flops:.4g} | {total.bytes:,.0f} |')
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
      (update_frequency, density_schedule_flops, ...).

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


# CLI model name -> builder. Imported lazily: the library does not depend on
# the task folders.
MODEL_BUILDERS: dict[str, Callable[[], keras.Model]] = {
    'resnet50': _lazy_builder('imagenet_resnet.resnet_model', 'resnet50'),
    'mobilenet_v1': _lazy_builder('imagenet_resnet.mobilenet_model',
                                  'mobilenet_v1'),
    'mobilenet_v2': _lazy_builder('imagenet_resnet.mobilenet_model',
                                  'mobilenet_v2'),
    'wrn_22_2': _lazy_builder('cifar_wrn.wrn_model', 'wrn_22_2'),
    'wrn_28_10': _lazy_builder('cifar_wrn.wrn_model', 'wrn_28_10'),
    'resnet20': _lazy_builder('cifar_wrn.wrn_model', 'resnet20'),
    'lenet_300_100': _lenet_300_100,
}
DISTRIBUTIONS = ('erk', 'uniform', 'er')


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the CLI flags on `flag_values` (only `main` needs them)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_enum('model', 'resnet50', list(MODEL_BUILDERS),
                    'Model to count.', **fv)
  flags.DEFINE_float('sparsity', 0.0, 'Overall sparsity in [0, 1).', **fv)
  flags.DEFINE_enum('distribution', 'erk', list(DISTRIBUTIONS),
                    'Per-layer sparsity distribution.', **fv)
  flags.DEFINE_float('erk_power_scale', 1.0, 'ERK exponent (1 = ERK).', **fv)
  flags.DEFINE_list('dense_layers', [], 'Layers kept dense.', **fv)
  flags.DEFINE_bool('first_layer_dense', False,
                    'Keep the first counted layer dense (RigL uniform).', **fv)
  flags.DEFINE_enum('method', 'rigl', list(METHODS),
                    'Training method for the training-FLOPs multiple.', **fv)
  flags.DEFINE_integer('update_frequency', 100,
                       'Mask update / pruning period dT.', **fv)
  flags.DEFINE_integer('num_steps', 32000,
                       'Training steps (gmp, granet, gem_miner).', **fv)
  flags.DEFINE_integer('prune_begin_step', 10000,
                       'First step of the gmp/granet schedule.', **fv)
  flags.DEFINE_integer('prune_end_step', 25000,
                       'Last step of the gmp/granet schedule.', **fv)
  flags.DEFINE_float('initial_density', 1.0,
                     'Density at the start of gmp/granet (0.5: GraNet-ST).',
                     **fv)
  flags.DEFINE_integer('search_steps', None,
                       'gem_miner search steps (default num_steps / 2).', **fv)
  flags.DEFINE_integer(
      'finetune_steps', None,
      'gem_miner fine-tuning steps (default num_steps - search_steps).', **fv)
  flags.DEFINE_float('length_multiplier', 1.0,
                     'Training length relative to dense (RigL 5x: 5).', **fv)
  flags.DEFINE_bool('json', False, 'Print one JSON object only.', **fv)
  flags.register_validator(
      'sparsity', lambda s: s is not None and 0.0 <= s < 1.0,
      message='--sparsity must be in [0, 1).', flag_values=flag_values)
  flags.register_validator(
      'initial_density', lambda d: d is not None and 0.0 < d <= 1.0,
      message='--initial_density must be in (0, 1].', flag_values=flag_values)
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


def _densities_for(costs, sparsity, fv) -> dict[str, float]:
  from rigl_tf import distributions  # pylint: disable=g-import-not-at-top
  sparsities = distributions.get_sparsities(
      kernel_shapes(costs),
      sparsity,
      method=fv.distribution,
      erk_power_scale=fv.erk_power_scale,
      dense_layers=tuple(fv.dense_layers),
      first_layer_dense=fv.first_layer_dense)
  # The exact counts that rigl_tf.masks draws: size - floor(s * size) ones,
  # so planned numbers equal those reported after training.
  shapes = kernel_shapes(costs)
  return {
      name: distributions.num_ones(s, math.prod(shapes[name]))
      / math.prod(shapes[name]) for name, s in sparsities.items()
  }


def _training_options(costs, fv) -> dict[str, Any]:
  """Method inputs from the flags (a gradual schedule for gmp/granet)."""
  options = {'length_multiplier': fv.length_multiplier}
  if fv.method in ('rigl', 'granet'):
    options['update_frequency'] = fv.update_frequency
  if fv.method in ('gmp', 'granet'):

    def flops_at_density(density):
      densities = _densities_for(costs, 1.0 - density, fv)
      return summarize(with_densities(costs, densities)).flops

    options['density_schedule_flops'] = gradual_schedule_flops(
        flops_at_density,
        fv.num_steps,
        initial_density=fv.initial_density,
        final_density=1.0 - fv.sparsity,
        begin_step=fv.prune_begin_step,
        end_step=fv.prune_end_step,
        update_frequency=fv.update_frequency)
  if fv.method == 'gem_miner':
    search = (fv.search_steps
              if fv.search_steps is not None else fv.num_steps // 2)
    finetune = (fv.finetune_steps if fv.finetune_steps is not None else
                fv.num_steps - search)
    options.update(search_steps=search, finetune_steps=finetune)
  return options


def run(flag_values: flags.FlagValues = flags.FLAGS) -> dict[str, Any]:
  """Counts the model the parsed flags describe; returns the report."""
  fv = flag_values
  model = MODEL_BUILDERS[fv.model]()
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
      target_sparsity=fv.sparsity)
  if fv.json:
    print(json.dumps(report))
  else:
    print(_text_report(costs, report, fv))
  return report


def _text_report(costs, report, fv) -> str:
  method = fv.method + (f' (dT={fv.update_frequency})'
                        if fv.method in ('rigl', 'granet', 'gmp') else '')
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
      f'sparsity of counted layers: {report["sparsity"]:.4f}',
  ])


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    _usage_error(f'unexpected arguments {list(argv[1:])}')
  run(flags.FLAGS)


if __name__ == '__main__':
  define_flags(flags.FLAGS)
  app.run(main, flags_parser=parse_flags_or_exit)
