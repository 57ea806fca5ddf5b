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
"""Export of a small 90% ERK MobileNet v1 from a checkpoint.

(The digits export is tested on a trained run in finished_run_test.py.)
"""

import os

import numpy as np
import tensorflow as tf
import tf_keras as keras

from imagenet_resnet import mobilenet_model
from rigl_tf import errors
from rigl_tf import export
from rigl_tf import layers
from rigl_tf import masks


def _sparse_mobilenet():
  keras.utils.set_random_seed(0)
  model = layers.sparsify(mobilenet_model.mobilenet_v1(
      num_classes=10, input_shape=(32, 32, 3), width=0.25))
  masks.init_masks(model, masks.get_layer_sparsities(model, 0.9, 'erk'),
                   seed=0)
  return model


class MobileNetExportTest(tf.test.TestCase):

  def test_exports_match_the_checkpoint_and_shrink_by_the_density(self):
    images = np.random.RandomState(0).rand(8, 32, 32, 3).astype(np.float32)
    trained = _sparse_mobilenet()
    for layer in layers.get_masked_layers(trained):
      layer.apply_masks()
    # BatchNorm statistics of these images (momentum 0, one training pass):
    # logits of order 1 instead of the ~1e-30 that 28 sparse layers with
    # unit-variance statistics leave, so the comparison means something.
    for layer in trained.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = 0.0
    trained(images, training=True)
    prefix = tf.train.Checkpoint(model=trained).write(
        os.path.join(self.create_tempdir().full_path, 'ckpt'))
    expected = trained(images, training=False).numpy()
    self.assertGreater(np.abs(expected).max(), 0.3)

    model = _sparse_mobilenet()  # Other masks until the checkpoint loads.
    tf.train.Checkpoint(model=model).read(prefix).assert_consumed()
    export_dir = self.create_tempdir().full_path
    files = {f.name: f for f in export.export_model(model, export_dir, images)}
    self.assertTrue(all(f.matches for f in files.values()))
    loaded = tf.saved_model.load(os.path.join(export_dir, 'saved_model'))
    outputs = loaded.signatures['serving_default'](images=images)
    self.assertAllClose(next(iter(outputs.values())), expected, atol=1e-4)
    sizes = {}
    for kind in ('dense', 'sparse'):
      with open(os.path.join(export_dir, f'model_{kind}.tflite'), 'rb') as f:
        content = f.read()
      self.assertAllClose(export.tflite_predict(content, images), expected,
                          atol=1e-3)
      sizes[kind] = len(content)
      self.assertEqual(files[f'tflite_{kind}'].size_bytes, sizes[kind])
    # Each zero saves 4 bytes; each non-zero may cost an int32 index and each
    # kernel row (TFLite: out x kh x kw x in) an int32 pointer.
    saved = 0
    for mw in layers.get_masked_weights(model):
      mask = mw.mask.numpy()
      nonzero = int(mask.sum())
      rows = mask.size // mask.shape[-2 if mask.ndim == 4 else 0]
      saved += 4 * (mask.size - nonzero) - 4 * nonzero - 4 * (rows + 1)
    self.assertGreater(saved, 0.5 * sizes['dense'])
    self.assertLess(sizes['sparse'], sizes['dense'] - saved)

  def test_bad_input_is_refused_before_writing(self):
    missing = os.path.join(self.create_tempdir().full_path, 'run')
    with self.assertRaisesRegex(errors.UserError, 'int4'):
      export.export_run(missing, quantize=('int4',))
    with self.assertRaisesRegex(errors.UserError, 'no training run'):
      export.export_run(missing)
    self.assertFalse(os.path.exists(missing))


if __name__ == '__main__':
  tf.test.main()
