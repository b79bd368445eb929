"""trainkit: write, run, package and validate train containers for a data-space platform."""

from trainkit_runtime import __version__

__all__ = ["__version__"]
