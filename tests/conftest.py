import os

# One thread: the test models are tiny, and on a shared 2-core machine a second thread mostly
# waits. Set before torch starts its pool; subprocesses (resume, torchrun tests) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tempfile  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# Encoded corpora are cached by content; the tests keep theirs apart from the user's cache.
os.environ["RNNKIT_DATA_CACHE"] = tempfile.mkdtemp(prefix="rnnkit-test-corpora-")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(1)
