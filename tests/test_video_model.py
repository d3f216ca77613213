"""The video labeller: frame t's recurrent label reads frames 1..t only, the single-frame
baseline reads frame t only, and the two share no weights."""

import pytest
import torch

from rnnkit.errors import ConfigError
from rnnkit.models.video import VideoLabeller, VideoModelConfig


def model(**kw):
    torch.manual_seed(0)
    c = VideoModelConfig(hidden=8, channels=4, features=8, dropout=0.0, **kw)
    return VideoLabeller(1, (16, 16), 5, c).eval().double()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_reads_the_past_and_single_reads_the_frame(cell):
    m = model(cell=cell)
    video = torch.rand(2, 6, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    out = m(video)
    assert out["recurrent"].shape == out["single"].shape == (2, 6, 5)
    for t in range(6):
        for name in ("recurrent", "single"):
            (g,) = torch.autograd.grad(out[name][0, t].sum(), video, retain_graph=True)
            per_frame = g[0].abs().flatten(1).sum(1)  # (T,)
            assert (per_frame[t + 1 :] == 0).all(), f"{name} at frame {t} reads a later frame"
            assert per_frame[t] > 0
            earlier = per_frame[:t]
            if name == "single":
                assert (earlier == 0).all()
            elif t:
                assert (earlier > 0).all()
            assert g[1].abs().sum() == 0  # nor another clip of the batch (eval mode)


def test_the_models_share_no_weights():
    m = model()
    single = {id(p) for n, p in m.named_parameters() if n.startswith("single_")}
    rest = {id(p) for n, p in m.named_parameters() if not n.startswith("single_")}
    assert single and rest and not single & rest
    assert "single" not in model(baseline=False)(torch.rand(1, 2, 1, 16, 16).double())


def test_bad_config():
    with pytest.raises(ConfigError, match="model.cell"):
        VideoModelConfig(cell="transformer").validate_video()
    with pytest.raises(ConfigError, match="model.features"):
        VideoModelConfig(features=0).validate_video()
