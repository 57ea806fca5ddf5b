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
"""The error every entry point reports as one line."""


class UserError(Exception):
  """Bad input or an unusable run: reported as one line, exit status 1.

  Raised where the user can act on the message (a bad gin value, a missing
  checkpoint or dataset, a diverged run). The scripts print `error: <message>`
  on stderr and exit with status 1; library code raises `ValueError` and the
  trainer turns it into this.
  """
