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
r"""Draws a finished run's pictures into PNG files and an animated GIF.

  python -m rigl_tf.visualize --output_dir=/tmp/run [--pictures_dir=...]

writes into OUTPUT_DIR/pictures: one `connectivity_<step>.png` per saved
checkpoint (its mask state) of the first masked layer's active connections
per input pixel (`rigl_tf.pictures.connectivity_counts`), all drawn on one
colour scale (0 to the largest count of any state); `connectivity.gif`
animating them (one frame per checkpoint, oldest first); and
`density_and_itop.png`: per-layer density and the ITOP rate over training,
from the run's TensorBoard scalars. Keep more mask states with
`train_eval.keep_checkpoints` and `train_eval.checkpoint_every`.
"""

import os
import sys

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
from PIL import Image  # noqa: E402

from rigl_tf import errors  # noqa: E402
from rigl_tf import pictures  # noqa: E402
from rigl_tf import runs  # noqa: E402
from rigl_tf.train import checkpoints  # noqa: E402
from rigl_tf.train import output  # noqa: E402


def _step_of(checkpoint):
  return int(checkpoint.rsplit('-', 1)[1])


def render_run(output_dir, pictures_dir=None, frame_ms=400):
  """Draws a finished run's pictures into PNG files and an animated GIF.

  Args:
    output_dir: the run's `--output_dir`.
    pictures_dir: where to write; default `output_dir/pictures`.
    frame_ms: duration of a GIF frame.

  Returns:
    list of the paths written.

  Raises:
    UserError: no run or no checkpoint there.
  """
  run = runs.load_run(output_dir)
  pictures_dir = pictures_dir or os.path.join(output_dir, 'pictures')
  output.make_writable_dir(pictures_dir, '--pictures_dir')
  written = []
  frames = []
  states = []  # (step, counts) of every saved mask state.
  first = pictures.first_masked_weight(run.model)
  for checkpoint in run.checkpoints if first is not None else []:
    if not checkpoints.is_readable(checkpoint):
      print(f'warning: skipping checkpoint {checkpoint}: it is truncated or '
            'corrupt.', file=sys.stderr, flush=True)
      continue
    run.restore(checkpoint, check=False)
    try:
      counts, _ = pictures.connectivity_counts(first.mask.numpy(),
                                               run.info.input_shape)
    except ValueError as e:
      logging.warning('No connectivity pictures: %s', e)
      break
    states.append((_step_of(checkpoint), counts))
  # One colour scale for all frames: 0 .. the largest count of any state.
  top = max([int(counts.max()) for _, counts in states] + [1])
  for step, counts in states:
    fig = pictures.connectivity_figure(
        counts, top, f'{first.name}: active connections, step {step}')
    frame = Image.fromarray(pictures.figure_to_rgb(fig))
    path = os.path.join(pictures_dir, f'connectivity_{step}.png')
    frame.save(path)
    written.append(path)
    frames.append(frame)
  if frames:
    path = os.path.join(pictures_dir, 'connectivity.gif')
    frames[0].save(path, save_all=True, append_images=frames[1:],
                   duration=frame_ms, loop=0)
    written.append(path)
  history = pictures.read_scalars(os.path.join(output_dir, 'train'))
  history = {tag: curve for tag, curve in history.items()
             if pictures.is_curve_tag(tag)}
  if history:
    path = os.path.join(pictures_dir, 'density_and_itop.png')
    rgb = pictures.figure_to_rgb(pictures.curves_figure(history))
    Image.fromarray(rgb).save(path)
    written.append(path)
  return written


def define_flags():
  """Defines the command line's flags (only when run as a program)."""
  flags.DEFINE_string('output_dir', None, 'The finished training run to draw.')
  flags.DEFINE_string('pictures_dir', None,
                      'Where to write; default OUTPUT_DIR/pictures.')


def _main(flag_values):
  for path in render_run(flag_values.output_dir, flag_values.pictures_dir):
    print(path)


if __name__ == '__main__':
  define_flags()
  app.run(errors.cli_main(_main), flags_parser=errors.parse_flags)
