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
"""The trainer and the task models with `train_eval.keras = 'keras3'`.

Every task model builds in both flavours with the same weights to mask;
the digits quickstart and a RigL run of configs/mnist/rigl.gin reach, on
Keras 3, the tf_keras accuracy within 1 point over 3 seeds; what Keras 3
cannot run is refused in one line before any output; a Keras 3 run exports
to TFLite and draws its pictures. (Bit-exact resume of a Keras 3 run:
trainer_test.py; on two workers: multi_worker_test.py; the `.keras` round
trip: flavours_test.py.)
"""

import os
import statistics

from absl.testing import parameterized
import gin
import keras as keras3
import tensorflow as tf
import tf_keras

from cifar_wrn import wrn_model
from imagenet_resnet import mobilenet_model
from imagenet_resnet import resnet_model
from mnist import models
from rigl_tf import errors
from rigl_tf import export
from rigl_tf import flavours
from rigl_tf import layers
from rigl_tf import train
from rigl_tf import visualize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, 'configs', 'mnist', 'quickstart_digits.gin')
RIGL = os.path.join(ROOT, 'configs', 'mnist', 'rigl.gin')

# Every task's model builders, at small input sizes.
_TASK_MODELS = {
    'lenet_300_100': lambda: models.lenet_300_100((8, 8, 1), 10, l2=1e-4),
    'lenet5': lambda: models.lenet5((8, 8, 1), 10),
    'vit': lambda: models.vit((8, 8, 1), 10),
    'wrn_22_2': lambda: wrn_model.wrn_22_2(num_classes=10),
    'resnet20': lambda: wrn_model.resnet20(num_classes=10),
    'cifar_resnet18': lambda: wrn_model.cifar_resnet(18, num_classes=10),
    'resnet18': lambda: resnet_model.resnet(18, num_classes=10,
                                            input_shape=(64, 64, 3)),
    'mobilenet_v1': lambda: mobilenet_model.mobilenet_v1(
        num_classes=10, input_shape=(64, 64, 3)),
    'mobilenet_v2': lambda: mobilenet_model.mobilenet_v2(
        num_classes=10, input_shape=(64, 64, 3)),
}


def _masked_sizes(model):
  """masked-weight name -> size, of the sparsified model."""
  return {mw.name: int(tf.size(mw.mask))
          for mw in layers.get_masked_weights(layers.sparsify(model))}


class TaskModelsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*((name, name) for name in _TASK_MODELS))
  def test_builds_in_both_flavours_with_the_same_masked_weights(self, name):
    built = {}
    for flavour in flavours.NAMES:
      with flavours.building(flavour):
        built[flavour] = _TASK_MODELS[name]()
      self.assertEqual(flavours.of(built[flavour]), flavour)
    tf_model, k3_model = built[flavours.TF_KERAS], built[flavours.KERAS3]
    self.assertEqual(k3_model.count_params(), tf_model.count_params())
    tf_sizes = _masked_sizes(tf_model)
    self.assertNotEmpty(tf_sizes)
    self.assertEqual(_masked_sizes(k3_model), tf_sizes)

  def test_keras3_custom_layers_are_registered_at_import(self):
    # A fresh process loading a saved Keras 3 ViT or ResNet-20 finds them.
    for name in ('AddPositions', 'EncoderBlock', 'ZeroPadShortcut'):
      registered = keras3.saving.get_registered_object(
          f'rigl_tf{"_mnist" if name != "ZeroPadShortcut" else ""}>{name}')
      self.assertIsNotNone(registered, name)
      self.assertTrue(issubclass(registered, keras3.layers.Layer), name)


def _configure(config, *bindings):
  gin.clear_config()
  train.parse_gin([config], ['train_eval.quiet = True', *bindings])


@gin.configurable
def tf_keras_only_mlp(input_shape, num_classes):
  """A model_fn that ignores the flavour being built."""
  return tf_keras.Sequential([
      tf_keras.Input(input_shape), tf_keras.layers.Flatten(),
      tf_keras.layers.Dense(num_classes)])


class RefusalsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ('tfmot_gmp', ["train_eval.method = 'tfmot_gmp'"],
       "train_eval.keras = 'keras3': tfmot_gmp trains inside TFMOT wrappers"),
      ('unknown_flavour', ["train_eval.keras = 'keras2'"],
       "Unknown train_eval.keras 'keras2'; choose one of 'tf_keras', "
       "'keras3'"),
      ('model_of_another_flavour',
       ['train_eval.model_fn = @tf_keras_only_mlp'],
       "returned a tf_keras model, and train_eval.keras is 'keras3'"),
  )
  def test_refused_in_one_line_before_any_output(self, bindings, message):
    _configure(QUICKSTART, "train_eval.keras = 'keras3'", *bindings)
    output_dir = os.path.join(self.create_tempdir().full_path, 'run')
    with self.assertRaises(errors.UserError) as raised:
      train.train_eval(output_dir=output_dir)
    self.assertIn(message, str(raised.exception))
    self.assertNotIn('\n', str(raised.exception))
    self.assertFalse(os.path.exists(output_dir))


class ExportAndPicturesTest(tf.test.TestCase):

  def test_keras3_run_exports_and_draws(self):
    _configure(QUICKSTART, "train_eval.keras = 'keras3'",
               "train_eval.method = 'rigl'", 'RigL.update_frequency = 50',
               'train_eval.train_steps = 200',
               'train_eval.checkpoint_every = 100')
    output_dir = self.create_tempdir().full_path
    train.train_eval(output_dir=output_dir, mode='train')
    report = export.export_run(output_dir, quantize=('float16',))
    files = {f['name']: f for f in report['files']}
    self.assertEqual(sorted(files), ['saved_model', 'tflite_dense',
                                     'tflite_sparse', 'tflite_sparse_float16'])
    for name, row in files.items():
      self.assertTrue(row['matches'], (name, row))
      self.assertEqual(row['top1_agreement'], 1.0, name)
    # 90% zeros: the sparse encoding is under a quarter of the dense file.
    self.assertLess(files['tflite_sparse']['size_bytes'],
                    files['tflite_dense']['size_bytes'] / 4)
    written = [os.path.basename(p) for p in visualize.render_run(output_dir)]
    self.assertIn('connectivity_100.png', written)
    self.assertIn('connectivity_200.png', written)
    self.assertIn('density_and_itop.png', written)


class DigitsAccuracyTest(tf.test.TestCase, parameterized.TestCase):
  """Keras 3 reaches the tf_keras accuracy within 1 point over 3 seeds.

  Measured, test accuracy on the 360 digits test images, seeds 0, 1, 2, the
  same in both flavours: quickstart 96.39, 96.94, 96.94%; RigL 96.94,
  97.50, 97.22%. Keras 3's initializers draw the same weights as tf_keras'
  from the same seed, and the masks come from rigl_tf's own generator, so
  the two runs start alike; a Keras 3 learning rate off by 10x fails this
  test by 1.7 and 2.3 points.
  """

  @parameterized.named_parameters(
      # The quickstart: static ERK 90%, 3,000 steps.
      ('quickstart', QUICKSTART, []),
      # configs/mnist/rigl.gin on digits at a quarter of its 12,000 steps
      # (the learning-rate boundaries and RigL's schedule stretch with it).
      ('rigl', RIGL, ["train_eval.dataset = 'digits'",
                      'train_eval.eval_batch_size = 360',
                      'train_eval.training_steps_multiplier = 0.25']),
  )
  def test_keras3_accuracy_is_within_one_point(self, config, bindings):
    accuracies, nonzero = {}, {}
    for flavour in flavours.NAMES:
      for seed in range(3):
        _configure(config, f"train_eval.keras = '{flavour}'",
                   f'train_eval.seed = {seed}', *bindings)
        report = train.train_eval(
            output_dir=self.create_tempdir().full_path)
        self.assertEqual(report['eval_examples'], 360)
        accuracies.setdefault(flavour, []).append(report['accuracy'])
        nonzero.setdefault(flavour, []).append(
            report['masks']['overall']['nonzero'])
    means = {f: statistics.mean(a) for f, a in accuracies.items()}
    print(f'accuracies {accuracies}, means {means}')
    self.assertLessEqual(abs(means['keras3'] - means['tf_keras']), 0.01,
                         accuracies)
    self.assertEqual(nonzero['keras3'], nonzero['tf_keras'])


if __name__ == '__main__':
  tf.test.main()
