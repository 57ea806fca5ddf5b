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
"""Runs commands as fresh processes forked from one that imported TensorFlow.

Importing TensorFlow and its Keras takes about 6 s of CPU, most of a short
command's run. `ForkServer` starts one Python process that imports the
third-party libraries only (no TensorFlow op runs, so its runtime, threads
and devices are not initialised), then forks one child per command. The
child points its stdout and stderr at files, takes the command's argv,
working directory and environment, and runs the script (`runpy.run_path`)
or module (`runpy.run_module`) as `__main__`. It exits like the interpreter
would, after its atexit handlers and finalisation, with the command's exit
status.
"""

import json
import os
import select
import signal
import subprocess
import sys
import tempfile

_SERVER = r'''
import json, os, runpy, sys
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
from rigl_tf import quiet
with quiet.native_stderr_silenced():
  import absl.app, gin, matplotlib, numpy, PIL.Image  # noqa
  import tensorflow, tf_keras, tensorflow_datasets  # noqa
  import tensorflow_model_optimization  # noqa
print('ready', flush=True)
for line in sys.stdin:
  request = json.loads(line)
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    for fd, path in ((1, request['stdout']), (2, request['stderr'])):
      os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.chdir(request['cwd'])
    os.environ.clear()
    os.environ.update(request['env'])
    sys.argv = list(request['argv'])
    if sys.argv[0] == '-m':
      # As `python -m`: argv[0] is '-m' while the package is imported, then
      # the module's path.
      sys.argv = ['-m'] + sys.argv[2:]
      runpy.run_module(request['argv'][1], run_name='__main__',
                       alter_sys=True)
    else:
      sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
      runpy.run_path(sys.argv[0], run_name='__main__')
    sys.exit(0)
  _, status = os.waitpid(pid, 0)
  print(os.waitstatus_to_exitcode(status), flush=True)
'''


class Result:
  """What a command left: `returncode`, `stdout`, `stderr` (text)."""

  def __init__(self, returncode, stdout, stderr):
    self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


class ForkServer:
  """One server process; `run(argv, cwd, env)` forks a command from it."""

  def __init__(self, env, cwd):
    self._process = subprocess.Popen(
        [sys.executable, '-c', _SERVER], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, env=env, cwd=cwd,
        start_new_session=True)
    self._expect_line(300, 'start')

  def _expect_line(self, timeout, what):
    ready, _, _ = select.select([self._process.stdout], [], [], timeout)
    if not ready:
      self.close()
      raise TimeoutError(f'the fork server did not {what} in {timeout} s')
    return self._process.stdout.readline().strip()

  def run(self, argv, cwd, env, timeout=300):
    """Runs `argv` (script path or '-m', module, then arguments)."""
    with tempfile.TemporaryDirectory() as tmp:
      out, err = os.path.join(tmp, 'stdout'), os.path.join(tmp, 'stderr')
      self._process.stdin.write(json.dumps(dict(
          argv=list(argv), cwd=cwd, env=dict(env), stdout=out,
          stderr=err)) + '\n')
      self._process.stdin.flush()
      returncode = int(self._expect_line(timeout, 'finish a command'))
      with open(out) as f_out, open(err) as f_err:
        return Result(returncode, f_out.read(), f_err.read())

  def close(self):
    if self._process.poll() is None:
      os.killpg(self._process.pid, signal.SIGKILL)
      self._process.wait()
