"""Build step that setup.cfg cannot express: ship the top-level properties/ inside the package.

The property files stay in the repository's top-level ``properties/`` folder (the one copy
that is edited); a folder beside the package is not installed, so building copies it into
the built package as ``recbole_hetcomp/properties`` (recbole_hetcomp/resources.py reads
that copy first). The sdist carries ``properties/`` itself (MANIFEST.in), so a wheel built
from the sdist gets the same copy. Editable installs copy nothing: they read the checkout.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class build_py_with_properties(build_py):
    """setuptools' build_py, then properties/**/*.yaml copied to <build_lib>/recbole_hetcomp/properties."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = os.path.join(self.build_lib, "recbole_hetcomp", "properties")
        # A build folder reused from an earlier build may hold files deleted since.
        shutil.rmtree(target, ignore_errors=True)
        for path in self._property_files():
            out = os.path.join(target, path)
            self.mkpath(os.path.dirname(out))
            self.copy_file(os.path.join(HERE, "properties", path), out)

    def get_outputs(self, include_bytecode=True):
        target = os.path.join(self.build_lib, "recbole_hetcomp", "properties")
        return super().get_outputs(include_bytecode) + [os.path.join(target, p) for p in self._property_files()]

    @staticmethod
    def _property_files():
        root = os.path.join(HERE, "properties")
        if not os.path.isfile(os.path.join(root, "overall.yaml")):
            raise SystemExit(f"error: {root}/overall.yaml is missing: build from a checkout or an sdist that has properties/")
        return sorted(
            os.path.relpath(os.path.join(folder, f), root)
            for folder, _, files in os.walk(root) for f in files if f.endswith(".yaml")
        )


setup(cmdclass={"build_py": build_py_with_properties})
