"""MicroLib Studio: turn 2D micrographs into 3D microstructures."""

__version__ = "0.1.0"
APP_NAME = "MicroLib Studio"
