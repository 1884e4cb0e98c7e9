"""The one-token ``Transformer.step`` over a static cache equals ``forward`` of that token over the same
prefix (the cache's masked positions, whatever they hold, change nothing)."""

import pytest
import torch

from wamdiff_ros.models.config import MoEConfig, TransformerConfig
from wamdiff_ros.models.transformer import Transformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("routing", ["none", "token_choice"])
def test_step_equals_forward_of_one_token_over_the_filled_prefix(routing):
    torch.manual_seed(0)
    tf = Transformer(TransformerConfig(d_model=32, layers=3, heads=4), MoEConfig(routing=routing)).eval()
    b, filled, length = 2, 5, 9
    with torch.no_grad():
        _, prefix_kv, _ = tf(torch.randn(b, filled, 32))
        cache = torch.randn(3, 2, b, 4, length, 8) * 100  # stale values after the prefix
        cache[..., :filled, :] = prefix_kv
        x = torch.randn(b, 32)
        ref, ref_kv, _ = tf(x[:, None], prefix_kv)
        bias = torch.full((length + 1,), float("-inf"))
        bias[:filled] = 0.0
        bias[-1] = 0.0
        out, kv = tf.step(x, [(layer[0], layer[1]) for layer in cache], bias)
    torch.testing.assert_close(out, ref[:, 0], atol=1e-5, rtol=1e-5)
    assert kv.shape == (3, 2, b, 4, 1, 8)
    torch.testing.assert_close(kv, ref_kv, atol=1e-5, rtol=1e-5)
    # the stale positions are masked: other stale values give the same output
    cache[..., filled:, :] = -cache[..., filled:, :]
    with torch.no_grad():
        again, _ = tf.step(x, [(layer[0], layer[1]) for layer in cache], bias)
    torch.testing.assert_close(again, out, atol=0, rtol=0)


def test_out_rows_gives_the_last_rows_and_every_key_value():
    torch.manual_seed(1)
    tf = Transformer(TransformerConfig(d_model=32, layers=2, heads=4), MoEConfig(routing="none")).eval()
    x = torch.randn(2, 7, 32)
    mask = torch.zeros(7, 7)
    mask[:5, 5:] = float("-inf")
    with torch.no_grad():
        full, kv, _ = tf(x, None, mask)
        last, kv2, _ = tf(x, None, mask, out_rows=2)
    assert last.shape == (2, 2, 32)
    torch.testing.assert_close(last, full[:, -2:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kv2, kv, atol=0, rtol=0)
    with pytest.raises(ValueError, match="out_rows"):
        tf(x, out_rows=8)
