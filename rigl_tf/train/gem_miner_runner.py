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
"""Gem-Miner's program on the shared trainer: search, then fine-tune.

`run` searches the scores (the shared loop with the scores as its variables,
the score regulariser as its extra loss and the clipping as its after-step
hook; Gem-Miner's thresholding after each round's epoch), then fine-tunes
the gem and each sanity check as an ordinary static-mask model. Every phase
checkpoints each epoch in its own directory (`search/`, `finetune/`,
`sanity_<check>/`) with the shared checkpointer, so an interrupted run
resumes bit-identically, the search as the fine-tuning. Evaluation, output
directory handling and reports are the shared ones; `eval_once` verifies
the fine-tuned gem. The `train_eval` settings Gem-Miner has no use for are
refused with one line when they are set (`check_config`).
"""

import dataclasses
import json
import math
import os
import time
from typing import Callable, Optional

import tensorflow as tf

from rigl_tf import data
from rigl_tf import flavours
from rigl_tf import optimizers as optimizers_lib
from rigl_tf.errors import UserError
from rigl_tf.methods import gem_miner
from rigl_tf.methods import registry
from rigl_tf.methods import scored
from rigl_tf.methods import static
from rigl_tf.train import build
from rigl_tf.train import checkpoints
from rigl_tf.train import config as config_lib
from rigl_tf.train import evaluate as evaluate_lib
from rigl_tf.train import loop as loop_lib
from rigl_tf.train import output as output_lib
from rigl_tf.train import report as report_lib
from rigl_tf.train import trainer

# train_eval settings Gem-Miner does not use, and why; refused when set.
UNUSED = {
    'train_steps': 'its lengths are GemMiner.search_epochs and '
                   'GemMiner.finetune_epochs',
    'training_steps_multiplier': 'its lengths are GemMiner.search_epochs '
                                 'and GemMiner.finetune_epochs',
    'distribution': 'its per-layer densities are what the search finds',
    'erk_power_scale': 'its per-layer densities are what the search finds',
    'dense_layers': 'the search scores every Dense and Conv2D layer',
    'first_layer_dense': 'the search scores every Dense and Conv2D layer',
    'custom_sparsity_map': 'its per-layer densities are what the search '
                           'finds',
    'mask_init': 'its mask is the search\'s',
    'log_every': 'it reports every search epoch',
    'checkpoint_every': 'it checkpoints every epoch',
    'eval_every': 'the search evaluates every epoch',
    'eval_timeout': 'there is no --mode=eval for it',
}
SEARCH_DIR = 'search'
FINETUNE_DIR = 'finetune'


def check_config(config):
  """Refuses a mode or setting Gem-Miner cannot honour, with one line."""
  if config.mode == 'eval':
    raise UserError(
        'gem_miner has no --mode=eval: a Gem-Miner run trains several models '
        '(the search, the gem, the sanity checks); verify its fine-tuned gem '
        'with --mode=eval_once.')
  defaults = config_lib.defaults()
  for name, why in UNUSED.items():
    if getattr(config, name) != defaults[name]:
      raise UserError(f'gem_miner does not use train_eval.{name} ({why}); '
                      'remove that binding.')
  if not 0.0 < config.sparsity < 1.0:
    raise UserError('gem_miner needs a target train_eval.sparsity in (0, 1), '
                    f'got {config.sparsity}.')


@dataclasses.dataclass
class _Context:
  """What the phases of a Gem-Miner run share."""
  config: config_lib.RunConfig
  strategy: tf.distribute.Strategy
  info: data.DatasetInfo
  miner: gem_miner.GemMiner
  output: output_lib.Output
  eval_ds: tf.data.Dataset
  make_iterator: Callable
  steps_per_epoch: int
  say: Callable
  on_epoch_end: Optional[Callable]

  def evaluate_fn(self, model):
    return evaluate_lib.make_evaluate(self.strategy, model, self.eval_ds,
                                      self.info.num_classes)

  def epoch_done(self, phase, epoch, model):
    if self.on_epoch_end is not None:
      self.on_epoch_end(phase, epoch, model)


def _make_miner(config, info, miner=None):
  """The run's `GemMiner` (gin's values), with its epoch length set."""
  if miner is None:
    try:
      miner = registry.create('gem_miner')
    except ValueError as e:
      raise UserError(str(e)) from e
  miner.sparsity = float(config.sparsity)
  if miner.steps_per_epoch is None:
    if not info.num_train_examples:
      raise UserError(
          f'gem_miner counts epochs and {config.dataset} does not say how '
          'many training examples it has: bind GemMiner.steps_per_epoch.')
    miner.steps_per_epoch = max(1, info.num_train_examples //
                                config.batch_size)
  return miner


def _keras(ctx_or_config):
  """The Keras module of the run's flavour (`train_eval.keras`)."""
  config = getattr(ctx_or_config, 'config', ctx_or_config)
  return flavours.module(config.keras)


def _scored_model(config, info, miner):
  """The model ready for the search (call in the strategy's scope)."""
  _keras(config).utils.set_random_seed(config.seed)
  base = build.build_model(config, info, sparse=False)
  try:
    return scored.scored_model(base, quantized=miner.quantized,
                               score_init=miner.score_init,
                               weight_init=miner.weight_init,
                               seed=config.seed)
  except ValueError as e:  # A kernel the search cannot score.
    raise UserError(str(e)) from e


def make_context(config, strategy, info, miner=None, on_epoch_end=None):
  """What the phases of a run share; prepares the output directory.

  Args:
    config: the resolved `RunConfig`.
    strategy: the run's strategy.
    info: the dataset's `data.DatasetInfo`.
    miner: the `GemMiner` (default: from gin).
    on_epoch_end: optional fn(phase, epoch, model) after each epoch's
      checkpoint (phase: 'search', 'finetune', 'sanity_<check>').

  Returns:
    The run's context.
  """
  output = output_lib.prepare(strategy, config.output_dir)
  miner = _make_miner(config, info, miner)
  return _Context(config, strategy, info, miner, output,
                  build.eval_dataset(config),
                  trainer.iterator_fn(strategy, config),
                  miner.steps_per_epoch, report_lib.say_fn(config.quiet),
                  on_epoch_end)


def _with_loss_scaling(optimizer, mixed_precision):
  if mixed_precision == 'float16':
    return optimizers_lib.loss_scale_optimizer(optimizer)
  return optimizer


def _phase_start(ctx, directory, model, optimizer, seed, variables):
  """Restores a phase's latest checkpoint; (checkpointer, iterator, epoch)."""
  checkpointer, iterator, _ = checkpoints.restore_or_start(
      ctx.strategy, ctx.info, dict(model=model, optimizer=optimizer),
      ctx.output.save_dir(directory), directory,
      ctx.config.keep_checkpoints, optimizer.iterations, ctx.make_iterator,
      seed, variables)
  return checkpointer, iterator, int(optimizer.iterations.numpy()) // (
      ctx.steps_per_epoch)


def _train_epoch(ctx, loop, iterator, metrics, directory, epoch, what,
                 advice):
  """One epoch of a phase; its mean loss (a `UserError` if not finite)."""
  for metric in metrics.values():
    metric.reset_state()
  loop(iterator, tf.constant(ctx.steps_per_epoch))
  loss = float(metrics['loss'].result())
  if not math.isfinite(loss):
    trainer.stop_diverged(ctx.output, directory, epoch * ctx.steps_per_epoch,
                          loss, what, advice)
  return loss


def _search_optimizer(ctx):
  miner = ctx.miner
  search_steps = miner.search_epochs * ctx.steps_per_epoch
  keras = _keras(ctx)
  schedule = (keras.optimizers.schedules.CosineDecay(
      miner.search_learning_rate, search_steps)
              if miner.search_lr_schedule == 'cosine' else
              miner.search_learning_rate)
  optimizer = keras.optimizers.SGD(schedule, momentum=miner.search_momentum)
  return _with_loss_scaling(optimizer, ctx.config.mixed_precision)


def _read_history(directory, epochs):
  path = os.path.join(directory, 'history.json')
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)[:epochs]


def search(ctx, model):
  """The score search with iterative thresholding; resumes from checkpoints.

  Args:
    ctx: the run's context (`make_context`).
    model: the scored model (built in the strategy's scope).

  Returns:
    list of per-epoch dicts: epoch, loss, train accuracy, test accuracy
    before and after rounding, flagged count and densities.
  """
  miner, strategy = ctx.miner, ctx.strategy
  layers = scored.get_scored_layers(model)
  total = sum(int(layer.flag.shape.num_elements()) for layer in layers)
  rounds = gem_miner.num_rounds(miner.search_epochs, miner.iter_period)
  counts = dict(zip(gem_miner.round_epochs(miner.search_epochs,
                                           miner.iter_period),
                    gem_miner.flagged_counts(total, miner.sparsity, rounds)))
  directory = os.path.join(ctx.config.output_dir, SEARCH_DIR)
  with strategy.scope():
    optimizer = _search_optimizer(ctx)
  checkpointer, iterator, epoch = _phase_start(
      ctx, directory, model, optimizer, ctx.config.seed,
      [layer.score for layer in layers])
  history = _read_history(directory, epoch)
  if epoch:
    ctx.say(f'Resumed the search after epoch {epoch}.')
  metrics = loop_lib.make_metrics(strategy)
  loop = loop_lib.make_train_loop(
      strategy, model, optimizer, ctx.info.num_classes, ctx.config.batch_size,
      ctx.config.label_smoothing, metrics, ctx.config.jit_compile,
      variables=lambda: [layer.score for layer in layers],
      extra_loss=lambda: miner.reg_lambda * gem_miner.score_regularization(
          layers, miner.regularizer),
      after_step=gem_miner.clip_scores_fn(strategy, layers))
  evaluators = _search_evaluators(ctx, model, layers)
  while epoch < miner.search_epochs:
    start = time.time()
    epoch += 1
    loss = _train_epoch(ctx, loop, iterator, metrics, directory, epoch,
                        'the search', 'Lower GemMiner.search_learning_rate')
    if epoch in counts:
      gem_miner.threshold_flags(layers, counts[epoch],
                                tie_seed=ctx.config.seed * 1_000_003 + epoch)
    history.append(_search_record(epoch, loss, metrics, evaluators, layers,
                                  total))
    _end_search_epoch(ctx, checkpointer, directory, history, model,
                      time.time() - start)
  return history


def _search_evaluators(ctx, model, layers):
  """(before rounding, after rounding): the model as it trains, and with
  flag * 1[p > 0.5] (the same function when the forward is quantized)."""
  before = ctx.evaluate_fn(model)
  if ctx.miner.quantized:
    return before, before
  after = ctx.evaluate_fn(model)

  def rounded():
    with gem_miner.RoundedForward(layers):
      return after()

  return before, rounded


def _search_record(epoch, loss, metrics, evaluators, layers, total):
  before = evaluators[0]()['accuracy']
  after = (before if evaluators[1] is evaluators[0]
           else evaluators[1]()['accuracy'])
  flagged = gem_miner.flagged_count(layers)
  return {'epoch': epoch, 'loss': loss,
          'train_accuracy': float(metrics['accuracy'].result()),
          'accuracy_before_rounding': before,
          'accuracy_after_rounding': after,
          'flagged': flagged, 'flagged_density': flagged / total,
          'rounded_density': gem_miner.rounded_count(layers) / total}


def _end_search_epoch(ctx, checkpointer, directory, history, model, seconds):
  """Summaries, the epoch's checkpoint and history, its progress line."""
  record, epoch = history[-1], history[-1]['epoch']
  with ctx.output.writer.as_default(step=epoch):
    for name in ('loss', 'accuracy_before_rounding',
                 'accuracy_after_rounding', 'flagged_density'):
      tf.summary.scalar(f'search/{name}', record[name])
  trainer.save_checkpoint(checkpointer, model, False, epoch)
  if ctx.output.chief:
    output_lib.write_json(os.path.join(directory, 'history.json'), history)
  ctx.say(f'search epoch {epoch}/{ctx.miner.search_epochs}  loss '
          f'{record["loss"]:.4f}  test acc '
          f'{record["accuracy_before_rounding"]:.4f} (rounded '
          f'{record["accuracy_after_rounding"]:.4f})  flagged '
          f'{record["flagged_density"]:.4%}  {seconds:.1f}s')
  ctx.epoch_done(SEARCH_DIR, epoch, model)


def _finetune_optimizer(ctx, model):
  miner = ctx.miner
  keras = _keras(ctx)
  schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
      [m * ctx.steps_per_epoch for m in miner.finetune_milestones],
      [miner.finetune_learning_rate * miner.finetune_gamma**i
       for i in range(len(miner.finetune_milestones) + 1)])
  inner = keras.optimizers.SGD(schedule, momentum=miner.finetune_momentum)
  return build.optimizer_stack(inner, model, static.Static(),
                               ctx.config.mixed_precision)


def finetune(ctx, model, phase):
  """Trains only the weights of a masked model (static masks); resumes.

  SGD with momentum, lr `finetune_learning_rate` multiplied by
  `finetune_gamma` at each milestone epoch, L2 weight decay; the
  `SparseOptimizer` keeps masked weights at zero after every step. Each
  epoch is checkpointed in output_dir/<phase>.

  Args:
    ctx: the run's context (`make_context`).
    model: the `MaskedLayer` model (built in the strategy's scope).
    phase: the phase's directory name ('finetune', 'sanity_shuffle', ...).

  Returns:
    (accuracy before fine-tuning, accuracy after, evaluation examples).
  """
  miner = ctx.miner
  evaluate = ctx.evaluate_fn(model)
  at_init = evaluate()['accuracy']
  directory = os.path.join(ctx.config.output_dir, phase)
  with ctx.strategy.scope():
    optimizer = _finetune_optimizer(ctx, model)
  checkpointer, iterator, epoch = _phase_start(
      ctx, directory, model, optimizer, ctx.config.seed + 1,
      model.trainable_variables)
  metrics = loop_lib.make_metrics(ctx.strategy)
  loop = loop_lib.make_train_loop(
      ctx.strategy, model, optimizer, ctx.info.num_classes,
      ctx.config.batch_size, ctx.config.label_smoothing, metrics,
      ctx.config.jit_compile,
      extra_loss=lambda: 0.5 * miner.finetune_weight_decay * tf.add_n(
          [tf.reduce_sum(tf.square(v)) for v in model.trainable_variables]))
  if not miner.finetune_epochs and not checkpointer.manager.latest_checkpoint:
    trainer.save_checkpoint(checkpointer, model, True, 0)  # For eval_once.
  while epoch < miner.finetune_epochs:
    epoch += 1
    loss = _train_epoch(ctx, loop, iterator, metrics, directory, epoch,
                        f'fine-tuning ({phase})',
                        'Lower GemMiner.finetune_learning_rate')
    if epoch % 10 == 0 or epoch == miner.finetune_epochs:
      ctx.say(f'fine-tune {phase} epoch {epoch}/{miner.finetune_epochs}  '
              f'loss {loss:.4f}')
    trainer.save_checkpoint(checkpointer, model, True, epoch)
    ctx.epoch_done(phase, epoch, model)
  result = evaluate()
  return at_init, result['accuracy'], result['eval_examples']


def _gem_and_checks(ctx, model):
  """Fine-tunes the gem and each sanity check; (gem numbers, checks)."""
  miner, strategy = ctx.miner, ctx.strategy
  layers = scored.get_scored_layers(model)
  gem_masks = gem_miner.finetune_masks(layers, miner.unflag_before_finetune)
  with strategy.scope():
    gem = gem_miner.to_masked_model(model, gem_masks)
  gem_numbers = finetune(ctx, gem, FINETUNE_DIR)
  sanity = {}
  for check in miner.sanity_checks:
    with strategy.scope():
      if check == 'reinit':
        variant = gem_miner.to_masked_model(
            model, gem_masks,
            gem_miner.reinitialized_kernels(layers, miner.seed + 1))
      else:
        variant = gem_miner.to_masked_model(
            model, gem_miner.shuffled_masks(gem_masks, miner.seed + 1))
    at_init, finetuned, _ = finetune(ctx, variant, f'sanity_{check}')
    sanity[check] = {'accuracy_at_init': at_init,
                     'accuracy_finetuned': finetuned}
  return gem, gem_numbers, sanity


def run(config, strategy, info, miner=None, on_epoch_end=None):
  """A whole Gem-Miner run: search, gem at init, fine-tuning, sanity checks.

  Args:
    config: the resolved `RunConfig` (mode 'train' or 'train_and_eval').
    strategy: the run's strategy.
    info: the dataset's `data.DatasetInfo`.
    miner: the `GemMiner` (default: from gin).
    on_epoch_end: see `make_context`.

  Returns:
    The report dict (also written to output_dir/report.json).
  """
  ctx = make_context(config, strategy, info, miner, on_epoch_end)
  miner, output = ctx.miner, ctx.output
  with strategy.scope():
    model = _scored_model(config, info, miner)
  if output.chief:
    output_lib.write_operative_config(config.output_dir)
  ctx.say(f'Gem-Miner on {config.dataset}: {model.name}, target density '
          f'{1 - config.sparsity:.4%}, {miner.search_epochs} search epochs x '
          f'{ctx.steps_per_epoch} steps, {miner.finetune_epochs} fine-tuning '
          f'epochs, replicas={strategy.num_replicas_in_sync}')
  history = search(ctx, model)
  gem, (at_init, finetuned, count), sanity = _gem_and_checks(ctx, model)
  total_steps = (miner.search_epochs + miner.finetune_epochs) * (
      ctx.steps_per_epoch)
  flops_numbers, flops_table = report_lib.flops_report(gem, miner,
                                                       total_steps)
  report = {
      'method': 'gem_miner', 'dataset': config.dataset,
      'search_epochs': miner.search_epochs,
      'finetune_epochs': miner.finetune_epochs,
      'steps_per_epoch': ctx.steps_per_epoch, 'step': total_steps,
      'search': history, 'gem_accuracy_at_init': at_init,
      'accuracy': finetuned, 'eval_examples': count,
      'sanity_checks': sanity,
      'masks': report_lib.sparsity_report(gem), **flops_numbers,
  }
  if config.mode != 'train_and_eval':
    report.pop('accuracy')
  print(format_report(report), flush=True)
  trainer.print_report(report, flops_numbers, flops_table, output,
                       miner.search_epochs)
  with output.writer.as_default(step=miner.search_epochs):
    tf.summary.scalar('gem/accuracy_at_init', at_init)
    tf.summary.scalar('gem/accuracy_finetuned', finetuned)
  output_lib.finish(output, report)
  return report


def format_report(report):
  """The accuracies of a Gem-Miner run as text lines."""
  lines = [f'Gem at initialisation (untrained weights): test accuracy '
           f'{report["gem_accuracy_at_init"]:.4%}']
  if 'accuracy' in report:
    lines.append(f'Final test accuracy: {report["accuracy"]:.4%} (gem after '
                 f'{report["finetune_epochs"]} fine-tuning epochs)')
  for check, numbers in report['sanity_checks'].items():
    lines.append(f'Sanity check {check}: {numbers["accuracy_at_init"]:.4%} '
                 f'at init, {numbers["accuracy_finetuned"]:.4%} fine-tuned')
  return '\n'.join(lines)


def gem_structure(config, strategy, info):
  """(the fine-tuned gem's model structure, its checkpoint directory).

  The masked model the fine-tuning trains, with all-ones masks: restoring a
  `finetune/` checkpoint into it gives the gem (for eval_once, export and
  pictures).
  """
  miner = _make_miner(config, info)
  with strategy.scope():
    model = _scored_model(config, info, miner)
    ones = [layer.flag.numpy() for layer in scored.get_scored_layers(model)]
    gem = gem_miner.to_masked_model(model, ones)
  return gem, miner, os.path.join(config.output_dir, FINETUNE_DIR)


def eval_once(config, strategy, info):
  """Verifies the fine-tuned gem: accuracy, invariant, sparsity, FLOPs."""
  gem, miner, directory = gem_structure(config, strategy, info)
  ckpt_path = checkpoints.resolve_for_eval(config.eval_once_ckpt, directory)
  eval_ds = build.eval_dataset(config)
  run = build.Run(
      config=config, strategy=strategy, info=info, model=gem, train_model=gem,
      optimizer=None, updater=miner, lr_schedule=None, planned_sparsities={},
      evaluate=evaluate_lib.make_evaluate(strategy, gem, eval_ds,
                                          info.num_classes),
      say=report_lib.say_fn(config.quiet))
  return evaluate_lib.eval_once(run, ckpt_path)
