"""The HTTP service over the qa library."""

from .app import create_app

__all__ = ["create_app"]
