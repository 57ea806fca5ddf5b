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
"""Evaluation: a model's test metrics, one checkpoint, or all of a run's.

`make_evaluate` returns the function every phase evaluates with (top-1,
top-5 where there are more than 5 classes, the number of examples);
`eval_once` verifies a checkpoint (accuracy, the mask invariant, sparsity
and FLOPs); `continuous_eval` follows a training run's checkpoints.
"""

import os
import sys

import tensorflow as tf
import tf_keras as keras

from rigl_tf import flops
from rigl_tf import layers as masked_layers
from rigl_tf.errors import UserError
from rigl_tf.train import checkpoints
from rigl_tf.train import output
from rigl_tf.train import report as report_lib


def _print(*args):
  print(*args, flush=True)


def make_evaluate(strategy, model, dataset, num_classes):
  """A function returning the evaluation metrics of `model` on `dataset`.

  The metrics: 'accuracy' (top-1), 'top5_accuracy' (where there are more
  than 5 classes) and 'eval_examples'.
  """
  with strategy.scope():
    metrics = {'accuracy': keras.metrics.SparseCategoricalAccuracy()}
    if num_classes > 5:
      metrics['top5_accuracy'] = keras.metrics.SparseTopKCategoricalAccuracy(
          k=5)

  @tf.function
  def eval_step(images, labels):

    def fn(images, labels):
      logits = tf.cast(model(images, training=False), tf.float32)
      for metric in metrics.values():
        metric.update_state(labels, logits)

    strategy.run(fn, args=(images, labels))

  def evaluate():
    for metric in metrics.values():
      metric.reset_state()
    for images, labels in strategy.experimental_distribute_dataset(dataset):
      eval_step(images, labels)
    result = {name: float(m.result()) for name, m in metrics.items()}
    result['eval_examples'] = int(metrics['accuracy'].count.numpy())
    return result

  return evaluate


def eval_once(run, ckpt_path):
  """Restores `ckpt_path`, evaluates it, checks the invariant, reports."""
  model = run.model
  checkpoint = tf.train.Checkpoint(model=checkpoints.checkpointable(model))
  checkpoints.restore(checkpoint, ckpt_path,
                      '--eval_once_ckpt').expect_partial()
  result = run.evaluate()
  flops_numbers, _ = report_lib.flops_report(model, run.updater,
                                             run.config.train_steps)
  report = {'checkpoint': ckpt_path, **result,
            'masks': report_lib.sparsity_report(model,
                                                run.planned_sparsities),
            **flops_numbers}
  structure = run.updater.structure_report(model)
  if structure:
    report['masks']['structure'] = structure
  bad = masked_layers.check_invariant(model)
  broken = run.updater.structure_violations(model, run.planned_sparsities)
  _print(f'eval_once {ckpt_path}: {report_lib.format_eval(result)}')
  _print(report_lib.format_sparsity_report(report['masks']))
  _print(flops.format_totals(flops_numbers))
  if bad:
    raise UserError(f'checkpoint violates the mask invariant (non-zero '
                    f'masked weights) in layers {bad}.')
  if broken:
    raise UserError(f'checkpoint breaks the structure '
                    f'{structure["name"]!r}: {"; ".join(broken)}.')
  _print('invariant: every masked weight is exactly zero.')
  if structure:
    _print(f'structure: every structured mask keeps its per-row count '
           f'({structure["name"]}).')
  return report


def continuous_eval(run):
  """Evaluates every new checkpoint in output_dir as training writes them.

  Ends after evaluating the checkpoint of the last training step, or when
  no new checkpoint appears for `eval_timeout` seconds. Accuracies go to
  TensorBoard (output_dir/eval) at each checkpoint's step; the last
  evaluation is written to output_dir/eval_report.json.

  Returns:
    The report of the last evaluated checkpoint ({} if there was none).
  """
  config = run.config
  writer = tf.summary.create_file_writer(
      os.path.join(config.output_dir, 'eval'))
  checkpoint = tf.train.Checkpoint(
      model=checkpoints.checkpointable(run.model))
  report = {}
  for path in tf.train.checkpoints_iterator(
      config.output_dir, min_interval_secs=1, timeout=config.eval_timeout):
    try:
      checkpoints.restore(checkpoint, path).expect_partial()
    except (tf.errors.NotFoundError, UserError) as e:
      # Truncated, or deleted meanwhile by training's CheckpointManager.
      print(f'warning: skipping checkpoint {path}: {e}', file=sys.stderr,
            flush=True)
      continue
    step = checkpoints.checkpoint_step(path)
    result = run.evaluate()
    bad = masked_layers.check_invariant(run.model)
    if bad:
      raise UserError(f'checkpoint {path} violates the mask invariant in '
                      f'layers {bad}.')
    broken = run.updater.structure_violations(run.model,
                                              run.planned_sparsities)
    if broken:
      raise UserError(f'checkpoint {path} breaks the structure: '
                      f'{"; ".join(broken)}.')
    _print(f'step {step}: {report_lib.format_eval(result)}')
    report_lib.write_eval_summaries(writer, step, result)
    writer.flush()
    report = {'checkpoint': path, 'step': step, **result,
              'masks': report_lib.sparsity_report(
                  run.model, run.planned_sparsities)}
    output.write_json(os.path.join(config.output_dir, 'eval_report.json'),
                      report)
    if step >= config.train_steps:
      break
  else:
    _print(f'No new checkpoint in {config.output_dir} for '
           f'{config.eval_timeout:g} s: evaluation stops.')
  return report
