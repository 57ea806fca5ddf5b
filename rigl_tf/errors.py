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
"""The error every entry point reports as one line, and those entry points.

`cli_main(program)` is the absl `main` of every command line and
`parse_flags` its flags parser: bad input (a bad flag too) ends with one
`error: ...` line on stderr and exit status 1.
"""

import logging as std_logging
import sys

from absl import flags
from absl import logging


class UserError(Exception):
  """Bad input or an unusable run: reported as one line, exit status 1.

  Raised where the user can act on the message (a bad gin value, a missing
  checkpoint or dataset, a diverged run). The scripts print `error: <message>`
  on stderr and exit with status 1; library code raises `ValueError` and the
  trainer turns it into this.
  """


def one_line(error):
  """The message of `error`, without the context lines gin appends."""
  return str(error).split('\n  In call to configurable')[0].strip()


def parse_flags(argv, flag_values=None):
  """Parses `argv` into `flag_values` (default `flags.FLAGS`; absl's
  `flags_parser`); returns the arguments left.

  An unknown flag or a bad flag value ends with one `error:` line and exit
  status 1 (absl's own parser prints two lines).
  """
  try:
    return (flag_values or flags.FLAGS)(list(argv))
  except flags.Error as e:
    sys.exit(f'error: {e} (see --help).')


def cli_main(program):
  """An absl `main` running `program(flag_values)`; a UserError: one line.

  Positional arguments are refused (every input is a --flag), and library
  INFO logs are hidden unless --verbosity is given.

  Args:
    program: fn(the parsed `flags.FLAGS`).

  Returns:
    fn(argv), for `absl.app.run`.
  """

  def main(argv):
    if len(argv) > 1:
      sys.exit(f'error: unexpected arguments {argv[1:]}; use --flags.')
    if not flags.FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)
    try:
      program(flags.FLAGS)
    except UserError as e:
      # The line says why the run stopped: TensorFlow's notes as it tears
      # down (e.g. the values a refused checkpoint did not restore) would
      # read as further faults.
      std_logging.getLogger('tensorflow').setLevel(std_logging.ERROR)
      logging.set_verbosity(logging.ERROR)
      sys.exit(f'error: {one_line(e)}')

  return main
