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
"""The library API on both Keras flavours: tf_keras and Keras 3.

Each test takes the flavour as a parameter and builds its model with that
flavour's module: one test, both flavours. The algorithms are the same
code for both; `test_same_masks_and_weights_in_both_flavours` checks that a
RigL run gives the same masks from the same start in either flavour.
"""

import functools
import os

from absl.testing import parameterized
import keras as keras3
import numpy as np
from optimizers_test import _train_and_check
from pruning_test import _run
import tensorflow as tf
import test_util
import tf_keras

from mnist import models
from rigl_tf import compat
from rigl_tf import flavours
from rigl_tf import flops
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf import slots as slots_lib

FLAVOURS = [(name, name) for name in flavours.NAMES]


def _block_class(keras):
  """A custom layer holding a Dense and a list of two Dense."""

  class Block(keras.layers.Layer):

    def __init__(self, **kwargs):
      super().__init__(**kwargs)
      self.first = keras.layers.Dense(4, name='a')
      self.rest = [keras.layers.Dense(3, name='b'),
                   keras.layers.Dense(2, name='c')]

    def call(self, x):
      x = self.first(x)
      for layer in self.rest:
        x = layer(x)
      return x

  return Block


def _attention_model(keras):
  """Input 6 -> custom block -> Dense -> attention over 3 tokens -> head."""
  keras.utils.set_random_seed(1)
  inputs = keras.Input((6,))
  x = _block_class(keras)(name='blk')(inputs)
  x = keras.layers.Reshape((3, 2))(keras.layers.Dense(6, name='pre')(x))
  x = keras.layers.MultiHeadAttention(2, 4, name='mha')(x, x)
  outputs = keras.layers.Dense(3, name='head')(keras.layers.Flatten()(x))
  return keras.Model(inputs, outputs)


# (name, kernel size) of every kernel of `_attention_model`.
_ATTENTION_KERNELS = [
    ('blk/a', 24), ('blk/b', 12), ('blk/c', 6), ('pre', 12),
    ('mha/query', 16), ('mha/key', 16), ('mha/value', 16),
    ('mha/attention_output', 16), ('head', 18)]


class LayersTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*FLAVOURS)
  def test_every_kernel_of_attention_and_nested_layers_is_masked(
      self, flavour):
    keras = flavours.module(flavour)
    model = _attention_model(keras)
    x = np.random.RandomState(0).randn(4, 6).astype(np.float32)
    sparse = layers.sparsify(model)
    weights = layers.get_masked_weights(sparse)
    self.assertEqual([(mw.name, mw.size) for mw in weights],
                     _ATTENTION_KERNELS)
    self.assertEqual(layers.weight_inventory(sparse)['dense'], [])
    self.assertAllClose(model(x), sparse(x), atol=1e-6)
    counts = masks.init_masks(sparse, 0.75, seed=3)
    self.assertEqual(
        [counts[name] for name, _ in _ATTENTION_KERNELS],
        [n - int(np.floor(0.75 * n)) for _, n in _ATTENTION_KERNELS])
    self.assertEqual(layers.check_invariant(sparse), [])
    stripped = layers.strip(sparse)
    self.assertNotIn('Masked', ' '.join(
        type(layer).__name__ for layer in stripped.layers))
    self.assertAllClose(sparse(x), stripped(x), atol=1e-6)
    nonzero = sum(int(np.count_nonzero(w)) for w in stripped.weights
                  if len(w.shape) >= 2)
    self.assertLessEqual(nonzero, sum(counts.values()))
    self.assertGreater(nonzero, sum(counts.values()) - 5)

  @parameterized.named_parameters(*FLAVOURS)
  def test_subclassed_model_is_masked_in_place(self, flavour):
    keras = flavours.module(flavour)

    class Net(keras.Model):

      def __init__(self):
        super().__init__(name='net')
        self.blocks = [keras.layers.Dense(8, name='d0'),
                       keras.layers.Dense(4, name='d1')]
        self.attention = keras.layers.MultiHeadAttention(1, 2, name='att')

      def call(self, x):
        for layer in self.blocks:
          x = layer(x)
        x = tf.reshape(x, [-1, 2, 2])
        return self.attention(x, x)

    model = Net()
    x = np.ones((2, 5), np.float32)
    before = model(x)
    self.assertIs(layers.sparsify(model), model)
    self.assertAllClose(model(x), before, atol=1e-6)
    self.assertEqual(
        [(mw.name, mw.size) for mw in layers.get_masked_weights(model)],
        [('d0', 40), ('d1', 32), ('att/query', 4), ('att/key', 4),
         ('att/value', 4), ('att/attention_output', 4)])
    self.assertEqual(layers.weight_inventory(model)['dense'], [])
    counts = masks.init_masks(model, 0.5, seed=0)
    self.assertEqual(counts['d0'], 20)
    self.assertEqual(layers.check_invariant(model), [])

  def test_flop_counts_are_the_same_in_both_flavours(self):
    tables = []
    for flavour in flavours.NAMES:
      model = layers.sparsify(_attention_model(flavours.module(flavour)))
      masks.init_masks(model, 0.75, seed=3)
      for result in (flops.count(model), flops.count(model, sparsity=0.5)):
        tables.append([(c.name, c.n_weights, c.n_nonzero, c.flops)
                       for c in result.layers if c.counted])
    self.assertEqual(tables[0], tables[2])
    self.assertEqual(tables[1], tables[3])
    # Every kernel, and attention's two products (activations x
    # activations: 3 tokens, 2 heads, key_dim 4 -> 3*3*2*4 multiply-adds).
    self.assertEqual([name for name, *_ in tables[0]],
                     [name for name, _ in _ATTENTION_KERNELS[:7]]
                     + ['mha/scores', 'mha/context']
                     + [name for name, _ in _ATTENTION_KERNELS[7:]])
    self.assertEqual(dict((n, (w, z)) for n, w, z, _ in tables[0])['head'],
                     (18, 18 - 13))

  def test_unknown_kernel_of_a_keras3_layer_is_named(self):

    class Gate(keras3.layers.Layer):

      def build(self, input_shape):
        self.gate = self.add_weight(shape=(input_shape[-1], 3), name='gate')

      def call(self, x):
        return x @ self.gate

    inputs = keras3.Input((4,))
    model = keras3.Model(inputs, keras3.layers.Dense(2, name='fc')(
        Gate(name='gate_layer')(inputs)))
    sparse = layers.sparsify(model)
    self.assertEqual(
        layers.weight_inventory(sparse)['dense'],
        [{'name': 'gate_layer/gate', 'weights': 12,
          'reason': 'not maskable: Gate'}])

  def test_masked_layer_of_a_keras3_layer(self):
    wrapper = layers.MaskedLayer(keras3.layers.Dense(3))
    self.assertIsInstance(wrapper, layers.Keras3MaskedLayer)
    wrapper(np.ones((1, 2), np.float32))
    self.assertEqual([tuple(m.shape) for m in wrapper.masks], [(2, 3)])


def _mlp(flavour):
  return functools.partial(test_util.small_mlp, flavour=flavour)


# Every Keras 3 optimizer SparseOptimizer knows, with its options.
_KERAS3_OPTIMIZERS = {
    'sgd_momentum_wd': lambda: keras3.optimizers.SGD(
        0.1, momentum=0.9, weight_decay=0.05),
    'adam_amsgrad': lambda: keras3.optimizers.Adam(0.01, amsgrad=True),
    'adamw': lambda: keras3.optimizers.AdamW(0.01, weight_decay=0.1),
    'nadam': lambda: keras3.optimizers.Nadam(0.01),
    'adamax': lambda: keras3.optimizers.Adamax(0.01),
    'rmsprop_centered_momentum': lambda: keras3.optimizers.RMSprop(
        0.01, momentum=0.9, centered=True),
    'adagrad': lambda: keras3.optimizers.Adagrad(0.1),
    'adadelta': lambda: keras3.optimizers.Adadelta(1.0),
    'ftrl_l1_l2': lambda: keras3.optimizers.Ftrl(
        0.1, l1_regularization_strength=1e-3,
        l2_regularization_strength=1e-3),
    'lion_wd': lambda: keras3.optimizers.Lion(1e-3, weight_decay=0.5),
}


def _drop_grow(method, start=2):
  return methods.create(
      method, drop_fraction=0.5, drop_fraction_anneal='constant',
      update_frequency=2, begin_step=start, end_step=6)


class Keras3OptimizersTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*[(k, k) for k in _KERAS3_OPTIMIZERS])
  def test_masked_weights_stay_zero_and_grown_slots_are_fresh(self, name):
    make = _KERAS3_OPTIMIZERS[name]
    self.assertFalse(slots_lib.needs_remasking(
        make(), tf.Variable(tf.zeros([2]))))
    # The list of every per-variable slot the optimizer builds is known.
    optimizer = make()
    optimizer.build([keras3.Variable(np.ones((3, 4), np.float32))])
    built = {key for key, value in vars(optimizer).items()
             if key not in ('_variables', '_trainable_variables')
             and isinstance(value, list) and len(value) == 1
             and isinstance(value[0], keras3.Variable)}
    self.assertLessEqual(built, set(slots_lib.slot_lists(optimizer)))
    self.assertNotEmpty(built)
    method = 'rigl' if sorted(_KERAS3_OPTIMIZERS).index(name) % 2 else 'set'
    updater = _drop_grow(method)
    # After every step: masked weights 0 and their slots fresh, also at
    # the drop/grow steps 2, 4 and 6 (grown positions start fresh).
    optimizer = _train_and_check(self, make, updater,
                                 model_fn=_mlp('keras3'))
    self.assertIsInstance(optimizer, optimizers.Keras3SparseOptimizer)
    self.assertGreater(updater.layer_connections_changed.numpy().min(), 0)

  def test_every_known_keras3_optimizer_is_trained_here(self):
    self.assertEqual(
        {type(make()) for make in _KERAS3_OPTIMIZERS.values()},
        {cls for cls in compat.SLOT_LISTS
         if cls.__module__.startswith('keras.')})

  def test_grown_weights_get_fresh_accumulators(self):
    updater = methods.SET(drop_fraction=0.5, drop_fraction_anneal='constant',
                          update_frequency=3, begin_step=2, end_step=10)
    make = _KERAS3_OPTIMIZERS['adagrad']
    strategy = tf.distribute.get_strategy()
    model, optimizer = test_util.build_sparse(
        strategy, _mlp('keras3'), 0.8, make, updater)
    weights = layers.get_masked_weights(model)
    before = {}

    def record(step):
      if step == 1:
        before.update({mw.name: mw.mask.numpy() for mw in weights})

    test_util.train(strategy, model, optimizer, test_util.random_data(3),
                    after_step=record)
    for mw in weights:
      grown = (mw.mask.numpy() > 0) & (before[mw.name] == 0)
      self.assertGreater(grown.sum(), 0)
      (slot,), (fresh,) = slots_lib.get_slot_resets(optimizer, mw.weight)
      self.assertEqual(fresh, 0.1)  # Keras 3's initial accumulator value.
      self.assertAllEqual(slot.numpy()[grown],
                          np.full(grown.sum(), np.float32(0.1)))

  def test_unknown_keras3_optimizer_is_refused(self):

    class Custom(keras3.optimizers.Optimizer):

      def update_step(self, gradient, variable, learning_rate):
        variable.assign_sub(learning_rate * gradient)

    model = layers.sparsify(test_util.small_mlp(flavour='keras3'))
    with self.assertRaisesRegex(ValueError,
                                'does not know where Custom keeps'):
      optimizers.SparseOptimizer(Custom(0.1), model)

  def test_what_keras3_does_not_run_is_refused_in_one_line(self):
    model = layers.sparsify(test_util.small_mlp(flavour='keras3'))
    with self.assertRaisesRegex(ValueError, "TFMOT takes tf_keras"):
      optimizers.SparseOptimizer(keras3.optimizers.SGD(0.1), model,
                                 methods.create('tfmot_gmp'))
    with self.assertRaisesRegex(TypeError, 'The model is keras3 and the '
                                'optimizer tf_keras'):
      optimizers.SparseOptimizer(tf_keras.optimizers.SGD(0.1), model)

  @parameterized.named_parameters(
      ('gmp', lambda: methods.GMP(update_frequency=2, final_prune_step=6)),
      ('granet', lambda: methods.GraNet(update_frequency=2,
                                        final_prune_step=6)),
      ('snip', lambda: methods.SNIP(scope='global')))
  def test_pruning_methods_give_the_same_masks_in_both_flavours(self, make):
    records = {}
    for flavour in flavours.NAMES:
      keras = flavours.module(flavour)
      _, records[flavour], weights, _ = _run(
          tf.distribute.get_strategy(), make(), 10, model_fn=_mlp(flavour),
          optimizer_fn=lambda keras=keras: keras.optimizers.SGD(
              0.1, momentum=0.9))
      self.assertEqual([r['bad'] for r in records[flavour]], [[]] * 10)
    self.assertNotEqual(sum(int(m.sum()) for m in records['keras3'][-1][
        'masks']), sum(mw.size for mw in weights))
    for step, (a, b) in enumerate(zip(*records.values())):
      for mask_a, mask_b in zip(a['masks'], b['masks']):
        np.testing.assert_array_equal(mask_a, mask_b, err_msg=str(step))

  def test_snfs_on_keras3(self):
    updater = _drop_grow('snfs')
    _train_and_check(self, _KERAS3_OPTIMIZERS['adam_amsgrad'], updater,
                     model_fn=_mlp('keras3'))
    self.assertGreater(updater.layer_connections_changed.numpy().min(), 0)

  def test_same_masks_and_weights_in_both_flavours(self):
    results = {}
    for flavour in flavours.NAMES:
      keras = flavours.module(flavour)
      updater = _drop_grow('rigl')
      strategy = tf.distribute.get_strategy()
      model, optimizer = test_util.build_sparse(
          strategy, _mlp(flavour), 0.9,
          lambda keras=keras: keras.optimizers.SGD(0.1, momentum=0.9),
          updater)
      test_util.train(strategy, model, optimizer,
                      test_util.random_data(8, batch_size=16))
      self.assertEqual(int(optimizer.iterations.numpy()), 8)
      results[flavour] = [(mw.mask.numpy(), mw.weight.numpy())
                          for mw in layers.get_masked_weights(model)]
      self.assertGreater(updater.layer_connections_changed.numpy().min(), 0)
    for (mask_1, weight_1), (mask_2, weight_2) in zip(*results.values()):
      self.assertAllEqual(mask_1, mask_2)
      self.assertAllClose(weight_1, weight_2, atol=1e-5, rtol=0)

  def test_fit_one_device_equals_two_replicas(self):
    results = []
    for strategy in (tf.distribute.get_strategy(),
                     test_util.two_replica_strategy()):
      model, optimizer = test_util.build_sparse(
          strategy, _mlp('keras3'), 0.9,
          lambda: keras3.optimizers.SGD(0.1, momentum=0.9),
          _drop_grow('rigl'), seed=7)
      counts = {mw.name: int(mw.mask.numpy().sum())
                for mw in layers.get_masked_weights(model)}
      before = [mw.mask.numpy() for mw in layers.get_masked_weights(model)]
      with strategy.scope():
        model.compile(optimizer=optimizer,
                      loss=keras3.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
      model.fit(test_util.random_data(8, batch_size=32), epochs=1,
                verbose=0, shuffle=False)
      self.assertEqual(int(optimizer.iterations.numpy()), 8)
      self.assertEqual(layers.check_invariant(model), [])
      weights = layers.get_masked_weights(model)
      self.assertEqual({mw.name: int(mw.mask.numpy().sum())
                        for mw in weights}, counts)
      self.assertGreater(sum(int((b != mw.mask.numpy()).sum())
                             for b, mw in zip(before, weights)), 0)
      for mw in weights:
        replicas = test_util.local_values(mw.mask, strategy)
        for replica in replicas[1:]:
          self.assertAllEqual(replicas[0], replica)
      results.append([(mw.mask.numpy(), mw.weight.numpy())
                      for mw in weights])
    for (mask_1, weight_1), (mask_2, weight_2) in zip(*results):
      self.assertAllEqual(mask_1, mask_2)
      self.assertAllClose(weight_1, weight_2, atol=1e-5, rtol=0)


class Keras3RoundTripTest(tf.test.TestCase):

  def test_rigl_trained_stripped_saved_and_reloaded_in_a_fresh_process(self):
    """The digits ViT (attention, custom layers with sublayers) in Keras 3:
    sparsified, trained with RigL (masks moved), stripped, saved as .keras;
    a fresh process loads it and predicts the same, bit for bit."""
    strategy = tf.distribute.get_strategy()

    def vit():
      with flavours.building(flavours.KERAS3):
        return models.vit((8, 8, 1), 10, dim=16, depth=1, mlp_dim=32)

    updater = _drop_grow('rigl', start=0)
    model, optimizer = test_util.build_sparse(
        strategy, vit, 0.8, lambda: keras3.optimizers.Adam(0.01), updater)
    counts = {mw.name: int(mw.mask.numpy().sum())
              for mw in layers.get_masked_weights(model)}
    # Every kernel: patches, positions, query/key/value/output, the MLP's
    # two layers and the logits.
    self.assertLen(counts, 9)
    test_util.train(strategy, model, optimizer,
                    test_util.random_data(6, batch_size=16))
    self.assertGreater(updater.layer_connections_changed.numpy().min(), 0)
    self.assertEqual(layers.check_invariant(model), [])
    x = next(iter(test_util.random_data(1, batch_size=16, seed=5)))[0].numpy()
    expected = model.predict(x, verbose=0)
    plain = layers.strip(model)
    self.assertEmpty(layers.get_masked_layers(plain))
    self.assertEqual(flavours.of(plain), flavours.KERAS3)
    directory = self.create_tempdir().full_path
    plain.save(os.path.join(directory, 'vit.keras'))
    np.save(os.path.join(directory, 'x.npy'), x)
    script = (
        'import sys, numpy as np, keras\n'
        'from mnist import models  # registers the ViT layers\n'
        'd = sys.argv[1]\n'
        'm = keras.saving.load_model(f"{d}/vit.keras")\n'
        'np.save(f"{d}/y.npy", m.predict(np.load(f"{d}/x.npy"), verbose=0))\n'
        'print(sum(int(np.count_nonzero(w)) for w in m.get_weights()))\n')
    result = test_util.run_python(script, directory)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    self.assertAllEqual(np.load(os.path.join(directory, 'y.npy')), expected)
    # The reloaded weights keep the stripped model's zeros exactly.
    nonzero = sum(int(np.count_nonzero(w)) for w in plain.get_weights())
    self.assertEqual(int(result.stdout.split()[-1]), nonzero)


if __name__ == '__main__':
  tf.test.main()
