"""Neurolysis Trainer: a simulator for image-guided needle placement in chemical neurolysis."""

__version__ = "0.1.0"
