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
"""What a newcomer runs into: configs from anywhere, a forgotten
SparseOptimizer, updater names (broken checkpoints: fault_matrix_test)."""

import contextlib
import os

import gin
import tensorflow as tf
import test_util
import tf_keras as keras

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def _working_directory(path):
  old = os.getcwd()
  os.chdir(path)
  try:
    yield
  finally:
    os.chdir(old)


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(text)


class ConfigsFromAnywhereTest(tf.test.TestCase):

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def test_repository_config_from_another_directory(self):
    elsewhere = self.create_tempdir().full_path
    gin.clear_config()
    with _working_directory(elsewhere):
      # rigl.gin includes 'configs/mnist/static_erk.gin', which includes
      # 'configs/mnist/dense.gin': both relative to the repository.
      train.parse_gin(['configs/mnist/rigl.gin'], [])
    self.assertEqual(gin.query_parameter('train_eval.method'), 'rigl')
    self.assertEqual(gin.query_parameter('train_eval.sparsity'), 0.95)
    self.assertEqual(
        gin.query_parameter('train_eval.model_fn').selector, 'lenet_300_100')

  def test_includes_relative_to_the_including_file(self):
    tmp = self.create_tempdir().full_path
    _write(os.path.join(tmp, 'mine', 'top.gin'),
           "include 'parts/mid.gin'\ntrain_eval.sparsity = 0.8\n")
    _write(os.path.join(tmp, 'mine', 'parts', 'mid.gin'),
           "include 'configs/mnist/dense.gin'\ninclude 'leaf.gin'\n"
           "train_eval.method = 'set'\n")
    _write(os.path.join(tmp, 'mine', 'parts', 'leaf.gin'),
           'train_eval.train_steps = 77\n')
    gin.clear_config()
    with _working_directory(self.create_tempdir().full_path):
      train.parse_gin([os.path.join(tmp, 'mine', 'top.gin')], [])
    self.assertEqual(gin.query_parameter('train_eval.method'), 'set')
    self.assertEqual(gin.query_parameter('train_eval.train_steps'), 77)
    self.assertEqual(gin.query_parameter('train_eval.sparsity'), 0.8)


class PlainOptimizerTest(tf.test.TestCase):

  def _masked_model(self):
    model = layers.sparsify(test_util.small_mlp())
    masks.init_masks(model, 0.8)
    return model

  def test_fit_with_a_plain_optimizer_stops_at_the_first_step(self):
    model = self._masked_model()
    before = [w.numpy() for w in model.weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    with self.assertRaisesRegex(ValueError, 'no rigl_tf SparseOptimizer'):
      model.fit(test_util.random_data(2), verbose=0)
    for old, new in zip(before, model.weights):
      self.assertAllEqual(old, new.numpy())  # No step was taken.
    # Wrapped, the same model trains.
    model.compile(
        optimizer=optimizers.SparseOptimizer(keras.optimizers.SGD(0.1), model),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(test_util.random_data(2), verbose=0)
    self.assertEqual(layers.check_invariant(model), [])

  def test_custom_loop_with_a_plain_optimizer(self):
    model = self._masked_model()
    optimizer = keras.optimizers.SGD(0.1)
    with self.assertRaisesRegex(ValueError, 'SparseOptimizer'):
      test_util.train(tf.distribute.get_strategy(), model, optimizer,
                      test_util.random_data(1))


class UpdaterNamesTest(tf.test.TestCase):

  def test_gin_class_names_and_any_case(self):
    for name, cls in (('rigl', methods.RigL), ('RigL', methods.RigL),
                      ('RIGL', methods.RigL), ('SET', methods.SET),
                      ('SNFS', methods.SNFS),
                      ('Static', methods.Static),
                      ('static', methods.Static)):
      self.assertIs(methods.get_class(name), cls, name)
    self.assertIsInstance(methods.create('RigL'), methods.RigL)
    with self.assertRaisesRegex(ValueError, 'Unknown sparse training method'):
      methods.create('Rig')


if __name__ == '__main__':
  tf.test.main()
