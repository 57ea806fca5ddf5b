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
"""Each private TensorFlow / tf_keras / TFMOT attribute `compat` relies on.

One test per assumption: a release that moves one fails here, by name.
"""

import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from rigl_tf import compat


class _Holder(keras.layers.Layer):
  """Sets a list of variables with (hide) or without the decorator."""

  def __init__(self, hide):
    super().__init__()
    self.tracked = tf.Variable(1.0, name='tracked')
    variables = [tf.Variable(2.0, name='hidden')]
    if hide:
      self._hide(variables)
    else:
      self.hidden = variables

  @compat.no_dependency_tracking
  def _hide(self, variables):
    self.hidden = variables


class _Delegating(compat.DelegatingTrackableMixin,
                  tf.__internal__.tracking.Trackable):

  def __init__(self, inner):
    compat.DelegatingTrackableMixin.__init__(self, inner)


class TrackingTest(tf.test.TestCase):

  def test_no_dependency_tracking_keeps_an_attribute_untracked(self):
    self.assertEqual([v.name for v in _Holder(hide=True).weights],
                     ['tracked:0'])
    self.assertEqual([v.name for v in _Holder(hide=False).weights],
                     ['tracked:0', 'hidden:0'])

  def test_delegating_mixin_checkpoints_as_the_inner_object(self):
    inner = tf.train.Checkpoint(v=tf.Variable(3.0))
    path = tf.train.Checkpoint(x=_Delegating(inner)).save(
        self.get_temp_dir() + '/d')
    restored = tf.train.Checkpoint(v=tf.Variable(0.0))
    tf.train.Checkpoint(x=_Delegating(restored)).restore(path)
    self.assertEqual(float(restored.v), 3.0)
    # The wrapper adds no level of its own: x/v, not x/<inner>/v.
    self.assertIn('x/v/.ATTRIBUTES/VARIABLE_VALUE',
                  [name for name, _ in tf.train.list_variables(path)])

  def test_smart_cond_runs_one_branch_for_a_python_bool(self):
    calls = []
    result = compat.smart_cond(True, lambda: calls.append('t') or 1,
                               lambda: calls.append('f') or 2)
    self.assertEqual((result, calls), (1, ['t']))
    self.assertEqual(int(compat.smart_cond(tf.constant(False),
                                           lambda: tf.constant(1),
                                           lambda: tf.constant(2))), 2)

  def test_collective_keys_move(self):
    base = tf.distribute.MirroredStrategy._collective_key_base  # pylint: disable=protected-access
    compat.separate_collective_keys(7)
    self.assertEqual(
        tf.distribute.MirroredStrategy._collective_key_base, base + 7)  # pylint: disable=protected-access


class OptimizerSlotsTest(parameterized.TestCase, tf.test.TestCase):

  # The classes of both Keras flavours ('tf_keras_SGD', 'keras_SGD').
  @parameterized.named_parameters(
      (f'{cls.__module__.split(".")[0]}_{cls.__name__}', cls)
      for cls in compat.SLOT_LISTS)
  def test_slot_lists_hold_a_slot_per_variable(self, cls):
    optimizer = cls(0.1)
    variables = [tf.Variable(tf.ones([3, 2])), tf.Variable(tf.ones([4]))]
    optimizer.build(variables)
    for i, variable in enumerate(variables):
      self.assertEqual(compat.slot_index(optimizer, variable), i)
      self.assertIsNotNone(compat.var_key(optimizer, variable))
    self.assertIsNone(compat.slot_index(optimizer, tf.Variable(1.0)))
    present = 0
    for name in compat.SLOT_LISTS[cls](optimizer):
      slots = compat.slot_list(optimizer, name)
      if slots:  # Optional slots (amsgrad, centered, momentum) are empty.
        present += 1
        self.assertEqual([tuple(s.shape) for s in slots], [(3, 2), (4,)])
    if cls.__name__ != 'SGD':  # SGD without momentum has none.
      self.assertGreater(present, 0)

  def test_sgd_with_momentum_has_its_slot(self):
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    variable = tf.Variable(tf.ones([2]))
    optimizer.build([variable])
    self.assertLen(compat.slot_list(optimizer, 'momentums'), 1)

  def test_loss_scale_optimizer_reads_these(self):
    optimizer = keras.optimizers.SGD(0.1)
    self.assertFalse(compat.run_with_dtensor(optimizer))
    self.assertIsNone(compat.dtensor_mesh(optimizer))


def _functional():
  inputs = keras.Input((4,))
  shared = keras.layers.Dense(4, name='shared')
  inner = keras.Sequential([keras.layers.Dense(3, name='deep')], name='inner')
  x = shared(shared(inputs))
  return keras.Model(inputs, inner(x)), shared


class _Subclassed(keras.Model):

  def __init__(self):
    super().__init__()
    self.fc = keras.layers.Dense(2)

  def call(self, x):
    return self.fc(x)


class _Blocks(keras.layers.Layer):

  def __init__(self):
    super().__init__()
    self.blocks = [keras.layers.Dense(2), keras.layers.Dense(2)]
    self.head = keras.layers.Dense(1)

  def call(self, x):
    for block in self.blocks:
      x = block(x)
    return self.head(x)


class ModelGraphTest(tf.test.TestCase):

  def test_named_sublayers_are_the_children_by_checkpoint_name(self):
    model, _ = _functional()
    self.assertEqual(
        [(name, layer.name) for name, layer in compat.named_sublayers(model)
         if not isinstance(layer, keras.layers.InputLayer)],
        [('layer_with_weights-0', 'shared'), ('layer_with_weights-1',
                                               'inner')])
    block = _Blocks()
    self.assertEqual([name for name, _ in compat.named_sublayers(block)],
                     ['blocks/0', 'blocks/1', 'head'])

  def test_replace_sublayer_in_a_list_keeps_it_savable(self):
    block = _Blocks()
    block(np.zeros((1, 3), np.float32))
    new = keras.layers.Dense(2, name='new')
    compat.replace_sublayer(block, 'blocks/1', new)
    self.assertIs(block.blocks[1], new)
    self.assertEqual([layer.name for _, layer in
                      compat.named_sublayers(block)][1], 'new')
    tf.train.Checkpoint(block=block).save(
        os.path.join(self.get_temp_dir(), 'ckpt'))

  def test_attention_parts(self):
    attention = keras.layers.MultiHeadAttention(2, 3)
    x = np.zeros((1, 4, 5), np.float32)
    attention(x, x)
    parts = compat.attention_parts(attention)
    self.assertEqual(sorted(parts), ['key', 'output', 'query', 'softmax',
                                     'value'])
    self.assertIsInstance(parts['query'], keras.layers.EinsumDense)
    self.assertIsInstance(parts['softmax'], keras.layers.Softmax)
    self.assertIsNone(compat.attention_parts(keras.layers.Dense(2)))

  def test_is_graph_network(self):
    model, _ = _functional()
    self.assertTrue(compat.is_graph_network(model))
    self.assertFalse(compat.is_graph_network(_Subclassed()))

  def test_layer_call_shapes_lists_every_call(self):
    model, shared = _functional()
    self.assertEqual(compat.layer_call_shapes(model, shared),
                     [((None, 4), (None, 4)), ((None, 4), (None, 4))])
    subclassed = _Subclassed()
    subclassed(np.zeros((1, 3), np.float32))
    self.assertEqual(compat.layer_call_shapes(subclassed, subclassed.fc), [])


class TFMOTTest(tf.test.TestCase):

  def test_pruning_vars_of_a_wrapper(self):
    wrapper = tfmot.sparsity.keras.prune_low_magnitude(
        keras.layers.Dense(2),
        pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0))
    wrapper.build((None, 3))
    (weight, mask, threshold), = compat.tfmot_pruning_vars(wrapper)
    self.assertIs(weight, wrapper.layer.kernel)
    self.assertEqual(tuple(mask.shape), (3, 2))
    self.assertEqual(tuple(threshold.shape), ())


if __name__ == '__main__':
  tf.test.main()
