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
"""The user docs live in the repository and name what exists.

No link points outside the repository and every link's page and heading
exist; the README is short and links every page of docs/; every repository
path, test file and rigl_tf module or name written as code in README.md or
docs/*.md exists, and none of the module names the code had before it moved
into packages is left.
"""

import glob
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, 'README.md')
MAX_README_LINES = 300

_LINK = re.compile(r'\]\(([^)\s]+)\)')
_FENCE = re.compile(r'^```.*?^```', re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r'`([^`\n]+)`')
_HEADING = re.compile(r'^#{1,6}\s+(.*?)\s*#*\s*$', re.MULTILINE)

# A repository path in code: starts with one of these folders, runs to the
# first character that cannot be in a path (a space before flags, the ':'
# of 'module.py:function', '<' of a placeholder, '*' of a glob).
_PATH_ROOTS = ('rigl_tf', 'configs', 'benchmarks', 'tests', 'docs', 'mnist',
               'cifar_wrn', 'imagenet_resnet')
_PATH = re.compile(r'(?<![\w./~:-])(?:%s)/[\w./-]*' % '|'.join(_PATH_ROOTS))
# A test file named without its folder: it must be in tests/.
_TEST_FILE = re.compile(r'(?<![\w./-])\w+_test\.py\b')
# A dotted name under rigl_tf: `rigl_tf.methods.create`, `-m rigl_tf.flops`.
_DOTTED = re.compile(r'(?<![\w.])rigl_tf(?:\.\w+)+')
# `flops.py` is a file name, not the attribute `py` of `rigl_tf.flops`.
_FILE_SUFFIXES = ('py', 'gin', 'md', 'json', 'png', 'gif', 'tflite', 'txt')
# Module names of the code before it moved into packages; the docs must not
# name them as code any more.
_RETIRED = re.compile(r'\b(?:train_lib|updaters|get_updater)\b'
                      r'|\bpruning\.(?:py|\w+\()|rigl_tf/\*_test')


def _docs():
  return [README] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))


def _read(path):
  with open(path, encoding='utf-8') as f:
    return f.read()


def _code(text):
  """Everything written as code: fenced blocks and inline spans."""
  blocks = _FENCE.findall(text)
  prose = _FENCE.sub('', text)
  return blocks + _INLINE_CODE.findall(prose)


def repo_paths(text):
  """The repository paths written in code in `text`, as written."""
  paths = []
  for code in _code(text):
    for path in _PATH.findall(code):
      paths.append(path.rstrip('.'))
  return paths


def named_test_files(text):
  """The test files named in code in `text` without their folder."""
  return [name for code in _code(text) for name in _TEST_FILE.findall(code)]


def _defines(source_path, name):
  """Whether the module file defines or imports `name` at any level."""
  source = _read(source_path)
  pattern = (r'^\s*(?:def|class)\s+{0}\b|^\s*{0}\s*[:=]|'
             r'^\s*(?:from\s+\S+\s+)?import\s+[^#\n]*\b{0}\b').format(
                 re.escape(name))
  return re.search(pattern, source, re.MULTILINE) is not None


def dotted_name_exists(dotted):
  """Whether `rigl_tf.a.b...` names a module, or a name a module defines.

  Packages and modules are followed as far as they go; the first part that
  is neither must be defined (or imported) by the module reached. Parts
  after it (attributes of that name) are not checked.
  """
  parts = dotted.split('.')
  current = os.path.join(ROOT, parts[0])
  if not os.path.isdir(current):
    return False
  for part in parts[1:]:
    if os.path.isdir(current):
      if os.path.isfile(os.path.join(current, part, '__init__.py')):
        current = os.path.join(current, part)
        continue
      if os.path.isfile(os.path.join(current, part + '.py')):
        current = os.path.join(current, part + '.py')
        continue
      return _defines(os.path.join(current, '__init__.py'), part)
    return _defines(current, part)
  return True


def _library_modules():
  """The names of rigl_tf's own modules and packages (`masks`, `methods`)."""
  names = set()
  for entry in os.listdir(os.path.join(ROOT, 'rigl_tf')):
    path = os.path.join(ROOT, 'rigl_tf', entry)
    if entry.endswith('.py') and entry != '__init__.py':
      names.add(entry[:-3])
    elif os.path.isfile(os.path.join(path, '__init__.py')):
      names.add(entry)
  return names


def module_attributes(text):
  """`module.name` written in code in `text`, for rigl_tf's modules."""
  modules = _library_modules()
  pattern = re.compile(r'(?<![\w./-])(%s)\.(\w+)' % '|'.join(
      sorted(modules, key=len, reverse=True)))
  return [(module, name) for code in _code(text)
          for module, name in pattern.findall(code)
          if name not in _FILE_SUFFIXES]


def _slug(heading):
  """GitHub's anchor of a Markdown heading."""
  text = heading.strip().lower().replace('`', '')
  text = re.sub(r'[^\w\- ]', '', text)
  return text.replace(' ', '-')


def _anchors(path):
  return {_slug(h) for h in _HEADING.findall(_FENCE.sub('', _read(path)))}


class DocsTest(unittest.TestCase):

  def test_relative_links_resolve_inside_the_repository(self):
    for path in _docs():
      text = _read(path)
      # No mention of a page outside the repository, linked or not.
      self.assertFalse('../shared' in text, path)
      for target in _LINK.findall(text):
        if re.match(r'[a-z]+://', target):
          continue
        page, _, anchor = target.partition('#')
        resolved = (os.path.realpath(os.path.join(os.path.dirname(path), page))
                    if page else path)
        self.assertTrue(resolved.startswith(ROOT + os.sep),
                        f'{path}: {target} leaves the repository')
        self.assertTrue(os.path.exists(resolved), f'{path}: {target}')
        if anchor and resolved.endswith('.md'):
          self.assertIn(anchor, _anchors(resolved),
                        f'{path}: {target}: no such heading')

  def test_readme_links_the_semantics_page(self):
    self.assertIn('(docs/semantics.md)', _read(README))

  def test_readme_is_at_most_300_lines(self):
    lines = len(_read(README).splitlines())
    self.assertLessEqual(lines, MAX_README_LINES,
                         'README.md is too long: move detail into docs/')

  def test_readme_links_every_docs_page(self):
    readme = _read(README)
    pages = sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))
    self.assertGreaterEqual(len(pages), 2)
    for page in pages:
      target = 'docs/' + os.path.basename(page)
      link = re.compile(r'\]\(%s(#[^)]*)?\)' % re.escape(target))
      self.assertTrue(link.search(readme), f'README.md does not link {target}')

  def test_repository_paths_in_code_exist(self):
    for path in _docs():
      text = _read(path)
      for written in repo_paths(text):
        self.assertTrue(os.path.exists(os.path.join(ROOT, written)),
                        f'{path}: `{written}` does not exist')
      for name in named_test_files(text):
        self.assertTrue(os.path.isfile(os.path.join(ROOT, 'tests', name)),
                        f'{path}: `{name}` is not in tests/')

  def test_rigl_tf_names_in_code_exist(self):
    for path in _docs():
      for code in _code(_read(path)):
        for dotted in _DOTTED.findall(code):
          self.assertTrue(dotted_name_exists(dotted),
                          f'{path}: `{dotted}` names no module or name')

  def test_module_attributes_in_code_exist(self):
    # `masks.init_masks`, `topk.top_n_by_keys`, `slots.needs_remasking`.
    for path in _docs():
      for module, name in module_attributes(_read(path)):
        self.assertTrue(dotted_name_exists(f'rigl_tf.{module}.{name}'),
                        f'{path}: `{module}.{name}` is not in rigl_tf.{module}')

  def test_no_retired_module_names(self):
    for path in _docs():
      for code in _code(_read(path)):
        self.assertIsNone(_RETIRED.search(code),
                          f'{path}: `{code[:80]}` names code that moved')

  def test_the_checks_catch_moved_code(self):
    # The old homes of code that moved must be reported, so that a page
    # naming one fails the tests above.
    text = ('The engine (`rigl_tf/updaters.py:get_updater`), '
            '`python mnist/train_eval_test.py --x=1`, and\n'
            '```\npython -m rigl_tf.flops.py --model=x\n'
            'see configs/mnist/rigl.gin and rigl_tf/pruning.py\n```\n')
    paths = repo_paths(text)
    self.assertEqual(paths, ['configs/mnist/rigl.gin', 'rigl_tf/pruning.py',
                             'rigl_tf/updaters.py',
                             'mnist/train_eval_test.py'])
    missing = [p for p in paths if not os.path.exists(os.path.join(ROOT, p))]
    self.assertEqual(missing, ['rigl_tf/pruning.py', 'rigl_tf/updaters.py',
                               'mnist/train_eval_test.py'])
    self.assertFalse(dotted_name_exists('rigl_tf.updaters'))
    self.assertFalse(dotted_name_exists('rigl_tf.train_lib.train_eval'))
    self.assertFalse(dotted_name_exists('rigl_tf.methods.get_updater'))
    self.assertTrue(dotted_name_exists('rigl_tf.methods.create'))
    self.assertTrue(dotted_name_exists('rigl_tf.methods.RigL'))
    self.assertTrue(dotted_name_exists('rigl_tf.flops'))
    self.assertTrue(dotted_name_exists('rigl_tf.train.train_eval'))
    self.assertIsNotNone(_RETIRED.search('train_lib.update_segments'))
    self.assertEqual(module_attributes('`masks.top_n_by_keys` `flops.py`'),
                     [('masks', 'top_n_by_keys')])
    self.assertFalse(dotted_name_exists('rigl_tf.masks.top_n_by_keys'))
    self.assertTrue(dotted_name_exists('rigl_tf.topk.top_n_by_keys'))
    self.assertEqual(_slug('Gem-Miner ("Rare Gems")'), 'gem-miner-rare-gems')


if __name__ == '__main__':
  unittest.main()
