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
"""Shared helpers for tests: small masked models, a tiny training loop and
a launcher of localhost multi-worker processes."""

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from unittest import mock

from absl import flags
import numpy as np
import tensorflow as tf
import tf_keras as keras

from rigl_tf import flavours
from rigl_tf import flops_cli
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import optimizers
from rigl_tf import strategies

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def two_replica_strategy():
  """MirroredStrategy over the 2 logical CPUs that conftest.py creates."""
  cpus = tf.config.list_logical_devices('CPU')
  if len(cpus) < 2:
    raise RuntimeError('Tests need 2 logical CPU devices (see conftest.py).')
  return strategies.mirrored_strategy([d.name for d in cpus[:2]])


@contextlib.contextmanager
def mirrored_is_two_cpus():
  """Within: `strategies.get_strategy('mirrored')` is `two_replica_strategy()`.

  For tests of code that takes a strategy by name: 'mirrored' means all
  local GPUs, so on a machine with one GPU it would be one replica. The
  tests' 2-replica runs use the 2 logical CPUs, whatever the machine has.
  """
  real = strategies.get_strategy

  def get_strategy(name='default', tpu=None):
    if name == 'mirrored':
      return two_replica_strategy()
    return real(name, tpu)

  with mock.patch.object(strategies, 'get_strategy', get_strategy):
    yield


def small_mlp(input_shape=(8, 8, 1), hidden=(32, 16), num_classes=10,
              seed=0, flavour='tf_keras'):
  """A plain MLP (Flatten, Dense relu ..., Dense logits) with fixed init.

  `flavour`: 'tf_keras' or 'keras3' (`rigl_tf.flavours`); the initial
  weights are the same in both.
  """
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([keras.layers.Flatten(input_shape=input_shape)])
  for i, units in enumerate(hidden):
    model.add(keras.layers.Dense(units, activation='relu', name=f'fc{i + 1}'))
  model.add(keras.layers.Dense(num_classes, name='logits'))
  if flavour == 'tf_keras':
    return model
  keras_module = flavours.module(flavour)
  other = keras_module.Sequential(
      [keras_module.Input(input_shape), keras_module.layers.Flatten()] + [
          keras_module.layers.Dense(
              layer.units, activation=layer.activation.__name__,
              name=layer.name) for layer in model.layers[1:]])
  other.set_weights(model.get_weights())
  return other


def random_data(num_batches, batch_size=32, input_shape=(8, 8, 1),
                num_classes=10, seed=0):
  """A deterministic dataset of random images with random labels."""
  rng = np.random.RandomState(seed)
  n = num_batches * batch_size
  x = rng.rand(n, *input_shape).astype(np.float32)
  y = rng.randint(0, num_classes, n).astype(np.int64)
  return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def build_sparse(strategy, model_fn, sparsity, optimizer_fn, updater=None,
                 distribution='erk', seed=0):
  """Builds a sparsified model, its masks and a SparseOptimizer in scope."""
  with strategy.scope():
    model = layers.sparsify(model_fn())
    masks.init_masks(
        model, masks.get_layer_sparsities(model, sparsity, distribution),
        seed=seed)
    optimizer = optimizers.SparseOptimizer(optimizer_fn(), model, updater)
  return model, optimizer


def train(strategy, model, optimizer, dataset, jit_compile=False,
          after_step=None):
  """Runs one pass over `dataset` with a custom loop under `strategy`.

  Args:
    strategy: the tf.distribute strategy the model was built under.
    model: the (masked) model.
    optimizer: its optimizer.
    dataset: batched (x, y) dataset; batches are global batches.
    jit_compile: compile the per-replica step with XLA.
    after_step: optional callback(step_index) run eagerly after each step.

  Returns:
    list of the (cross-replica summed) losses.
  """
  global_batch = None

  @tf.function(jit_compile=jit_compile)
  def replica_step(x, y):
    with tf.GradientTape() as tape:
      logits = model(x, training=True)
      per_example = keras.losses.sparse_categorical_crossentropy(
          y, logits, from_logits=True)
      loss = tf.reduce_sum(per_example) / global_batch
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  @tf.function
  def step(batch):
    per_replica = strategy.run(replica_step, args=batch)
    return strategy.reduce('SUM', per_replica, axis=None)

  losses = []
  for i, batch in enumerate(strategy.experimental_distribute_dataset(dataset)):
    if global_batch is None:
      global_batch = float(
          sum(int(tf.shape(t)[0]) for t in
              strategy.experimental_local_results(batch[0])))
    losses.append(float(step(batch)))
    if after_step is not None:
      after_step(i)
  return losses


def local_values(variable, strategy):
  """numpy values of a (mirrored) variable on every replica."""
  return [v.numpy() for v in strategy.experimental_local_results(variable)]


def free_ports(n):
  """`n` loopback TCP ports that were free a moment ago."""
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def run_python(script, *args, timeout=300):
  """Runs `python -c script args...` in a fresh process, in the repository
  root with it and tests/ on PYTHONPATH; the `subprocess.CompletedProcess`
  (text stdout and stderr)."""
  return subprocess.run(
      [sys.executable, '-c', script, *args], cwd=ROOT,
      env=dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS]),
               TF_CPP_MIN_LOG_LEVEL='2'),
      capture_output=True, text=True, timeout=timeout)


def _lower_priority():
  # Two worker processes busy-wait on each other's gRPC collectives: run
  # at a lower priority so that the test process beside them (pytest-xdist)
  # is not starved (a two-replica test there ran 4-8x slower without it).
  os.nice(10)


def run_workers(argvs, timeout=240):
  """Runs one MultiWorkerMirroredStrategy worker process per argv.

  Worker `i` runs `argvs[i]` in the repository root with its TF_CONFIG
  (task index `i` of a localhost cluster on free ports) and the repository
  and tests/ (for `import test_util`) on PYTHONPATH. Collectives must be
  configured before TensorFlow runs any op, which is why such runs cannot
  share the test process.

  Args:
    argvs: one command line (a list of strings) per worker.
    timeout: seconds each worker may take; past it, all are killed.

  Returns:
    A list of (returncode, stdout, stderr), one per worker, in order.
  """
  cluster = {'worker': [f'127.0.0.1:{p}' for p in free_ports(len(argvs))]}
  processes = []
  for index, argv in enumerate(argvs):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS]),
               TF_CPP_MIN_LOG_LEVEL='2',
               TF_CONFIG=json.dumps({'cluster': cluster,
                                     'task': {'type': 'worker',
                                              'index': index}}))
    processes.append(subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=_lower_priority))
  results = []
  try:
    for process in processes:
      out, err = process.communicate(timeout=timeout)
      results.append((process.returncode, out, err))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  return results


def run_flops_cli(*args):
  """Runs `python -m rigl_tf.flops ARGS` in this process, on fresh flags.

  Args:
    *args: its command-line arguments, e.g. '--model=resnet18', '--json'.

  Returns:
    (the report `flops.run` returns, what it printed).
  """
  flag_values = flags.FlagValues()
  flops_cli.define_flags(flag_values)
  flops_cli.parse_flags_or_exit(['flops', *args], flag_values)
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout):
    report = flops_cli.run(flag_values)
  return report, stdout.getvalue()


# Exports a finished run and draws its pictures in a fresh process (whose
# gin knows only what rigl_tf registers), on mock data.
_FINISHED_RUN = """
import json, sys
import tensorflow_datasets as tfds
from rigl_tf import export, visualize
with tfds.testing.mock_data(num_examples=int(sys.argv[2])):
  report = export.export_run(sys.argv[1], num_check_images=4)
  written = visualize.render_run(sys.argv[1])
print(json.dumps({'files': report['files'], 'written': written}))
"""


def check_export_and_pictures(test, output_dir, mock_examples):
  """Exports a finished run and draws its pictures; checks what they hold.

  For the task tests, in a fresh process, as `python -m rigl_tf.export` and
  `python -m rigl_tf.visualize` would run: every exported model reproduces
  the checkpoint's logits (export's own check, within its tolerance) with
  the same top-1 class, and the pictures are one connectivity frame per
  checkpoint of the run's first masked layer, their GIF, and the
  density/ITOP curves.

  Args:
    test: the calling `tf.test.TestCase`.
    output_dir: a finished training run's directory.
    mock_examples: examples per split of the mock data it trained on.
  """
  result = subprocess.run(
      [sys.executable, '-c', _FINISHED_RUN, output_dir, str(mock_examples)],
      capture_output=True, text=True, cwd=ROOT, timeout=300,
      env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2'))
  test.assertEqual(result.returncode, 0, result.stderr[-3000:])
  outcome = json.loads(result.stdout.strip().splitlines()[-1])
  test.assertEqual([f['name'] for f in outcome['files']],
                   ['saved_model', 'tflite_dense', 'tflite_sparse'])
  for exported in outcome['files']:
    test.assertTrue(exported['matches'], exported)
    test.assertEqual(exported['top1_agreement'], 1.0, exported)
  pictures_dir = os.path.join(output_dir, 'pictures')
  steps = [int(p.rsplit('-', 1)[1]) for p in
           tf.train.get_checkpoint_state(output_dir).all_model_checkpoint_paths]
  test.assertEqual(
      sorted(os.path.basename(p) for p in outcome['written']),
      sorted([f'connectivity_{s}.png' for s in steps]
             + ['connectivity.gif', 'density_and_itop.png']))
  for path in outcome['written']:
    test.assertEqual(os.path.dirname(path), pictures_dir)
    test.assertGreater(os.path.getsize(path), 0)
