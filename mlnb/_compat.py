"""Import-time fixes for third-party packages, applied before they load.

jsonschema imports ``rfc3987_syntax`` when it is installed (JupyterLab's dependencies pull
it in) and that module builds a grammar at import time: about 1 s on this project's 2-core
machines, paid by every process that imports nbformat, papermill or nbconvert. It only
serves the ``iri`` string format, which neither notebooks nor run records use, so mlnb
hides it before jsonschema loads. The ``rfc3987`` or ``rfc3986-validator`` checkers, when
installed, are unaffected.
"""

import sys

if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
