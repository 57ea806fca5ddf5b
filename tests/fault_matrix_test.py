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
"""The fault matrix: every entry point against every fault, as a user runs it.

Each row of `MATRIX` is one cell: an entry point (`ENTRY_POINTS`: the real
scripts, each cell a process of its own: started afresh for the
`FRESH_PROCESS` faults, forked from one that imported TensorFlow already for
the others, see fork_server.py), a fault (`FAULTS`: what is done to a copy of
one small trained digits run, or to the command line), and what must come
out:

* stderr holds exactly one line, and it matches the row's pattern (an
  `error:` line, or the documented `warning:`); None: stderr is empty;
* the exit status is the row's (1 for an error, 0 where the fault is
  handled);
* a failed cell writes nothing: no new file or directory, no rewritten
  `report.json`, `export_report.json` or `eval_report.json`.

A new entry point or fault is one entry in its table and one row here.
"""

import atexit
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

from absl.testing import parameterized
import fork_server
import gin
import tensorflow as tf

from mnist import models  # noqa: F401  (registers the gin models)
from rigl_tf import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'configs/mnist/quickstart_digits.gin'
# The shared run: RigL on the digits LeNet, checkpoints ckpt-10 and ckpt-20.
BINDINGS = ("train_eval.method = 'rigl'", 'train_eval.train_steps = 20',
            'train_eval.checkpoint_every = 10', 'train_eval.log_every = 10',
            'RigL.update_frequency = 5', 'train_eval.eval_timeout = 1')
RESULT_FILES = ('report.json', 'export_report.json', 'eval_report.json')
# The read-only directory of a cell (immutable when the tests run as root,
# who may write anywhere else).
READ_ONLY_DIR = 'read_only'
SYSFS = '/sys'


def _train_script(mode, *extra):
  return [os.path.join(ROOT, 'mnist', 'train_eval.py'),
          f'--gin_config={CONFIG}', f'--mode={mode}',
          *[f'--gin_bindings={b}' for b in BINDINGS], *extra]


# entry point -> fn(cell) -> arguments after the Python interpreter. `cell`
# gives the paths the fault chose: `run` (the run directory given), `out`
# (where the entry point is told to write), `flags` (extra flags).
ENTRY_POINTS = {
    'train': lambda c: _train_script('train', f'--output_dir={c.out or c.run}',
                                     *c.gin, *c.flags),
    'eval_once': lambda c: _train_script('eval_once', f'--output_dir={c.run}',
                                         *c.gin, *c.flags),
    'eval': lambda c: _train_script('eval', f'--output_dir={c.run}',
                                    *c.gin, *c.flags),
    'export': lambda c: ['-m', 'rigl_tf.export', f'--output_dir={c.run}',
                         *([f'--export_dir={c.out}'] if c.out else []),
                         *c.flags],
    'visualize': lambda c: ['-m', 'rigl_tf.visualize', f'--output_dir={c.run}',
                            *([f'--pictures_dir={c.out}'] if c.out else []),
                            *c.flags],
    'flops': lambda c: ['-m', 'rigl_tf.flops', '--model=lenet_300_100',
                        '--sparsity=0.9', *c.flags],
}

# run: the run directory given; out: where the entry point is told to write
# (None: its default); gin: bindings for the task scripts (the others read
# the run's operative_config.gin); flags: more flags.
Cell = collections.namedtuple('Cell', 'run out gin flags')
Cell.__new__.__defaults__ = (None, (), ())


def _latest(run, suffix):
  return os.path.join(run, 'ckpt-20' + suffix)


def _truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _garble(path):
  size = os.path.getsize(path)
  with open(path, 'wb') as f:
    f.write(bytes((7 * i + 3) % 251 for i in range(size)))


def _make_read_only(path):
  """Makes directory `path` unwritable, for root too; the directory to use.

  Root writes anywhere: there the directory is made immutable, or, where
  chattr cannot, sysfs (which refuses new files to root) stands in.
  """
  if os.geteuid() != 0:
    os.chmod(path, 0o555)
    return path
  try:
    result = subprocess.run(['chattr', '+i', path], capture_output=True,
                            check=False)
  except OSError:  # No chattr.
    return SYSFS
  return path if result.returncode == 0 else SYSFS


def _make_writable(path):
  if not os.path.isdir(path):
    return
  if os.geteuid() != 0:
    os.chmod(path, 0o755)
    return
  try:
    subprocess.run(['chattr', '-i', path], capture_output=True, check=False)
  except OSError:
    pass


def _copy_run(workspace, shared):
  run = os.path.join(workspace, 'run')
  shutil.copytree(shared, run)
  return run


def _fault_missing(workspace, shared):
  return Cell(os.path.join(workspace, 'no_such_run'))


def _fault_empty(workspace, shared):
  run = os.path.join(workspace, 'empty')
  os.makedirs(run)
  return Cell(run)


def _fault_on_latest(change, suffix):

  def fault(workspace, shared):
    run = _copy_run(workspace, shared)
    change(_latest(run, suffix))
    return Cell(run)

  return fault


def _fault_other_model(workspace, shared):
  """The run's checkpoints, configured as another model (50 hidden units)."""
  run = _copy_run(workspace, shared)
  binding = 'lenet_300_100.hidden = (50,)'
  with open(os.path.join(run, 'operative_config.gin'), 'a') as f:
    f.write(f'\n{binding}\n')
  return Cell(run, gin=[f'--gin_bindings={binding}'])


def _fault_output_is_file(workspace, shared):
  path = os.path.join(workspace, 'a_file')
  with open(path, 'w') as f:
    f.write('not a directory\n')
  return Cell(_copy_run(workspace, shared), path)


def _fault_output_under_file(workspace, shared):
  cell = _fault_output_is_file(workspace, shared)
  return cell._replace(out=os.path.join(cell.out, 'out'))


def _fault_read_only_output(workspace, shared):
  read_only = os.path.join(workspace, READ_ONLY_DIR)
  os.makedirs(read_only)
  read_only = _make_read_only(read_only)
  return Cell(_copy_run(workspace, shared), os.path.join(read_only, 'out'))


def _with_flags(*flags_):

  def fault(workspace, shared):
    return Cell(_copy_run(workspace, shared), flags=list(flags_))

  return fault


FAULTS = {
    'missing': _fault_missing,
    'empty': _fault_empty,
    'truncated_index': _fault_on_latest(_truncate, '.index'),
    'truncated_data': _fault_on_latest(_truncate, '.data-00000-of-00001'),
    'garbage_data': _fault_on_latest(_garble, '.data-00000-of-00001'),
    'other_model': _fault_other_model,
    'output_is_file': _fault_output_is_file,
    'output_under_file': _fault_output_under_file,
    'read_only_output': _fault_read_only_output,
    'unknown_flag': _with_flags('--no_such_flag=1'),
    'bad_gin_value': _with_flags('--gin_bindings=train_eval.sparsity = 1.2'),
    'unknown_binding': _with_flags('--gin_bindings=train_eval.no_such = 1'),
    # The same model, resumed with another method (no drop fraction, ...).
    'other_method': _with_flags("--gin_bindings=train_eval.method = 'static'"),
    'unknown_method': _with_flags(
        "--gin_bindings=train_eval.method = 'magic'"),
    'bad_flag_value': _with_flags('--sparsity=1.5'),
    'unknown_model': _with_flags('--model=no_such_model'),
    # Not faults but the restarts that once printed misleading warnings: the
    # finished run started again, and resumed for 10 more steps.
    'finished_run': _with_flags(),
    'resumed_run': _with_flags('--gin_bindings=train_eval.train_steps = 30'),
}

UNKNOWN_FLAG = (r"^error: Unknown command line flag 'no_such_flag' \(see "
                r"--help\)\.$")
TRUNCATED = (r'^error: cannot read checkpoint {run}/ckpt-20: it is truncated '
             r'or corrupt .*; the previous complete checkpoint is '
             r'{run}/ckpt-10')
NO_RUN = r"^error: no training run in '{run}'"
NOT_A_DIR = r'^error: cannot write to {what} {path}: .*not a directory'
READ_ONLY = (r'^error: cannot write to {what} {path}: (permission denied|'
             r'read-only file system)')
OTHER_MODEL = r'^error: checkpoint {run}/ckpt-20 does not match'

# (entry point, fault, exit status, stderr's one line or None for none).
MATRIX = [
    ('train', 'truncated_data', 0,
     r'^warning: checkpoint {run}/ckpt-20 is unreadable \(truncated or '
     r'corrupt\); trying the previous one\.$'),
    ('train', 'other_model', 1, OTHER_MODEL),
    ('train', 'other_method', 0,
     r'^warning: checkpoint {run}/ckpt-20 holds [1-9]\d* values this run has '
     r'no variable for \(optimizer\.mask_updater\..*\): they are ignored'),
    ('train', 'output_is_file', 1, NOT_A_DIR.format(what='--output_dir',
                                                    path='{out}')),
    ('train', 'output_under_file', 1,
     NOT_A_DIR.format(what='--output_dir', path='{out}')),
    ('train', 'read_only_output', 1,
     READ_ONLY.format(what='--output_dir', path='{out}')),
    ('train', 'unknown_flag', 1, UNKNOWN_FLAG),
    ('train', 'bad_gin_value', 1,
     r'^error: train_eval\.sparsity must be in \[0, 1\) .*, got 1\.2\.$'),
    ('train', 'unknown_binding', 1,
     r"^error: bad gin configuration: Configurable 'train_eval' doesn't "
     r"have a parameter named 'no_such'"),
    ('train', 'unknown_method', 1,
     r"^error: Unknown sparse training method 'magic'; choose one of: "),
    ('train', 'finished_run', 0, None),
    ('train', 'resumed_run', 0, None),
    ('eval_once', 'missing', 1,
     r"^error: checkpoint '{run}' not found: pass --eval_once_ckpt"),
    ('eval_once', 'empty', 1, r'^error: no checkpoint in {run}: train there'),
    ('eval_once', 'truncated_index', 1,
     r'^error: cannot read checkpoint {run}/ckpt-20: it is truncated or '
     r'corrupt'),
    ('eval_once', 'truncated_data', 1, TRUNCATED),
    ('eval_once', 'garbage_data', 1, TRUNCATED),
    ('eval_once', 'other_model', 1, OTHER_MODEL),
    ('eval_once', 'unknown_flag', 1, UNKNOWN_FLAG),
    ('eval_once', 'finished_run', 0, None),
    # Continuous evaluation waits for a training run's checkpoints: none
    # (or only a truncated one) within eval_timeout ends it, handled.
    ('eval', 'missing', 0, None),
    ('eval', 'truncated_data', 0,
     r'^warning: skipping checkpoint {run}/ckpt-20: cannot read checkpoint '
     r'{run}/ckpt-20: it is truncated or corrupt'),
    ('eval', 'unknown_flag', 1, UNKNOWN_FLAG),
    ('export', 'missing', 1, NO_RUN),
    ('export', 'empty', 1, NO_RUN),
    ('export', 'truncated_index', 1,
     r'^error: cannot read checkpoint {run}/ckpt-20: it is truncated or '
     r'corrupt'),
    ('export', 'truncated_data', 1, TRUNCATED),
    ('export', 'other_model', 1,
     r'^error: checkpoint {run}/ckpt-20 does not match the model of '
     r'{run}/operative_config.gin'),
    ('export', 'output_is_file', 1,
     NOT_A_DIR.format(what='--export_dir', path='{out}')),
    ('export', 'read_only_output', 1,
     READ_ONLY.format(what='--export_dir', path='{out}')),
    ('export', 'unknown_flag', 1, UNKNOWN_FLAG),
    ('visualize', 'missing', 1, NO_RUN),
    ('visualize', 'truncated_data', 0,
     r'^warning: skipping checkpoint {run}/ckpt-20: it is truncated or '
     r'corrupt\.$'),
    ('visualize', 'output_under_file', 1,
     NOT_A_DIR.format(what='--pictures_dir', path='{out}')),
    ('visualize', 'unknown_flag', 1, UNKNOWN_FLAG),
    ('flops', 'unknown_flag', 1, UNKNOWN_FLAG),
    ('flops', 'bad_flag_value', 1,
     r'^error: flag --sparsity=1\.5: --sparsity must be in \[0, 1\)'),
    ('flops', 'unknown_model', 1, r"^error: .*'no_such_model'"),
]

# What stdout must show, for the cells that are handled.
STDOUT = {
    ('train', 'finished_run'): r'(?m)^{run} already finished at step 20; '
                               r'its report: {run}/report\.json',
    ('train', 'resumed_run'): r'(?m)^Resumed from {run}/ckpt-20 at step 20',
    ('train', 'truncated_data'): r'(?m)^Resumed from {run}/ckpt-10 at step 10',
    ('eval_once', 'finished_run'):
        r'(?m)^invariant: every masked weight is exactly zero\.$',
    ('eval', 'missing'): r'(?m)^No new checkpoint in {run} for 1 s',
    ('visualize', 'truncated_data'): r'(?m)^{run}/pictures/connectivity_10',
}

# The cells that run in a process of their own from the start, as a user's
# command does: TensorFlow's start-up output included. The others fork from
# a process that imported TensorFlow already (tests/fork_server.py), which
# saves the 6 s of that import per cell.
FRESH_PROCESS = ('unknown_flag',)

_shared = {}


def _shared_run():
  """The trained digits run every cell copies (one per test process)."""
  if 'run' not in _shared:
    directory = tempfile.mkdtemp()
    os.chmod(directory, 0o755)
    run = os.path.join(directory, 'run')
    # The cells read the digits prepared here.
    _shared['data_dir'] = os.path.join(directory, 'tensorflow_datasets')
    gin.clear_config()
    train.parse_gin([os.path.join(ROOT, CONFIG)],
                    [*BINDINGS, 'train_eval.quiet = True'])
    train.train_eval(output_dir=run, mode='train',
                     data_dir=_shared['data_dir'])
    gin.clear_config()
    _shared['run'] = run
  return _shared['run']


def _env():
  return dict(os.environ, PYTHONPATH=ROOT, TFDS_DATA_DIR=_shared['data_dir'])


def _fork_server():
  """The process the cells fork from (one per test process)."""
  if 'fork_server' not in _shared:
    _shared['fork_server'] = fork_server.ForkServer(_env(), ROOT)
    atexit.register(_shared['fork_server'].close)
  return _shared['fork_server']


def _listing(workspace):
  """Every path under `workspace`, with the mtimes of result files."""
  found = {}
  for root, dirs, files in os.walk(workspace):
    for name in dirs + files:
      path = os.path.join(root, name)
      found[path] = (os.stat(path).st_mtime_ns if name in RESULT_FILES
                     else None)
  return found


def _cell_name(row):
  return f'{row[0]}_{row[1]}'


class FaultMatrixTest(parameterized.TestCase):

  @parameterized.named_parameters((_cell_name(row), *row) for row in MATRIX)
  def test_cell(self, entry, fault, exit_status, pattern):
    workspace = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, workspace, ignore_errors=True)
    self.addCleanup(_make_writable, os.path.join(workspace, READ_ONLY_DIR))
    cell = FAULTS[fault](workspace, _shared_run())
    before = _listing(workspace)
    argv = ENTRY_POINTS[entry](cell)
    if fault in FRESH_PROCESS:
      result = subprocess.run([sys.executable, *argv], capture_output=True,
                              text=True, timeout=300, env=_env(), cwd=ROOT)
    else:
      result = _fork_server().run(argv, ROOT, _env())
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    context = f'{entry} x {fault}:\n{result.stderr}\n{result.stdout[-2000:]}'
    if pattern is None:
      self.assertEqual(lines, [], context)
    else:
      self.assertLen(lines, 1, context)
      expected = pattern.format(run=re.escape(cell.run),
                                out=re.escape(cell.out or ''))
      self.assertRegex(lines[0], expected, context)
    self.assertEqual(result.returncode, exit_status, context)
    if (entry, fault) in STDOUT:
      self.assertRegex(result.stdout, STDOUT[entry, fault].format(
          run=re.escape(cell.run)), context)
    if exit_status:  # Nothing written: no partial run, no result file.
      self.assertEqual(_listing(workspace), before, context)


class TableTest(tf.test.TestCase):

  def test_every_cell_names_a_known_entry_point_and_fault(self):
    cells = [(row[0], row[1]) for row in MATRIX]
    self.assertLen(set(cells), len(cells))
    self.assertContainsSubset({row[0] for row in MATRIX}, ENTRY_POINTS)
    self.assertContainsSubset({row[1] for row in MATRIX}, FAULTS)
    self.assertEqual({row[0] for row in MATRIX}, set(ENTRY_POINTS))


if __name__ == '__main__':
  tf.test.main()
