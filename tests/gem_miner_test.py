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
"""Tests of Gem-Miner: scored layers, thresholding, search, fine-tuning,
in both Keras flavours."""

import json
import math
import os

import gin
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
import test_util
import tf_keras as keras

from cifar_wrn import wrn_model
from mnist import models
from rigl_tf import data
from rigl_tf import errors
from rigl_tf import flavours
from rigl_tf import layers as masked_layers
from rigl_tf import masks
from rigl_tf import methods
from rigl_tf import optimizers
from rigl_tf import train
from rigl_tf.methods import gem_miner
from rigl_tf.methods import scored as scored_lib
from rigl_tf.train import config as config_lib
from rigl_tf.train import gem_miner_runner
from rigl_tf.train import loop as loop_lib


def _scored_dense(kernel, score, flag, quantized=True):
  """A built ScoredLayer around Dense(no bias) with the given variables."""
  layer = scored_lib.ScoredLayer(
      keras.layers.Dense(kernel.shape[1], use_bias=False),
      quantized=quantized)
  layer.build((None, kernel.shape[0]))
  layer.layer.kernel.assign(kernel)
  layer.score.assign(score)
  layer.flag.assign(flag)
  return layer


class ScoredLayerTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.x = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    self.w = np.array([[0.3, -0.7, 1.1], [-0.2, 0.5, 0.9]], np.float32)
    self.p = np.array([[0.9, 0.2, 0.6], [0.51, 0.49, 0.0]], np.float32)
    self.flag = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
    # Loss = sum(y * c): dL/dy = c, dL/dw_eff = x^T c.
    self.c = np.array([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]], np.float32)

  def _grad(self, layer):
    with tf.GradientTape() as tape:
      y = layer(self.x)
      loss = tf.reduce_sum(y * self.c)
    return y.numpy(), tape.gradient(loss, layer.score).numpy()

  def test_straight_through_gradient(self):
    layer = _scored_dense(self.w, self.p, self.flag)
    y, grad = self._grad(layer)
    # Forward: w * 1[p > 0.5] * flag, computed by hand.
    gate = np.array([[1, 0, 0], [1, 0, 0]], np.float32)
    np.testing.assert_allclose(y, self.x @ (self.w * gate), rtol=1e-6)
    # Straight-through: dL/dp = flag * w * dL/dw_eff, also where the
    # rounded score is 0 (p = 0.2, 0.49, 0.0).
    grad_w_eff = self.x.T @ self.c
    np.testing.assert_allclose(grad, self.flag * self.w * grad_w_eff,
                               rtol=1e-6)
    self.assertNotEqual(grad[0, 1], 0.0)
    self.assertEqual(grad[0, 2], 0.0)  # Unflagged: no gradient.

  def test_non_quantized_forward_uses_scores(self):
    layer = _scored_dense(self.w, self.p, self.flag, quantized=False)
    y, grad = self._grad(layer)
    np.testing.assert_allclose(y, self.x @ (self.w * self.p * self.flag),
                               rtol=1e-6)
    np.testing.assert_allclose(grad, self.flag * self.w * (self.x.T @ self.c),
                               rtol=1e-6)

  def test_only_scores_are_trainable(self):
    layer = _scored_dense(self.w, self.p, self.flag)
    self.assertEqual([v.name for v in layer.trainable_variables],
                     [layer.score.name])

  def test_signed_constant_weights_and_non_affine_batch_norm(self):
    keras.utils.set_random_seed(3)
    base = wrn_model.resnet20(input_shape=(8, 8, 3), use_bn_affine=True)
    keras.utils.set_random_seed(3)
    model = scored_lib.scored_model(base)
    scored = scored_lib.get_scored_layers(model)
    # 19 convolutions (no projection shortcuts) and the dense layer.
    self.assertLen(scored, 20)
    self.assertEqual([layer.index for layer in scored], list(range(20)))
    for layer in scored:
      kernel = layer.kernel.numpy()
      scale = math.sqrt(2.0 / np.prod(kernel.shape[:-1]))
      np.testing.assert_allclose(np.abs(kernel), scale, rtol=1e-6)
      # Same signs as the standard (he_normal) init of the same seed.
      original = base.get_layer(layer.name).kernel.numpy()
      np.testing.assert_array_equal(np.sign(kernel), np.sign(original))
    # conv1: 3x3x3 inputs per output.
    self.assertAlmostEqual(
        math.sqrt(2.0 / 27),
        float(np.abs(model.get_layer('conv1').kernel.numpy()).max()),
        places=6)
    for layer in model.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        self.assertFalse(layer.center or layer.scale)
        self.assertEqual(layer.trainable_weights, [])
    # Only scores train; a forward/backward pass reaches every score.
    self.assertLen(model.trainable_variables, 20)
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(tf.ones((2, 8, 8, 3)), training=True)**2)
    grads = tape.gradient(loss, model.trainable_variables)
    self.assertTrue(all(g is not None for g in grads))

  def test_score_inits(self):
    shape = (200, 100)
    unif = scored_lib.initial_scores(shape, 'unif', 0, 0).numpy()
    self.assertBetween(unif.min(), 0.0, 0.01)
    self.assertBetween(unif.max(), 0.99, 1.0)
    np.testing.assert_array_equal(
        scored_lib.initial_scores(shape, 'half', 0, 0), np.full(shape, 0.5))
    bern = scored_lib.initial_scores(shape, 'bern', 0, 0).numpy()
    self.assertEqual(set(np.unique(bern)), {0.0, 1.0})
    bimodal = scored_lib.initial_scores(shape, 'bimodal', 0, 0).numpy()
    # Beta(0.1, 0.1): most mass within 0.05 of 0 or 1.
    self.assertGreater(np.mean((bimodal < 0.05) | (bimodal > 0.95)), 0.6)
    skew = scored_lib.initial_scores(shape, 'skew', 0, 0).numpy()
    self.assertAlmostEqual(skew.mean(), 1 / 6, delta=0.01)  # Beta(1, 5).
    for values in (unif, bimodal, skew):
      self.assertBetween(values.min(), 0.0, 1.0)
      self.assertBetween(values.max(), 0.0, 1.0)
    # Keyed by (seed, layer index): another layer draws other scores.
    self.assertNotAllEqual(unif, scored_lib.initial_scores(shape, 'unif', 0, 1))


class ThresholdingTest(tf.test.TestCase):

  def test_geometric_schedule_counts(self):
    # 1000 weights to 10% over 3 rounds: 10%^(1/3) = 46.416%, 10%^(2/3) =
    # 21.544%; the kept count is 1000 - floor(1000 * (1 - density_r)).
    self.assertEqual(gem_miner.flagged_counts(1000, 0.9, 3), [465, 216, 100])
    # The paper's recipe: 150 epochs, a round every 5 epochs: 29 rounds.
    self.assertEqual(gem_miner.num_rounds(150, 5), 29)
    self.assertEqual(gem_miner.round_epochs(150, 5)[-1], 145)
    self.assertEqual(gem_miner.round_epochs(7, 2), [2, 4, 6])
    self.assertEqual(gem_miner.flagged_counts(50_200, 0.95, 29)[-1], 2510)

  def test_global_keep_mask_exact_positions(self):
    scores = [np.array([[0.9, 0.1], [0.7, 0.3]]), np.array([0.8, 0.2, 0.6])]
    flags = [np.array([[1, 1], [0, 1]]), np.array([1, 1, 1])]
    kept = gem_miner.global_keep_mask(scores, flags, 3)
    # Flagged scores 0.9, 0.1, 0.3, 0.8, 0.2, 0.6: keep 0.9, 0.8, 0.6; the
    # unflagged 0.7 stays cleared although it is larger.
    np.testing.assert_array_equal(kept[0], [[1, 0], [0, 0]])
    np.testing.assert_array_equal(kept[1], [1, 0, 1])

  def test_ties_are_broken_at_random_not_by_position(self):
    scores = [np.ones(1000), np.ones(1000)]
    flags = [np.ones(1000), np.ones(1000)]
    kept = gem_miner.global_keep_mask(scores, flags, 1000, tie_seed=5)
    self.assertEqual(int(kept[0].sum() + kept[1].sum()), 1000)
    # By position the first layer would keep everything, the second nothing.
    self.assertBetween(int(kept[1].sum()), 400, 600)
    again = gem_miner.global_keep_mask(scores, flags, 1000, tie_seed=5)
    np.testing.assert_array_equal(kept[1], again[1])


def _config(output_dir, seed=0, sparsity=0.8, model_fn=None,
            flavour='tf_keras'):
  return config_lib.resolve(train.RunConfig(
      output_dir=output_dir, method='gem_miner', dataset='digits',
      model_fn=model_fn or _small_mlp, batch_size=32, eval_batch_size=360,
      sparsity=sparsity, seed=seed, quiet=True, keras=flavour))


class FineTuneMaskTest(tf.test.TestCase):

  def _searched_model(self):
    keras.utils.set_random_seed(0)
    model = scored_lib.scored_model(test_util.small_mlp(seed=0))
    scored = scored_lib.get_scored_layers(model)
    total = sum(layer.score.shape.num_elements() for layer in scored)
    # Keeps the scores above about 0.25: some flagged scores are below 0.5.
    gem_miner.threshold_flags(scored, total * 3 // 4)
    return model, scored

  def test_masks_equal_flags_and_invariant_holds_while_fine_tuning(self):
    model, scored = self._searched_model()
    flags = [layer.flag.numpy() for layer in scored]
    rounded = [layer.rounded_mask().numpy() for layer in scored]
    # Flags and flags * 1[p > 0.5] differ here, so the test tells them apart.
    self.assertNotAllEqual(np.concatenate([f.ravel() for f in flags]),
                           np.concatenate([r.ravel() for r in rounded]))
    layer_masks = gem_miner.finetune_masks(scored, unflag_before_finetune=True)
    masked = gem_miner.to_masked_model(model, layer_masks)
    weights = masked_layers.get_masked_weights(masked)
    for mw, flag, layer in zip(weights, flags, scored):
      np.testing.assert_array_equal(mw.mask.numpy(), flag)
      np.testing.assert_array_equal(mw.weight.numpy(),
                                    layer.kernel.numpy() * flag)
      self.assertTrue(mw.weight.trainable)
    not_unflagged = gem_miner.finetune_masks(scored, False)
    for mask, expected in zip(not_unflagged, rounded):
      np.testing.assert_array_equal(mask, expected)
    # A few fine-tuning steps: the invariant holds after every one.
    strategy = tf.distribute.get_strategy()
    optimizer = optimizers.SparseOptimizer(
        keras.optimizers.SGD(0.1, momentum=0.9), masked,
        methods.MaskUpdater())
    loop = loop_lib.make_train_loop(strategy, masked, optimizer, 10, 32, 0.0,
                                    loop_lib.make_metrics(strategy))
    iterator = iter(test_util.random_data(5).repeat())
    before = [mw.weight.numpy() for mw in weights]
    for _ in range(5):
      loop(iterator, tf.constant(1))
      self.assertEqual(masked_layers.check_invariant(masked), [])
      for mw, flag in zip(weights, flags):
        np.testing.assert_array_equal(mw.mask.numpy(), flag)
    self.assertNotAllClose(before[0], weights[0].weight.numpy())

  def test_sanity_checks_keep_counts(self):
    model, scored = self._searched_model()
    layer_masks = gem_miner.finetune_masks(scored)
    shuffled = gem_miner.shuffled_masks(layer_masks, seed=1)
    for mask, other in zip(layer_masks, shuffled):
      self.assertEqual(mask.sum(), other.sum())
      self.assertNotAllEqual(mask, other)
    kernels = gem_miner.reinitialized_kernels(scored, seed=1)
    reinit = gem_miner.to_masked_model(model, layer_masks, kernels)
    for mw, layer, mask in zip(masked_layers.get_masked_weights(reinit),
                               scored, layer_masks):
      np.testing.assert_array_equal(mw.mask.numpy(), mask)
      self.assertNotAllEqual(np.sign(mw.weight.numpy()),
                             np.sign(layer.kernel.numpy()) * mask)
      np.testing.assert_allclose(np.abs(mw.weight.numpy()),
                                 np.abs(layer.kernel.numpy()) * mask)


def _small_miner(**overrides):
  values = dict(search_epochs=7, iter_period=2, search_learning_rate=2.0,
                finetune_epochs=0)
  values.update(overrides)
  return gem_miner.GemMiner(**values)


def _small_mlp(input_shape, num_classes):
  # In the flavour being built (train_eval.keras).
  return test_util.small_mlp(input_shape=input_shape, hidden=(32, 16),
                             num_classes=num_classes,
                             flavour=flavours.current())


def _search_run(strategy, output_dir, miner=None, on_epoch_end=None,
                sparsity=0.8, model_fn=_small_mlp, flavour='tf_keras'):
  """A Gem-Miner run; `on_epoch_end(epoch, model)` after search epochs."""

  def hook(phase, epoch, model):
    if on_epoch_end is not None and phase == 'search':
      on_epoch_end(epoch, model)

  return gem_miner_runner.run(
      _config(output_dir, sparsity=sparsity, model_fn=model_fn,
              flavour=flavour), strategy,
      data.get_info('digits'), miner=miner or _small_miner(),
      on_epoch_end=hook)


def _final_search_state(output_dir):
  """name -> value of the scores and flags in the search's last checkpoint."""
  reader = tf.train.load_checkpoint(os.path.join(output_dir, 'search'))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name.endswith(('score/.ATTRIBUTES/VARIABLE_VALUE',
                            'flag/.ATTRIBUTES/VARIABLE_VALUE'))}


class SearchTest(tf.test.TestCase):

  def test_search_trains_only_scores_and_follows_the_schedule(self):
    seen = []

    def check(epoch, model):
      scored = scored_lib.get_scored_layers(model)
      seen.append((epoch, [layer.kernel.numpy() for layer in scored],
                   [layer.layer.bias.numpy() for layer in scored],
                   [layer.score.numpy() for layer in scored],
                   sum(int(layer.flag.numpy().sum()) for layer in scored)))

    report = _search_run(tf.distribute.get_strategy(),
                         self.create_tempdir().full_path, on_epoch_end=check)
    total = 64 * 32 + 32 * 16 + 16 * 10
    # Rounds after epochs 2, 4, 6 to 80% sparsity: 20%^(r/3) flagged,
    # 2720 - floor(2720 * (1 - 0.2^(r/3))) = 1591, 931, 544.
    expected = {1: total, 2: 1591, 3: 1591, 4: 931, 5: 931, 6: 544, 7: 544}
    self.assertEqual({e: n for e, _, _, _, n in seen}, expected)
    self.assertEqual(544, total - math.floor(0.8 * total))
    self.assertEqual([h['flagged'] for h in report['search']],
                     list(expected.values()))
    self.assertAlmostEqual(report['masks']['overall']['sparsity'], 0.8,
                           places=3)
    first_kernels = seen[0][1]
    for epoch, kernels, biases, scores, _ in seen:
      for kernel, first in zip(kernels, first_kernels):
        np.testing.assert_array_equal(kernel, first)  # Frozen weights.
        scale = math.sqrt(2.0 / kernel.shape[0])
        np.testing.assert_allclose(np.abs(kernel), scale, rtol=1e-6)
      for bias in biases:
        np.testing.assert_array_equal(bias, 0.0)
      flat = np.concatenate([s.ravel() for s in scores])
      self.assertGreaterEqual(flat.min(), 0.0, epoch)
      self.assertLessEqual(flat.max(), 1.0, epoch)
    # The scores did move, and some reached the bounds (clipping acted).
    self.assertGreater(np.mean(flat == 0.0) + np.mean(flat == 1.0), 0.01)
    # Before and after rounding agree for the quantized forward pass.
    for entry in report['search']:
      self.assertEqual(entry['accuracy_before_rounding'],
                       entry['accuracy_after_rounding'])

  def test_non_quantized_search_reports_accuracy_after_rounding(self):
    miner = _small_miner(quantized=False, unflag_before_finetune=False,
                         search_epochs=4, iter_period=1)
    report = _search_run(tf.distribute.get_strategy(),
                         self.create_tempdir().full_path, miner=miner)
    history = report['search']
    # w * p * flag and w * 1[p > 0.5] * flag give different accuracies...
    self.assertTrue(any(h['accuracy_before_rounding'] !=
                        h['accuracy_after_rounding'] for h in history))
    # ... and "after rounding" is the accuracy of the mask flags * 1[p > 0.5]
    # that fine-tuning starts from (unflag_before_finetune=False).
    self.assertEqual(history[-1]['accuracy_after_rounding'],
                     report['gem_accuracy_at_init'])
    self.assertAlmostEqual(history[-1]['rounded_density'],
                           1 - report['masks']['overall']['sparsity'])

  def test_one_device_equals_two_replicas_and_resume_equals_uninterrupted(
      self):
    reference = self.create_tempdir().full_path
    _search_run(tf.distribute.get_strategy(), reference)
    expected = _final_search_state(reference)
    self.assertLen(expected, 6)

    # Two replicas: the same flags; flags identical on both replicas.
    strategy = test_util.two_replica_strategy()
    replicas = self.create_tempdir().full_path
    flags_per_replica = []

    def record(epoch, model):
      if epoch == 7:
        for layer in scored_lib.get_scored_layers(model):
          flags_per_replica.append(test_util.local_values(layer.flag,
                                                          strategy))

    _search_run(strategy, replicas, on_epoch_end=record)
    state = _final_search_state(replicas)
    for name, value in expected.items():
      if 'flag' in name:
        np.testing.assert_array_equal(state[name], value, err_msg=name)
      else:
        np.testing.assert_allclose(state[name], value, atol=1e-5,
                                   err_msg=name)
    for first, second in flags_per_replica:
      np.testing.assert_array_equal(first, second)

    # Interrupted after epoch 3 (mid-way between rounds), then resumed.
    class Interrupted(Exception):
      pass

    def interrupt(epoch, model):
      del model
      if epoch == 3:
        raise Interrupted()

    resumed = self.create_tempdir().full_path
    with self.assertRaises(Interrupted):
      _search_run(tf.distribute.get_strategy(), resumed,
                  on_epoch_end=interrupt)
    epochs = []
    report = _search_run(tf.distribute.get_strategy(), resumed,
                         on_epoch_end=lambda e, m: epochs.append(e))
    self.assertEqual(epochs, [4, 5, 6, 7])
    self.assertEqual([h['epoch'] for h in report['search']], list(range(1, 8)))
    state = _final_search_state(resumed)
    for name, value in expected.items():
      np.testing.assert_array_equal(state[name], value, err_msg=name)


class Keras3Test(tf.test.TestCase):

  def test_keras3_search_and_fine_tuning_give_tf_keras_results(self):
    """The same run in Keras 3: the same flags after every search epoch,
    the same gem, fine-tuned with its invariant, and its accuracy."""
    results = {}
    for flavour in flavours.NAMES:
      flags = []

      def record(epoch, model, flags=flags, flavour=flavour):
        del epoch
        self.assertEqual(flavours.of(model), flavour)
        layers = scored_lib.get_scored_layers(model)
        self.assertLen(layers, 3)
        self.assertEqual({flavours.of(layer) for layer in layers}, {flavour})
        flags.append([layer.flag.numpy()
                      for layer in scored_lib.get_scored_layers(model)])

      report = _search_run(
          tf.distribute.get_strategy(), self.create_tempdir().full_path,
          miner=_small_miner(finetune_epochs=1),
          on_epoch_end=record, flavour=flavour)
      results[flavour] = report, flags
    (tf_report, tf_flags), (k3_report, k3_flags) = (
        results['tf_keras'], results['keras3'])
    self.assertEqual([h['flagged'] for h in k3_report['search']],
                     [2720, 1591, 1591, 931, 931, 544, 544])
    for tf_epoch, k3_epoch in zip(tf_flags, k3_flags, strict=True):
      for tf_flag, k3_flag in zip(tf_epoch, k3_epoch, strict=True):
        self.assertAllEqual(tf_flag, k3_flag)
    self.assertEqual(k3_report['masks'], tf_report['masks'])
    self.assertAlmostEqual(k3_report['accuracy'], tf_report['accuracy'],
                           delta=0.01)
    self.assertGreater(k3_report['accuracy'], 0.5)


class TrainEvalDispatchTest(tf.test.TestCase):

  def test_gin_selects_gem_miner_and_reports_flops(self):
    gin.clear_config()
    train.parse_gin([], [
        'train_eval.model_fn = @lenet_300_100',
        "train_eval.method = 'gem_miner'", 'train_eval.sparsity = 0.9',
        'train_eval.batch_size = 64', 'train_eval.quiet = True',
        'lenet_300_100.hidden = (32, 16)',
        'GemMiner.search_epochs = 3', 'GemMiner.iter_period = 1',
        'GemMiner.finetune_epochs = 1', "GemMiner.sanity_checks = ['shuffle']",
    ])
    output_dir = self.create_tempdir().full_path
    try:
      report = train.train_eval(output_dir=output_dir)
    finally:
      gin.clear_config()
    self.assertEqual(models.lenet_300_100.__name__, 'lenet_300_100')
    with open(os.path.join(output_dir, 'report.json')) as f:
      self.assertEqual(json.load(f)['accuracy'], report['accuracy'])
    for name in ('operative_config.gin', 'train', 'finetune/ckpt-1.index',
                 'search/ckpt-3.index', 'search/history.json'):
      self.assertTrue(os.path.exists(os.path.join(output_dir, name)), name)
    self.assertLen(report['search'], 3)
    self.assertEqual(report['method'], 'gem_miner')
    self.assertEqual(report['steps_per_epoch'], 1437 // 64)
    self.assertEqual(report['eval_examples'], 360)
    self.assertIn('shuffle', report['sanity_checks'])
    # 2720 weights, floor(0.9 * 2720) = 2448 of them zero.
    self.assertEqual(report['masks']['overall']['nonzero'], 272)
    # Training cost: 3 search epochs at dense cost, 1 at sparse cost.
    f_d, f_s = report['dense_inference_flops'], report['inference_flops']
    self.assertAlmostEqual(report['training_flops_ratio'],
                           (3 * f_d + 1 * f_s) / 4 / f_d, places=9)

  def test_bad_hyperparameter_is_a_user_error(self):
    gin.clear_config()
    train.parse_gin([], [
        'train_eval.model_fn = @lenet_300_100',
        "train_eval.method = 'gem_miner'", 'train_eval.sparsity = 0.9',
        "GemMiner.score_init = 'gaussian'"])
    try:
      with self.assertRaisesRegex(errors.UserError,
                                  "Unknown GemMiner.score_init 'gaussian'"):
        train.train_eval(output_dir=self.create_tempdir().full_path)
    finally:
      gin.clear_config()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The CIFAR task registers its ResNet-20 with gin as `resnet20`; the test
# binds the config to the builder under a name of its own, so that it
# neither needs nor collides with that registration.
_RESNET20 = 'gem_miner_test_resnet20'
gin.external_configurable(wrn_model.resnet20, _RESNET20)


class ResNet20ConfigTest(tf.test.TestCase):

  def test_paper_recipe_runs_on_mock_cifar10(self):
    path = os.path.join(ROOT, 'configs', 'cifar_wrn', 'gem_miner_resnet20.gin')
    with open(path) as f:
      text = f.read()
    self.assertTrue(text.startswith('# '))
    self.assertIn('cifar_wrn/train_eval.py', text[:300])
    gin.clear_config()
    try:
      gin.parse_config(text.replace('resnet20', _RESNET20))
      self.assertEqual(gin.query_parameter('GemMiner.search_epochs'), 150)
      self.assertEqual(gin.query_parameter('GemMiner.iter_period'), 5)
      self.assertEqual(gin.query_parameter('GemMiner.reg_lambda'), 1e-4)
      train.parse_gin([], [
          'train_eval.batch_size = 4', 'train_eval.eval_batch_size = 4',
          'train_eval.quiet = True', 'GemMiner.steps_per_epoch = 2',
          'GemMiner.search_epochs = 2', 'GemMiner.iter_period = 1',
          'GemMiner.finetune_epochs = 1', 'GemMiner.sanity_checks = []'])
      with tfds.testing.mock_data(num_examples=8):
        report = train.train_eval(
            output_dir=self.create_tempdir().full_path)
    finally:
      gin.clear_config()
    # 19 convolutions and the dense layer, 98.56% sparse together.
    self.assertLen(report['masks']['layers'], 20)
    self.assertAlmostEqual(report['masks']['overall']['sparsity'], 0.9856,
                           places=4)
    self.assertEqual(report['step'], 6)


def _checkpoint_values(directory):
  """name -> value of every variable in a directory's latest checkpoint."""
  reader = tf.train.load_checkpoint(directory)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if not name.startswith(('train_iterator', '_CHECKPOINTABLE'))}


class SharedTrainerTest(tf.test.TestCase):
  """Gem-Miner's program on the shared loop, checkpoints and evaluation."""

  def _run(self, output_dir, on_epoch_end=None, **config):
    miner = _small_miner(search_epochs=3, iter_period=1, finetune_epochs=4,
                         finetune_learning_rate=0.05,
                         sanity_checks=['shuffle'])
    values = dict(output_dir=output_dir, method='gem_miner',
                  model_fn=_small_mlp, batch_size=32, eval_batch_size=360,
                  sparsity=0.8, seed=0, quiet=True)
    values.update(config)
    return gem_miner_runner.run(
        config_lib.resolve(train.RunConfig(**values)),
        tf.distribute.get_strategy(), data.get_info('digits'), miner=miner,
        on_epoch_end=on_epoch_end)

  def test_fine_tuning_resumes_bit_identically_and_eval_once_verifies(self):
    reference_dir = self.create_tempdir().full_path
    reference = self._run(reference_dir)
    # Interrupted after the gem's second fine-tuning epoch, then restarted.
    class Interrupted(Exception):
      pass

    def interrupt(phase, epoch, model):
      del model
      if (phase, epoch) == ('finetune', 2):
        raise Interrupted()

    resumed_dir = self.create_tempdir().full_path
    with self.assertRaises(Interrupted):
      self._run(resumed_dir, on_epoch_end=interrupt)
    epochs = []
    resumed = self._run(resumed_dir,
                        on_epoch_end=lambda p, e, m: epochs.append((p, e)))
    # The search was complete; the gem resumes after its epoch 2.
    self.assertEqual(epochs, [('finetune', 3), ('finetune', 4)] +
                     [('sanity_shuffle', e) for e in range(1, 5)])
    for phase in ('search', 'finetune', 'sanity_shuffle'):
      expected = _checkpoint_values(os.path.join(reference_dir, phase))
      actual = _checkpoint_values(os.path.join(resumed_dir, phase))
      self.assertEqual(sorted(actual), sorted(expected), phase)
      for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value,
                                      err_msg=f'{phase} {name}')
    for key in ('gem_accuracy_at_init', 'accuracy', 'sanity_checks',
                'masks', 'search'):
      self.assertEqual(resumed[key], reference[key], key)
    # --mode=eval_once verifies the fine-tuned gem.
    evaluated = train.train_eval(
        output_dir=reference_dir, mode='eval_once', method='gem_miner',
        model_fn=_small_mlp, batch_size=32, eval_batch_size=360,
        sparsity=0.8, quiet=True)
    self.assertEqual(evaluated['checkpoint'],
                     os.path.join(reference_dir, 'finetune', 'ckpt-4'))
    self.assertEqual(evaluated['accuracy'], reference['accuracy'])
    self.assertEqual(evaluated['masks'], reference['masks'])

  def test_eval_once_rejects_a_gem_whose_masked_weights_moved(self):
    output_dir = self.create_tempdir().full_path
    self._run(output_dir)
    config = config_lib.resolve(train.RunConfig(
        output_dir=output_dir, method='gem_miner', mode='eval_once',
        model_fn=_small_mlp, batch_size=32, eval_batch_size=360,
        sparsity=0.8))
    strategy, info = tf.distribute.get_strategy(), data.get_info('digits')
    gem, _, directory = gem_miner_runner.gem_structure(config, strategy, info)
    checkpoint = tf.train.Checkpoint(model=gem)
    checkpoint.restore(tf.train.latest_checkpoint(directory)).expect_partial()
    mw = masked_layers.get_masked_weights(gem)[0]
    mw.weight.assign(tf.ones_like(mw.weight))  # Masked weights non-zero.
    broken = checkpoint.save(os.path.join(self.create_tempdir().full_path,
                                          'broken'))
    with self.assertRaisesRegex(errors.UserError, 'mask invariant'):
      train.train_eval(
          output_dir=output_dir, mode='eval_once', eval_once_ckpt=broken,
          method='gem_miner', model_fn=_small_mlp, batch_size=32,
          eval_batch_size=360, sparsity=0.8, quiet=True)

  def test_jit_compile_and_float16_run_the_search_and_fine_tuning(self):
    seen = {}

    def record(phase, epoch, model):
      del epoch
      # The layers that compute: scored layers, or those masked layers wrap.
      seen[phase] = {getattr(layer, 'layer', layer).compute_dtype
                     for layer in model.layers if layer.weights}

    for options in (dict(jit_compile=True),
                    dict(mixed_precision='float16', on_epoch_end=record)):
      report = self._run(self.create_tempdir().full_path, **options)
      # 2720 weights, floor(0.8 * 2720) = 2176 zero, whatever the precision.
      self.assertEqual(report['masks']['overall']['nonzero'], 544, options)
      self.assertGreater(report['accuracy'], 0.5, options)
    # The scored (search) and masked (fine-tuning) layers compute in float16.
    self.assertEqual(seen, {'search': {'float16'}, 'finetune': {'float16'},
                            'sanity_shuffle': {'float16'}})

  def test_what_it_cannot_honour_is_one_line_and_writes_nothing(self):
    for binding, message in (
        ("train_eval.mode = 'eval'", None),
        ('train_eval.train_steps = 50', 'train_eval.train_steps'),
        ("train_eval.distribution = 'uniform'", 'train_eval.distribution'),
        ('train_eval.log_every = 5', 'train_eval.log_every'),
        ('train_eval.checkpoint_every = 5', 'train_eval.checkpoint_every')):
      gin.clear_config()
      output_dir = os.path.join(self.create_tempdir().full_path, 'run')
      kwargs = dict(output_dir=output_dir, method='gem_miner',
                    model_fn=_small_mlp, sparsity=0.8, quiet=True)
      if message is None:  # The mode is a flag, not a gin binding.
        kwargs['mode'], message = 'eval', 'no --mode=eval'
      else:
        train.parse_gin([], [binding])
      try:
        with self.assertRaisesRegex(errors.UserError, message) as raised:
          train.train_eval(**kwargs)
      finally:
        gin.clear_config()
      self.assertLen(str(raised.exception).splitlines(), 1, binding)
      self.assertFalse(os.path.exists(output_dir), binding)


class DigitsGemTest(tf.test.TestCase):
  """Rare Gems' claims on LeNet-300-100, 90% sparse, over 3 seeds."""

  def test_gem_at_init_fine_tuning_and_sanity_checks(self):
    info = data.get_info('digits')
    rows = []
    for seed in range(3):
      miner = gem_miner.GemMiner(
          search_epochs=24, iter_period=4, search_learning_rate=2.0,
          finetune_epochs=8, finetune_learning_rate=0.05,
          finetune_milestones=(4, 6), sanity_checks=['shuffle'], seed=seed)
      config = _config(self.create_tempdir().full_path, seed=seed,
                       sparsity=0.9, model_fn=models.lenet_300_100)
      report = gem_miner_runner.run(config, tf.distribute.get_strategy(),
                                    info, miner=miner)
      # Baseline: a static random (ERK) mask of the same density, standard
      # init, trained as many steps with the same optimizer.
      ctx = gem_miner_runner.make_context(config, tf.distribute.get_strategy(),
                                          info, miner)
      keras.utils.set_random_seed(seed)
      static = masked_layers.sparsify(
          models.lenet_300_100(input_shape=info.input_shape))
      masks.init_masks(static, masks.get_layer_sparsities(static, 0.9),
                       seed=seed)
      _, static_accuracy, _ = gem_miner_runner.finetune(ctx, static,
                                                        'static')
      shuffle = report['sanity_checks']['shuffle']
      rows.append((report['gem_accuracy_at_init'], report['accuracy'],
                   shuffle['accuracy_at_init'], shuffle['accuracy_finetuned'],
                   static_accuracy))
    gem_init, gem_tuned, random_init, shuffle_tuned, static_tuned = (
        np.mean(rows, axis=0))
    print('digits gem (at init, fine-tuned, random mask at init, shuffled '
          'fine-tuned, static fine-tuned) per seed:', rows)
    # The gem is accurate with untrained weights: far above chance (10%)
    # and above a random mask of the same density on the same weights.
    self.assertGreater(gem_init, 0.90)
    self.assertLess(random_init, 0.25)
    # Fine-tuning lifts it at least to a static random mask's accuracy, and
    # the shuffled-mask sanity check ends below the fine-tuned gem.
    self.assertGreater(gem_tuned, gem_init)
    self.assertGreaterEqual(gem_tuned, static_tuned)
    self.assertLess(shuffle_tuned, gem_tuned)


if __name__ == '__main__':
  tf.test.main()
