"""pixelport: self-hosted media delivery compatible with ImageKit URLs."""

import os

__version__ = "0.1.0"

# numpy, imported by the JPEG decoder (simplejpeg) and face detection, never does linear
# algebra here; its OpenBLAS would start a thread per core in every worker process, which
# spins for a while at start-up. A deployment that sets the variable keeps its value.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
