"""Where the plugin's property files are, in a checkout and in an installed copy.

The repository keeps them in its top-level ``properties/`` folder, the one copy that is
edited. Building a wheel or sdist copies that folder into the package as
``recbole_hetcomp/properties`` (``setup.py``), since a top-level folder beside the package
is not installed. An installed copy reads its packaged files; a checkout, or an editable
install of one, has no packaged copy and reads ``properties/`` beside the package.

Imports only the standard library: the command line's ``--help`` and the package's own
import stay free of RecBole and torch.
"""

import os

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGED_PROPERTIES_DIR = os.path.join(_PACKAGE_DIR, "properties")
SOURCE_PROPERTIES_DIR = os.path.join(os.path.dirname(_PACKAGE_DIR), "properties")

# Packaged first: beside an installed copy, the "source tree" folder would be
# site-packages/properties, which is not ours.
PROPERTIES_DIR = (
    PACKAGED_PROPERTIES_DIR if os.path.isfile(os.path.join(PACKAGED_PROPERTIES_DIR, "overall.yaml"))
    else SOURCE_PROPERTIES_DIR
)
PROTOCOL_DIR = os.path.join(PROPERTIES_DIR, "protocol")


def shipped_protocols():
    """The protocol files that come with the plugin (``properties/protocol/*.yaml``), by name."""
    if not os.path.isdir(PROTOCOL_DIR):
        return []
    return sorted(f for f in os.listdir(PROTOCOL_DIR) if f.endswith(".yaml"))


def resolve_config_file(path):
    """A ``--config_files`` entry as a path to read.

    A path that exists is read as given. A bare file name (no folder) that does not exist in
    the working directory names a shipped protocol, so ``--config_files=hetcomp-paper.yaml``
    works from an installed copy, which has no ``properties/protocol/`` folder to point at.
    Anything else is returned unchanged, for the caller's "does not exist" error.

    Args:
        path (str): the entry as given.

    Returns:
        str: the path to read.
    """
    if os.path.exists(path) or os.path.dirname(path):
        return path
    shipped = os.path.join(PROTOCOL_DIR, path)
    return shipped if os.path.isfile(shipped) else path
