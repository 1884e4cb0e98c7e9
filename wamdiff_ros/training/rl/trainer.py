"""The RL fine-tuning loop shared by ``wamdiff rl`` and ``rl_finetune_node``.

Each optimiser step: sample G answers for each of ``scenes_per_step`` logged scenes from the current
weights, reward them with the scorer against the logged future, normalise advantages within each
group, then take ``inner_epochs`` optimiser steps on the GSPO or GRPO loss (KL to the frozen starting
model). Groups whose rewards are all equal carry no advantage and are left out of the gradient.

Every random draw is fixed by ``(seed, epoch)`` (scene order) or ``(seed, step)`` (sampling), so a run
stopped after step k and resumed from ``last/`` continues exactly where it stopped. The loop (stop
rules, Ctrl-C, ``last/``, resume, progress bar) is :class:`~wamdiff_ros.training.loop.TrainingLoop`;
validation time is not counted in ``train_seconds``.

Output folder::

    <out>/last/          resumable state (model checkpoint + optimiser + trainer_state.json)
    <out>/best/          checkpoint with the best validation PDMS (then ADE), written only when it beats the start
    <out>/history.json   per-step training records and validations
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wamdiff_ros.training.loop import BEST, HISTORY, LAST, TrainingLoop, epoch_order


def better(rec: dict, than: dict) -> bool:
    """Higher validation PDMS; at equal PDMS, lower ADE (an untrained model scores PDMS 0 everywhere)."""
    if "PDMS" not in rec or "PDMS" not in than:
        return False
    if rec["PDMS"] != than["PDMS"]:
        return rec["PDMS"] > than["PDMS"]
    return rec["ade"] < than["ade"]


def sampling_generator(seed: int, step: int, scene: int):
    """Sampling draws for scene ``scene`` of optimiser step ``step``."""
    import torch

    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 1_009 + int(scene)) % (2**63))


class RLTrainer(TrainingLoop):
    """Runs (or resumes) one RL fine-tuning run into ``out``; see the module docstring.

    Args:
        policy: a :class:`~wamdiff_ros.training.rl.policy.Policy` around the weights being trained.
        ref_net: the frozen starting network (KL reference; never modified).
        train_set / val_set: :class:`~wamdiff_ros.data.dataset.DrivingDataset` with scenes.
        settings: :class:`~wamdiff_ros.training.rl.settings.RLSettings`.
        start_model: the checkpoint the run started from (recorded; the reference on resume).
        on_step: called with each step's record (progress publishing).
        on_best: called with the ``best/`` path after it was rewritten.
    """

    desc = "rl"

    def __init__(
        self,
        policy,
        ref_net,
        train_set,
        out,
        settings,
        val_set=None,
        *,
        start_model: str = "",
        data_info: dict | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        on_step: Callable[[dict], None] | None = None,
        on_best: Callable[[Path, dict], None] | None = None,
    ):
        import torch

        from wamdiff_ros.training.rl.objectives import grpo_loss, gspo_loss

        self.scenes = np.arange(0, len(train_set), settings.every)
        if not len(self.scenes):
            raise ValueError("rl training data: no samples (every frame lacks a full future horizon or its images)")
        if (settings.imitation_weight or settings.imitation_weight_idle) and not hasattr(policy, "imitation_loss"):
            raise ValueError("rl settings: imitation_weight needs a policy with imitation_loss; this family's has none")
        params = policy.trainable_parameters(policy.net, settings.trainable)
        optimizer = torch.optim.AdamW(params, lr=settings.lr, betas=(0.9, 0.98), weight_decay=settings.weight_decay)
        super().__init__(
            out,
            policy.planner,
            policy.net,
            optimizer,
            settings,
            len(self.scenes) // settings.scenes_per_step,
            val_every_steps=settings.val_every_steps,
            val_at_epoch_end=False,
            val_in_budget=False,
            progress=progress,
            log=log,
        )
        self.policy = policy
        self.ref_net = ref_net.eval()
        for p in self.ref_net.parameters():
            p.requires_grad_(False)
        self.train_set = train_set
        self.val_set = val_set
        self.start_model = str(start_model)
        self.data_info = data_info or {}
        self.on_step = on_step
        self.on_best = on_best
        if settings.algorithm == "gspo":
            self.objective = lambda *a, **kw: gspo_loss(
                *a, clip_low=settings.clip_low, clip_high=settings.clip_high, **kw
            )
        else:
            self.objective = lambda *a, **kw: grpo_loss(*a, clip=settings.grpo_clip, **kw)
        self.state.update(start_model=self.start_model, initial=None, validations=[])

    # -- state -------------------------------------------------------------------------------------
    def check_resume(self, folder: Path, doc: dict, state: dict) -> None:
        from wamdiff_ros.models.checkpoint import CheckpointError

        if state.get("start_model") and self.start_model and Path(state["start_model"]) != Path(self.start_model):
            raise CheckpointError(
                f"--resume: {folder} started from {state['start_model']}, not from {self.start_model}"
            )
        if state.get("validations"):
            state.setdefault("validated_step", state["validations"][-1]["step"])

    def meta(self, record: dict | None = None) -> dict:
        s = self.state
        return {
            "rl": {
                "start_model": self.start_model,
                "data": self.data_info,
                "step": s["step"],
                "train_seconds": round(s["train_seconds"], 1),
                "settings": self.settings.to_dict(),
                "validation": record or {},
                "initial_validation": s["initial"] or {},
            }
        }

    def history_doc(self) -> dict:
        return {"steps": self.state["history"], "validations": self.state["validations"]}

    # -- validation --------------------------------------------------------------------------------
    def validate(self, final: bool) -> dict:
        from wamdiff_ros.evaluation import evaluate_open_loop

        s, st = self.state, self.settings
        rec: dict = {"step": s["step"], "train_seconds": round(s["train_seconds"], 1)}
        if self.val_set is not None and len(self.val_set) and st.val_frames:
            t0 = time.perf_counter()
            every = max(1, len(self.val_set) // st.val_frames)
            try:
                agg = evaluate_open_loop(self.policy.planner, self.val_set, every, max_frames=st.val_frames)[
                    "aggregate"
                ]
            finally:
                self.net.eval()
            rec.update({k: agg[k] for k in ("PDMS", "EPDMS", "NC", "DAC", "EP", "TTC", "C", "ade")})
            rec["frames"] = agg["frames"]
            rec["val_seconds"] = time.perf_counter() - t0
        s["validations"].append(rec)
        if s["initial"] is None:
            s["initial"] = rec
        improved = rec["step"] > 0 and better(rec, s["best"] or s["initial"])
        rec["best"] = bool(improved)
        if improved:
            s["best"] = rec
            self.save_best(rec)
        self.write_history()
        if "PDMS" in rec:
            ref = s["initial"]["PDMS"]
            self.log(
                f"validation at step {rec['step']}: PDMS {rec['PDMS']:.4f} (start {ref:.4f}), EPDMS "
                f"{rec['EPDMS']:.4f}, ADE {rec['ade']:.2f} m{' *best*' if improved else ''}"
            )
        if improved and self.on_best is not None:
            self.on_best(self.out / BEST, rec)
        return rec

    # -- one step ----------------------------------------------------------------------------------
    def _rollouts(self, indices) -> tuple[list, dict]:
        """Sample and reward one group per scene; returns ``[(rollout, advantages)]`` and statistics."""
        import torch

        from wamdiff_ros.training.rl.objectives import gate_advantages, rollout_advantages
        from wamdiff_ros.training.rl.rewards import group_rewards

        st, s = self.settings, self.state
        groups, rewards, metrics, targets = [], [], [], []
        for j, i in enumerate(indices):
            obs = self.train_set.observation(int(i))
            scene = self.train_set.scene(int(i))
            ro = self.policy.sample(obs, st.group_size, sampling_generator(st.seed, s["step"], j))
            r, m = group_rewards(ro.poses, scene, st.reward)
            if ro.reward is not None:
                r = np.asarray(ro.reward(scene), np.float64).reshape(len(r))
            if ro.reward_offset is not None:
                r = r + ro.reward_offset.double().numpy()
            targets.append(scene.human_trajectory)
            groups.append(ro)
            rewards.append(r)
            metrics.append(m)
        adv = []
        for ro, r, m, j in zip(groups, rewards, metrics, indices):
            a = rollout_advantages(torch.as_tensor(r), ro.groups, std_floor=st.adv_std_floor)
            logged = None
            if st.beat_logged:
                scene = self.train_set.scene(int(j))
                logged = float(group_rewards(scene.human_trajectory[None], scene, st.reward)[0][0])
            failed = torch.as_tensor((m["NC"] != 1.0) | (m["DAC"] != 1.0))
            adv.append(
                gate_advantages(
                    a, torch.as_tensor(r), floor=st.advantage_floor, reference_reward=logged, failed=failed,
                    fail_value=st.fail_advantage,
                )
            )  # fmt: skip
        r = np.stack(rewards)
        stats = {
            "reward_mean": float(r.mean()),
            "reward_std_in_group": float(r.std(axis=1).mean()),
            "reward_best_in_group": float(r.max(axis=1).mean()),
            "pdms_mean": float(np.mean([m["PDMS"] for m in metrics])),
            "epdms_mean": float(np.mean([m["EPDMS"] for m in metrics])),
            "nc_zero_rate": float(np.mean([m["NC"] == 0 for m in metrics])),
            "ade_mean": float(np.mean([m["ade"] for m in metrics])),
            "informative_groups": int((r.std(axis=1) > 1e-9).sum()),
        }
        stats["positive_advantage_rate"] = float(np.mean([bool((a > 0).any()) for a in adv]))
        return [(ro, adv[g], targets[g]) for g, ro in enumerate(groups)], stats

    def _update(self, groups) -> dict:
        import torch

        st = self.settings
        imitate = st.imitation_weight > 0 or st.imitation_weight_idle > 0
        live = [(ro, a, tgt) for ro, a, tgt in groups if imitate or bool(a.abs().max() > 0)]
        if not live:
            return {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "ratio_mean": 1.0, "grad_norm": 0.0}
        exact_kl = getattr(self.policy, "kl", None) if st.kl_beta else None
        ref = []
        if st.kl_beta and exact_kl is None:
            with torch.no_grad():
                ref = [self.policy.logprobs(ro, self.ref_net) for ro, _, _ in live]
        agg: dict[str, float] = {}
        for _ in range(st.inner_epochs):
            self.optimizer.zero_grad(set_to_none=True)
            for g, (ro, a, tgt) in enumerate(live):
                logp = self.policy.logprobs(ro)
                if ro.old_logp is None:
                    ro.old_logp = logp.detach()
                kl = exact_kl(ro, self.ref_net) if exact_kl is not None else None
                loss, stats = self.objective(
                    logp,
                    ro.old_logp,
                    a,
                    ro.mask,
                    ref_logp=ref[g] if ref else None,
                    beta=st.kl_beta,
                    kl=kl,
                    weights=ro.weights,
                )
                if imitate:
                    w = st.imitation_weight if bool((a > 0).any()) else st.imitation_weight_idle
                    imitation = self.policy.imitation_loss(ro, tgt)
                    loss = loss + w * imitation
                    stats["imitation"] = float(imitation.detach())
                (loss / len(live)).backward()
                for k, v in {"loss": float(loss.detach()), **stats}.items():
                    agg[k] = agg.get(k, 0.0) + v / (len(live) * st.inner_epochs)
            params = [p for grp in self.optimizer.param_groups for p in grp["params"]]
            norm = torch.nn.utils.clip_grad_norm_(params, st.grad_clip if st.grad_clip > 0 else float("inf"))
            agg["grad_norm"] = float(norm)
            if not math.isfinite(agg["grad_norm"]):
                raise FloatingPointError(f"rl step {self.state['step']}: non-finite gradient")
            self.optimizer.step()
        return agg

    # -- the loop's hooks ----------------------------------------------------------------------------
    def before_run(self) -> None:
        if self.state["initial"] is None:
            self._validate(final=False)

    def epoch_items(self, epoch: int) -> np.ndarray:
        return self.scenes[epoch_order(len(self.scenes), self.settings.seed, epoch)]

    def train_step(self, order: np.ndarray, j: int) -> dict:
        n, s = self.settings.scenes_per_step, self.state
        t0 = time.perf_counter()
        groups, rec = self._rollouts(order[j * n : (j + 1) * n])
        t1 = time.perf_counter()
        rec.update(self._update(groups))
        rec.update(step=s["step"], epoch=s["epoch"], rollout_s=t1 - t0, update_s=time.perf_counter() - t1)
        return rec

    def after_step(self, rec: dict) -> None:
        rec["train_seconds"] = round(self.state["train_seconds"], 1)
        self.state["history"].append(rec)
        if self.on_step is not None:
            self.on_step(rec)

    def postfix(self, rec: dict) -> dict:
        return {"reward": f"{rec['reward_mean']:.3f}", "kl": f"{rec['kl']:.1e}", "clip": f"{rec['clip_fraction']:.2f}"}

    def run(self, resume: bool = False) -> dict:
        """Fine-tune until ``epochs``, ``max_steps``, ``max_minutes`` or a stop request; returns a summary."""
        summary = super().run(resume)
        summary["initial"] = self.state["initial"]
        return summary


def reference_copy(net):
    """A frozen deep copy of ``net`` (the KL reference when no separate checkpoint is loaded)."""
    ref = copy.deepcopy(net).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


__all__ = ["BEST", "HISTORY", "LAST", "RLTrainer", "better", "reference_copy", "sampling_generator"]
