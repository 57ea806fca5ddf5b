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
"""No module of rigl_tf/ over 600 lines, no function body over 60.

A module has one responsibility and fits in a screenful of names; a
function's body (its statements after the docstring) fits on a screen. The
test prints the largest file and function, so a change that grows one shows
it (pytest -s).
"""

import ast
import glob
import os
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_FILE_LINES = 600
MAX_BODY_LINES = 60


def _sources():
  pattern = os.path.join(ROOT, 'rigl_tf', '**', '*.py')
  return sorted(glob.glob(pattern, recursive=True))


def _body_lines(node):
  """Lines of a function's statements, its docstring left out."""
  body = node.body
  if (body and isinstance(body[0], ast.Expr)
      and isinstance(body[0].value, ast.Constant)
      and isinstance(body[0].value.value, str)):
    body = body[1:]
  if not body:
    return 0
  return body[-1].end_lineno - body[0].lineno + 1


def measure():
  """([(lines, file)], [(body lines, 'file:line name')]) of rigl_tf/."""
  files, functions = [], []
  for path in _sources():
    with open(path, encoding='utf-8') as f:
      text = f.read()
    name = os.path.relpath(path, ROOT)
    files.append((text.count('\n'), name))
    for node in ast.walk(ast.parse(text)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        functions.append((_body_lines(node),
                          f'{name}:{node.lineno} {node.name}'))
  return sorted(files), sorted(functions)


class SizeTest(unittest.TestCase):

  def test_files_and_functions_fit(self):
    files, functions = measure()
    print(f'largest file: {files[-1][1]} ({files[-1][0]} lines); largest '
          f'function body: {functions[-1][1]} ({functions[-1][0]} lines)')
    self.assertGreater(len(files), 30)
    too_long = [f'{name} ({n})' for n, name in files if n > MAX_FILE_LINES]
    self.assertEqual(too_long, [], f'files over {MAX_FILE_LINES} lines')
    too_long = [f'{name} ({n})' for n, name in functions
                if n > MAX_BODY_LINES]
    self.assertEqual(too_long, [],
                     f'function bodies over {MAX_BODY_LINES} lines')

  def test_tests_and_test_helpers_are_not_in_the_package(self):
    # setup.py ships every module of these packages.
    shipped = []
    for package in ('rigl_tf', 'mnist', 'cifar_wrn', 'imagenet_resnet'):
      shipped += glob.glob(os.path.join(ROOT, package, '**', '*.py'),
                           recursive=True)
    tests = [os.path.relpath(p, ROOT) for p in shipped
             if p.endswith('_test.py') or 'test_util' in p]
    self.assertEqual(tests, [])


if __name__ == '__main__':
  unittest.main()
