"""The TFTP server's compiled lock-step sender (protocols/tftp/_lockstep.c); the rest of the
package is described in pyproject.toml.

Optional: without a C compiler and the Python headers, the install goes on and every TFTP read
runs on the pure-Python engine; tests/protocols/tftp/test_lockstep.py then fails, on purpose.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("protocols.tftp._lockstep", ["protocols/tftp/_lockstep.c"], optional=True)
    ]
)
