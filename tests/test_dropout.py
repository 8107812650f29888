"""Counter-based dropout masks: rate, independence, chunk- and batch-invariance, stability."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from sacnn.models import build_network, get_architecture
from sacnn.models.dropout import dropout_masks, mix32, neuron_key
from sacnn.seeding import derive_seed


def test_mix32_matches_uint32_arithmetic_and_is_a_bijection_sample():
    def reference(h: int) -> int:  # lowbias32 in plain 32-bit unsigned arithmetic
        h ^= h >> 16
        h = (h * 0x7FEB352D) & 0xFFFFFFFF
        h ^= h >> 15
        h = (h * 0x846CA68B) & 0xFFFFFFFF
        return h ^ (h >> 16)

    values = [0, 1, 2, 0xFFFFFFFF, 0x80000000, 123456789, 0xDEADBEEF]
    assert [mix32(v) for v in values] == [reference(v) for v in values]
    t = torch.tensor(values, dtype=torch.int64)
    assert mix32(t).tolist() == [reference(v) for v in values]
    sample = torch.arange(1 << 16, dtype=torch.int64) * 65537
    assert len(set(mix32(sample).tolist())) == 1 << 16  # no collisions on a sample


def test_keep_rate_scale_and_shape():
    keys = [neuron_key(derive_seed(0, "s", "m", n, "dropout")) for n in range(8)]
    m = dropout_masks(keys, range(10), 50, [32, 32, 32], p=0.3)
    assert m.shape == (10, 3, 8, 50, 32)
    values = set(m.unique().tolist())
    assert values == {0.0, (torch.tensor(1.0) / 0.7).item()}
    keep = (m > 0).double().mean().item()
    assert abs(keep - 0.7) < 0.005  # 384k draws: 4 standard errors ~ 0.003


def test_masks_differ_across_neurons_steps_sites_images_and_channels():
    m = dropout_masks([1, 2], [0, 1], 40, [16, 16], p=0.5) > 0
    flat = m.reshape(2, 2, 2, -1).double()
    pairs = [(flat[0, 0, 0], flat[0, 0, 1]),    # neurons
             (flat[0, 0, 0], flat[1, 0, 0]),    # steps
             (flat[0, 0, 0], flat[0, 1, 0])]    # sites
    for a, b in pairs:
        agreement = (a == b).double().mean().item()
        assert 0.4 < agreement < 0.6  # independent fair coins agree half the time
    one = m[0, 0, 0].double()  # (images, channels): neighbouring images uncorrelated
    corr = np.corrcoef(one[:-1].flatten().numpy(), one[1:].flatten().numpy())[0, 1]
    assert abs(corr) < 0.1


def test_a_neurons_masks_do_not_depend_on_its_chunk_or_the_batch_size():
    keys = [11, 22, 33, 44]
    whole = dropout_masks(keys, [5, 6], 50, [8, 8, 4], p=0.3)
    alone = dropout_masks([33], [5, 6], 50, [8, 8, 4], p=0.3)
    assert torch.equal(whole[:, :, 2], alone[:, :, 0])
    short = dropout_masks(keys, [6], 7, [8, 8, 4], p=0.3)  # the last, smaller batch
    assert torch.equal(short[0], whole[1, :, :, :7])


def test_network_draws_the_same_masks_as_the_chunk_function():
    net = build_network(get_architecture("rf+sa-CNN"), seed=0)
    masks = net.draw_masks(6, key=99, step=3)
    chunk = dropout_masks([1, 99], [3], 6, net.dropout_channels(), p=net.spec.dropout)
    assert len(masks) == len(net.dropout_channels())
    for s, m in enumerate(masks):
        assert m.shape == (6, net.spec.channels, 1, 1)
        assert torch.equal(m.flatten(1), chunk[0, s, 1])


def test_masks_are_stable_across_versions():
    """Changing the hash changes every trained model: this pins the bits (and CPU == CUDA,
    since the computation is exact integer arithmetic)."""
    m = dropout_masks([neuron_key(12345)], [0, 7], 50, [30, 30, 30], p=0.3)
    kept = (m > 0).flatten().numpy()
    assert int(kept.sum()) == 6275
    assert hashlib.sha256(np.packbits(kept).tobytes()).hexdigest()[:16] == "f13d7a0f13225247"


def test_a_step_counter_on_the_device_draws_the_hosts_masks():
    """A CUDA graph advances the step as a tensor: the masks are those of the Python step
    numbers, bit for bit (large steps included: the counter wraps at 2**32 alike)."""
    keys = torch.tensor([neuron_key(s) for s in (3, 4, 5)], dtype=torch.int64)
    steps = [0, 1, 679, 2**32 + 7]
    for dtype in (torch.float32, torch.float64):
        host = dropout_masks(keys.tolist(), steps, 6, [5, 3], 0.3, dtype)
        device = dropout_masks(keys, torch.tensor(steps), 6, [5, 3], 0.3, dtype)
        assert torch.equal(host, device) and host.dtype == device.dtype
    one = dropout_masks(keys, torch.tensor([679]), 6, [5, 3], 0.3)
    assert torch.equal(one[0], dropout_masks(keys.tolist(), [679], 6, [5, 3], 0.3)[0])
