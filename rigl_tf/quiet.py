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
"""Silences TensorFlow's native start-up banners on the command line.

TensorFlow 2.21 prints oneDNN/CUDA notices from C++ before absl logging is
initialised, so TF_CPP_MIN_LOG_LEVEL cannot hide them. The scripts import
TensorFlow and initialise devices inside `native_stderr_silenced()`; Python
exceptions still propagate and print normally. Set RIGL_TF_VERBOSE=1 to see
everything. This module must not import TensorFlow.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
  """Points file descriptor 2 at /dev/null for the duration of the block."""
  if os.environ.get('RIGL_TF_VERBOSE'):
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)
