"""trainkit: write, run, package and validate train containers for a data-space platform."""

__version__ = "0.1.0"
