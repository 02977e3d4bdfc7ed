"""Install the PyTensor port of the LeNet deep-learning tutorial.

The tutorial scripts live in ``code/`` as top-level modules (``logistic_sgd``,
``mlp``, ``convolutional_mlp`` ...), next to the ``pytensor_nnet`` package that
brings back Theano's ``conv2d`` and ``pool_2d``.
"""
import glob
import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = sorted(
    os.path.splitext(os.path.basename(path))[0]
    for path in glob.glob(os.path.join(HERE, "code", "*.py"))
)

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
    py_modules=MODULES,
    install_requires=[
        "pytensor>=3.0,<4",
        "numpy",
        "pillow",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "sphinx", "jax"],
        "jax": ["jax"],
        "docs": ["sphinx"],
    },
)
