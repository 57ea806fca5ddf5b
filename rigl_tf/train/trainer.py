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
"""The training program of every method but Gem-Miner: train to the end.

`train(run)` resumes from the latest complete checkpoint of the run's output
directory (if any), runs the shared loop in chunks between events (progress
lines and summaries, checkpoints, evaluations), stops with one line on a
non-finite loss, and ends with the report: accuracy, per-layer sparsity,
ITOP rate, FLOPs. The helpers a training phase needs (its iterator, its
restore, its event cadence) serve Gem-Miner's phases too.
"""

import json
import math
import os

import tensorflow as tf

from rigl_tf import data
from rigl_tf import flops
from rigl_tf import layers as masked_layers
from rigl_tf import pictures as pictures_lib
from rigl_tf.errors import UserError
from rigl_tf.train import checkpoints
from rigl_tf.train import loop as loop_lib
from rigl_tf.train import output as output_lib
from rigl_tf.train import report as report_lib


def iterator_fn(strategy, config):
  """fn(data seed) -> an iterator over the run's global training batches."""

  def make(data_seed):
    train_ds = data.get_dataset(
        config.dataset, 'train', config.batch_size, training=True,
        data_dir=config.data_dir, preprocess_fn=config.preprocess_fn,
        seed=data_seed, manual_dir=config.manual_dir)
    if loop_lib.uses_distributed_dataset(strategy):
      return iter(strategy.experimental_distribute_dataset(train_ds))
    return iter(train_ds)

  return make


def next_event(step, total_steps, *periods):
  """The first step after `step` that is a multiple of a period, or the end.

  Args:
    step: the current step.
    total_steps: the last step of the phase.
    *periods: event periods; 0 or None: no such event.

  Returns:
    int, at most `total_steps`.
  """
  events = [total_steps] + [(step // p + 1) * p for p in periods if p]
  return min(events)


def train(run):
  """Trains from the latest checkpoint (if any) to the end; the report."""
  config = run.config
  output = output_lib.prepare(run.strategy, config.output_dir)
  metrics = loop_lib.make_metrics(run.strategy)
  checkpointer, iterator, latest = checkpoints.restore_or_start(
      run.strategy, run.info,
      dict(model=run.model, optimizer=run.optimizer),
      output.save_dir(config.output_dir), config.output_dir,
      config.keep_checkpoints, run.optimizer.iterations,
      iterator_fn(run.strategy, config), config.seed,
      run.train_model.trainable_variables)
  finished = _finished_report(run, latest)
  if finished is not None:
    return finished
  if latest:
    run.say(f'Resumed from {latest} at step '
            f'{int(run.optimizer.iterations.numpy())}.')
  train_loop = loop_lib.make_train_loop(
      run.strategy, run.train_model, run.optimizer, run.info.num_classes,
      config.batch_size, config.label_smoothing, metrics, config.jit_compile)
  if output.chief:
    output_lib.write_operative_config(config.output_dir)
  run.say(f'Training {run.model.name} on {config.dataset} '
          f'({run.info.num_train_examples or "?"} examples): '
          f'method={config.method} sparsity={config.sparsity} '
          f'distribution={config.distribution} steps={config.train_steps} '
          f'batch={config.batch_size} '
          f'replicas={run.strategy.num_replicas_in_sync}')
  step, last_loss = _train_to_end(run, output, checkpointer, train_loop,
                                  iterator, metrics)
  report = _final_report(run, output, step, last_loss)
  output_lib.finish(output, report)
  if output.chief:
    run.say(report_lib.output_locations(
        config.output_dir, tf.train.latest_checkpoint(config.output_dir)))
  return report


def _finished_report(run, latest):
  """The report of a run already trained to the end, or None (train on).

  Started again, a finished run says so in one line and returns its report
  as written (a run killed before writing it trains no step and reports).
  """
  config = run.config
  step = int(run.optimizer.iterations.numpy())
  path = os.path.join(config.output_dir, 'report.json')
  if not latest or step < config.train_steps or not tf.io.gfile.exists(path):
    return None
  print(f'{config.output_dir} already finished at step {step}; its report: '
        f'{path} (raise train_eval.train_steps to train on).', flush=True)
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def _train_to_end(run, output, checkpointer, train_loop, iterator, metrics):
  """Runs the training loop in chunks between events; (step, last loss)."""
  config = run.config
  step = int(run.optimizer.iterations.numpy())
  # Connectivity, density and ITOP pictures in TensorBoard (rigl_tf.pictures).
  pictures = (pictures_lib.TrainingPictures(
      run.model, run.info.input_shape,
      os.path.join(config.output_dir, 'train'), step)
              if output.chief and run.updater.sparse else None)
  throughput = report_lib.Throughput(step)
  last_loss = float('nan')
  while step < config.train_steps:
    target = next_event(step, config.train_steps, config.log_every,
                        config.checkpoint_every, config.eval_every)
    train_loop(iterator, tf.constant(target - step))
    step = int(run.optimizer.iterations.numpy())
    last_loss = float(metrics['loss'].result())
    if not math.isfinite(last_loss):
      stop_diverged(output, config.output_dir, step, last_loss)
    at_end = step == config.train_steps
    if step % config.log_every == 0 or at_end:
      _log_progress(run, output.writer, step, metrics, throughput.rate(step))
      if pictures is not None:
        with output.writer.as_default(step=step):
          pictures.write(step, run.updater.summaries(), final=at_end)
    if step % config.checkpoint_every == 0 or at_end:
      save_checkpoint(checkpointer, run.model, run.updater.sparse, step,
                      run)
    if (config.mode == 'train_and_eval' and config.eval_every
        and step % config.eval_every == 0):
      result = run.evaluate()
      run.say(f'step {step}: {report_lib.format_eval(result)}')
      report_lib.write_eval_summaries(output.eval_writer, step, result)
  return step, last_loss


def stop_diverged(output, directory, step, loss, what='training',
                  advice='Lower the learning rate (make_optimizer.'
                  'learning_rate) or check the data'):
  """Raises the `UserError` of a non-finite loss; cleans a fresh output.

  Args:
    output: the run's `output_lib.Output`.
    directory: the phase's checkpoint directory.
    step: the step reached.
    loss: the loss.
    what: what diverged, for the message.
    advice: what to do, for the message.
  """
  latest = tf.train.latest_checkpoint(directory)
  if latest is None and output.created_output_dir and output.chief:
    # Nothing good was produced: leave no output behind.
    output_lib.remove_tree(output.output_dir)
  raise UserError(
      f'loss is {loss} at step {step}: {what} diverged. {advice}; '
      + (f'the last good checkpoint is {latest}.' if latest else
         'no checkpoint was written.'))


def _log_progress(run, writer, step, metrics, rate):
  """Prints a progress line, writes the train summaries, resets metrics."""
  train_steps = run.config.train_steps
  loss = float(metrics['loss'].result())
  accuracy = float(metrics['accuracy'].result())
  lr = float(run.lr_schedule(step))
  eta = (train_steps - step) / max(rate, 1e-9)
  run.say(f'step {step}/{train_steps}  loss {loss:.4f}  '
          f'acc {accuracy:.4f}  lr {lr:.4g}  {rate:.1f} steps/s  '
          f'ETA {report_lib.format_duration(eta)}')
  with writer.as_default(step=step):
    report_lib.write_train_summaries(
        run.model, run.updater,
        dict(loss=loss, accuracy=accuracy, learning_rate=lr))
  for metric in metrics.values():
    metric.reset_state()


def save_checkpoint(checkpointer, model, sparse, number, run=None):
  """Checks the mask invariant (and `run`'s structure), then saves."""
  bad = masked_layers.check_invariant(model) if sparse else []
  if bad:  # A library bug, never a user's: do not save such a model.
    raise UserError(f'mask invariant violated at step {number} in '
                    f'{bad}; please report this.')
  broken = (run.updater.structure_violations(model, run.planned_sparsities)
            if run is not None and sparse else [])
  if broken:
    raise UserError(f'structured masks broken at step {number}: '
                    f'{"; ".join(broken)}; please report this.')
  checkpointer.save(number)


def _final_report(run, output, step, last_loss):
  """The end-of-training report (final evaluation in train_and_eval)."""
  config, model, updater = run.config, run.model, run.updater
  flops_numbers, flops_table = report_lib.flops_report(model, updater,
                                                       config.train_steps)
  report = {'step': step, 'method': config.method, 'dataset': config.dataset,
            'loss': last_loss if math.isfinite(last_loss) else None,
            'masks': report_lib.sparsity_report(model, run.planned_sparsities),
            **flops_numbers}
  structure = updater.structure_report(model)
  if structure:
    report['masks']['structure'] = structure
  if updater.sparse:
    # In-Time Over-Parameterization: the fraction of the masked weights that
    # were active at some point (equals the density for fixed masks).
    report['itop_rate'] = float(updater.itop_rate())
    check_masks_identical(run.strategy, model)
    report['masks_identical_on_replicas'] = True
  if config.mode == 'train_and_eval':
    result = run.evaluate()
    report.update(result)
    report_lib.write_eval_summaries(output.eval_writer, step, result)
    print(f'Final {report_lib.format_eval(result)} at step {step}',
          flush=True)
  print_report(report, flops_numbers, flops_table, output, step)
  return report


def check_masks_identical(strategy, model):
  """Raises a `UserError` (a library bug) if replicas hold other masks."""
  differ = report_lib.masks_differing_across_replicas(strategy, model)
  if differ:
    raise UserError(f'masks differ across replicas in {differ}; please '
                    'report this.')


def print_report(report, flops_numbers, flops_table, output, step):
  """Prints the sparsity, ITOP and FLOP reports; the table to TensorBoard."""
  print(report_lib.format_sparsity_report(report['masks']), flush=True)
  if 'itop_rate' in report:
    print(f'ITOP rate: {report["itop_rate"]:.2%} of the masked weights were '
          'active at some point of training', flush=True)
  print(flops.format_totals(flops_numbers), flush=True)
  if flops_table:
    print(flops_table, flush=True)
    with output.writer.as_default(step=step):
      tf.summary.text('flops_and_density_per_layer', flops_table)
