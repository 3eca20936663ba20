"""Data shipped with rmtlr: the CIFAR-10 JPEG subset (README.md here) and its build script."""
