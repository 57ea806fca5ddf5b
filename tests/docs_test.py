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
"""The user docs live in the repository: no link points outside it."""

import glob
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LINK = re.compile(r'\]\(([^)\s]+)\)')


def _docs():
  return [os.path.join(ROOT, 'README.md')] + sorted(
      glob.glob(os.path.join(ROOT, 'docs', '*.md')))


class DocsTest(unittest.TestCase):

  def test_relative_links_resolve_inside_the_repository(self):
    for path in _docs():
      with open(path, encoding='utf-8') as f:
        text = f.read()
      # No mention of a page outside the repository, linked or not.
      self.assertFalse('../shared' in text, path)
      for target in _LINK.findall(text):
        if re.match(r'[a-z]+://', target) or target.startswith('#'):
          continue
        resolved = os.path.realpath(
            os.path.join(os.path.dirname(path), target.split('#')[0]))
        self.assertTrue(resolved.startswith(ROOT + os.sep),
                        f'{path}: {target} leaves the repository')
        self.assertTrue(os.path.exists(resolved), f'{path}: {target}')

  def test_readme_links_the_semantics_page(self):
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
      self.assertIn('(docs/semantics.md)', f.read())


if __name__ == '__main__':
  unittest.main()
