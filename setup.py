"""Install the PyTensor port of the LeNet deep-learning tutorial.

What is installed is the library ``pytensor_nnet`` (Theano's ``conv2d`` and
``pool_2d`` for PyTensor) and what the tutorials need to run. The tutorial
scripts stay scripts: they are run from the checkout
(``python code/convolutional_mlp.py``) and import each other from their
folder, as the original's did, so no ``utils`` or ``training`` module lands
in site-packages.
"""
import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    name="lenet-pytensor",
    version="0.1.0",
    description="The Theano LeNet tutorial (convolutional networks on MNIST), ported to PyTensor",
    long_description=open(os.path.join(HERE, "README.rst"), encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    python_requires=">=3.11",
    package_dir={"": "code"},
    packages=["pytensor_nnet"],
    install_requires=[
        "pytensor>=3.0,<4",
        "numpy",
        "pillow",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "sphinx", "jax", "setuptools>=70.1", "selenium"],
        "jax": ["jax"],
        "docs": ["sphinx"],
    },
)
