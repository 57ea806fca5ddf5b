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
"""Training cost: a method's rule turned into a multiple of dense training.

Each method states its training-cost rule (`training_flops_per_step`, on its
class in `rigl_tf.methods`): the average FLOPs of one training step for one
example, from the `TrainingCostInputs` here (f_D, f_S and the run's options).
This module never names a method: `training_flops_ratio` is handed the rule
(or the class that carries it). It also holds the arithmetic that the rules
of methods with a density schedule share (GMP and GraNet: the cubic
schedule's per-step FLOPs; Gem-Miner: a dense search then sparse
fine-tuning). Dense training costs 3 f_D per step (the backward pass costs
twice the forward); RigL's rule, for example, is
(3 f_S ΔT + 2 f_S + f_D) / (ΔT + 1).
"""

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
from typing import Any

import numpy as np

StepFlops = Sequence[float] | np.ndarray | Callable[[int], float]
# A training-cost rule: TrainingCostInputs -> FLOPs per step and example.
CostRule = Callable[['TrainingCostInputs'], float]


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



def _rule_of(rule_or_class):
  """The cost rule itself, or the `training_flops_per_step` of a class."""
  rule = getattr(rule_or_class, 'training_flops_per_step', rule_or_class)
  if not callable(rule):
    raise TypeError(
        'training_flops_ratio needs a cost rule (TrainingCostInputs -> '
        'FLOPs per step) or a method class that carries one, got '
        f'{rule_or_class!r}.')
  return rule


def training_flops_ratio(rule,
                         f_dense: float,
                         f_sparse: float | None = None,
                         *,
                         update_frequency: int | None = None,
                         num_steps: int | None = None,
                         flops_at_density: Callable[[float], float]
                         | None = None,
                         length_multiplier: float = 1.0,
                         **method_options) -> float:
  """Training FLOPs of a method as a multiple of dense training.

  Dense training costs 3 f_D per example and step; the result is the
  method's average per-step cost (its rule) over 3 f_D, times
  `length_multiplier` (the method trained that many times longer than the
  dense baseline).

  Args:
    rule: the method's cost rule, or its class (a `rigl_tf.methods` class,
      whose `training_flops_per_step` is the rule).
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
    ValueError: for a missing or invalid input.
  """
  rule = _rule_of(rule)
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
  return rule(inputs) / (3.0 * f_dense) * length_multiplier


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

