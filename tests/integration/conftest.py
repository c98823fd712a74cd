"""Fixtures shared by several integration modules."""

from tests.integration.test_up_support import up_factory

__all__ = ["up_factory"]
