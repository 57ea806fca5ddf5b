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
"""The wrapped optimizer and its learning-rate schedule (`make_optimizer`).

gin: `make_optimizer.name` ('sgd', 'adam'), `.learning_rate`, `.schedule`
('constant', 'cosine', 'piecewise'), `.warmup_steps`, ...; or
`make_optimizer.schedule_fn = @epoch_schedule` for RigL's ImageNet recipe.
"""

import dataclasses
import math
from typing import Sequence

import gin
import keras as keras3
import tensorflow as tf
import tf_keras as keras

from rigl_tf import checks
from rigl_tf import flavours
from rigl_tf.errors import UserError


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
  """A schedule whose dataclass fields are its config (numbers normalised)."""

  def __post_init__(self):
    super().__init__()
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.type in (int, float):
        value = field.type(value)
      elif field.type in (Sequence[int], Sequence[float]):
        value = [field.type.__args__[0](v) for v in value]
      setattr(self, field.name, value)

  def get_config(self):
    return dataclasses.asdict(self)


@dataclasses.dataclass(eq=False)
class WarmupSchedule(_Schedule):
  """Linear warm-up to `base`, then constant/cosine/piecewise decay."""
  base: float
  kind: str
  train_steps: int
  warmup_steps: int = 0
  boundaries: Sequence[int] = ()
  multipliers: Sequence[float] = ()
  alpha: float = 0.0

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    if self.kind == 'cosine':
      span = max(self.train_steps - self.warmup_steps, 1)
      progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
      cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
      lr = self.base * ((1.0 - self.alpha) * cosine + self.alpha)
    elif self.kind == 'piecewise':
      lr = tf.constant(self.base)
      for boundary, multiplier in zip(self.boundaries, self.multipliers):
        lr = tf.where(step >= boundary, self.base * multiplier, lr)
    else:
      lr = tf.constant(self.base)
    if self.warmup_steps > 0:
      lr = lr * tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
    return lr


class _Keras3Schedule(keras3.optimizers.schedules.LearningRateSchedule):
  """One of these schedules as a Keras 3 optimizer takes it."""

  def __init__(self, schedule):
    self.schedule = schedule

  def __call__(self, step):
    return self.schedule(tf.convert_to_tensor(step))

  def get_config(self):
    return self.schedule.get_config()


def _schedule_for(keras_module, schedule):
  return _Keras3Schedule(schedule) if keras_module is keras3 else schedule


OPTIMIZERS = {
    'sgd': lambda k, lr, momentum, nesterov: k.optimizers.SGD(
        _schedule_for(k, lr), momentum=momentum, nesterov=nesterov),
    'adam': lambda k, lr, momentum, nesterov: k.optimizers.Adam(
        _schedule_for(k, lr)),
}
SCHEDULES = ('constant', 'cosine', 'piecewise')


@dataclasses.dataclass(eq=False)
class EpochSchedule(_Schedule):
  """RigL's ImageNet schedule: linear warm-up, then step decay, in epochs.

  The epoch is the fractional `step * batch_size / num_train_examples`.
  The learning rate is `base_learning_rate * batch_size / 256`, scaled
  linearly from 0 over the warm-up epochs, then multiplied by
  `multipliers[i]` from epoch `decay_epochs[i]` on. `steps_multiplier`
  stretches every epoch boundary (RigL's `training_steps_multiplier`).
  """
  batch_size: int
  num_train_examples: int
  base_learning_rate: float
  warmup_epochs: float
  decay_epochs: Sequence[float]
  multipliers: Sequence[float]
  steps_multiplier: float = 1.0

  def __call__(self, step):
    scaled = self.base_learning_rate * self.batch_size / 256.0
    epoch = (tf.cast(step, tf.float32) * self.batch_size
             / self.num_train_examples / self.steps_multiplier)
    lr = tf.constant(scaled)
    if self.warmup_epochs > 0:
      lr = scaled * tf.minimum(epoch / self.warmup_epochs, 1.0)
    for start, multiplier in zip(self.decay_epochs, self.multipliers):
      lr = tf.where(epoch >= start, scaled * multiplier, lr)
    return lr


@gin.configurable
def epoch_schedule(batch_size,
                   steps_multiplier=1.0,
                   num_train_examples=1_281_167,
                   base_learning_rate=0.1,
                   warmup_epochs=5,
                   decay_epochs=(30, 70, 90),
                   multipliers=(0.1, 0.01, 0.001)):
  """An `EpochSchedule`; defaults: RigL's ResNet-50 ImageNet recipe.

  Bind as `make_optimizer.schedule_fn = @epoch_schedule`.

  Args:
    batch_size: global batch size (the trainer passes it).
    steps_multiplier: the run's training_steps_multiplier (passed).
    num_train_examples: examples per epoch (ImageNet: 1,281,167).
    base_learning_rate: learning rate per 256 images.
    warmup_epochs: linear warm-up from 0.
    decay_epochs: epochs where the multiplier changes.
    multipliers: multipliers of the scaled rate from each of those epochs.

  Returns:
    The schedule.
  """
  if len(decay_epochs) != len(multipliers):
    raise UserError('epoch_schedule.decay_epochs and multipliers must have '
                    'the same length.')
  return EpochSchedule(batch_size, num_train_examples, base_learning_rate,
                       warmup_epochs, decay_epochs, multipliers,
                       steps_multiplier)


@gin.configurable(denylist=['batch_size', 'steps_multiplier', 'flavour'])
def make_optimizer(train_steps, batch_size=None, steps_multiplier=1.0,
                   flavour=flavours.TF_KERAS, name='sgd', learning_rate=0.1,
                   momentum=0.9, nesterov=False, schedule='constant',
                   warmup_steps=0, boundaries=(), multipliers=(),
                   end_learning_rate_factor=0.0, schedule_fn=None):
  """The wrapped (inner) optimizer and its learning-rate schedule.

  Args:
    train_steps: total training steps (for the cosine decay), already
      multiplied by `steps_multiplier`.
    batch_size: the global batch size (for `schedule_fn`).
    steps_multiplier: training_steps_multiplier; stretches `warmup_steps`
      and `boundaries` as it stretched `train_steps`.
    flavour: the Keras flavour of the optimizer ('tf_keras' or 'keras3';
      the run's `train_eval.keras`).
    name: 'sgd' or 'adam'.
    learning_rate: base learning rate.
    momentum: SGD momentum.
    nesterov: SGD Nesterov momentum.
    schedule: 'constant', 'cosine' or 'piecewise'.
    warmup_steps: linear warm-up steps.
    boundaries: piecewise: steps where the multiplier changes.
    multipliers: piecewise: learning-rate multipliers from each boundary on.
    end_learning_rate_factor: cosine: final lr as a fraction of the base.
    schedule_fn: fn(batch_size=, steps_multiplier=) -> schedule, replacing
      learning_rate/schedule/warmup_steps/boundaries (e.g. `epoch_schedule`).

  Returns:
    (optimizer, schedule) where schedule(step) gives the learning rate.
  """
  checks.check_choice(name, sorted(OPTIMIZERS), 'optimizer', UserError)
  checks.check_choice(schedule, SCHEDULES, 'learning-rate schedule',
                      UserError)
  if len(boundaries) != len(multipliers):
    raise UserError('make_optimizer.boundaries and multipliers must have the '
                    'same length.')
  if schedule_fn is not None:
    lr = schedule_fn(batch_size=batch_size, steps_multiplier=steps_multiplier)
  else:
    lr = WarmupSchedule(
        learning_rate, schedule, train_steps,
        round(warmup_steps * steps_multiplier),
        [round(b * steps_multiplier) for b in boundaries], multipliers,
        end_learning_rate_factor)
  return OPTIMIZERS[name](flavours.module(flavour), lr, momentum, nesterov), lr
