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
"""What a run reports: progress lines, summaries, sparsity and FLOP tables.

`sparsity_report` (per masked weight and overall), `flops_report` (MicroNet
FLOPs and size of the model's masks and the method's training cost, from
`rigl_tf.flops`) and their text forms are what the trainer prints at the end
of a run and writes to report.json; the summaries go to TensorBoard.
"""

import datetime
import os
import time

import tensorflow as tf

from rigl_tf import flops
from rigl_tf import layers as masked_layers


def say_fn(quiet):
  """The progress printer of a run: silent when `quiet`."""
  if quiet:
    return lambda *args: None
  return lambda *args: print(*args, flush=True)


def format_eval(result):
  """'test accuracy: a% (top-5 b%) (n examples)' of an evaluation."""
  text = f'test accuracy: {result["accuracy"]:.4%}'
  if 'top5_accuracy' in result:
    text += f' (top-5 {result["top5_accuracy"]:.4%})'
  return text + f' ({result["eval_examples"]} examples)'


def format_duration(seconds):
  """H:MM:SS of a number of seconds (0 for negative ones)."""
  return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def sparsity_report(model, planned=None):
  """Every weight of a (masked) model: per masked kernel, per dense kernel
  with its reason, the rest summed by kind, and two overall sparsities.

  Returns:
    dict with 'layers': [{name, weights, nonzero, sparsity, planned}] (the
    masked kernels), 'dense': [{name, weights, reason}] (kernels kept dense,
    `layers.weight_inventory`), 'other': {bias, normalization, other} ->
    weights, and 'overall': {weights, nonzero, sparsity} of the masked
    kernels plus 'all_weights' and 'all_sparsity', the fraction of all the
    model's weights that are masked off.
  """
  inventory = masked_layers.weight_inventory(model)
  rows = []
  total = nonzero = 0
  for mw in inventory['masked']:
    ones = int(tf.math.count_nonzero(mw.mask))
    rows.append({
        'name': mw.name,
        'weights': mw.size,
        'nonzero': ones,
        'sparsity': 1.0 - ones / mw.size,
        'planned': (planned or {}).get(mw.name),
    })
    total += mw.size
    nonzero += ones
  everything = total + sum(r['weights'] for r in inventory['dense']) + sum(
      inventory['other'].values())
  overall = {
      'weights': total,
      'nonzero': nonzero,
      'sparsity': 1.0 - nonzero / total if total else 0.0,
      'all_weights': everything,
      'all_sparsity': (total - nonzero) / everything if everything else 0.0,
  }
  return {'layers': rows, 'dense': inventory['dense'],
          'other': inventory['other'], 'overall': overall}


def flops_report(model, updater, train_steps):
  """MicroNet FLOPs and size of the model's actual masks (rigl_tf.flops).

  Returns:
    (report dict with the keys of `python -m rigl_tf.flops --json`, the
    per-layer Markdown table), or ({'error': ...}, '') when the model cannot
    be counted (e.g. no static input shape).
  """
  try:
    costs = flops.layer_costs(model)
    options = updater.training_cost_options(train_steps, costs)
    report = flops.report_dict(costs, method=type(updater),
                               include_layers=True, **options)
  except ValueError as e:
    return {'error': str(e)}, ''
  return report, flops.flops_table_text(costs)


def format_sparsity_report(report):
  """The sparsity report as an aligned text table: masked kernels, kernels
  kept dense (with why), the other weights by kind, and the overall lines."""
  dense_rows = report.get('dense', [])
  if not report['layers'] and not dense_rows:
    return 'Sparsity: dense model (no masked layers).'
  names = [r['name'] for r in report['layers'] + dense_rows]
  width = max(12, max(len(n) for n in names) + 2)
  lines = [f'{"layer":<{width}}{"weights":>12}{"nonzero":>12}'
           f'{"sparsity":>10}']
  for row in report['layers']:
    lines.append(f'{row["name"]:<{width}}{row["weights"]:>12,}'
                 f'{row["nonzero"]:>12,}{row["sparsity"]:>10.2%}')
  for row in dense_rows:
    lines.append(f'{row["name"]:<{width}}{row["weights"]:>12,}'
                 f'{row["weights"]:>12,}{0:>10.2%}  {row["reason"]}')
  for kind, count in report.get('other', {}).items():
    if count:
      lines.append(f'{"(" + kind + ")":<{width}}{count:>12,}{"":>12}'
                   f'{"":>10}  not masked')
  overall = report['overall']
  lines.append(f'{"overall":<{width}}{overall["weights"]:>12,}'
               f'{overall["nonzero"]:>12,}{overall["sparsity"]:>10.2%}'
               '  of the masked kernels')
  if 'all_weights' in overall:
    lines.append(f'{"all weights":<{width}}{overall["all_weights"]:>12,}'
                 f'{"":>12}{overall["all_sparsity"]:>10.2%}'
                 '  of every weight of the model')
  lines.extend(format_structure(report.get('structure')))
  return '\n'.join(lines)


def format_structure(structure):
  """Lines on a structured run's masks (none when unstructured)."""
  if not structure:
    return []
  if structure['name'] == 'constant_fan_in':
    what = ('every output unit keeps k = n_in - floor(s*n_in) inputs: a '
            'layer holds units*k ones, not n - floor(s*n)')
  else:
    n, m = structure['name'].split(':')
    what = f'every group of {m} inputs of a unit keeps {n}'
  lines = [f'structure {structure["name"]} on {len(structure["layers"])} '
           f'layers: {what}']
  for name, why in structure['unstructured'].items():
    lines.append(f'  {name} kept unstructured: {why}')
  for name, units in structure.get('ablated', {}).items():
    lines.append(f'  {name}: {units} output units ablated (no inputs left); '
                 'the others share their budget')
  return lines


def output_locations(output_dir, latest_checkpoint):
  """Lines saying where a finished run's outputs are."""
  return '\n'.join([
      f'Outputs in {output_dir}:',
      f'  report:      {os.path.join(output_dir, "report.json")}',
      f'  TensorBoard: tensorboard --logdir={output_dir}  (train/, eval/)',
      f'  checkpoint:  {latest_checkpoint}  (--mode=eval_once reads it)',
      f'  gin config:  {os.path.join(output_dir, "operative_config.gin")}',
  ])


class Throughput:
  """Steps per second since the previous call."""

  def __init__(self, step):
    self._step, self._time = step, time.time()

  def rate(self, step):
    now = time.time()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    return rate


def write_train_summaries(model, updater, scalars):
  """Writes the training summaries of one logging step (default writer).

  Args:
    model: the trained model (its masks give the overall density).
    updater: its method, which supplies the sparsity summaries.
    scalars: name -> value of the loop's own scalars (loss, accuracy, lr).
  """
  for name, value in scalars.items():
    tf.summary.scalar(name, value)
  if updater.sparse:
    # Per-layer density, ITOP rate, drop fraction, ... (the updater's).
    for name, value in updater.summaries().items():
      tf.summary.scalar(name, value)
    tf.summary.scalar('density/overall',
                      1 - sparsity_report(model)['overall']['sparsity'])


def write_eval_summaries(writer, step, result):
  """Writes an evaluation's metrics (not its example count) at `step`."""
  with writer.as_default(step=step):
    for name, value in result.items():
      if name != 'eval_examples':
        tf.summary.scalar(name, value)


def masks_differing_across_replicas(strategy, model):
  """Names of the masks whose local replica copies are not all equal."""
  differ = []
  for mw in masked_layers.get_masked_weights(model):
    copies = [v.numpy() for v in
              strategy.experimental_local_results(mw.mask)]
    if any(not (copy == copies[0]).all() for copy in copies[1:]):
      differ.append(mw.name)
  return differ
