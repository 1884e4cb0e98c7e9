"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """torch on one intra-op thread for the test (timings and small graphs do not gain from more)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
