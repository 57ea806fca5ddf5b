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
r"""What one mask update costs, in dense training steps, LeNet to ResNet-50.

  env/bin/python benchmarks/update_cost.py \
      [--models=lenet_300_100,wrn_22_2,resnet50] [--methods=set,rigl,granet] \
      [--repeats=5] [--image_size=224] [--xla] [--layer] [--json=PATH]

For each model (built by the task folders' builders, as `rigl_tf.flops`
does: LeNet-300-100 on 784 inputs at batch 100, WRN-22-2 on 32x32 at batch
128, ResNet-50 on --image_size at batch 32), ERK 90% sparse, SGD with
momentum, on whatever device TensorFlow picks, the median of --repeats of

* one dense training step of the same model (forward, backward, SGD
  momentum update), compiled as the trainer compiles it;
* one full mask update of each method: the updater's `update_masks` over
  all layers with random dense gradients, as `SparseOptimizer` runs it on
  an update step (slots reset, "ever active" masks and counters recorded);
  GraNet at a step of its pruning phase (global magnitude pruning, then
  regrowth).

Both are `tf.function`s, jit-compiled with --xla (as the trainer's
`jit_compile=True` step is), and are interleaved so that machine drift
cancels; compilation is not timed. It prints the maskable weights, the
update's time, the dense step's and their ratio: how the update's cost
grows with the number of weights. --layer also times the drop/grow of one
784x300 layer (the engine alone, `drop_grow.drop_and_grow`).

Measured on a shared 2-core CPU (load 7-12, so absolute times are
pessimistic), one update in dense train steps: LeNet-300-100 (266,200
weights) RigL 2.8-3.8, SET 3.2-5.5, GraNet 4.5-10.6 (7.6-20 ms, 10-29 ms
and 19-55 ms); WRN-22-2 (1.08 M) 0.02-0.05; ResNet-50 at 224 (25.5 M) RigL
0.08, SET 0.11, GraNet 0.22 (1.4 s, 2.0 s and 4.0 s against an 18 s dense
step). The sort-based engine it replaced took 267-492 ms for the same
LeNet RigL update (90-190 dense steps). Since the selection stops at the
first exact threshold and a layer's slot resets are fused with its
drop/grow (load 0.5): LeNet RigL 3.9 ms, SET 4.0 ms, GraNet 6.3 ms (1.7,
1.7 and 2.8 dense steps); one 784x300 drop/grow 2.9 ms (8.0 ms without
XLA).
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from cifar_wrn import wrn_model  # noqa: E402
from imagenet_resnet import resnet_model  # noqa: E402
from mnist import models  # noqa: E402
from rigl_tf import layers  # noqa: E402
from rigl_tf import masks  # noqa: E402
from rigl_tf import methods  # noqa: E402
from rigl_tf import optimizers  # noqa: E402
from rigl_tf.methods import drop_grow  # noqa: E402

# Model -> (input shape, or None for the image size; batch size).
_MODELS = {
    'lenet_300_100': ((784,), 100),
    'wrn_22_2': ((32, 32, 3), 128),
    'resnet50': (None, 32),
}
_METHODS = ('set', 'rigl', 'granet')
_TRAIN_STEPS = 10_000  # The run length the updaters are configured for.
_GRANET_STEP = 3_000  # In GraNet's pruning phase (it ends at 110/160).

_MODELS_FLAG = flags.DEFINE_list('models', list(_MODELS), 'Models to time.')
_METHODS_FLAG = flags.DEFINE_list('methods', list(_METHODS),
                                  'Methods whose update is timed.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls of each case.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 224,
                                   'ResNet-50 input size (smaller is faster '
                                   'to time; the update does not depend on '
                                   'it).')
_SPARSITY = flags.DEFINE_float('sparsity', 0.9, 'Overall sparsity (ERK).')
_XLA = flags.DEFINE_bool('xla', False,
                         'jit-compile the step and the update, as the '
                         'trainer with jit_compile=True does.')
_LAYER = flags.DEFINE_bool('layer', False,
                           'Also time one 784x300 drop/grow.')
_JSON = flags.DEFINE_string('json', None, 'Also write the results here.')


def _build(name):
  """The model of the task folder, its input shape and batch size."""
  input_shape, batch = _MODELS[name]
  if name == 'lenet_300_100':
    return models.lenet_300_100(input_shape=input_shape), input_shape, batch
  if name == 'wrn_22_2':
    return wrn_model.wrn_22_2(input_shape=input_shape), input_shape, batch
  input_shape = (_IMAGE_SIZE.value, _IMAGE_SIZE.value, 3)
  return resnet_model.resnet50(input_shape=input_shape), input_shape, batch


def _batch(input_shape, batch):
  x = tf.random.stateless_uniform((batch,) + tuple(input_shape), seed=[1, 2])
  y = tf.random.stateless_uniform([batch], seed=[3, 4], maxval=10,
                                  dtype=tf.int32)
  return x, y


def _dense_step(model_name):
  """A compiled dense train step of the model, and its input batch."""
  model, input_shape, batch = _build(model_name)
  optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
  x, y = _batch(input_shape, batch)

  @tf.function(jit_compile=_XLA.value)
  def step(x, y):
    with tf.GradientTape() as tape:
      logits = model(x, training=True)
      loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
          y, logits, from_logits=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  return lambda: step(x, y).numpy()


def _update(model_name, method):
  """A compiled full mask update of `method`; returns (fn, #weights)."""
  model, input_shape, _ = _build(model_name)
  updater = methods.create(method)
  updater.configure_run(train_steps=_TRAIN_STEPS, seed=0)
  model = layers.sparsify(model)
  plan = masks.sparsity_plan(model, _SPARSITY.value, 'erk')
  updater.init_masks(model, plan, seed=0, train_steps=_TRAIN_STEPS)
  inner = keras.optimizers.SGD(0.01, momentum=0.9)
  optimizer = optimizers.SparseOptimizer(inner, model, updater)
  masked = optimizer.masked_weights
  # Builds the slots and the updater's state, as the first step would.
  x, y = _batch(input_shape, 2)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        y, model(x, training=True), from_logits=True))
  grads = tape.gradient(loss, model.trainable_variables)
  tf.distribute.get_strategy().extended.call_for_each_replica(
      optimizer.apply_gradients,
      args=(list(zip(grads, model.trainable_variables)),))
  dense_grads = [
      tf.random.stateless_normal(mw.weight.shape, seed=[i, 5])
      for i, mw in enumerate(masked)
  ]
  step = tf.constant(
      _GRANET_STEP if method == 'granet' else updater.update_frequency,
      tf.int64)

  @tf.function(jit_compile=_XLA.value)
  def update(dense_grads, step):
    updater.update_masks(tf.distribute.get_strategy(), masked, dense_grads,
                         step, inner)
    return tf.add_n([tf.reduce_sum(mw.mask) for mw in masked])

  return (lambda: int(update(dense_grads, step).numpy()),
          sum(mw.size for mw in masked))


def _median_ms(times):
  return 1e3 * statistics.median(times)


def _time_interleaved(cases, repeats, results=None):
  """Median ms of each callable, called in turn `repeats` times.

  Args:
    cases: dict name -> callable.
    repeats: timed calls of each.
    results: optional dict, receives name -> what the last call returned.

  Returns:
    dict name -> median milliseconds.
  """
  for fn in cases.values():
    fn()  # Compile and warm up.
    fn()
  times = {name: [] for name in cases}
  for _ in range(repeats):
    for name, fn in cases.items():
      start = time.perf_counter()
      value = fn()
      times[name].append(time.perf_counter() - start)
      if results is not None:
        results[name] = value
  return {name: _median_ms(t) for name, t in times.items()}


def _layer_ms(repeats):
  """Median ms of one 784x300 drop/grow with and without XLA."""
  shape = (784, 300)
  mask = masks.random_mask(shape, int(0.1 * 784 * 300), 0, 0)
  weight = tf.random.stateless_normal(shape, seed=[1, 1]) * mask
  score = tf.abs(tf.random.stateless_normal(shape, seed=[2, 2]))
  n = tf.constant(int(0.03 * 784 * 300))
  args = (mask, weight, score, n, n, tf.constant([1, 2], tf.int64),
          tf.constant(0.0))
  plain = tf.function(drop_grow.drop_and_grow.python_function)
  return _time_interleaved({
      'xla': lambda: drop_grow.drop_and_grow(*args)[0].numpy(),
      'plain': lambda: plain(*args)[0].numpy(),
  }, repeats)


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  unknown = [m for m in _MODELS_FLAG.value if m not in _MODELS]
  unknown += [m for m in _METHODS_FLAG.value if m not in _METHODS]
  if unknown:
    sys.exit(f'error: unknown model or method {", ".join(unknown)}; models: '
             f'{", ".join(_MODELS)}; methods: {", ".join(_METHODS)}')
  device = tf.config.list_logical_devices()[-1].name
  print(f'device: {device}; xla: {_XLA.value}; {_REPEATS.value} repeats, '
        f'medians; ERK {_SPARSITY.value:.0%}')
  results = {'device': device, 'xla': _XLA.value, 'models': {}}
  if _LAYER.value:
    layer = _layer_ms(_REPEATS.value)
    results['layer_784x300_ms'] = layer
    print(f'drop/grow of one 784x300 layer: XLA {layer["xla"]:.1f} ms, '
          f'without XLA {layer["plain"]:.1f} ms')
  print(f'{"model":<15}{"method":<8}{"weights":>12}{"update ms":>11}'
        f'{"dense ms":>10}{"update/step":>13}')
  for model_name in _MODELS_FLAG.value:
    cases = {'dense': _dense_step(model_name)}
    sizes = {}
    for method in _METHODS_FLAG.value:
      cases[method], sizes[method] = _update(model_name, method)
    active = {}
    ms = _time_interleaved(cases, _REPEATS.value, active)
    batch = _MODELS[model_name][1]
    results['models'][model_name] = {
        'batch': batch, 'dense_step_ms': ms['dense'], 'methods': {}}
    for method in _METHODS_FLAG.value:
      ratio = ms[method] / ms['dense']
      results['models'][model_name]['methods'][method] = {
          'maskable_weights': sizes[method],
          'active_after_updates': active[method], 'update_ms': ms[method],
          'update_in_dense_steps': ratio}
      print(f'{model_name:<15}{method:<8}{sizes[method]:>12,}'
            f'{ms[method]:>11.1f}{ms["dense"]:>10.1f}{ratio:>13.2f}')
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  app.run(main)
