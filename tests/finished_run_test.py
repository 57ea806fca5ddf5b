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
"""What a finished digits RigL run yields: pictures, GIF, exported models.

One 300-step RigL run of LeNet-300-100 (90% ERK) on the offline digits,
summaries and checkpoints every 100 steps, masks updated every 100 steps.
Expected values are computed here from the checkpoints and event files,
not with the functions under test.
"""

import io
import os

import gin
import numpy as np
from PIL import Image
import tensorflow as tf

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import errors
from rigl_tf import export
from rigl_tf import pictures
from rigl_tf import train
from rigl_tf import visualize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, 'configs', 'mnist', 'quickstart_digits.gin')
STEPS = (100, 200, 300)
LAYERS = ('fc1', 'fc2', 'logits')


def _key(index, name):
  return f'model/layer_with_weights-{index}/{name}/.ATTRIBUTES/VARIABLE_VALUE'


def _events(logdir):
  """(step, summary value) of every summary in `logdir`."""
  for path in sorted(tf.io.gfile.glob(os.path.join(logdir, 'events.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        yield event.step, value


def _images(logdir, tag):
  """step -> decoded image of the image summary `tag`."""
  return {
      step: tf.image.decode_png(tf.make_ndarray(value.tensor)[2]).numpy()
      for step, value in _events(logdir) if value.tag == tag
  }


def _scalars(logdir):
  result = {}
  for step, value in _events(logdir):
    if value.metadata.plugin_data.plugin_name == 'scalars':
      result.setdefault(value.tag, {})[step] = float(
          tf.make_ndarray(value.tensor))
  return result


def _numpy_logits(reader, images):
  """LeNet-300-100's logits computed with numpy from a checkpoint."""
  x = images.reshape(len(images), -1)
  for i in range(3):
    kernel = (reader.get_tensor(_key(i, 'layer/kernel'))
              * reader.get_tensor(_key(i, 'kernel_mask')))
    x = x @ kernel + reader.get_tensor(_key(i, 'layer/bias'))
    if i < 2:
      x = np.maximum(x, 0)
  return x


class FinishedDigitsRunTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.run_dir = os.path.join(
        tf.compat.v1.test.get_temp_dir(), 'finished_digits_rigl')
    if tf.io.gfile.exists(cls.run_dir):
      tf.io.gfile.rmtree(cls.run_dir)
    gin.clear_config()
    train.parse_gin([QUICKSTART], [
        "train_eval.method = 'rigl'", 'train_eval.train_steps = 300',
        'train_eval.log_every = 100', 'train_eval.checkpoint_every = 100',
        'train_eval.keep_checkpoints = 10', 'train_eval.quiet = True',
        'RigL.update_frequency = 100', 'RigL.end_step = 250'])
    cls.report = train.train_eval(output_dir=cls.run_dir)
    cls.train_dir = os.path.join(cls.run_dir, 'train')

  def _reader(self, step):
    return tf.train.load_checkpoint(os.path.join(self.run_dir, f'ckpt-{step}'))

  def test_connectivity_pictures_are_the_active_counts_per_pixel(self):
    images = _images(self.train_dir, 'pictures/connectivity_fc1')
    # A picture at the first summary, after each mask update (at steps 100
    # and 200, seen at the next summary) and at the end.
    self.assertEqual(sorted(images), list(STEPS))
    counts_seen = []
    for step, image in images.items():
      mask = self._reader(step).get_tensor(_key(0, 'kernel_mask'))
      # fc1 sees the 8x8 image flattened row by row: input 8 * h + w.
      counts = np.array([[mask[8 * h + w].sum() for w in range(8)]
                         for h in range(8)])
      expected = np.floor(255.0 * counts / counts.max() + 0.5)
      self.assertAllEqual(image[:, :, 0], expected)
      counts_seen.append(counts)
    # RigL moved connections between pixels.
    self.assertNotAllEqual(counts_seen[0], counts_seen[-1])

  def test_density_and_itop_curves_are_the_logged_scalars(self):
    scalars = _scalars(self.train_dir)
    tags = [f'density/{n}' for n in LAYERS] + ['itop_rate'] + [
        f'itop/{n}' for n in LAYERS]
    history = {}
    for tag in tags:
      self.assertEqual(sorted(scalars[tag]), list(STEPS), tag)
      history[tag] = (list(STEPS), [scalars[tag][s] for s in STEPS])
    fig = pictures.curves_figure(history)
    density_ax, itop_ax = fig.axes
    self.assertEqual([line.get_label() for line in density_ax.lines],
                     list(LAYERS))
    for line, name in zip(density_ax.lines, LAYERS):
      self.assertAllEqual(line.get_ydata(), history[f'density/{name}'][1])
    self.assertAllEqual(itop_ax.lines[0].get_ydata(), history['itop_rate'][1])
    # The picture written during training is the figure of these scalars.
    curves = _images(self.train_dir, 'pictures/density_and_itop')
    self.assertEqual(list(curves), [STEPS[-1]])  # Drawn once, at the end.
    self.assertAllEqual(curves[STEPS[-1]], pictures.figure_to_rgb(fig))

  def test_visualize_draws_one_frame_per_saved_mask_state(self):
    out = self.create_tempdir().full_path
    written = visualize.render_run(self.run_dir, out)
    checkpoints = tf.train.get_checkpoint_state(self.run_dir)
    states = len(checkpoints.all_model_checkpoint_paths)
    self.assertEqual(states, 3)
    pngs = sorted(f for f in os.listdir(out) if f.startswith('connectivity_'))
    self.assertEqual(pngs, [f'connectivity_{s}.png' for s in STEPS])
    with Image.open(os.path.join(out, 'connectivity.gif')) as gif:
      self.assertEqual(gif.n_frames, states)
    self.assertIn(os.path.join(out, 'density_and_itop.png'), written)
    with open(os.path.join(out, 'density_and_itop.png'), 'rb') as f:
      self.assertEqual(Image.open(io.BytesIO(f.read())).format, 'PNG')

  def test_visualize_of_a_missing_run_is_one_error_and_writes_nothing(self):
    missing = os.path.join(self.create_tempdir().full_path, 'nothing')
    with self.assertRaisesRegex(errors.UserError, 'no training run'):
      visualize.render_run(missing)
    self.assertFalse(os.path.exists(missing))

  def test_export_reproduces_the_checkpoint_and_shrinks_by_the_density(self):
    export_dir = self.create_tempdir().full_path
    report = export.export_run(self.run_dir, export_dir)
    reader = self._reader(STEPS[-1])
    images = np.random.RandomState(0).rand(16, 8, 8, 1).astype(np.float32)
    expected = _numpy_logits(reader, images)
    loaded = tf.saved_model.load(os.path.join(export_dir, 'saved_model'))
    outputs = loaded.signatures['serving_default'](images=images)
    self.assertAllClose(next(iter(outputs.values())), expected, atol=1e-4)
    sizes = {}
    for kind in ('dense', 'sparse'):
      path = os.path.join(export_dir, f'model_{kind}.tflite')
      with open(path, 'rb') as f:
        content = f.read()
      self.assertAllClose(export.tflite_predict(content, images), expected,
                          atol=1e-4)
      sizes[kind] = len(content)
    # Each zero saves its 4 bytes; each non-zero may cost an int32 index
    # and each kernel row an int32 pointer (TFLite's kernels are out x in).
    saved = 0
    for i in range(3):
      mask = reader.get_tensor(_key(i, 'kernel_mask'))
      nonzero = int(mask.sum())
      saved += 4 * (mask.size - nonzero) - 4 * nonzero - 4 * (
          mask.shape[1] + 1)
    self.assertLess(sizes['sparse'], sizes['dense'] - saved)
    self.assertEqual(
        [(f['name'], f['size_bytes']) for f in report['files']][1:],
        [('tflite_dense', sizes['dense']), ('tflite_sparse', sizes['sparse'])])
    self.assertTrue(all(f['matches'] and f['top1_agreement'] == 1.0
                        for f in report['files']))
    self.assertAlmostEqual(report['micronet_size_bytes'],
                           self.report['size_mb'] * 1e6)


if __name__ == '__main__':
  tf.test.main()
