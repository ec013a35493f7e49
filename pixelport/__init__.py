"""pixelport: self-hosted media delivery compatible with ImageKit URLs."""

__version__ = "0.1.0"
