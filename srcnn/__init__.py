"""srcnn: the product built on srcnn_dynamic.py: folders and formats, tiling, the fast ONNX Runtime path, refusals."""
