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
"""imagenet_resnet/train_eval.py end to end on mock ImageNet, its input
pipeline and RigL's ImageNet learning-rate schedule."""

import glob
import os
import subprocess
import sys

from absl.testing import parameterized
import gin
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import test_util
import tf_keras as keras

from imagenet_resnet import configurables  # noqa: F401  (gin names)
from imagenet_resnet import input_pipeline
from rigl_tf import data
from rigl_tf import errors
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import methods
from rigl_tf import train
from rigl_tf.train import learning_rate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'imagenet_resnet', 'train_eval.py')
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'imagenet_resnet',
                                        '*.gin')))
MOCK_EXAMPLES = 6
# 2 steps of batch 2 at 32x32 (x1.5: 3 steps); dynamic methods update masks
# at step 2 (RigL.end_step = 2 x 1.5).
TINY = [
    'IMAGE_SIZE = 32', 'train_eval.train_steps = 2',
    'train_eval.training_steps_multiplier = 1.5',
    'train_eval.batch_size = 2', 'train_eval.eval_batch_size = 3',
    'train_eval.log_every = 3', 'train_eval.checkpoint_every = 3',
    'train_eval.quiet = True',
] + [f'{name}.{key} = {value}' for name in ('SET', 'SNFS', 'RigL')
     for key, value in (('update_frequency', 2), ('end_step', 2))]
# A ResNet-18 with 1/8 of the filters: the configs' recipe, a tiny network.
SMALL_RESNET = ['resnet.depth = 18', 'resnet.width = 0.125']


def _configure(config, *bindings):
  gin.clear_config()
  train.parse_gin([config], [*TINY, *bindings])


def _config(name):
  return os.path.join(ROOT, 'configs', 'imagenet_resnet', f'{name}.gin')


def _image(height, width, seed=0):
  return tf.constant(np.random.RandomState(seed).randint(
      0, 256, (height, width, 3)), tf.uint8)


def _normalized(pixels):
  return ((np.asarray(pixels, np.float32) - input_pipeline.MEAN_RGB)
          / input_pipeline.STDDEV_RGB)


class PipelineTest(tf.test.TestCase):

  def test_train_crops_any_image_to_the_size(self):
    low, high = _normalized([0, 0, 0]), _normalized([255, 255, 255])
    for height, width in ((17, 50), (300, 200), (64, 64), (5, 9)):
      image = _image(height, width)
      out, label = input_pipeline.imagenet_train_preprocess(
          image, 3, tf.constant([1, 2], tf.int64), image_size=48)
      self.assertEqual(out.shape, (48, 48, 3))
      self.assertEqual(out.dtype, tf.float32)
      self.assertEqual(label, 3)
      self.assertTrue((out.numpy() >= low - 1e-5).all())
      self.assertTrue((out.numpy() <= high + 1e-5).all())
    image = _image(120, 90)
    draws = [input_pipeline.imagenet_train_preprocess(
        image, 0, tf.constant([0, s], tf.int64), image_size=32)[0].numpy()
             for s in (0, 0, 1)]
    self.assertAllEqual(draws[0], draws[1])  # Same seed, same crop.
    self.assertNotAllClose(draws[0], draws[2])

  def test_eval_resizes_shorter_side_then_takes_the_centre(self):
    # image_size 64 resizes the shorter side to round(64 * 256/224) = 73:
    # a 73 x 146 image keeps its size, and the centre crop is rows 4..67,
    # columns 41..104 of it.
    image = _image(73, 146)
    out, _ = input_pipeline.imagenet_eval_preprocess(image, 0, image_size=64)
    self.assertEqual(out.shape, (64, 64, 3))
    self.assertAllClose(out, _normalized(image.numpy()[4:68, 41:105]),
                        atol=1e-4)
    for height, width in ((500, 375), (31, 40)):
      out, _ = input_pipeline.imagenet_eval_preprocess(
          _image(height, width), 0, image_size=64)
      self.assertEqual(out.shape, (64, 64, 3))

  def test_mock_imagenet_batches_are_deterministic(self):
    def batches(seed, training):
      ds = data.get_dataset(
          'imagenet2012', 'train' if training else 'eval', 3,
          training=training,
          preprocess_fn=(
              (lambda x, y, seed: input_pipeline.imagenet_train_preprocess(
                  x, y, seed, image_size=40)) if training else
              (lambda x, y: input_pipeline.imagenet_eval_preprocess(
                  x, y, image_size=40))),
          seed=seed)
      return [x.numpy() for x, _ in ds.take(2)]

    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
      first, again, other = batches(0, True), batches(0, True), batches(1, True)
      evaluation = batches(0, False)
    for images in first + evaluation:
      self.assertEqual(images.shape, (3, 40, 40, 3))
      self.assertEqual(images.dtype, np.float32)
    self.assertAllEqual(np.stack(first), np.stack(again))
    self.assertNotAllClose(np.stack(first), np.stack(other))


class LearningRateTest(tf.test.TestCase):

  def _lr(self, batch_size, multiplier, steps):
    gin.clear_config()
    _, schedule = learning_rate.make_optimizer(
        1, batch_size=batch_size, steps_multiplier=multiplier,
        schedule_fn=learning_rate.epoch_schedule)
    return [float(schedule(step)) for step in steps]

  def test_published_schedule_batch_4096(self):
    # 0.1 per 256 images: 1.6; an epoch is 1,281,167 / 4096 = 312.785 steps.
    # Warm-up to epoch 5 (step 1563.9); x0.1 from epoch 30 (step 9383.5),
    # 70 (21894.9), 90 (28150.6).
    self.assertAllClose(
        self._lr(4096, 1.0, [0, 782, 1564, 9383, 9384, 21894, 21895, 28150,
                             28151, 31999]),
        [0.0, 1.6 * 782 * 4096 / 1281167 / 5, 1.6, 1.6, 0.16, 0.16, 0.016,
         0.016, 0.0016, 0.0016], rtol=1e-5)
    # 5x: every epoch boundary five times later.
    self.assertAllClose(
        self._lr(4096, 5.0, [3910, 7820, 9384, 46917, 46918, 109474, 109475,
                             140753, 140754]),
        [1.6 * 3910 * 4096 / 1281167 / 25, 1.6, 1.6, 1.6, 0.16, 0.16, 0.016,
         0.016, 0.0016], rtol=1e-5)

  def test_published_schedule_batch_256(self):
    # 0.1 at batch 256; an epoch is 5004.56 steps: epochs 5, 30, 70, 90 are
    # steps 25022.8, 150136.8, 350319.1, 450410.3.
    self.assertAllClose(
        self._lr(256, 1.0, [0, 12511, 25023, 150136, 150137, 350319, 350320,
                            450410, 450411]),
        [0.0, 0.1 * 12511 * 256 / 1281167 / 5, 0.1, 0.1, 0.01, 0.01, 0.001,
         0.001, 0.0001], rtol=1e-5)
    self.assertAllClose(
        self._lr(256, 5.0, [125114, 750683, 750684]),
        [0.1, 0.1, 0.01], rtol=1e-5)

  def test_multiplier_stretches_the_mask_update_range(self):
    updater = methods.create('rigl', begin_step=100, end_step=25000)
    updater.stretch_steps(5.0)
    self.assertEqual((updater.begin_step, updater.end_step), (500, 125000))
    forever = methods.create('set', end_step=-1)
    forever.stretch_steps(5.0)
    self.assertEqual(forever.end_step, -1)
    # Gradual methods stretch their pruning schedule too (GraNet's 30-epoch
    # final pruning step at 5x is epoch 150's step).
    granet = methods.create('granet', update_frequency=10,
                                  final_prune_step=50, end_step=80)
    granet.stretch_steps(2.0)
    granet.configure_run(train_steps=200, seed=0)
    model = layers.sparsify(keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4, name='fc')]))
    granet.init_masks(model, masks.sparsity_plan(model, 0.5, 'uniform'),
                      train_steps=200)
    self.assertEqual((granet.final_prune_step, granet.end_step), (100, 160))


# Every method once, each model once (CPU time is scarce in CI): the
# drop/grow graph of 50 layers is costly to trace and XLA compiles it once per
# distinct layer shape, so the dynamic methods run on the small ResNet-18,
# and ResNet-50 (the recipe's model) and the MobileNets run with fixed masks.
_RUNS = {
    'dense': ['train_eval.model_fn = @mobilenet_v1',
              'mobilenet_v1.width = 0.25'],
    'static_uniform': ['train_eval.model_fn = @mobilenet_v2',
                       'mobilenet_v2.width = 0.25'],
    'static_erk': ['IMAGE_SIZE = 64', 'resnet.width = 0.25'],  # ResNet-50.
    'set_uniform': SMALL_RESNET,
    'snfs_erk': SMALL_RESNET,
    'rigl_erk': SMALL_RESNET,
    # Prunes from dense at step 0 and reaches 90% at step 1 (the multiplier
    # 1.5 stretches final_prune_step 1 to int(1.5) = 1), then regrows at
    # step 2.
    'granet_90': [*SMALL_RESNET, 'GraNet.update_frequency = 1',
                  'GraNet.final_prune_step = 1'],
}


class EveryMethodTest(tf.test.TestCase, parameterized.TestCase):

  def _train_and_verify(self, config, *bindings):
    name = os.path.basename(config)[:-4] + ' ' + ' '.join(bindings)
    _configure(config, *bindings)
    output_dir = self.create_tempdir().full_path
    self._output_dir = output_dir
    report = train.train_eval(output_dir=output_dir, mode='train')
    self.assertEqual(report['step'], 3, name)  # 2 steps x 1.5.
    evaluated = train.train_eval(output_dir=output_dir, mode='eval_once')
    self.assertEqual(evaluated['checkpoint'],
                     os.path.join(output_dir, 'ckpt-3'), name)
    self.assertEqual(evaluated['eval_examples'], MOCK_EXAMPLES, name)
    for key in ('accuracy', 'top5_accuracy'):
      self.assertBetween(evaluated[key], 0.0, 1.0)
      # 6 examples: accuracies are multiples of 1/6.
      self.assertAlmostEqual(evaluated[key] * 6, round(evaluated[key] * 6),
                             places=4)
    self.assertGreaterEqual(evaluated['top5_accuracy'],
                            evaluated['accuracy'])
    self.assertEqual(evaluated['masks'], report['masks'], name)
    rows = report['masks']['layers']
    planned = [row['weights'] - int(np.floor(row['planned'] * row['weights']))
               for row in rows]
    if name.startswith('granet'):  # Global pruning: the total is planned.
      self.assertEqual(sum(row['nonzero'] for row in rows), sum(planned))
      self.assertNotEqual([row['nonzero'] for row in rows], planned)
    else:
      for row, expected in zip(rows, planned):
        self.assertEqual(row['nonzero'], expected, f'{name} {row["name"]}')
    return report

  def test_every_method_has_a_config(self):
    # Methods added later (GMP, GraNet, ...) test their own configs.
    self.assertContainsSubset(
        ['dense', 'rigl_erk', 'rigl_uniform', 'set_uniform', 'snfs_erk',
         'snfs_uniform', 'static_erk', 'static_uniform'],
        {os.path.basename(c)[:-4] for c in CONFIGS})
    self.assertContainsSubset(_RUNS, {os.path.basename(c)[:-4]
                                      for c in CONFIGS})

  @parameterized.named_parameters((name, name) for name in _RUNS)
  def test_trains_and_eval_once_verifies(self, name):
    bindings = _RUNS[name]
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
      report = self._train_and_verify(_config(name), *bindings)
      if name == 'rigl_erk':  # Export and pictures read an ImageNet run.
        test_util.check_export_and_pictures(self, self._output_dir,
                                             MOCK_EXAMPLES)
    if name == 'dense':
      self.assertEqual(report['masks']['layers'], [])
      return
    self.assertAlmostEqual(report['masks']['overall']['sparsity'], 0.9,
                           delta=0.011)
    first = report['masks']['layers'][0]
    self.assertEqual(first['sparsity'], 0.0)  # The first conv is dense.
    density = 1 - report['masks']['overall']['sparsity']
    if name.startswith('static'):
      self.assertAlmostEqual(report['itop_rate'], density, places=6)
    else:  # The mask update at step 2 (x 1.5 -> 3) explored.
      self.assertGreater(report['itop_rate'], density + 0.005, name)
    if name == 'static_erk':
      self.assertLen(report['masks']['layers'], 54)  # 53 convs + fc.

  def test_the_other_configs_differ_only_in_method_and_distribution(self):
    expected = {'static_erk': ('static', 'erk'),
                'snfs_uniform': ('snfs', 'uniform'),
                'rigl_uniform': ('rigl', 'uniform')}
    for name, (method, distribution) in expected.items():
      gin.clear_config()
      train.parse_gin([_config(name)], [])
      self.assertEqual(gin.query_parameter('train_eval.method'), method)
      self.assertEqual(gin.query_parameter('train_eval.distribution'),
                       distribution)
      self.assertEqual(gin.query_parameter('train_eval.sparsity'), 0.9)
      if method != 'static':
        cls = {'snfs': 'SNFS', 'rigl': 'RigL'}[method]
        self.assertEqual(gin.query_parameter(f'{cls}.end_step'), 25000)
        self.assertEqual(gin.query_parameter(f'{cls}.drop_fraction'), 0.3)


  def test_granet_configs_hold_granets_imagenet_settings(self):
    for name, sparsity in (('granet_80', 0.8), ('granet_90', 0.9)):
      gin.clear_config()
      train.parse_gin([_config(name)], [])
      expected = {
          'train_eval.method': 'granet', 'train_eval.sparsity': sparsity,
          'train_eval.batch_size': 4096,
          # 100 epochs; pruning until epoch 30; every 512,000 images.
          'train_eval.train_steps': 100 * 1_281_167 // 4096,
          'GraNet.final_prune_step': 30 * 1_281_167 // 4096,
          'GraNet.update_frequency': 512_000 // 4096,
          'GraNet.init_density': 1.0, 'GraNet.prune_rate': 0.5,
          'GraNet.growth': 'gradient', 'GraNet.scope': 'global',
          'epoch_schedule.decay_epochs': (30, 60, 90),
          'make_optimizer.nesterov': False,
      }
      for key, value in expected.items():
        self.assertEqual(gin.query_parameter(key), value, f'{name} {key}')


def _run_script(*args):
  return subprocess.run(
      [sys.executable, SCRIPT, f'--gin_config={_config("rigl_erk")}', *args],
      capture_output=True, text=True, timeout=120, cwd=ROOT,
      env=dict(os.environ, PYTHONPATH=ROOT))


class BadInputTest(tf.test.TestCase):

  def _assert_one_line(self, result, pattern):
    self.assertNotEqual(result.returncode, 0)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    self.assertLen(lines, 1, result.stderr)
    self.assertRegex(lines[0], pattern)

  def test_missing_manual_dir_is_one_clear_line(self):
    tmp = self.create_tempdir().full_path
    output_dir = os.path.join(tmp, 'run')
    manual_dir = os.path.join(tmp, 'no_archives_here')
    result = _run_script(f'--output_dir={output_dir}',
                         f'--data_dir={tmp}/tfds',
                         f'--manual_dir={manual_dir}')
    self._assert_one_line(
        result, rf'^error: imagenet2012 is not prepared in .* and its '
        rf'archives are not in {manual_dir} .*ILSVRC2012_img_train\.tar')
    self.assertFalse(os.path.exists(output_dir))

  def test_unknown_model_is_one_clear_line(self):
    output_dir = os.path.join(self.create_tempdir().full_path, 'run')
    result = _run_script(f'--output_dir={output_dir}',
                         '--gin_bindings=train_eval.model_fn = @resnet_51')
    self._assert_one_line(
        result, r'^error: bad gin configuration: .*@resnet_51\b')

  def test_global_batch_not_divisible_by_replicas(self):
    _configure(_config('rigl_erk'), *SMALL_RESNET,
               'train_eval.batch_size = 3')
    with self.assertRaisesRegex(
        errors.UserError, 'batch_size=3 is the global batch and must be '
        'divisible by the 2 replicas'):
      train.train_eval(output_dir=self.create_tempdir().full_path,
                           strategy_name='mirrored')


if __name__ == '__main__':
  tf.test.main()
