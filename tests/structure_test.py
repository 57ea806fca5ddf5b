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
"""Structured masks: constant fan-in and N:M (rigl_tf.structure).

Row-wise exact selection on hand-made scores, the row view of Dense and
conv kernels, initial masks, drop/grow within each unit (positions on
hand-made inputs), the per-row counts after every step of every method that
keeps a structure, two replicas, and the trainer's refusals, report and
eval_once check.
"""

import os

from absl.testing import parameterized
import gin
import numpy as np
import tensorflow as tf
import test_util
import tf_keras as keras

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import errors
from rigl_tf import layers
from rigl_tf import masks
from rigl_tf import optimizers
from rigl_tf import runs
from rigl_tf import structure
from rigl_tf import topk
from rigl_tf import train
from rigl_tf.methods import drop_grow
from rigl_tf.methods import dst
from rigl_tf.methods import gradual
from rigl_tf.methods import static
from rigl_tf.train import checkpoints
from rigl_tf.train import report as report_lib


def _kernel_layer(kernel):
  """A masked Dense layer holding `kernel` [n_in, units] (mask all ones)."""
  n_in, units = kernel.shape
  model = layers.sparsify(keras.Sequential(
      [keras.Input((n_in,)), keras.layers.Dense(units, name='d')]))
  mw = layers.get_masked_weights(model)[0]
  mw.weight.assign(kernel)
  return model, mw


class TopNRowsTest(tf.test.TestCase):

  def test_each_row_keeps_its_own_count_of_its_largest(self):
    scores = tf.constant([[5., 1., 4., 2., 3.],
                          [9., 8., 7., 6., 5.],
                          [0., -1., 2., -3., 4.]])
    chosen = topk.top_n_rows_random_ties(scores, [2, 0, 5], [0, 1])
    self.assertAllEqual(chosen, [[1, 0, 1, 0, 0], [0, 0, 0, 0, 0],
                                 [1, 1, 1, 1, 1]])
    # One count for every row.
    self.assertAllEqual(topk.top_n_rows_random_ties(scores, 1, [0, 1]),
                        [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]])

  def test_ties_are_broken_within_the_row_by_the_key(self):
    scores = tf.ones([4, 6])
    for key in ([0, 1], [3, 7]):
      chosen = topk.top_n_rows_random_ties(scores, 2, key).numpy()
      self.assertAllEqual(chosen.sum(1), [2, 2, 2, 2])
      # The flat positions with the largest tie keys of each row.
      ties = topk.tie_break_keys(24, key).numpy().reshape(4, 6)
      expected = np.zeros((4, 6))
      for r in range(4):
        expected[r, np.argsort(-ties[r])[:2]] = 1
      self.assertAllEqual(chosen, expected)

  def test_one_row_is_the_flat_selection(self):
    scores = tf.constant(np.random.RandomState(0).randint(0, 5, 40),
                         tf.float32)  # Many ties.
    for n in (0, 7, 23, 40):
      self.assertAllEqual(
          topk.top_n_rows_random_ties(scores[None], n, [4, 2])[0],
          topk.top_n_mask_random_ties(scores, n, [4, 2]))


class LayoutTest(tf.test.TestCase):

  def test_parse(self):
    self.assertEqual(structure.Structure.parse('2:4'),
                     structure.Structure('n:m', 2, 4))
    self.assertEqual(structure.Structure.parse('constant_fan_in').name,
                     'constant_fan_in')
    self.assertAlmostEqual(structure.Structure.parse('1:8').sparsity, 0.875)
    for bad in ('4:2', '0:4', 'n:m', 'fan_in', '2:4:8'):
      with self.assertRaisesRegex(ValueError, 'Unknown structure'):
        structure.Structure.parse(bad)

  def test_dense_rows_are_its_units_and_conv_groups_run_over_channels(self):
    model = layers.sparsify(keras.Sequential([
        keras.Input((5, 5, 8)), keras.layers.Conv2D(3, 3, name='conv'),
        keras.layers.Flatten(), keras.layers.Dense(4, name='fc')]))
    conv, fc = layers.get_masked_weights(model)
    fan_in = structure.layout(structure.Structure.parse('constant_fan_in'),
                              fc.owner, fc.weight)
    self.assertEqual((fan_in.rows, fan_in.size, fan_in.units), (4, 27, 4))
    self.assertAllEqual(fan_in.to_rows(fc.weight), tf.transpose(fc.weight))
    # 2:4 on a 3x3x8x3 kernel: a unit's 72 inputs, 4 channels at a time.
    groups = structure.layout(structure.Structure.parse('2:4'), conv.owner,
                              conv.weight)
    self.assertEqual((groups.rows, groups.size, groups.per_row), (54, 4, 2))
    rows = groups.to_rows(conv.weight)
    self.assertAllEqual(rows[0], conv.weight[0, 0, 0:4, 0])
    self.assertAllEqual(rows[1], conv.weight[0, 0, 4:8, 0])
    self.assertAllEqual(rows[2], conv.weight[0, 1, 0:4, 0])
    self.assertAllEqual(rows[18], conv.weight[0, 0, 0:4, 1])
    self.assertAllEqual(groups.from_rows(rows), conv.weight)
    with self.assertRaisesRegex(
        structure.UnfitError,
        r"^fc \(27, 4\): a unit's fan-in 27 is not a multiple of M = 4$"):
      structure.layout(structure.Structure.parse('2:4'), fc.owner,
                       fc.weight, 'fc')

  def test_constant_fan_in_holds_units_times_k(self):
    model = layers.sparsify(test_util.small_mlp())
    plan = masks.sparsity_plan(model, 0.9, 'uniform',
                               structure='constant_fan_in')
    # fc1 [64, 32]: k = 64 - floor(0.9 * 64) = 7 per unit, 224 ones, where
    # unstructured it is 6,553 - ... = 2048 - floor(0.9 * 2048) = 205.
    self.assertEqual(plan.num_ones('fc1', 2048), 32 * 7)
    self.assertEqual(masks.sparsity_plan(model, 0.9, 'uniform').num_ones(
        'fc1', 2048), 205)


class InitMasksTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(('random', 'constant_fan_in', 0.8),
                            ('magnitude', 'constant_fan_in', 0.8),
                            ('random', '2:4', 0.5),
                            ('magnitude', '1:4', 0.75))
  def test_every_row_gets_its_exact_count(self, method, name, sparsity):
    model = layers.sparsify(test_util.small_mlp())
    plan = masks.sparsity_plan(model, sparsity, 'erk', structure=name)
    counts = masks.init_masks(model, plan.final, seed=3, method=method,
                              layouts=plan.layouts)
    for mw in layers.get_masked_weights(model):
      layout = plan.layouts[mw.name]
      per_row = layout.ones_per_row(plan.final[mw.name])
      self.assertAllEqual(layout.row_counts(mw.mask),
                          np.full([layout.rows], per_row), mw.name)
      self.assertEqual(counts[mw.name], layout.rows * per_row)
      self.assertEqual(np.count_nonzero(
          mw.weight.numpy() * (1 - mw.mask.numpy())), 0)
    if name == '2:4':  # 1 - N/M in every layer, whatever the distribution.
      self.assertEqual(set(plan.final.values()), {0.5})

  def test_magnitude_keeps_each_units_largest_not_the_layers(self):
    # Unit 0 holds every large weight: a layer-wide top 4 would be unit 0's
    # four inputs and leave unit 1 empty.
    kernel = np.array([[9., .1], [8., .4], [7., .2], [6., .3]], np.float32)
    _, mw = _kernel_layer(kernel)
    layout = structure.layout(structure.Structure.parse('constant_fan_in'),
                              mw.owner, mw.weight)
    mask = masks.magnitude_mask(mw.weight, 4, 0, 0, layout)
    self.assertAllEqual(mask, [[1, 0], [1, 1], [0, 0], [0, 1]])


class DropGrowWithinUnitsTest(tf.test.TestCase):

  def test_ablation_removes_a_unit_without_salient_weights(self):
    # Three units of 4 inputs with k = 2. An unstructured update keeping 4
    # and growing 2 (n_drop = 2) would keep units 0 and 1's weights and grow
    # there: unit 2 has no salient weight, < 0.5 · 2, and is ablated. The
    # live units share the budget of 6: 3 inputs each.
    mask = tf.constant([[1., 1., 1.], [1., 1., 1.], [0., 0., 0.],
                        [0., 0., 0.]])
    weight = tf.constant([[5., 4., .1], [6., 7., .2], [0., 0., 0.],
                          [0., 0., 0.]])
    score = tf.constant([[0., 0., 0.], [0., 0., 0.], [3., 2., .5],
                         [1., 8., .4]])
    layout = structure.layout(structure.Structure.parse('constant_fan_in'),
                              _kernel_layer(np.zeros((4, 3)))[1].owner,
                              tf.Variable(tf.zeros([4, 3])))
    new_mask, new_weight, _, num_new = drop_grow.drop_and_grow(
        mask, weight, score, tf.constant(2), tf.constant(2), tf.constant(
            [1, 2], tf.int64), tf.constant(0.0), layout, (0.5, 6))
    # Each live unit drops its smaller weight and grows its two best.
    self.assertAllEqual(new_mask, [[0, 0, 0], [1, 1, 0], [1, 1, 0],
                                   [1, 1, 0]])
    self.assertAllClose(new_weight, [[0, 0, 0], [6, 7, 0], [0, 0, 0],
                                     [0, 0, 0]])
    self.assertEqual(int(num_new), 4)
    # Without ablation, every unit keeps its 2.
    kept, _, _, _ = drop_grow.drop_and_grow(
        mask, weight, score, tf.constant(2), tf.constant(2), tf.constant(
            [1, 2], tf.int64), tf.constant(0.0), layout)
    self.assertAllEqual(tf.reduce_sum(kept, 0), [2, 2, 2])

  def test_drops_and_grows_within_each_unit(self):
    # Two units (columns), two active inputs each. Unit 0's weights are the
    # large ones and its free position the best grow score: selecting over
    # the layer drops both of unit 1's weights and grows one back.
    mask = tf.constant([[1., 1.], [1., 0.], [0., 1.], [0., 0.]])
    weight = tf.constant([[5., .1], [6., 0.], [0., .2], [0., 0.]])
    score = tf.constant([[0., 0.], [0., 2.], [0., 0.], [9., 1.]])
    layout = structure.layout(structure.Structure.parse('constant_fan_in'),
                              _kernel_layer(np.zeros((4, 2)))[1].owner,
                              tf.Variable(tf.zeros([4, 2])))
    new_mask, new_weight, _, num_new = drop_grow.drop_and_grow(
        mask, weight, score, tf.constant(2), tf.constant(2), tf.constant(
            [1, 2], tf.int64), tf.constant(0.0), layout)
    # Unit 0 drops 5 and grows row 3; unit 1 drops .1 and grows row 1.
    self.assertAllEqual(new_mask, [[0, 0], [1, 1], [0, 1], [1, 0]])
    self.assertAllClose(new_weight, [[0, 0], [6, 0], [0, .2], [0, 0]])
    self.assertEqual(int(num_new), 2)
    # Without the layout, the same inputs are selected over the layer.
    flat_mask, _, _, _ = drop_grow.drop_and_grow(
        mask, weight, score, tf.constant(2), tf.constant(2), tf.constant(
            [1, 2], tf.int64), tf.constant(0.0))
    self.assertAllEqual(flat_mask, [[1, 0], [1, 1], [0, 0], [1, 0]])


def _build(strategy, name, sparsity, make_updater):
  with strategy.scope():
    model = layers.sparsify(test_util.small_mlp())
    plan = masks.sparsity_plan(model, sparsity, 'erk', structure=name)
    updater = make_updater()
    updater.init_masks(model, plan, seed=0)
    optimizer = optimizers.SparseOptimizer(
        keras.optimizers.SGD(0.1, momentum=0.9), model, updater)
  return model, optimizer, plan, updater


_UPDATERS = {
    'static': static.Static,
    'set': lambda: dst.SET(update_frequency=1, drop_fraction=0.3,
                           end_step=-1, drop_fraction_anneal='constant'),
    # A high threshold, so that random data ablates some units.
    'snfs_ablation': lambda: dst.SNFS(
        update_frequency=1, drop_fraction=0.3, end_step=-1,
        drop_fraction_anneal='constant', ablation_threshold=0.9),
    'rigl': lambda: dst.RigL(update_frequency=1, drop_fraction=0.3,
                             end_step=-1, drop_fraction_anneal='constant'),
}


class MethodsKeepTheStructureTest(tf.test.TestCase, parameterized.TestCase):

  # RigL with constant fan-in: trainer_test's ExactResumeTest (2 replicas).
  @parameterized.parameters(('static', 'constant_fan_in', 0.8),
                            ('set', '1:4', 0.75),
                            ('snfs_ablation', 'constant_fan_in', 0.8),
                            ('rigl', '2:4', 0.5))
  def test_per_row_counts_after_every_step(self, method, name, sparsity):
    model, optimizer, plan, updater = _build(
        tf.distribute.get_strategy(), name, sparsity, _UPDATERS[method])
    weights = layers.get_masked_weights(model)
    initial = [mw.mask.numpy().copy() for mw in weights]
    changed = []

    def check(step):
      for mw in weights:
        layout = plan.layouts[mw.name]
        counts = layout.row_counts(mw.mask).numpy()
        if method == 'snfs_ablation':  # 0, or the live units' share.
          live = counts > 0
          share = min(layout.size, plan.num_ones(mw.name, mw.size) //
                      int(live.sum()))
          expected = np.where(live, share, 0)
        else:
          expected = np.full([layout.rows],
                             layout.ones_per_row(plan.final[mw.name]))
        self.assertAllEqual(counts, expected, f'{mw.name} step {step}')
        self.assertEqual(np.count_nonzero(
            mw.weight.numpy() * (1 - mw.mask.numpy())), 0)
      self.assertEqual(updater.structure_violations(model, plan.final), [])
      changed.append(sum(int((mw.mask.numpy() != m).sum())
                         for mw, m in zip(weights, initial)))

    test_util.train(tf.distribute.get_strategy(), model, optimizer,
                    test_util.random_data(3), after_step=check)
    self.assertLen(changed, 3)
    if method == 'static':
      self.assertEqual(changed, [0, 0, 0])
    else:  # Masks moved at every step.
      self.assertGreater(changed[0], 0)
    ablated = updater.structure_report(model)['ablated']
    if method == 'snfs_ablation':
      self.assertNotEqual(ablated, {})
    else:
      self.assertEqual(ablated, {})


def _configure(*bindings):
  gin.clear_config()
  train.parse_gin([os.path.join(test_util.ROOT, 'configs', 'mnist',
                                'quickstart_digits.gin')],
                  ['train_eval.quiet = True', *bindings])


class TrainerTest(tf.test.TestCase):

  def _refused(self, pattern, *bindings):
    _configure(*bindings)
    output_dir = os.path.join(self.create_tempdir().full_path, 'run')
    with self.assertRaisesRegex(errors.UserError, pattern):
      train.train_eval(output_dir=output_dir, mode='train')
    self.assertFalse(os.path.exists(output_dir))

  def test_refusals_are_one_line_before_any_output(self):
    self._refused(r"^train_eval.structure: Unknown structure '3:2'",
                  "train_eval.structure = '3:2'")
    self._refused(r"^structure '2:4' keeps 2 of every 4 weights, a sparsity "
                  r'of 0.5, not 0.9: set train_eval.sparsity = 0.5.$',
                  "train_eval.structure = '2:4'", 'train_eval.sparsity = 0.9')
    self._refused(r"^train_eval.structure = 'constant_fan_in': gmp does not "
                  'keep structured masks',
                  "train_eval.structure = 'constant_fan_in'",
                  "train_eval.method = 'gmp'")
    self._refused(r"^SNFS.redistribution = 'momentum' moves weights between "
                  'layers',
                  "train_eval.structure = 'constant_fan_in'",
                  "train_eval.method = 'snfs'",
                  "SNFS.redistribution = 'momentum'")
    # lenet_300_100 on digits: fc2's fan-in 300 is not a multiple of 8.
    self._refused(r"^structure '3:8' does not fit fc2 \(300, 100\): a unit's "
                  "fan-in 300 is not a multiple of M = 8; choose another "
                  "structure, or train_eval.on_unfit = 'unstructured'",
                  "train_eval.structure = '3:8'", 'train_eval.sparsity = 0.625')
    self.assertIsInstance(gradual.GMP.structure_refusal(
        structure.Structure.parse('2:4')), str)

  def test_run_reports_the_structure_and_eval_once_rejects_a_broken_one(self):
    output_dir = self.create_tempdir().full_path
    bindings = ["train_eval.method = 'rigl'", 'train_eval.sparsity = 0.625',
                "train_eval.structure = '3:8'",
                "train_eval.on_unfit = 'unstructured'"]
    _configure(*bindings, 'train_eval.train_steps = 30',
               'RigL.update_frequency = 10', 'train_eval.checkpoint_every = 30',
               'train_eval.log_every = 30')
    report = train.train_eval(output_dir=output_dir, mode='train')
    rows = {row['name']: row for row in report['masks']['layers']}
    # fc1 [64, 300]: 3 of every 8 inputs. fc2 [300, 100] and logits
    # [100, 10] cannot take 3:8 and keep their unstructured counts.
    self.assertEqual(rows['fc1']['nonzero'], 64 * 300 * 3 // 8)
    for name, size in (('fc2', 30000), ('logits', 1000)):
      self.assertEqual(rows[name]['nonzero'], size - int(np.floor(
          rows[name]['planned'] * size)))
    self.assertEqual(report['masks']['structure']['name'], '3:8')
    self.assertEqual(list(report['masks']['structure']['unstructured']),
                     ['fc2', 'logits'])
    self.assertEqual(
        report_lib.format_sparsity_report(report['masks']).splitlines()[-3:], [
            'structure 3:8 on 1 layers: every group of 8 inputs of a unit '
            'keeps 3',
            "  fc2 kept unstructured: fc2 (300, 100): a unit's fan-in 300 is "
            'not a multiple of M = 8',
            "  logits kept unstructured: logits (100, 10): a unit's fan-in "
            '100 is not a multiple of M = 8'])
    self.assertGreater(report['itop_rate'],
                       1 - report['masks']['overall']['sparsity'] + 0.01)
    evaluated = train.train_eval(output_dir=output_dir, mode='eval_once')
    self.assertEqual(evaluated['masks'], report['masks'])
    # Move one active weight of fc1's first group of unit 0 to its second
    # group: the invariant and the layer's count still hold.
    run = runs.load_run(output_dir)
    run.restore(run.checkpoints[-1])
    mw = layers.get_masked_weights(run.model)[0]
    mask, weight = mw.mask.numpy(), mw.weight.numpy()
    on = int(np.flatnonzero(mask[0:8, 0])[0])
    off = 8 + int(np.flatnonzero(mask[8:16, 0] == 0)[0])
    mask[on, 0], weight[on, 0], mask[off, 0] = 0, 0, 1
    mw.mask.assign(mask)
    mw.weight.assign(weight)
    broken = tf.train.Checkpoint(
        model=checkpoints.checkpointable(run.model)).save(
            os.path.join(self.create_tempdir().full_path, 'broken'))
    _configure(*bindings)
    with self.assertRaisesRegex(
        errors.UserError, r"^checkpoint breaks the structure '3:8': fc1: 2 "
        r'of 2400 rows hold \[2, 4\] ones, not \[3\].$'):
      train.train_eval(output_dir=output_dir, mode='eval_once',
                       eval_once_ckpt=broken)


if __name__ == '__main__':
  tf.test.main()
