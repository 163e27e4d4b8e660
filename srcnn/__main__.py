"""`python -m srcnn`: upscale images with PyTorch and ONNX Runtime, checked against each other."""

import sys

from srcnn.cli import main

sys.exit(main())
