import pytest
import torch

from model.blocks import ResidualBlock
from model.config import load_preset
from model.grdnet import create_grdnet, smooth_and_score


@pytest.mark.parametrize(
    "resample,cin,cout,out_side", [("none", 8, 8, 16), ("none", 8, 12, 16), ("down", 8, 16, 8), ("up", 16, 8, 32)]
)
def test_residual_block_shapes(resample, cin, cout, out_side):
    y = ResidualBlock(cin, cout, resample)(torch.rand(2, cin, 16, 16))
    assert y.shape == (2, cout, out_side, out_side)


@pytest.mark.parametrize("preset", ["cpu", "paper"])
@pytest.mark.parametrize("bottleneck", ["crae", "drae"])
def test_grdnet_output_shapes(preset, bottleneck):
    cfg = load_preset(preset)
    cfg.net.bottleneck = bottleneck
    if bottleneck == "drae":
        cfg.net.patch_size = None  # the dense bottleneck trains on whole frames
    model = create_grdnet(cfg).eval()
    s, widths = cfg.net.train_size(), cfg.net.encoder_widths()
    x = torch.rand(1, 3, s, s)
    full = cfg.net.image_size
    with torch.no_grad():
        z, x_hat, z_hat = model.generator(x)
        logit, feat = model.discriminator(x)
        amap = model.anomaly_map(torch.rand(1, 3, full, full))  # inference: the whole native frame
    side = s // 2**cfg.net.stages
    if bottleneck == "crae":
        assert z.shape == z_hat.shape == (1, cfg.net.latent_channels, side, side)
    else:
        assert z.shape == z_hat.shape == (1, cfg.net.latent_dim)
    assert x_hat.shape == x.shape and 0 <= x_hat.min() and x_hat.max() <= 1
    assert logit.shape == (1,) and feat.shape == (1, widths[-1], side, side)
    assert amap.shape == (1, full, full) and 0 <= amap.min() and amap.max() <= 1


def test_paper_preset_is_paper_scale():
    cfg = load_preset("paper")
    assert cfg.net.encoder_widths() == [64, 128, 256, 512] and cfg.net.image_size == 256


def test_image_size_must_fit_the_stages():
    cfg = load_preset("cpu")
    step = 2**cfg.net.stages
    cfg.net.image_size, cfg.net.patch_size = 15 * step + step // 2, None  # half a stage's step off
    with pytest.raises(ValueError, match="divisible"):
        create_grdnet(cfg)
    bad_patch = 7 * step + step // 2
    cfg.net.image_size, cfg.net.patch_size = 256, bad_patch
    with pytest.raises(ValueError, match=f"patch_size {bad_patch} must be divisible"):
        create_grdnet(cfg)
    cfg.net.patch_size = 512
    with pytest.raises(ValueError, match="larger than net.image_size"):
        create_grdnet(cfg)


def test_smooth_and_score_is_max_of_mean_filter():
    maps = torch.zeros(2, 32, 32)
    maps[0, 10:13, 10:13] = 1.0  # 9 pixels under a 5x5 window -> 9/25
    scores, smoothed = smooth_and_score(maps, 5)
    assert scores[0].item() == pytest.approx(9 / 25)
    assert scores[1].item() == 0.0 and smoothed.shape == maps.shape


@pytest.mark.parametrize("prior", [None, 0.01])
def test_unet_prior_sets_the_initial_map_level(prior):
    from model.unet import UNet

    torch.manual_seed(0)
    unet = UNet(6, [8, 16], 32, prior).train()
    with torch.no_grad():
        p = torch.sigmoid(unet(torch.rand(2, 6, 32, 32)))
    if prior is None:  # PyTorch's default init: around 0.5
        assert 0.3 < float(p.median()) < 0.7
    else:
        assert abs(float(p.median()) - prior) < 0.005 and float(p.max()) < 0.1
