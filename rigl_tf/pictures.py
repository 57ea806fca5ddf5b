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
"""Pictures of what the masks did: connectivity images, density and ITOP.

During training (`TrainingPictures`, called by `train_lib` on the chief at
every summary step; gin switch `TrainingPictures.enabled`) TensorBoard gets

* `pictures/connectivity_<layer>`: for the first masked layer of an image
  model, the number of active connections of every input pixel, written
  whenever it changed since the last picture (a mask update) and at the end.
  For a Dense layer on the flattened image, pixel (h, w) counts the active
  kernel entries of the inputs (h, w, c) over all channels c and output
  units; for a Conv2D layer, pixel (a, b) of the kh x kw picture counts the
  active entries of kernel tap (a, b) over input and output channels. The
  picture is uint8 `round(255 * count / max(counts))` (rounding half up):
  the busiest pixel of each picture is white, so the pattern shows at any
  density (a fixed 0..dense scale leaves a 90%-sparse layer almost black);
  with max(counts) <= 255 the counts are recovered exactly.
* `pictures/density_and_itop`: per-layer density and the ITOP rate
  (overall and per layer) over training, drawn with matplotlib from the
  very values logged as the scalars `density/<layer>`, `itop_rate`,
  `itop/<layer>`; drawn at the end of the run (TensorBoard's scalar
  charts show the same values live).

The connectivity picture costs next to nothing (a count and a PNG of the
layer's input size); the curves figure costs 0.1-0.5 s of CPU (matplotlib),
once per run. `TrainingPictures.enabled = False` turns both off.
`rigl_tf.visualize` draws the same pictures from a finished run.
"""

import io
import os
import re

import gin
from matplotlib import figure as figure_lib
import numpy as np
from PIL import Image
import tensorflow as tf

from rigl_tf import layers as masked_layers

_DENSITY = re.compile(r'^density/(?!overall$)(.+)$')
_LAYER_ITOP = re.compile(r'^itop/(.+)$')


def connectivity_counts(mask, input_shape):
  """Active connections per input pixel (or kernel tap) of a first layer.

  Args:
    mask: the 0/1 mask of a Dense kernel (n_in, n_out) whose n_in inputs are
      the flattened image, or of a Conv2D kernel (kh, kw, c_in, c_out).
    input_shape: the image shape (height, width, channels).

  Returns:
    (counts, max_count): int64 array (height, width) for a Dense kernel,
    (kh, kw) for a conv, and the count every pixel would have if dense.

  Raises:
    ValueError: for a kernel that is neither.
  """
  mask = np.asarray(mask) != 0
  if mask.ndim == 2 and mask.shape[0] == int(np.prod(input_shape)):
    per_input = mask.sum(axis=1).reshape(tuple(input_shape))
    if per_input.ndim == 3:
      per_input = per_input.sum(axis=2)
    channels = input_shape[2] if len(input_shape) == 3 else 1
    return per_input.astype(np.int64), mask.shape[1] * channels
  if mask.ndim == 4:
    return (mask.sum(axis=(2, 3)).astype(np.int64),
            mask.shape[2] * mask.shape[3])
  raise ValueError(
      f'a kernel of shape {mask.shape} is neither a Dense layer on the '
      f'flattened {tuple(input_shape)} image nor a Conv2D kernel.')


def counts_to_uint8(counts):
  """round(255 * counts / max(counts)), rounding half up, as uint8."""
  counts = np.asarray(counts, np.int64)
  scale = max(int(counts.max()), 1)
  return ((510 * counts + scale) // (2 * scale)).astype(np.uint8)


def read_scalars(logdir, max_step=None):
  """The scalars of TensorBoard event files: tag -> (steps, values).

  Args:
    logdir: directory with `events.out.tfevents.*` files (e.g. RUN/train).
    max_step: ignore events after this step (those of a run that resumed).

  Returns:
    dict tag -> (list of steps, list of float values), in step order; a step
    written twice keeps its last value.
  """
  by_tag = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(logdir, 'events.*'))):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      if max_step is not None and event.step > max_step:
        continue
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name != 'scalars':
          continue
        by_tag.setdefault(value.tag, {})[event.step] = float(
            tf.make_ndarray(value.tensor))
  return {tag: (sorted(points), [points[s] for s in sorted(points)])
          for tag, points in by_tag.items()}


def is_curve_tag(tag):
  """Whether a scalar's tag is drawn by `curves_figure`."""
  return bool(_DENSITY.match(tag) or _LAYER_ITOP.match(tag)
              or tag == 'itop_rate')


# Beyond this many lines an axes gets no legend (it would not fit).
_MAX_LEGEND_ENTRIES = 12


def curves_figure(history):
  """Per-layer density and ITOP rate over training, as a matplotlib Figure.

  Args:
    history: tag -> (steps, values), with tags `density/<layer>`,
      `itop_rate` and `itop/<layer>` (as `read_scalars` returns them).

  Returns:
    A Figure with two axes: densities (one line per layer, labelled by
    layer), then ITOP rates (`overall`, then one line per layer). An axes
    with more than 12 lines has no legend; its title counts the lines.
  """
  # A bare Figure, not pyplot: no GUI backend is selected or needed.
  fig = figure_lib.Figure(figsize=(9, 3.6), dpi=80)
  density_ax, itop_ax = fig.subplots(1, 2)
  for tag, (steps, values) in sorted(history.items()):
    match = _DENSITY.match(tag)
    if match:
      density_ax.plot(steps, values, marker='.', label=match.group(1))
  if 'itop_rate' in history:
    steps, values = history['itop_rate']
    itop_ax.plot(steps, values, color='black', linewidth=2, label='overall')
  for tag, (steps, values) in sorted(history.items()):
    match = _LAYER_ITOP.match(tag)
    if match:
      itop_ax.plot(steps, values, linestyle='--', label=match.group(1))
  for ax, title in ((density_ax, 'density per layer'),
                    (itop_ax, 'ITOP rate (ever-active fraction)')):
    ax.set_title(title)
    ax.set_xlabel('step')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if 0 < len(ax.lines) <= _MAX_LEGEND_ENTRIES:
      ax.legend(fontsize='small')
    elif ax.lines:  # A ResNet-50's 54 names would not fit the figure.
      ax.set_title(f'{title} ({len(ax.lines)} lines)')
  fig.tight_layout()
  return fig


def connectivity_figure(counts, max_count, title):
  """The counts as a heat map with a colour bar on the scale 0..max_count."""
  height, width = counts.shape
  fig = figure_lib.Figure(figsize=(4.2, 3.6), dpi=80)
  ax = fig.subplots()
  shown = ax.imshow(counts, cmap='viridis', vmin=0, vmax=max_count,
                    interpolation='nearest')
  ax.set_xticks(range(width) if width <= 16 else [])
  ax.set_yticks(range(height) if height <= 16 else [])
  ax.set_title(title)
  fig.colorbar(shown, ax=ax, label='active connections')
  fig.tight_layout()
  return fig


def figure_to_rgb(fig):
  """Renders a Figure to a uint8 (height, width, 3) array (Agg backend)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png')
  buffer.seek(0)
  return np.array(Image.open(buffer).convert('RGB'))


def first_masked_weight(model):
  """The first `MaskedWeight` of `model`, or None for a dense model."""
  weights = masked_layers.get_masked_weights(model)
  return weights[0] if weights else None


@gin.configurable
class TrainingPictures:
  """Writes the TensorBoard pictures of a training run (the chief only).

  Call `write(step, scalars)` under the train writer's default, with the
  updater's summaries just logged. Keeps the logged values (and, on resume,
  reads the earlier ones back from `logdir`) to draw the curves.
  """

  def __init__(self, model, input_shape, logdir=None, start_step=0,
               enabled=True):
    """Creates the writer of pictures.

    Args:
      model: the (masked) model being trained.
      input_shape: the image shape (height, width, channels).
      logdir: the train summaries' directory, read back on resume.
      start_step: the step training starts (or resumes) at.
      enabled: gin switch; False writes no picture.
    """
    self.enabled = enabled
    self._input_shape = tuple(input_shape)
    self._first = first_masked_weight(model) if enabled else None
    self._last_counts = None
    self._history = {}
    if enabled and start_step and logdir and tf.io.gfile.isdir(logdir):
      for tag, (steps, values) in read_scalars(logdir, start_step).items():
        if is_curve_tag(tag):
          self._history[tag] = (list(steps), list(values))

  def _counts(self):
    if self._first is None:
      return None
    try:
      return connectivity_counts(self._first.mask.numpy(), self._input_shape)
    except ValueError:
      return None  # Not an image layer: no connectivity picture.

  def write(self, step, scalars, final=False):
    """Writes the connectivity picture if it changed; all pictures at the end.

    Args:
      step: the current step.
      scalars: dict tag -> scalar, as logged (`density/<layer>`, ...).
      final: the last write of the run.
    """
    if not self.enabled:
      return
    for tag, value in scalars.items():
      if is_curve_tag(tag):
        steps, values = self._history.setdefault(tag, ([], []))
        if steps and steps[-1] == step:
          values[-1] = float(value)
        else:
          steps.append(step)
          values.append(float(value))
    counts = self._counts()
    if counts is not None and (final or self._last_counts is None or
                               not np.array_equal(counts[0],
                                                  self._last_counts)):
      self._last_counts = counts[0]
      image = counts_to_uint8(counts[0])
      tf.summary.image(f'pictures/connectivity_{self._first.name}',
                       image[None, :, :, None], step=step)
    if self._history and final:
      tf.summary.image('pictures/density_and_itop',
                       figure_to_rgb(curves_figure(self._history))[None],
                       step=step)
