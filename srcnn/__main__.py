"""`python -m srcnn`: upscale photos with ONNX Runtime (srcnn.cli)."""

import srcnn.startup  # noqa: F401, I001 - first: a signal while the libraries load exits quietly
import sys

from srcnn.cli import main

sys.exit(main())
