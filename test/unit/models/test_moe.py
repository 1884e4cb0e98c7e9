"""LoRA-MoE routing: expert-choice capacity, token-choice top-k, CV² balance loss, routing statistics."""

import math

import pytest
import torch

from wamdiff_ros.models.config import MoEConfig
from wamdiff_ros.models.moe import (
    LoRAMoE,
    balance_loss,
    cv_squared,
    expert_choice_gates,
    routing_stats,
    token_choice_gates,
)


def _probs(b=2, n=10, e=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, e, generator=g).softmax(-1)


def test_expert_choice_respects_capacity_and_picks_top_tokens():
    probs = _probs(n=10, e=4)
    gates = expert_choice_gates(probs, capacity_factor=1.0)
    cap = math.ceil(10 / 4)
    chosen = gates > 0
    assert (chosen.sum(1) == cap).all()
    for b in range(2):
        for e in range(4):
            top = set(probs[b, :, e].topk(cap).indices.tolist())
            assert set(torch.nonzero(chosen[b, :, e]).flatten().tolist()) == top
    torch.testing.assert_close(gates[chosen], probs[chosen])
    assert (expert_choice_gates(probs, 2.0) > 0).sum(1).eq(5).all()


def test_expert_choice_groups_route_separately():
    cfg = MoEConfig(routing="expert_choice", num_experts=4, rank=2, capacity_factor=1.0)
    moe = LoRAMoE(8, cfg)
    h = torch.randn(1, 12, 8)
    _, gates = moe.gates(h, [(0, 8), (8, 12)])
    assert ((gates[:, :8] > 0).sum(1) == 2).all()
    assert ((gates[:, 8:] > 0).sum(1) == 1).all()
    _, g_part = moe.gates(h[:, 8:])
    torch.testing.assert_close(gates[:, 8:], g_part)


def test_token_choice_top_k_renormalised():
    probs = _probs(n=6, e=5)
    gates = token_choice_gates(probs, k=2)
    assert ((gates > 0).sum(-1) == 2).all()
    torch.testing.assert_close(gates.sum(-1), torch.ones(2, 6))
    top = probs.topk(2, dim=-1)
    picked = gates.gather(-1, top.indices)
    torch.testing.assert_close(picked, top.values / top.values.sum(-1, keepdim=True))


def test_cv_squared_and_balance_loss_hand_computed():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0])
    # mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5 -> CV² = 3.5 / 9
    assert float(cv_squared(x)) == pytest.approx(3.5 / 9)
    assert float(cv_squared(torch.ones(5))) == pytest.approx(0.0)
    gates = torch.tensor([[0.6, 0.4, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
    importance = torch.tensor([2.1, 0.4, 0.5])  # mean 1.0, var (1.21 + 0.36 + 0.25) / 3
    load = torch.tensor([3.0, 1.0, 1.0])  # mean 5/3, var ((4/3)² + 2·(2/3)²) / 3 = 8/9 -> CV² = 0.32
    expected = (1.82 / 3) / 1.0 + (8 / 9) / (25 / 9)
    assert float(cv_squared(importance)) == pytest.approx(1.82 / 3)
    assert float(cv_squared(load)) == pytest.approx(0.32)
    assert float(balance_loss(gates)) == pytest.approx(expected)


def test_balance_loss_in_training_and_gradient_through_importance():
    cfg = MoEConfig(routing="token_choice", num_experts=4, rank=2, top_k=2, shared_expert=True)
    moe = LoRAMoE(8, cfg).train()
    out, aux = moe(torch.randn(2, 5, 8))
    assert out.shape == (2, 5, 8)
    aux["balance_loss"].backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    moe.eval()
    assert "balance_loss" not in moe(torch.randn(2, 5, 8))[1]


def test_fresh_lora_experts_add_nothing_then_mix_linearly():
    cfg = MoEConfig(routing="token_choice", num_experts=3, rank=2, top_k=1, shared_expert=False, alpha=2.0)
    moe = LoRAMoE(6, cfg)
    h = torch.randn(1, 4, 6)
    torch.testing.assert_close(moe(h)[0], torch.zeros(1, 4, 6))
    torch.nn.init.normal_(moe.lora_b)
    out, _ = moe(h)
    _, gates = moe.gates(h)
    ref = torch.zeros(1, 4, 6)
    for e in range(3):
        a = moe.lora_a[e * 2 : (e + 1) * 2]
        b = moe.lora_b[:, e * 2 : (e + 1) * 2]
        ref += gates[..., e : e + 1] * (h @ a.t() @ b.t()) * (2.0 / 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_routing_stats():
    cfg = MoEConfig(routing="expert_choice", num_experts=4, rank=2)
    moe = LoRAMoE(8, cfg)
    calls = [[moe(torch.randn(1, 8, 8), None, True)[1]] * 2, [moe(torch.randn(1, 4, 8), None, True)[1]] * 2]
    st = routing_stats(calls, "expert_choice")
    assert st["tokens"] == 12 and st["num_experts"] == 4 and len(st["load"]) == 2
    for layer in st["load"]:
        assert sum(layer) == pytest.approx(1.0)
        assert layer == pytest.approx([0.25] * 4)  # expert choice: equal loads by construction
    assert 0 < st["mean_entropy"] <= st["max_entropy"] == pytest.approx(math.log(4))
    assert all(0 <= u <= 1 for u in st["unrouted"])
    assert routing_stats([], "none") == {}
