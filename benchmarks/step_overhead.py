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
r"""What a sparse training step costs against dense and TFMOT's.

  env/bin/python benchmarks/step_overhead.py --model=lenet_300_100 \
      --batch=100 --sparsity=0.9 [--delta_t=100] [--threads=N] [--xla] \
      [--json=PATH]
  env/bin/python benchmarks/step_overhead.py --model=wrn_22_2 --batch=128
  env/bin/python benchmarks/step_overhead.py --trainer_loop --threads=1

Step cases (default): in one process, the compiled training step of the
trainer (`rigl_tf.train.loop`: loss, gradients, optimizer, metrics, over an
in-memory batch) for the dense model; for this library's static, SET,
SNFS, RigL, GMP and GraNet, built as the trainer builds them (ERK masks,
`optimizers.sparse_optimizer`, the method registry, SGD with momentum
0.9); and for TFMOT's `prune_low_magnitude` at the same sparsity
(`ConstantSparsity`, every layer at --sparsity, updating its masks every
ΔT steps; its `UpdatePruningStep` callback's `on_train_begin` starts the
step counter, which the wrapper then advances itself every step). The
Keras 3 cases (`keras3_dense`, and `keras3_<method>` for --keras3_methods)
build the same model and optimizer in Keras 3 (`train_eval.keras =
'keras3'`); their column "step/own dense" divides by keras3_dense's step
(the tf_keras cases' by dense's).

Every case runs rounds of ΔT steps, interleaved (A B C ..., then the cases
in a new seeded random order each round) so that machine drift and the
effect of the case run just before fall on every case alike; a round is a
call for the step where the masks update, then a call for the ΔT - 1 steps
where they do not. The first round (tracing, compilation) is not timed.
Reported, as medians over the rounds: the time of a step without a mask
update, and the amortised time of a step with an update every ΔT, each as a
ratio to the dense step and to TFMOT's.

--trainer_loop instead times the trainer itself (`rigl_tf.train.train_eval` as
mnist/train_eval.py runs it) on the digits quickstart
(configs/mnist/quickstart_digits.gin), dense, static and RigL, in steps/s:
start-up (dataset, model, tracing, compilation, the first step) is left
out, everything else of the loop is timed (logging, summaries,
checkpoints).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

# pylint: disable=g-import-not-at-top,wrong-import-position
from rigl_tf import quiet  # noqa: E402  (imports no TensorFlow)

with quiet.native_stderr_silenced():
  import tensorflow as tf
  tf.config.list_physical_devices('GPU')

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from unittest import mock  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import gin  # noqa: E402
import keras as keras3  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

from rigl_tf import flavours  # noqa: E402
from rigl_tf import layers as masked_layers  # noqa: E402
from rigl_tf import masks  # noqa: E402
from rigl_tf import methods  # noqa: E402
from rigl_tf import optimizers  # noqa: E402
from rigl_tf import train  # noqa: E402
from rigl_tf.train import loop as loop_lib  # noqa: E402
from rigl_tf.train import trainer  # noqa: E402

MODELS = ('lenet_300_100', 'wrn_22_2', 'resnet50')
# --model -> (batch, image size, channels, classes) when not given.
_MODEL_DEFAULTS = {
    'lenet_300_100': (100, 28, 1, 10),
    'wrn_22_2': (128, 32, 3, 10),
    'resnet50': (32, 224, 3, 1000),
}
METHODS = ('static', 'set', 'snfs', 'rigl', 'gmp', 'granet')
KERAS3_METHODS = ('static', 'rigl')
# The trainer-loop cases: train_eval.method on the digits quickstart.
TRAINER_METHODS = ('dense', 'static', 'rigl')
QUICKSTART = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
    'mnist', 'quickstart_digits.gin')

_MODEL = flags.DEFINE_enum('model', 'lenet_300_100', MODELS, 'Model.')
_BATCH = flags.DEFINE_integer(
    'batch', None, 'Batch size; default 100 (LeNet), 128 (WRN), 32 (ResNet).')
_IMAGE_SIZE = flags.DEFINE_integer(
    'image_size', None, 'Image height and width; default 28 (LeNet: 784 '
    'inputs), 32 (WRN), 224 (ResNet-50).')
_SPARSITY = flags.DEFINE_float('sparsity', 0.9, 'Overall sparsity (ERK).')
_DELTA_T = flags.DEFINE_integer(
    'delta_t', 100, 'ΔT: steps between mask updates; also the steps of a '
    'round.')
_ROUNDS = flags.DEFINE_integer('rounds', 15, 'Timed rounds per case.')
_METHODS = flags.DEFINE_list(
    'methods', ','.join(METHODS), 'Sparse methods to time (and always dense '
    'and TFMOT).')
_KERAS3_METHODS = flags.DEFINE_list(
    'keras3_methods', ','.join(KERAS3_METHODS), 'Sparse methods to time on '
    'Keras 3 (and always keras3_dense); empty: no Keras 3 case.')
_THREADS = flags.DEFINE_integer(
    'threads', 0, 'TensorFlow intra- and inter-op threads (0: its default).')
_XLA = flags.DEFINE_bool(
    'xla', False, 'XLA-compile the replica step (train_eval.jit_compile).')
_JSON = flags.DEFINE_string('json', None, 'Also write the results here.')
_TRAINER_LOOP = flags.DEFINE_bool(
    'trainer_loop', False, 'Time the trainer on the digits quickstart '
    'instead of the step cases.')
_TRAINER_STEPS = flags.DEFINE_integer(
    'trainer_steps', 3000, '--trainer_loop: train_eval.train_steps.')
_TRAINER_METHODS = flags.DEFINE_list(
    'trainer_methods', ','.join(TRAINER_METHODS),
    '--trainer_loop: the methods (train_eval.method) to time.')
_TRAINER_BINDINGS = flags.DEFINE_multi_string(
    'trainer_bindings', [], '--trainer_loop: extra gin bindings of every '
    'run, e.g. "train_eval.jit_compile = False".')
_TRAINER_REPEATS = flags.DEFINE_integer(
    'trainer_repeats', 3, '--trainer_loop: runs per method (median).')


# ---------------------------------------------------------------------------
# Step cases.


def _build_model(name, image_size, channels, num_classes):
  shape = (image_size, image_size, channels)
  if name == 'lenet_300_100':
    from mnist import models
    return models.lenet_300_100(input_shape=shape, num_classes=num_classes)
  if name == 'wrn_22_2':
    from cifar_wrn import wrn_model
    return wrn_model.wrn_22_2(input_shape=shape, num_classes=num_classes)
  from imagenet_resnet import resnet_model
  return resnet_model.resnet50(input_shape=shape, num_classes=num_classes)


def _sgd(keras_module=keras):
  return keras_module.optimizers.SGD(0.01, momentum=0.9)


def _updater(method, delta_t, train_steps):
  """The method's updater, updating every ΔT from step 0 (registry)."""
  if method == 'static':
    updater = methods.create('static')
  elif method in ('gmp', 'granet'):
    updater = methods.create(method, update_frequency=delta_t)
  else:
    # end_step < 0: updates never stop during the benchmark.
    updater = methods.create(method, update_frequency=delta_t,
                                   end_step=-1)
  updater.configure_run(train_steps=train_steps, seed=0)
  return updater


def _sparse_case(model_fn, method, sparsity, delta_t, train_steps,
                 keras_module=keras):
  """Model and optimizer as the trainer builds them for `method`."""
  updater = _updater(method, delta_t, train_steps)
  model = masked_layers.sparsify(model_fn())
  plan = masks.sparsity_plan(model, sparsity, 'erk')
  updater.init_masks(model, plan, seed=0, train_steps=train_steps)
  return model, optimizers.sparse_optimizer(_sgd(keras_module), model,
                                            updater), None


def _tfmot_case(model_fn, sparsity, delta_t):
  """TFMOT's prune_low_magnitude, its mask update on a round's first step."""
  schedule = tfmot.sparsity.keras.ConstantSparsity(
      sparsity, begin_step=0, frequency=delta_t)
  model = tfmot.sparsity.keras.prune_low_magnitude(
      model_fn(), pruning_schedule=schedule)
  callback = tfmot.sparsity.keras.UpdatePruningStep()
  callback.set_model(model)
  callback.on_train_begin()  # pruning_step = 0 in every wrapper.
  # The wrapper adds 1 to its step before it prunes when (step - begin) %
  # frequency == 0: starting at ΔT - 1 puts its updates on the steps 0, ΔT,
  # 2ΔT, ... where this library's updaters update.
  for layer in callback.prunable_layers:
    layer.pruning_step.assign(delta_t - 1)
  return model, _sgd(), callback


def _round_runner(strategy, model, optimizer, batch, num_classes, xla):
  """fn(num_steps) running `num_steps` steps of the trainer's loop."""
  with strategy.scope():
    metrics = {'loss': keras.metrics.Mean(),
               'accuracy': keras.metrics.SparseCategoricalAccuracy()}
  loop = loop_lib.make_train_loop(
      strategy, model, optimizer, num_classes, int(batch[0].shape[0]),
      0.0, metrics, xla)
  iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())

  def run(num_steps):
    loop(iterator, tf.constant(num_steps))
    # Waits for the steps (the loss reads the last step's result).
    return float(metrics['loss'].result())

  return run


def step_cases(model_name, batch_size, image_size, sparsity, delta_t, rounds,
               methods, xla, keras3_methods=()):
  """Times the step cases, round-robin, on one fixed in-memory batch.

  Returns:
    (times, losses): times[case] = {'update': [...], 'rest': [...]}: the
    seconds of the call for a round's first step and of the call for its
    ΔT - 1 other steps; losses[case]: the last training loss.
  """
  _, default_size, channels, num_classes = _MODEL_DEFAULTS[model_name]
  image_size = image_size or default_size
  rng = np.random.RandomState(0)
  batch = (tf.constant(rng.rand(batch_size, image_size, image_size,
                                channels).astype(np.float32)),
           tf.constant(rng.randint(0, num_classes, batch_size), tf.int64))

  def model_fn():
    return _build_model(model_name, image_size, channels, num_classes)

  def keras3_model_fn():
    with flavours.building(flavours.KERAS3):
      return model_fn()

  # Long enough for every schedule to go on updating during the benchmark.
  train_steps = max(10 * (rounds + 1) * delta_t, 10_000)
  strategy = tf.distribute.get_strategy()
  builders = {'dense': lambda: (model_fn(), _sgd(), None),
              'tfmot': lambda: _tfmot_case(model_fn, sparsity, delta_t)}
  for method in methods:
    builders[method] = (lambda m=method: _sparse_case(
        model_fn, m, sparsity, delta_t, train_steps))
  if keras3_methods:
    builders['keras3_dense'] = lambda: (keras3_model_fn(), _sgd(keras3), None)
  for method in keras3_methods:
    builders[f'keras3_{method}'] = (lambda m=method: _sparse_case(
        keras3_model_fn, m, sparsity, delta_t, train_steps, keras3))
  runners, callbacks = {}, {}
  for name, build in builders.items():
    with strategy.scope():
      keras.utils.set_random_seed(0)
      keras3.utils.set_random_seed(0)
      model, optimizer, callbacks[name] = build()
    runners[name] = _round_runner(
        strategy, model, optimizer, batch, num_classes, xla)
  times = {name: {'update': [], 'rest': []} for name in runners}
  losses = {}
  order = list(runners)
  shuffle = np.random.RandomState(0).shuffle
  for round_index in range(rounds + 1):  # Round 0: tracing, compilation.
    # A new order every round: a case's time depends a little (a few
    # percent on LeNet) on which case ran before it (caches).
    if round_index:
      shuffle(order)
    for name in order:
      run = runners[name]
      start = time.perf_counter()
      run(1)
      middle = time.perf_counter()
      losses[name] = run(delta_t - 1)
      end = time.perf_counter()
      if round_index:
        times[name]['update'].append(middle - start)
        times[name]['rest'].append(end - middle)
  for callback in callbacks.values():
    if callback is not None:
      callback.on_epoch_end(0)
  return times, losses


def summarise_steps(times, delta_t):
  """Median milliseconds per step and ratios, per case."""
  rows = {}
  for name, t in times.items():
    rest = ([r / (delta_t - 1) for r in t['rest']] if delta_t > 1
            else list(t['update']))
    amortised = [(u + r) / delta_t for u, r in zip(t['update'], t['rest'])]
    rows[name] = {'step_ms': 1e3 * statistics.median(rest),
                  'amortised_ms': 1e3 * statistics.median(amortised),
                  'update_step_ms': 1e3 * statistics.median(t['update'])}
  for name, row in rows.items():
    own = 'keras3_dense' if name.startswith('keras3_') else 'dense'
    for ref, key in (('dense', 'dense'), ('tfmot', 'tfmot'),
                     (own, 'own_dense')):
      row[f'step_vs_{key}'] = row['step_ms'] / rows[ref]['step_ms']
      row[f'amortised_vs_{key}'] = (row['amortised_ms'] /
                                    rows[ref]['amortised_ms'])
  return rows


def format_steps(rows, delta_t):
  """The step table, then the ratios to dense and TFMOT (last)."""
  lines = [f'{"case":<14}{"step ms":>10}{"update ms":>11}'
           f'{f"amortised ms (ΔT={delta_t})":>28}']
  for name, row in rows.items():
    lines.append(f'{name:<14}{row["step_ms"]:>10.3f}'
                 f'{row["update_step_ms"]:>11.2f}{row["amortised_ms"]:>28.3f}')
  lines += ['', 'ratios (median step time / reference; own dense: the dense '
            'step of the case\'s Keras flavour):',
            f'{"case":<14}{"step/dense":>12}{"amort/dense":>13}'
            f'{"step/tfmot":>12}{"amort/tfmot":>13}'
            f'{"step/own dense":>16}{"amort/own dense":>17}']
  for name, row in rows.items():
    lines.append(f'{name:<14}{row["step_vs_dense"]:>12.3f}'
                 f'{row["amortised_vs_dense"]:>13.3f}'
                 f'{row["step_vs_tfmot"]:>12.3f}'
                 f'{row["amortised_vs_tfmot"]:>13.3f}'
                 f'{row["step_vs_own_dense"]:>16.3f}'
                 f'{row["amortised_vs_own_dense"]:>17.3f}')
  return '\n'.join(lines)


# ---------------------------------------------------------------------------
# The trainer's own loop.


class _LoopTimer:
  """Times the trainer's loop from the end of its first step to its end.

  The trainer's first call of its compiled loop traces and compiles it: the
  timer splits that call into its first step and the rest (the same steps,
  from the same iterator), and starts the clock between them.
  """

  def __init__(self):
    self.start = self.end = None
    self.cpu_start = self.cpu_end = None
    self.steps = 0
    # Seconds inside the compiled loop's calls (the rest: the trainer's
    # work between them: logs, summaries, checkpoints).
    self.in_loop = 0.0

  @contextlib.contextmanager
  def installed(self):
    make_loop = loop_lib.make_train_loop
    train_to_end = trainer._train_to_end  # pylint: disable=protected-access

    def timed_make_loop(*args, **kwargs):
      loop = make_loop(*args, **kwargs)

      def timed_loop(iterator, num_steps):
        num_steps = int(num_steps)
        if self.start is None:
          loop(iterator, tf.constant(1))
          self.start = time.perf_counter()
          self.cpu_start = time.process_time()
          num_steps -= 1
          if not num_steps:
            return
        start = time.perf_counter()
        loop(iterator, tf.constant(num_steps))
        self.in_loop += time.perf_counter() - start
        self.steps += num_steps

      return timed_loop

    def timed_train_to_end(*args, **kwargs):
      result = train_to_end(*args, **kwargs)
      self.end = time.perf_counter()
      self.cpu_end = time.process_time()
      return result

    with mock.patch.object(loop_lib, 'make_train_loop', timed_make_loop), \
        mock.patch.object(trainer, '_train_to_end', timed_train_to_end):
      yield


def trainer_run(method, train_steps, output_dir, bindings=()):
  """One quickstart run: timed steps, seconds, CPU seconds, the report."""
  gin.clear_config()
  train.parse_gin([QUICKSTART], [
      f"train_eval.method = '{method}'",
      f'train_eval.train_steps = {train_steps}', *bindings])
  timer = _LoopTimer()
  with timer.installed(), contextlib.redirect_stdout(io.StringIO()):
    report = train.train_eval(output_dir=output_dir, mode='train')
  return (timer.steps, timer.end - timer.start,
          timer.cpu_end - timer.cpu_start, timer.in_loop, report)


def trainer_cases(methods, train_steps, repeats, bindings=()):
  """dict method -> {'steps_per_s', 'seconds', ...}, medians over repeats."""
  from mnist import models  # noqa: F401  (registers the gin models)
  rates = {m: [] for m in methods}
  seconds = {m: [] for m in methods}
  cpu_rates = {m: [] for m in methods}
  in_loop = {m: [] for m in methods}
  losses, steps_taken, steps_timed = {}, {}, {}
  for _ in range(repeats):
    for method in methods:  # Interleaved: drift falls on every method.
      with tempfile.TemporaryDirectory() as output_dir:
        steps, elapsed, cpu, loop_seconds, report = trainer_run(
            method, train_steps, output_dir, bindings)
      rates[method].append(steps / elapsed)
      seconds[method].append(elapsed)
      cpu_rates[method].append(steps / cpu)
      in_loop[method].append((loop_seconds / elapsed, steps / loop_seconds))
      losses[method] = report['loss']
      steps_taken[method], steps_timed[method] = report['step'], steps
  return {
      m: {'steps_per_s': statistics.median(rates[m]),
          'steps': steps_taken[m],
          'timed_steps': steps_timed[m],
          'seconds': statistics.median(seconds[m]),
          'seconds_per_run': seconds[m],
          # Steps per second of the process's CPU time (all its threads):
          # less sensitive than wall time to other processes' load.
          'steps_per_cpu_s': statistics.median(cpu_rates[m]),
          'fraction_in_compiled_loop': statistics.median(
              f for f, _ in in_loop[m]),
          # Steps per second inside the compiled loop's calls only.
          'loop_steps_per_s': statistics.median(r for _, r in in_loop[m]),
          'loss': losses[m]} for m in methods
  }


def format_trainer(rows, train_steps):
  lines = [f'trainer loop, digits quickstart, {train_steps} steps (start-up '
           'and first step excluded):',
           f'{"method":<8}{"steps/s":>10}{"seconds":>10}'
           f'{"steps/CPU s":>13}{"in loop":>9}{"loop steps/s":>14}']
  for name, row in rows.items():
    lines.append(f'{name:<8}{row["steps_per_s"]:>10.0f}'
                 f'{row["seconds"]:>10.2f}{row["steps_per_cpu_s"]:>13.0f}'
                 f'{row["fraction_in_compiled_loop"]:>9.0%}'
                 f'{row["loop_steps_per_s"]:>14.0f}')
  return '\n'.join(lines)


# ---------------------------------------------------------------------------


def _set_threads(threads):
  if threads:
    # Before any op runs: TensorFlow reads these when it initialises.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv):
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}')
  logging.set_verbosity(logging.ERROR)
  _set_threads(_THREADS.value)
  unknown = sorted(set(_METHODS.value) - set(METHODS))
  if unknown:
    sys.exit(f'error: unknown --methods {unknown}; choose from {METHODS}')
  unknown = sorted(set(_KERAS3_METHODS.value) - set(METHODS))
  if unknown:
    sys.exit(f'error: unknown --keras3_methods {unknown}; choose from '
             f'{METHODS}')
  if _DELTA_T.value < 1 or _ROUNDS.value < 1:
    sys.exit('error: --delta_t and --rounds must be >= 1')
  device = tf.config.list_logical_devices()[-1].name
  result = {'device': device, 'threads': _THREADS.value, 'xla': _XLA.value}
  if _TRAINER_LOOP.value:
    rows = trainer_cases(_TRAINER_METHODS.value, _TRAINER_STEPS.value,
                         _TRAINER_REPEATS.value, _TRAINER_BINDINGS.value)
    result.update(config={'benchmark': 'trainer_loop',
                          'gin_config': 'configs/mnist/quickstart_digits.gin',
                          'train_steps': _TRAINER_STEPS.value,
                          'repeats': _TRAINER_REPEATS.value,
                          'gin_bindings': _TRAINER_BINDINGS.value},
                  trainer_loop=rows)
    print(format_trainer(rows, _TRAINER_STEPS.value))
  else:
    batch = _BATCH.value or _MODEL_DEFAULTS[_MODEL.value][0]
    times, losses = step_cases(
        _MODEL.value, batch, _IMAGE_SIZE.value, _SPARSITY.value,
        _DELTA_T.value, _ROUNDS.value, _METHODS.value, _XLA.value,
        _KERAS3_METHODS.value)
    rows = summarise_steps(times, _DELTA_T.value)
    for name, loss in losses.items():
      rows[name]['loss'] = loss if math.isfinite(loss) else None
    result.update(config={'benchmark': 'steps', 'model': _MODEL.value,
                          'batch': batch,
                          'image_size': (_IMAGE_SIZE.value
                                         or _MODEL_DEFAULTS[_MODEL.value][1]),
                          'sparsity': _SPARSITY.value,
                          'distribution': 'erk',
                          'delta_t': _DELTA_T.value,
                          'rounds': _ROUNDS.value},
                  cases=rows)
    print(f'{_MODEL.value}, batch {batch}, ERK {_SPARSITY.value:.0%}, '
          f'{_ROUNDS.value} rounds of ΔT={_DELTA_T.value} steps, device '
          f'{device}, threads {_THREADS.value or "default"}, '
          f'XLA {_XLA.value}')
    print(format_steps(rows, _DELTA_T.value))
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump(result, f, indent=2)


if __name__ == '__main__':
  app.run(main)
