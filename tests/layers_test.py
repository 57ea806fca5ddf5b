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
"""Tests for rigl_tf.layers: wrapping, serialisation, sparsify and strip."""

import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import test_util
import tf_keras as keras

from rigl_tf import layers
from rigl_tf import masks


class PrunableScale(keras.layers.Layer, tfmot.sparsity.keras.PrunableLayer):
  """A custom layer that declares its prunable weight through TFMOT."""

  def build(self, input_shape):
    self.scale = self.add_weight('scale', shape=(input_shape[-1],))

  def call(self, inputs):
    return inputs * self.scale

  def get_prunable_weights(self):
    return [self.scale]


class MaskedLayerTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ('dense', lambda: keras.layers.Dense(4), (None, 6), [(6, 4)]),
      ('conv1d', lambda: keras.layers.Conv1D(4, 3), (None, 10, 2),
       [(3, 2, 4)]),
      ('conv2d', lambda: keras.layers.Conv2D(4, 3), (None, 8, 8, 2),
       [(3, 3, 2, 4)]),
      ('depthwise', lambda: keras.layers.DepthwiseConv2D(3),
       (None, 8, 8, 5), [(3, 3, 5, 1)], True),
      ('separable', lambda: keras.layers.SeparableConv2D(4, 3),
       (None, 8, 8, 2), [(3, 3, 2, 1), (1, 1, 2, 4)], True),
      # By default the depthwise kernel stays dense: pointwise only.
      ('separable_default', lambda: keras.layers.SeparableConv2D(4, 3),
       (None, 8, 8, 2), [(1, 1, 2, 4)]),
      ('conv3d', lambda: keras.layers.Conv3D(4, 2), (None, 4, 4, 4, 2),
       [(2, 2, 2, 2, 4)]),
      ('prunable_layer', PrunableScale, (None, 7), [(7,)]),
  )
  def test_masks_for_each_prunable_weight(self, make_layer, input_shape,
                                          mask_shapes, mask_depthwise=False):
    wrapper = layers.MaskedLayer(make_layer(), mask_depthwise=mask_depthwise)
    wrapper.build(input_shape)
    self.assertEqual([tuple(m.shape) for m in wrapper.masks], mask_shapes)
    self.assertEqual([tuple(w.shape) for w in wrapper.prunable_weights],
                     mask_shapes)
    for mask in wrapper.masks:
      self.assertFalse(mask.trainable)
      self.assertAllEqual(mask, tf.ones_like(mask))
    # Masks are weights of the wrapper, but not trainable ones.
    self.assertLen(wrapper.non_trainable_weights, len(mask_shapes))

  def test_prune_registry_layers(self):
    # Layers only TFMOT's prune registry knows: RNNs list their cells'
    # kernels (is_maskable raised KeyError for them), BN lists nothing.
    self.assertTrue(layers.is_maskable(keras.layers.LSTM(3)))
    self.assertTrue(layers.is_maskable(keras.layers.Embedding(10, 4)))
    self.assertFalse(layers.is_maskable(keras.layers.BatchNormalization()))
    self.assertFalse(layers.is_maskable(keras.layers.MaxPooling2D()))
    lstm = layers.MaskedLayer(keras.layers.LSTM(3))
    lstm.build((None, 5, 2))
    self.assertEqual([tuple(m.shape) for m in lstm.masks],
                     [(2, 12), (3, 12)])
    embedding = layers.MaskedLayer(keras.layers.Embedding(10, 4))
    embedding.build((None, 7))
    self.assertIs(embedding.prunable_weights[0], embedding.layer.embeddings)
    self.assertEqual([tuple(m.shape) for m in embedding.masks], [(10, 4)])

  def test_depthwise_kernels_are_not_masked_by_default(self):
    self.assertFalse(layers.is_maskable(keras.layers.DepthwiseConv2D(3)))
    with self.assertRaisesRegex(ValueError, 'mask_depthwise=True'):
      layers.MaskedLayer(keras.layers.DepthwiseConv2D(3, name='dw'))
    wrapper = layers.MaskedLayer(keras.layers.DepthwiseConv2D(3, name='dw'),
                                 mask_depthwise=True)
    wrapper.build((None, 8, 8, 5))
    self.assertIs(wrapper.prunable_weights[0], wrapper.layer.depthwise_kernel)
    clone = layers.MaskedLayer.from_config(wrapper.get_config())
    self.assertTrue(clone.mask_depthwise)

  def test_not_maskable(self):
    with self.assertRaisesRegex(ValueError, 'no maskable weights'):
      layers.MaskedLayer(keras.layers.BatchNormalization())

  def test_get_config_round_trip(self):
    wrapper = layers.MaskedLayer(keras.layers.Dense(3, name='fc'))
    clone = layers.MaskedLayer.from_config(wrapper.get_config())
    self.assertEqual(clone.name, 'fc')
    self.assertIsInstance(clone.layer, keras.layers.Dense)
    self.assertEqual(clone.layer.units, 3)

  def test_subclassed_model(self):

    class Net(keras.Model):

      def __init__(self):
        super().__init__()
        self.hidden = layers.MaskedLayer(keras.layers.Dense(8, name='h'))
        self.out = layers.MaskedLayer(keras.layers.Dense(2, name='o'))

      def call(self, x):
        return self.out(tf.nn.relu(self.hidden(x)))

    net = Net()
    net(tf.zeros((1, 4)))
    weights = layers.get_masked_weights(net)
    self.assertEqual([(w.name, w.index) for w in weights],
                     [('h', 0), ('o', 1)])
    masks.init_masks(net, 0.5, seed=0)
    self.assertEqual(int(tf.math.count_nonzero(weights[0].mask)), 16)
    # Already masked: sparsify (in place for subclassed models) adds nothing.
    self.assertIs(layers.sparsify(net), net)
    self.assertLen(layers.get_masked_weights(net), 2)


class SparsifyTest(tf.test.TestCase):

  def _functional(self):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name='conv')(inputs)
    x = keras.layers.BatchNormalization(name='bn')(x)
    x = keras.layers.DepthwiseConv2D(3, name='dw')(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, name='fc')(x)
    return keras.Model(inputs, outputs)

  def test_depthwise_stays_dense_unless_asked(self):
    model = self._functional()
    kinds = {layer.name: type(layer).__name__
             for layer in layers.sparsify(model).layers}
    self.assertEqual(kinds['dw'], 'DepthwiseConv2D')
    self.assertEqual(
        [w.name for w in layers.get_masked_weights(layers.sparsify(model))],
        ['conv', 'fc'])
    # The distribution's budget covers the masked kernels only.
    self.assertEqual(
        set(masks.get_layer_sparsities(layers.sparsify(model), 0.5)),
        {'conv', 'fc'})

  def test_wraps_maskable_layers_and_copies_weights(self):
    model = self._functional()
    sparse = layers.sparsify(model, dense_layers=['conv'],
                             mask_depthwise=True)
    kinds = {layer.name: type(layer).__name__ for layer in sparse.layers}
    self.assertEqual(kinds['conv'], 'Conv2D')
    self.assertEqual(kinds['dw'], 'MaskedLayer')
    self.assertEqual(kinds['fc'], 'MaskedLayer')
    self.assertEqual(kinds['bn'], 'BatchNormalization')
    self.assertEqual([w.name for w in layers.get_masked_weights(sparse)],
                     ['dw', 'fc'])
    x = np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
    # All-ones masks: same function as the original.
    self.assertAllClose(model(x), sparse(x), atol=1e-6)

  def test_unknown_dense_layer(self):
    with self.assertRaisesRegex(ValueError, 'unknown layers'):
      layers.sparsify(self._functional(), dense_layers=['conv9'])

  def test_strip_keeps_zeros_and_function(self):
    sparse = layers.sparsify(self._functional(), mask_depthwise=True)
    masks.init_masks(sparse, 0.7, seed=2)
    plain = layers.strip(sparse)
    self.assertEqual(
        [type(x).__name__ for x in plain.layers if x.name in ("dw", "fc")],
        ['DepthwiseConv2D', 'Dense'])
    for mw in layers.get_masked_weights(sparse):
      kernel = plain.get_layer(mw.layer.name).get_weights()[0]
      self.assertEqual(np.count_nonzero(kernel),
                       int(tf.math.count_nonzero(mw.mask)))
    x = np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
    self.assertAllClose(plain(x), sparse(x), atol=1e-6)

  def test_save_and_load_keeps_masks(self):
    sparse = layers.sparsify(self._functional())
    masks.init_masks(sparse, 0.6, seed=4)
    path = os.path.join(self.get_temp_dir(), 'model.keras')
    sparse.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(layers.get_masked_weights(sparse),
                    layers.get_masked_weights(loaded)):
      self.assertEqual(a.name, b.name)
      self.assertAllEqual(a.mask, b.mask)
      self.assertAllEqual(a.weight, b.weight)

  def test_nested_model(self):
    inner = test_util.small_mlp(hidden=(6,))
    inputs = keras.Input((8, 8, 1))
    outer = keras.Model(inputs, keras.layers.Dense(3, name='head')(
        inner(inputs)))
    sparse = layers.sparsify(outer)
    self.assertEqual([w.name for w in layers.get_masked_weights(sparse)],
                     ['fc1', 'logits', 'head'])


if __name__ == '__main__':
  tf.test.main()
