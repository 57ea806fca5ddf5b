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
"""cifar_wrn/train_eval.py end to end on mock CIFAR, and its input pipeline.

Every config in configs/cifar_wrn trains a few steps of WRN-10-1 on
`tfds.testing.mock_data` and `--mode=eval_once` restores and verifies the
checkpoint; mixed precision, two replicas and two worker processes keep
the masks exact and identical.
"""

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

from cifar_wrn import configurables  # noqa: F401  (registers gin names)
from cifar_wrn import input_pipeline
from rigl_tf import data
from rigl_tf import errors
from rigl_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'cifar_wrn', 'train_eval.py')
# The RigL-family configs of this task; methods added later (Gem-Miner, ...)
# test their own configs.
METHOD_CONFIGS = ['dense'] + [f'{m}_{d}' for m in ('rigl', 'set', 'snfs',
                                                  'static')
                              for d in ('erk', 'uniform')]
GRANET_CONFIGS = ['granet_resnet50_95', 'granet_resnet50_98']
MOCK_EXAMPLES = 8
# WRN-10-1, 3 steps of batch 4; dynamic methods update masks at step 2.
TINY = [
    'wide_resnet.depth = 10', 'wide_resnet.width = 1',
    'train_eval.train_steps = 3', 'train_eval.batch_size = 4',
    'train_eval.eval_batch_size = 4', 'train_eval.log_every = 3',
    'train_eval.checkpoint_every = 3', 'train_eval.eval_every = 0',
    'train_eval.quiet = True',
] + [f'{name}.{key} = {value}' for name in ('SET', 'SNFS', 'RigL')
     for key, value in (('update_frequency', 2), ('end_step', 3))]


def _configure(config, *bindings):
  gin.clear_config()
  train.parse_gin([config], [*TINY, *bindings])


def _config(name):
  return os.path.join(ROOT, 'configs', 'cifar_wrn', f'{name}.gin')


def _masks(ckpt_dir):
  """name -> value of every mask variable in the latest checkpoint."""
  reader = tf.train.load_checkpoint(ckpt_dir)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name.startswith('model/') and '/kernel_mask/' in name
          and 'OPTIMIZER_SLOT' not in name}


def _check_masks(test, report):
  """Per layer, exactly n - floor(s * n) ones, as planned."""
  for row in report['masks']['layers']:
    expected = row['weights'] - int(np.floor(row['planned'] * row['weights']))
    test.assertEqual(row['nonzero'], expected, row['name'])


def _check_global_masks(test, report):
  """Global pruning: the layers' planned ones in total, shared by |w|."""
  rows = report['masks']['layers']
  planned = [row['weights'] - int(np.floor(row['planned'] * row['weights']))
             for row in rows]
  test.assertEqual(sum(row['nonzero'] for row in rows), sum(planned))
  # The shares are the magnitudes', not the distribution's.
  test.assertNotEqual([row['nonzero'] for row in rows], planned)


class PipelineTest(tf.test.TestCase):

  def test_train_image_is_a_window_of_the_mirror_padded_standardised_image(
      self):
    image = tf.constant(
        np.random.RandomState(0).randint(0, 256, (32, 32, 3)), tf.uint8)
    standard = tf.image.per_image_standardization(
        tf.cast(image, tf.float32)).numpy()
    # Mirror padding that repeats the edge pixel, as RigL's pad_input.
    padded = np.concatenate([standard[3::-1], standard, standard[:-5:-1]], 0)
    padded = np.concatenate(
        [padded[:, 3::-1], padded, padded[:, :-5:-1]], 1)
    self.assertEqual(padded.shape, (40, 40, 3))
    seen = set()
    for seed in range(200):
      out, label = input_pipeline.cifar_train_preprocess(
          image, 7, tf.constant([5, seed], tf.int64))
      self.assertEqual(label, 7)
      self.assertEqual(out.dtype, tf.float32)
      out = out.numpy()
      matches = [(dy, dx, flip) for dy in range(9) for dx in range(9)
                 for flip in (False, True)
                 if np.array_equal(
                     out, (padded[dy:dy + 32, dx:dx + 32][:, ::-1] if flip
                           else padded[dy:dy + 32, dx:dx + 32]))]
      self.assertLen(matches, 1)
      seen.add(matches[0])
    # All 81 offsets x 2 flips are possible; 200 draws reach most of them.
    self.assertGreater(len(seen), 100)
    self.assertEqual({flip for _, _, flip in seen}, {False, True})

  def test_eval_image_is_only_standardised(self):
    image = tf.constant(
        np.random.RandomState(1).randint(0, 256, (32, 32, 3)), tf.uint8)
    out, _ = input_pipeline.cifar_eval_preprocess(image, 0)
    pixels = image.numpy().astype(np.float64)
    expected = (pixels - pixels.mean()) / pixels.std()
    self.assertAllClose(out, expected, atol=1e-4)

  def test_datasets_shapes_ranges_and_determinism(self):
    def first_batches(seed, training):
      ds = data.get_dataset(
          'cifar10', 'train' if training else 'eval', 4, training=training,
          preprocess_fn=(input_pipeline.cifar_train_preprocess if training
                         else input_pipeline.cifar_eval_preprocess),
          seed=seed)
      return [(x.numpy(), y.numpy()) for x, y in ds.take(3)]

    with tfds.testing.mock_data(num_examples=16):
      first = first_batches(0, True)
      again = first_batches(0, True)
      other = first_batches(1, True)
      evaluation = first_batches(0, False)
    for images, labels in first + evaluation:
      self.assertEqual(images.shape, (4, 32, 32, 3))
      self.assertEqual(images.dtype, np.float32)
      self.assertEqual(labels.shape, (4,))
      self.assertTrue(((labels >= 0) & (labels < 10)).all())
    for images, _ in evaluation:  # Standardised: mean 0, std 1 per image.
      self.assertAllClose(images.mean(axis=(1, 2, 3)), np.zeros(4),
                          atol=1e-4)
      self.assertAllClose(images.std(axis=(1, 2, 3)), np.ones(4), atol=1e-3)
    for (a, la), (b, lb) in zip(first, again):
      self.assertAllEqual(a, b)
      self.assertAllEqual(la, lb)
    self.assertFalse(all(np.array_equal(a, b)
                         for (a, _), (b, _) in zip(first, other)))


class EveryMethodTest(tf.test.TestCase, parameterized.TestCase):

  def test_every_method_has_a_config(self):
    present = {os.path.basename(c)[:-4] for c in glob.glob(
        os.path.join(ROOT, 'configs', 'cifar_wrn', '*.gin'))}
    self.assertContainsSubset(METHOD_CONFIGS, present)

  @parameterized.named_parameters((name, name) for name in METHOD_CONFIGS)
  def test_config_trains_and_eval_once_verifies(self, name):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
      _configure(_config(name))
      output_dir = self.create_tempdir().full_path
      report = train.train_eval(output_dir=output_dir, mode='train_and_eval')
      self.assertEqual(report['step'], 3, name)
      self.assertEqual(report['eval_examples'], MOCK_EXAMPLES, name)
      evaluated = train.train_eval(output_dir=output_dir, mode='eval_once')
      if name == 'rigl_erk':  # Export and pictures read a CIFAR run.
        test_util.check_export_and_pictures(self, output_dir, MOCK_EXAMPLES)
    self.assertEqual(evaluated['checkpoint'],
                     os.path.join(output_dir, 'ckpt-3'), name)
    for key in ('accuracy', 'top5_accuracy'):
      self.assertEqual(evaluated[key], report[key], f'{name} {key}')
    self.assertEqual(evaluated['masks'], report['masks'], name)
    if name == 'dense':
      self.assertEqual(report['masks']['layers'], [])
      return
    _check_masks(self, report)
    layers = {row['name']: row for row in report['masks']['layers']}
    self.assertEqual(layers['conv1']['nonzero'], 432, name)  # Dense.
    self.assertAlmostEqual(report['masks']['overall']['sparsity'], 0.9,
                           delta=0.011)
    density = 1 - report['masks']['overall']['sparsity']
    if name.startswith('static'):
      self.assertAlmostEqual(report['itop_rate'], density, places=6)
    else:  # The mask update at step 2 explored new connections.
      self.assertGreater(report['itop_rate'], density + 0.01, name)

  def test_granet_resnet50_configs_hold_granets_settings_and_train(self):
    for name, sparsity in zip(GRANET_CONFIGS, (0.95, 0.98)):
      gin.clear_config()
      train.parse_gin([_config(name)], [])
      expected = {
          'train_eval.method': 'granet', 'train_eval.sparsity': sparsity,
          'cifar_resnet.depth': 50, 'train_eval.batch_size': 128,
          # 160 epochs of 50,000; lr x0.1 at 80 and 120; prune until 110.
          'train_eval.train_steps': 160 * 50_000 // 128,
          'make_optimizer.boundaries': (80 * 50_000 // 128,
                                        120 * 50_000 // 128),
          'GraNet.final_prune_step': 110 * 50_000 // 128,
          'GraNet.update_frequency': 1000, 'GraNet.init_density': 1.0,
          'GraNet.prune_rate': 0.5, 'GraNet.growth': 'gradient',
          'GraNet.scope': 'global',
      }
      for key, value in expected.items():
        self.assertEqual(gin.query_parameter(key), value, f'{name} {key}')
    # The 98% one trains (the two differ only in train_eval.sparsity): a
    # CIFAR ResNet-18 with 1/8 of the filters, pruned from dense at steps 0
    # and 1 (to the final sparsity at step 2), regrowing after.
    name, sparsity = 'granet_resnet50_98', 0.98
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
      _configure(_config(name), 'cifar_resnet.depth = 18',
                 'cifar_resnet.width = 0.125',
                 'GraNet.update_frequency = 1',
                 'GraNet.final_prune_step = 2')
      output_dir = self.create_tempdir().full_path
      report = train.train_eval(output_dir=output_dir,
                                    mode='train_and_eval')
    self.assertEqual(report['step'], 3, name)
    _check_global_masks(self, report)
    layers = {row['name']: row for row in report['masks']['layers']}
    self.assertEqual(layers['conv1']['nonzero'], 3 * 3 * 3 * 8)  # Dense.
    self.assertAlmostEqual(report['masks']['overall']['sparsity'],
                           sparsity, delta=0.002)
    density = 1 - report['masks']['overall']['sparsity']
    self.assertGreater(report['itop_rate'], density + 0.01, name)


class MixedPrecisionTest(tf.test.TestCase):

  def _train(self, method, precision):
    _configure(_config(f'{method}_erk'),
               f"train_eval.mixed_precision = {precision!r}")
    output_dir = self.create_tempdir().full_path
    report = train.train_eval(output_dir=output_dir, mode='train')
    return report, output_dir

  def _check(self, precision):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
      _, plain = self._train('static', None)
      _, cast = self._train('static', precision)
      rigl, rigl_dir = self._train('rigl', precision)
    # Same seed, fixed masks: 16-bit training keeps the float32 masks.
    plain_masks, cast_masks = _masks(plain), _masks(cast)
    self.assertLen(plain_masks, 10)
    for name, mask in plain_masks.items():
      self.assertEqual(cast_masks[name].dtype, np.float32)
      self.assertAllEqual(cast_masks[name], mask, msg=name)
    self.assertEqual(rigl['step'], 3)
    # The masks moved at step 2, and kept their exact counts.
    self.assertGreater(rigl['itop_rate'],
                       1 - rigl['masks']['overall']['sparsity'] + 0.01)
    _check_masks(self, rigl)
    reader = tf.train.load_checkpoint(rigl_dir)
    for name, mask in _masks(rigl_dir).items():
      self.assertEqual(mask.dtype, np.float32)
      self.assertTrue(np.isin(mask, (0.0, 1.0)).all())
      kernel = reader.get_tensor(
          name.replace('/kernel_mask/', '/layer/kernel/'))
      self.assertEqual(kernel.dtype, np.float32)
      self.assertEqual(np.count_nonzero(kernel * (1 - mask)), 0, name)

  def test_bfloat16_masks_unchanged_by_the_cast_and_invariant_exact(self):
    self._check('bfloat16')

  def test_float16_loss_scaling_masks_unchanged_and_invariant_exact(self):
    # Needs SparseOptimizer inside keras' LossScaleOptimizer (issue 8).
    # Keras's policy name selects the same: float16 with loss scaling.
    self.assertEqual(
        train.RunConfig(mixed_precision='mixed_float16').mixed_precision,
        'float16')
    self._check('mixed_float16')


class DistributedTest(tf.test.TestCase):

  def test_two_replicas_end_with_identical_masks(self):
    # BatchNorm statistics are per replica, so two replicas do not follow
    # one device's trajectory; they must agree with each other exactly
    # (train_eval compares every mask's replica copies, and fails if not).
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
      _configure(_config('rigl_erk'))
      output_dir = self.create_tempdir().full_path
      report = train.train_eval(output_dir=output_dir, mode='train',
                                    strategy_name='mirrored')
    self.assertTrue(report['masks_identical_on_replicas'])
    _check_masks(self, report)
    self.assertGreater(report['itop_rate'],
                       1 - report['masks']['overall']['sparsity'] + 0.01)
    self.assertLen(_masks(output_dir), 10)

  def test_global_batch_not_divisible_by_replicas(self):
    _configure(_config('rigl_erk'), 'train_eval.batch_size = 5')
    output_dir = os.path.join(self.create_tempdir().full_path, 'run')
    with self.assertRaisesRegex(
        errors.UserError, 'batch_size=5 is the global batch and must be '
        'divisible by the 2 replicas'):
      train.train_eval(output_dir=output_dir, strategy_name='mirrored')
    self.assertFalse(os.path.exists(output_dir))


class BadInputTest(parameterized.TestCase):

  def test_unknown_model_is_one_clear_line(self):
    output_dir = os.path.join(self.create_tempdir().full_path, 'run')
    result = subprocess.run(
        [sys.executable, SCRIPT, f'--gin_config={_config("rigl_erk")}',
         f'--output_dir={output_dir}',
         '--gin_bindings=train_eval.model_fn = @wrn_99_99'],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    self.assertNotEqual(result.returncode, 0)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    self.assertLen(lines, 1, result.stderr)
    self.assertRegex(lines[0],
                     r'^error: bad gin configuration: .*@wrn_99_99\b')
    self.assertFalse(os.path.exists(output_dir))


if __name__ == '__main__':
  tf.test.main()
