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
"""Tests of the mnist task: models, and every config on mocked MNIST."""

import glob
import os
from unittest import mock

from absl.testing import parameterized
import gin
import tensorflow as tf
import tensorflow_datasets as tfds

from mnist import models
from rigl_tf import methods
from rigl_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'mnist', '*.gin')))


class ModelsTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    # The builders are gin-configurable: a config parsed by an earlier test
    # (e.g. the quickstart's hidden sizes) must not change them here.
    gin.clear_config()

  def test_lenet_300_100(self):
    model = models.lenet_300_100(input_shape=(28, 28, 1))
    # 784*300+300 + 300*100+100 + 100*10+10.
    self.assertEqual(model.count_params(), 266_610)
    self.assertEqual([layer.name for layer in model.layers[1:]],
                     ['fc1', 'fc2', 'logits'])
    digits = models.lenet_300_100(input_shape=(8, 8, 1))
    self.assertEqual(digits.get_layer('fc1').kernel.shape, (64, 300))

  def test_weight_decay_is_half_lambda_sum_of_squares(self):
    # RigL's MNIST code: lambda/2 * sum(w^2) (TF1 l2_loss), as the other
    # models; keras.regularizers.l2(lambda) would add twice that.
    model = models.lenet_300_100(input_shape=(8, 8, 1), l2=1e-4)
    self.assertLen(model.losses, 3)
    expected = sum(0.5e-4 * tf.reduce_sum(tf.square(model.get_layer(n).kernel))
                   for n in ('fc1', 'fc2', 'logits'))
    self.assertAllClose(tf.add_n(model.losses), expected, rtol=1e-6)

  # conv 156 + conv 2,416 + fc1 (400 or 64 inputs) + fc2 10,164 + logits 850.
  @parameterized.parameters(((28, 28, 1), 61_706), ((8, 8, 1), 21_386))
  def test_lenet5(self, input_shape, params):
    model = models.lenet5(input_shape=input_shape)
    self.assertEqual(model.output_shape, (None, 10))
    self.assertEqual(model.count_params(), params)


class ConfigsTest(parameterized.TestCase):

  def test_every_config_is_tested(self):
    names = {os.path.basename(c) for c in CONFIGS}
    self.assertContainsSubset(
        {'dense.gin', 'static_erk.gin', 'static_uniform.gin',
         'quickstart_digits.gin', 'gem_miner.gin'}, names)

  @parameterized.named_parameters(
      (os.path.basename(c)[:-4], c) for c in CONFIGS)
  def test_config_runs_on_mock_mnist(self, config):
    with open(config) as f:
      header = ''.join(f.readlines()[:4])
    # Every config says on its first lines how to run it.
    self.assertTrue(header.startswith('# '), config)
    self.assertRegex(header, r'train_eval\.py|run\.sh demo')
    gin.clear_config()
    train.parse_gin([config], [
        "train_eval.dataset = 'mnist'", 'train_eval.quiet = True',
        'train_eval.batch_size = 20', 'train_eval.eval_batch_size = 50',
        'train_eval.seed = 3'])
    if 'vit' in os.path.basename(config):
      # 7x7 patches of the 28x28 mock images: 16 tokens, as on the digits;
      # one encoder block (its kernels trace like the second's).
      train.parse_gin([], ['vit.patch_size = 7', 'vit.depth = 1'])
    gem_miner = gin.query_parameter('train_eval.method') == 'gem_miner'
    if gem_miner:  # Counts epochs (5 steps here): 3 search + 1 fine-tuning.
      train.parse_gin([], [
          'GemMiner.search_epochs = 3', 'GemMiner.iter_period = 1',
          'GemMiner.finetune_epochs = 1', 'GemMiner.steps_per_epoch = 5'])
    else:
      train.parse_gin([], [
          'train_eval.train_steps = 20', 'train_eval.log_every = 10',
          'train_eval.checkpoint_every = 20',
          # Gradual methods reach their final sparsity within the 20 steps.
          'GMP.update_frequency = 5', 'GMP.final_prune_step = 10',
          'TFMOTGMP.update_frequency = 5', 'TFMOTGMP.final_prune_step = 10',
          'GraNet.update_frequency = 5', 'GraNet.final_prune_step = 10'])
    output_dir = self.create_tempdir().full_path
    configured = []
    real_configure_run = methods.MaskUpdater.configure_run

    def configure_run(updater, **kwargs):
      real_configure_run(updater, **kwargs)
      configured.append((updater, kwargs))

    with tfds.testing.mock_data(num_examples=100), mock.patch.object(
        methods.MaskUpdater, 'configure_run', configure_run):
      report = train.train_eval(output_dir=output_dir)
    if not gem_miner:  # Gem-Miner runs its own search and fine-tuning.
      # The run's length and seed reach the updater: SET's growth and every
      # tie-break follow train_eval.seed; end_step defaults to 75% of 20.
      (updater, kwargs), = configured
      self.assertEqual(kwargs, {'train_steps': 20, 'seed': 3})
      self.assertEqual(updater.seed, 3)
      # (Gradual methods end with their pruning schedule instead.)
      if updater.method_name in ('set', 'snfs', 'rigl'):
        self.assertEqual(updater.end_step, 15)
    self.assertEqual(report['step'], 20)
    self.assertEqual(report['eval_examples'], 100)
    checkpoint = 'finetune/ckpt-1.index' if gem_miner else 'ckpt-20.index'
    self.assertTrue(os.path.exists(os.path.join(output_dir, checkpoint)))
    method = gin.query_parameter('train_eval.method')
    if method != 'dense':
      sparsity = gin.query_parameter('train_eval.sparsity')
      self.assertAlmostEqual(report['masks']['overall']['sparsity'],
                             sparsity, places=3)


if __name__ == '__main__':
  tf.test.main()
