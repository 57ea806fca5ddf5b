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
r"""Exports a trained sparse model: SavedModel and sparse-encoded TFLite.

  python -m rigl_tf.export --output_dir=/tmp/run [--checkpoint=ckpt-3000] \
      [--export_dir=/tmp/run/export] [--quantize=float16,int8]

From a checkpoint of a training run, the `MaskedLayer` wrappers are stripped
(`rigl_tf.layers.strip`: plain Keras layers whose kernels hold the zeros)
and the model is written as

* `saved_model/`: a TensorFlow SavedModel, signature `serving_default`
  (float32 images -> logits). Its variables are dense tensors: masked
  weights cost as much as active ones.
* `model_dense.tflite`: TFLite, float32, every weight stored;
* `model_sparse.tflite`: TFLite with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`:
  the converter stores each sufficiently sparse constant weight tensor in a
  compressed sparse format (values of the non-zeros plus their indices,
  uint8/uint16/int32 by dimension) and inserts a `DENSIFY` op where a
  kernel has no sparse implementation;
* `model_sparse_float16.tflite`, `model_sparse_int8.tflite` with
  `--quantize`: weights stored as float16, or the whole model quantised to
  int8 (calibrated on training images; float32 inputs and outputs).

Every exported model is run on evaluation images and its logits compared
with the checkpoint's (the masked Keras model's): the largest absolute
difference must be at most `TOLERANCE[kind] * max(1, max |logit|)`
(float32 1e-3, float16 2e-2, int8 0.25: int8 keeps 256 levels per tensor,
so a logit is off by a few quantisation steps). `export_report.json` lists
every file's size next to the MicroNet size estimate of `rigl_tf.flops`
(32 bits per non-zero weight, a 1-bit mask per weight, 32 bits per bias).
"""

import dataclasses
import json
import os
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

if __name__ == '__main__':
  # Command line: hide TensorFlow's native start-up notices (see quiet.py),
  # so that output and errors are ours alone. Importers are not affected.
  from rigl_tf import quiet as _quiet
  with _quiet.native_stderr_silenced():
    import tensorflow as _tf
    _tf.config.list_logical_devices()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rigl_tf import compat  # noqa: E402
from rigl_tf import errors  # noqa: E402
from rigl_tf import flops  # noqa: E402
from rigl_tf import layers as masked_layers  # noqa: E402
from rigl_tf import runs  # noqa: E402
from rigl_tf.errors import UserError  # noqa: E402
from rigl_tf.train import output  # noqa: E402

QUANTIZATIONS = ('float16', 'int8')
# Largest allowed |exported logit - checkpoint logit|, times max(1, max|logit|).
TOLERANCE = {'float32': 1e-3, 'float16': 2e-2, 'int8': 0.25}


@dataclasses.dataclass
class ExportedFile:
  """One exported model and how well it reproduces the checkpoint.

  Attributes:
    name: 'saved_model', 'tflite_dense', 'tflite_sparse', ...
    path: file or directory written.
    size_bytes: bytes on disk (a directory: all its files).
    numerics: 'float32', 'float16' or 'int8' (selects the tolerance).
    max_abs_diff: largest |logit - checkpoint logit| on the check images.
    tolerance: the bound `max_abs_diff` must stay within.
    top1_agreement: fraction of the check images whose top class is the
      checkpoint's.
  """
  name: str
  path: str
  size_bytes: int
  numerics: str
  max_abs_diff: float
  tolerance: float
  top1_agreement: float

  @property
  def matches(self):
    return self.max_abs_diff <= self.tolerance


def _size_bytes(path):
  if not tf.io.gfile.isdir(path):
    return tf.io.gfile.stat(path).length
  total = 0
  for root, _, files in tf.io.gfile.walk(path):
    total += sum(tf.io.gfile.stat(os.path.join(root, f)).length for f in files)
  return total


def tflite_predict(model_content, images):
  """Runs a TFLite flatbuffer on a batch; returns float32 outputs."""
  with warnings.catch_warnings():
    # tf.lite.Interpreter warns that LiteRT (ai_edge_litert) replaces it;
    # it is what TensorFlow 2.21 ships and runs the same kernels.
    warnings.simplefilter('ignore')
    interpreter = tf.lite.Interpreter(model_content=model_content)
  source = interpreter.get_input_details()[0]
  interpreter.resize_tensor_input(source['index'], images.shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(source['index'], images.astype(source['dtype']))
  interpreter.invoke()
  return interpreter.get_tensor(
      interpreter.get_output_details()[0]['index']).astype(np.float32)


def write_saved_model(model, path):
  """Writes `model` (plain Keras) as a SavedModel with `serving_default`."""
  spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32,
                       name='images')
  serve = tf.function(lambda images: model(images, training=False),
                      input_signature=[spec])
  module = tf.Module()
  # Track the variables, not the Keras model: saving a Keras model traces
  # every layer's functions too (a MobileNet: 10x slower, 3x larger). Of a
  # Keras 3 model, the TensorFlow variables behind its own.
  module.weights = [compat.tf_variable(w) for w in model.weights]
  module.serve = serve
  tf.saved_model.save(module, path, signatures={'serving_default': serve})


def convert_tflite(saved_model_dir, sparse, quantize=None,
                   representative_images=None):
  """Converts a SavedModel to a TFLite flatbuffer (bytes).

  Args:
    saved_model_dir: from `write_saved_model`.
    sparse: encode sparse weight tensors (`EXPERIMENTAL_SPARSITY`).
    quantize: None, 'float16' (weights) or 'int8' (weights and activations).
    representative_images: float32 images calibrating 'int8'.

  Returns:
    The flatbuffer.
  """
  converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
  optimizations = []
  if quantize:
    optimizations.append(tf.lite.Optimize.DEFAULT)
  if sparse:
    optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
  converter.optimizations = optimizations
  if quantize == 'float16':
    converter.target_spec.supported_types = [tf.float16]
  elif quantize == 'int8':
    def representative():
      for image in representative_images:
        yield [image[None].astype(np.float32)]

    converter.representative_dataset = representative
  return converter.convert()


def micronet_size(model):
  """(sparse, dense) model size in bytes as `rigl_tf.flops` estimates it."""
  report = flops.report_dict(flops.layer_costs(model), include_layers=False)
  return report['size_mb'] * 1e6, report['dense_size_mb'] * 1e6


def export_model(model, export_dir, check_images, quantize=(),
                 representative_images=None):
  """Strips a (masked) model and writes and checks its exported forms.

  Args:
    model: a trained tf_keras model, with or without `MaskedLayer`s.
    export_dir: directory to write into (created).
    check_images: float32 batch whose logits the exports must reproduce.
    quantize: any of `QUANTIZATIONS`: extra sparse quantised TFLite files.
    representative_images: float32 images calibrating int8 quantisation.

  Returns:
    list of `ExportedFile`, in the order written.
  """
  unknown = sorted(set(quantize) - set(QUANTIZATIONS))
  if unknown:
    raise ValueError(f'unknown quantization {unknown}; choose from '
                     f'{", ".join(QUANTIZATIONS)}.')
  check_images = np.asarray(check_images, np.float32)
  reference = model(check_images, training=False).numpy()
  scale = max(1.0, float(np.abs(reference).max()))
  plain = masked_layers.strip(model)
  tf.io.gfile.makedirs(export_dir)
  results = []

  def record(name, path, numerics, outputs):
    results.append(ExportedFile(
        name, path, _size_bytes(path), numerics,
        float(np.abs(outputs - reference).max()),
        TOLERANCE[numerics] * scale,
        float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))))

  saved_model_dir = os.path.join(export_dir, 'saved_model')
  logging.info('Writing %s', saved_model_dir)
  write_saved_model(plain, saved_model_dir)
  loaded = tf.saved_model.load(saved_model_dir)
  outputs = loaded.signatures['serving_default'](
      images=tf.constant(check_images))
  record('saved_model', saved_model_dir, 'float32',
         next(iter(outputs.values())).numpy())
  variants = [('tflite_dense', 'model_dense.tflite', False, None),
              ('tflite_sparse', 'model_sparse.tflite', True, None)]
  variants += [(f'tflite_sparse_{q}', f'model_sparse_{q}.tflite', True, q)
               for q in quantize]
  for name, filename, sparse, quantization in variants:
    logging.info('Converting %s', name)
    content = convert_tflite(saved_model_dir, sparse, quantization,
                             representative_images)
    path = os.path.join(export_dir, filename)
    with tf.io.gfile.GFile(path, 'wb') as f:
      f.write(content)
    record(name, path, quantization or 'float32',
           tflite_predict(content, check_images))
  return results


def format_report(files, micronet):
  """The exported files as a Markdown table, with the MicroNet estimate."""
  lines = ['| file | size (bytes) | max abs logit diff | tolerance | ok | '
           'same top-1 |', '|---|---:|---:|---:|---|---:|']
  for f in files:
    lines.append(f'| {os.path.basename(f.path)} | {f.size_bytes:,} | '
                 f'{f.max_abs_diff:.3g} | {f.tolerance:.3g} | '
                 f'{"yes" if f.matches else "NO"} | {f.top1_agreement:.1%} |')
  sparse, dense = micronet
  lines.append(f'| MicroNet estimate (rigl_tf.flops) | {sparse:,.0f} '
               f'(dense {dense:,.0f}) | | | | |')
  return '\n'.join(lines)


def export_run(output_dir, export_dir=None, checkpoint=None, quantize=(),
               num_check_images=64, data_dir=None):
  """Exports a checkpoint of the training run in `output_dir`.

  Args:
    output_dir: the run's `--output_dir`.
    export_dir: where to write; default `output_dir/export`.
    checkpoint: a checkpoint prefix or a `ckpt-N` name; default the latest.
    quantize: extra quantised sparse TFLite files (`QUANTIZATIONS`).
    num_check_images: evaluation images the exports must reproduce.
    data_dir: tensorflow_datasets data_dir.

  Returns:
    dict with 'checkpoint', 'files' (list of dicts) and
    'micronet_size_bytes' / 'micronet_dense_size_bytes'; also written to
    export_dir/export_report.json.

  Raises:
    UserError: bad input, or an export that does not match.
  """
  unknown = sorted(set(quantize) - set(QUANTIZATIONS))
  if unknown:
    raise UserError(
        f'unknown --quantize {unknown}; choose from '
        f'{", ".join(QUANTIZATIONS)}.')
  run = runs.load_run(output_dir, data_dir)
  path = run.checkpoints[-1]
  if checkpoint:
    path = (checkpoint if tf.io.gfile.exists(checkpoint + '.index')
            else os.path.join(output_dir, checkpoint))
    if not tf.io.gfile.exists(path + '.index'):
      raise UserError(
          f'checkpoint {checkpoint!r} not found; the run has '
          f'{", ".join(os.path.basename(p) for p in run.checkpoints)}.')
  run.restore(path)
  export_dir = export_dir or os.path.join(output_dir, 'export')
  output.make_writable_dir(export_dir, '--export_dir')
  check = run.examples('eval', num_check_images)
  representative = (run.examples('train', 100)
                    if 'int8' in quantize else None)
  files = export_model(run.model, export_dir, check, quantize, representative)
  sparse_size, dense_size = micronet_size(run.model)
  report = {
      'checkpoint': path,
      'files': [dict(dataclasses.asdict(f), matches=f.matches) for f in files],
      'micronet_size_bytes': sparse_size,
      'micronet_dense_size_bytes': dense_size,
      'table': format_report(files, (sparse_size, dense_size)),
  }
  with tf.io.gfile.GFile(os.path.join(export_dir, 'export_report.json'),
                         'w') as f:
    json.dump(report, f, indent=2)
  bad = [f.name for f in files if not f.matches]
  if bad:
    raise UserError(
        f'exported {bad} do not reproduce the checkpoint\'s logits within '
        f'the tolerance; see {export_dir}/export_report.json.')
  return report


def define_flags():
  """Defines the command line's flags (only when run as a program)."""
  flags.DEFINE_string('output_dir', None, 'The training run to export.')
  flags.DEFINE_string('export_dir', None,
                      'Where to write; default OUTPUT_DIR/export.')
  flags.DEFINE_string('checkpoint', None,
                      'Checkpoint prefix or ckpt-N; default the latest.')
  flags.DEFINE_list('quantize', [],
                    f'Extra quantised sparse TFLite files: {QUANTIZATIONS}.')
  flags.DEFINE_string('data_dir', None, 'tensorflow_datasets data_dir.')


def _main(fv):
  report = export_run(fv.output_dir, fv.export_dir, fv.checkpoint,
                      tuple(fv.quantize), data_dir=fv.data_dir)
  print(f'Exported {report["checkpoint"]}:')
  print(report['table'])


if __name__ == '__main__':
  define_flags()
  app.run(errors.cli_main(_main), flags_parser=errors.parse_flags)
