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
r"""`python -m rigl_tf.flops`: MicroNet FLOPs, size, training cost of a model.

  python -m rigl_tf.flops --model=resnet50 --sparsity=0.9 --distribution=erk \
      --method=rigl --update_frequency=100 [--json]

--model is a name of `rigl_tf.tasks.MODEL_BUILDERS` or a builder's import
path 'package.module:function'. The per-layer table and the totals are those
of `rigl_tf.flops.count`; the training-FLOPs multiple is the cost rule of the
`--method`'s class (`rigl_tf.methods`).
"""

from collections.abc import Sequence
import json
import sys
from typing import Any

from absl import app
from absl import flags

from rigl_tf import distributions
from rigl_tf import errors
from rigl_tf import methods
from rigl_tf import tasks
from rigl_tf.flops import counting
from rigl_tf.flops import report as report_lib


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the CLI flags on `flag_values` (only `main` needs them)."""
  fv = {'flag_values': flag_values}
  flags.DEFINE_string(
      'model', 'resnet50',
      'Model to count: one of '
      f'{", ".join(sorted(tasks.MODEL_BUILDERS))}; or the '
      "import path 'package.module:function' of a function that returns a "
      'built tf_keras model.', **fv)
  flags.DEFINE_float('sparsity', 0.0, 'Overall sparsity in [0, 1).', **fv)
  flags.DEFINE_enum('distribution', 'erk', list(distributions.DISTRIBUTIONS),
                    'Per-layer sparsity distribution.', **fv)
  flags.DEFINE_float('erk_power_scale', 1.0, 'ERK exponent (1 = ERK).', **fv)
  flags.DEFINE_list('dense_layers', [], 'Layers kept dense.', **fv)
  flags.DEFINE_bool('first_layer_dense', False,
                    'Keep the first counted layer dense (RigL uniform).', **fv)
  flags.DEFINE_bool('mask_depthwise', False,
                    'Give depthwise kernels the distribution\'s sparsity '
                    '(default: dense and outside the budget, as RigL).', **fv)
  flags.DEFINE_enum('method', 'rigl', methods.names(),
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
  """Parses `argv`; on a bad value prints one `error:` line, exit status 1."""
  return errors.parse_flags(argv, flag_values)


def _usage_error(message):
  sys.exit(f'error: {message} (see --help).')


def _densities_for(costs, sparsity, fv) -> dict[str, float]:
  return counting.planned_densities(
      costs, sparsity, fv.distribution, dense_layers=tuple(fv.dense_layers),
      first_layer_dense=fv.first_layer_dense,
      erk_power_scale=fv.erk_power_scale, mask_depthwise=fv.mask_depthwise)


def _training_options(costs, fv) -> dict[str, Any]:
  """Every input a method's cost rule may use; the rule picks its own."""

  def flops_at_density(density):
    densities = _densities_for(costs, 1.0 - density, fv)
    return counting.summarize(counting.with_densities(costs, densities)).flops

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
    model = tasks.build_model(fv.model)
  except ValueError as e:
    _usage_error(str(e))
  dense = counting.layer_costs(model)
  try:
    costs = counting.with_densities(dense,
                                    _densities_for(dense, fv.sparsity, fv))
    options = _training_options(dense, fv)
    report = report_lib.report_dict(
        costs, method=methods.get_class(fv.method), **options)
  except ValueError as e:
    _usage_error(str(e))
  report.update(
      model=fv.model,
      distribution=fv.distribution,
      target_sparsity=fv.sparsity,
      not_counted=report_lib.uncounted_weighted_layers(costs))
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
      report_lib.flops_table_text(costs),
      '',
      f'inference FLOPs: {report["inference_flops"]:.4e} '
      f'({report["inference_flops_ratio"]:.3f}x dense '
      f'{report["dense_inference_flops"]:.4e})',
      f'training FLOPs, {method}: {report["training_flops_ratio"]:.3f}x '
      'dense training',
      f'size: {report["size_mb"]:.3f} MB (dense {report["dense_size_mb"]:.3f}'
      ' MB)',
      f'sparsity of counted layers: {report["sparsity"]:.4f}'
      f'{report_lib.uncounted_note(costs)}',
  ])


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    _usage_error(f'unexpected arguments {list(argv[1:])}')
  run(flags.FLAGS)


def entry():
  """The program of `python -m rigl_tf.flops`."""
  define_flags(flags.FLAGS)
  app.run(main, flags_parser=parse_flags_or_exit)
