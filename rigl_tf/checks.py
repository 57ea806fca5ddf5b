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
"""Small shared checks of configured values, each a one-line error."""

import math


def check_choice(value, choices, what, error=ValueError):
  """Raises `error` unless `value` is one of `choices`.

  Args:
    value: the configured value.
    choices: the allowed values, in the order the message lists them.
    what: its name in the message, e.g. 'grow_init'.
    error: the exception class.
  """
  if value not in choices:
    raise error(f'Unknown {what} {value!r}; choose one of '
                f'{", ".join(map(str, choices))}.')


def check_range(value, what, low=None, high=None, low_open=False,
                high_open=False):
  """Raises ValueError unless `value` lies between `low` and `high`.

  Args:
    value: the configured number.
    what: its name in the message.
    low: the smallest allowed value (None: no bound).
    high: the largest (None: no bound).
    low_open: exclude `low` itself.
    high_open: exclude `high` itself.
  """
  ok = not math.isnan(value)
  if low is not None:
    ok = ok and (value > low if low_open else value >= low)
  if high is not None:
    ok = ok and (value < high if high_open else value <= high)
  if ok:
    return
  if high is None:
    bound = f'{">" if low_open else ">="} {low:g}'
  elif low is None:
    bound = f'{"<" if high_open else "<="} {high:g}'
  else:
    bound = (f'in {"(" if low_open else "["}{low:g}, {high:g}'
             f'{")" if high_open else "]"}')
  raise ValueError(f'{what} must be {bound}, got {value}.')
