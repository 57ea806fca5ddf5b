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
"""Installs rigl_tf: sparse training for TensorFlow 2 / tf_keras."""

import setuptools

setuptools.setup(
    name='rigl_tf',
    version='0.1.0',
    description='Sparse neural-network training (static, SET, SNFS, RigL, '
    'GMP, GraNet, SNIP, Gem-Miner) with MicroNet FLOP counting, for '
    'TensorFlow 2 / tf_keras.',
    python_requires='>=3.10,<3.13',
    packages=setuptools.find_packages(
        include=['rigl_tf', 'rigl_tf.*', 'mnist', 'mnist.*', 'cifar_wrn',
                 'cifar_wrn.*', 'imagenet_resnet', 'imagenet_resnet.*']),
    install_requires=[
        # TF, tf_keras and TFMOT move together: tf_keras X.Y matches TF X.Y.
        'tensorflow>=2.16,<2.22',
        'tf-keras>=2.16,<2.22',
        # Keras 3 (TensorFlow backend), beside tf_keras: rigl_tf.flavours.
        'keras>=3.5,<4',
        # tf.summary's writer; TF 2.21 no longer installs it.
        'tensorboard>=2.16,<2.22',
        'tensorflow-model-optimization>=0.8.0,<0.9',
        'tensorflow-datasets>=4.9.4,<4.10',
        # Needed by tfds' store_as_tfds_dataset on Python 3.11.
        'importlib_resources>=5.0',
        'gin-config>=0.5.0,<0.6',
        # TFMOT 0.8.x pins absl-py~=1.2.
        'absl-py>=1.2,<2',
        'numpy>=1.26,<3',
        'scikit-learn>=1.3,<2',
        # Pictures of masks and curves (rigl_tf.pictures, rigl_tf.visualize).
        'matplotlib>=3.8,<4',
        'Pillow>=10,<14',
        # CSR kernels in benchmarks/sparse_inference.py.
        'scipy>=1.10,<2',
    ],
    extras_require={
        'test': [
            # pytest 9 keeps node ids where pytest-xdist 3.8's
            # --dist loadgroup cannot tag them (run.sh relies on it).
            'pytest>=8.3,<9',
            'pytest-xdist>=3.5,<4',
            'ruff>=0.5',
            # The module layering contracts in pyproject.toml.
            'import-linter>=2.1,<3',
        ],
    },
)
