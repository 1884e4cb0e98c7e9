"""The RL fine-tuning loop shared by ``wamdiff rl`` and ``rl_finetune_node``.

Each optimiser step: sample G answers for each of ``scenes_per_step`` logged scenes from the current
weights, reward them with the scorer against the logged future, normalise advantages within each
group, then take ``inner_epochs`` optimiser steps on the GSPO or GRPO loss (KL to the frozen starting
model). Groups whose rewards are all equal carry no advantage and are left out of the gradient.

Every random draw is fixed by ``(seed, epoch)`` (scene order) or ``(seed, step, position of the scene
in the step's batch)`` (sampling), so a run stopped after step k and resumed from ``last/`` continues
exactly where it stopped. The loop (stop rules, Ctrl-C, ``last/``, resume, progress bar) is
:class:`~wamdiff_ros.training.loop.TrainingLoop`; validation time is not counted in ``train_seconds``.

Rewards of a step's groups are scored in this process, or on Ray workers (``workers``,
:func:`~wamdiff_ros.training.rl.rewards.score_groups`) when the process has at least
``fanout_min_rollouts`` rollouts of the step to score; the rewards are the same either way.

Under ``torchrun`` (``dist``) every rank samples and scores its equal contiguous share of each step's
scenes (``scenes_per_step`` must divide by the world size), with the sampling draws of their positions
in the global batch; the gradients are summed over the ranks before clipping, so every rank takes the
single-process step on the same global batch. Rank 0 validates and writes files; the step records hold
global statistics.

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
    """Sampling draws for the scene at position ``scene`` of optimiser step ``step``'s global batch."""
    import torch

    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 1_009 + int(scene)) % (2**63))


def make_optimizer(params: list, settings):
    """The RL optimiser: AdamW over ``params`` with the run's learning rate and weight decay."""
    import torch

    return torch.optim.AdamW(params, lr=settings.lr, betas=(0.9, 0.98), weight_decay=settings.weight_decay)


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
        workers: :class:`~wamdiff_ros.distributed.fanout.Workers` scoring the rewards when this process
            has at least ``settings.fanout_min_rollouts`` rollouts of a step (None: always in this process).
        dist: this process's :class:`~wamdiff_ros.distributed.torchrun.DistContext` (default: a world of one).
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
        workers=None,
        dist=None,
    ):
        from wamdiff_ros.distributed.torchrun import DistContext
        from wamdiff_ros.training.rl.objectives import grpo_loss, gspo_loss

        dist = dist or DistContext()
        self.scenes = np.arange(0, len(train_set), settings.every)
        if not len(self.scenes):
            raise ValueError("rl training data: no samples (every frame lacks a full future horizon or its images)")
        if (settings.imitation_weight or settings.imitation_weight_idle) and not hasattr(policy, "imitation_loss"):
            raise ValueError("rl settings: imitation_weight needs a policy with imitation_loss; this family's has none")
        if settings.scenes_per_step % dist.world_size:
            raise ValueError(
                f"rl settings: scenes_per_step {settings.scenes_per_step}: expected a multiple of the world size "
                f"{dist.world_size} (one equal share of each step's scenes per rank)"
            )
        params = policy.trainable_parameters(policy.net, settings.trainable)
        optimizer = make_optimizer(params, settings)
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
            dist=dist,
        )
        self.workers = workers
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
        if not self.dist.is_main:
            return None
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
    def _rollouts(self, indices, positions) -> tuple[list, dict]:
        """Sample and reward one group per scene (dataset samples ``indices``, at ``positions`` of the
        step's global batch); returns ``[(rollout, advantages, logged future)]`` and the statistics of
        the global batch."""
        import torch

        from wamdiff_ros.training.rl.objectives import gate_advantages, rollout_advantages

        st, s = self.settings, self.state
        groups, scenes = [], []
        for i, j in zip(indices, positions, strict=True):
            obs = self.train_set.observation(int(i))
            scenes.append(self.train_set.scene(int(i)))
            groups.append(self.policy.sample(obs, st.group_size, sampling_generator(st.seed, s["step"], int(j))))
        scored = self._score(indices, groups, scenes)
        rewards, adv = [], []
        for ro, scene, sc in zip(groups, scenes, scored, strict=True):
            r = np.array(sc.rewards, np.float64)
            if ro.reward is not None:
                r = np.asarray(ro.reward(scene), np.float64).reshape(len(r))
            if ro.reward_offset is not None:
                r = r + ro.reward_offset.double().numpy()
            rewards.append(r)
            a = rollout_advantages(torch.as_tensor(r), ro.groups, std_floor=st.adv_std_floor)
            failed = torch.as_tensor((sc.metrics["NC"] != 1.0) | (sc.metrics["DAC"] != 1.0))
            adv.append(
                gate_advantages(
                    a, torch.as_tensor(r), floor=st.advantage_floor, reference_reward=sc.logged, failed=failed,
                    fail_value=st.fail_advantage,
                )
            )  # fmt: skip
        r = np.stack(rewards)
        metrics = [sc.metrics for sc in scored]
        stats = {
            "reward_mean": float(r.mean()),
            "reward_std_in_group": float(r.std(axis=1).mean()),
            "reward_best_in_group": float(r.max(axis=1).mean()),
            "pdms_mean": float(np.mean([m["PDMS"] for m in metrics])),
            "epdms_mean": float(np.mean([m["EPDMS"] for m in metrics])),
            "nc_zero_rate": float(np.mean([m["NC"] == 0 for m in metrics])),
            "ade_mean": float(np.mean([m["ade"] for m in metrics])),
            "informative_groups": float((r.std(axis=1) > 1e-9).sum()),
            "positive_advantage_rate": float(np.mean([bool((a > 0).any()) for a in adv])),
        }
        stats = self.dist.mean(stats)
        stats["informative_groups"] = round(stats["informative_groups"] * self.dist.world_size)
        return [(ro, adv[g], scenes[g].human_trajectory) for g, ro in enumerate(groups)], stats

    def _score(self, indices, groups, scenes) -> list:
        """The :class:`~wamdiff_ros.training.rl.rewards.GroupReward` of each group: on the fan-out
        workers when there are at least ``fanout_min_rollouts`` rollouts, else in this process."""
        from wamdiff_ros.training.rl.rewards import RewardJob, score_group, score_groups

        st = self.settings
        if self.workers is None or self.workers.in_process or len(groups) * st.group_size < st.fanout_min_rollouts:
            return [score_group(ro.poses, sc, st.reward, st.beat_logged) for ro, sc in zip(groups, scenes, strict=True)]
        source = self.train_set.source
        jobs = [RewardJob(source, int(i), ro.poses, st.reward, st.beat_logged) for i, ro in zip(indices, groups)]
        return score_groups(jobs, self.workers)

    def _update(self, groups) -> dict:
        import torch

        st = self.settings
        imitate = st.imitation_weight > 0 or st.imitation_weight_idle > 0
        live = [(ro, a, tgt) for ro, a, tgt in groups if imitate or bool(a.abs().max() > 0)]
        n_live = round(self.dist.sum({"live": len(live)})["live"])
        if not n_live:
            return {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "ratio_mean": 1.0, "grad_norm": 0.0}
        exact_kl = getattr(self.policy, "kl", None) if st.kl_beta else None
        ref = []
        if st.kl_beta and exact_kl is None:
            with torch.no_grad():
                ref = [self.policy.logprobs(ro, self.ref_net) for ro, _, _ in live]
        agg = dict.fromkeys(("loss", "ratio_mean", "clip_fraction", "kl", *(("imitation",) if imitate else ())), 0.0)
        params = [p for grp in self.optimizer.param_groups for p in grp["params"]]
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
                (loss / n_live).backward()
                for k, v in {"loss": float(loss.detach()), **stats}.items():
                    agg[k] += v / (n_live * st.inner_epochs)
            self.dist.sum_gradients(params)
            norm = torch.nn.utils.clip_grad_norm_(params, st.grad_clip if st.grad_clip > 0 else float("inf"))
            agg["grad_norm"] = float(norm)
            if not math.isfinite(agg["grad_norm"]):
                raise FloatingPointError(f"rl step {self.state['step']}: non-finite gradient")
            self.optimizer.step()
        agg = {**self.dist.sum({k: v for k, v in agg.items() if k != "grad_norm"}), "grad_norm": agg["grad_norm"]}
        return agg

    # -- the loop's hooks ----------------------------------------------------------------------------
    def before_run(self) -> None:
        if self.state["initial"] is None:
            self._validate(final=False)

    def epoch_items(self, epoch: int) -> np.ndarray:
        return self.scenes[epoch_order(len(self.scenes), self.settings.seed, epoch)]

    def train_step(self, order: np.ndarray, j: int) -> dict:
        from wamdiff_ros.distributed.torchrun import shard

        n, s = self.settings.scenes_per_step, self.state
        t0 = time.perf_counter()
        batch = order[j * n : (j + 1) * n]
        positions = list(shard(range(len(batch)), self.dist))
        groups, rec = self._rollouts(batch[positions], positions)
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


__all__ = ["BEST", "HISTORY", "LAST", "RLTrainer", "better", "make_optimizer", "reference_copy", "sampling_generator"]
