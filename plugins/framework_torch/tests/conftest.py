"""Fixtures shared by the torch plugin's tests."""

from __future__ import annotations

import pytest
import torch

from sigdl_framework_torch.framework import TorchFramework


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for the module's tests (the machine's cores are shared), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fw() -> TorchFramework:
    return TorchFramework()
