"""How models/diffusiondrive_small was trained: the family's own SupervisedTask driven by a minimal loop
(the shared `wamdiff train` loop was not merged when this model was trained). The scene encoder is
initialised from models/wamdiff_small's trained encoder and frozen, so its tokens are computed once per
frame and the decoder trains on them; then the selector heads are fitted on scorer labels of the
trained model's own slow-path candidates.

    PYTHONPATH=$PWD nice -n 5 python models/diffusiondrive_small/train_standin.py OUT MINUTES SELECTOR_MINUTES
"""

import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from wamdiff_ros.data.dataset import DrivingDataset
from wamdiff_ros.models.checkpoint import load_checkpoint
from wamdiff_ros.planners.base import untrained_planner
from wamdiff_ros.planners.diffusiondrive.anchors import coverage
from wamdiff_ros.planners.diffusiondrive.planner import to_poses
from wamdiff_ros.planners.diffusiondrive.task import logged_futures
from wamdiff_ros.scoring import score
from wamdiff_ros.training.checkpointing import staged_dir

out, minutes, sel_minutes = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(2)
torch.manual_seed(0)
p = untrained_planner("config/models/diffusiondrive_small.yaml")
task = p.supervised_task(cls_weight=0.5, selector_weight=0.0)
needs = task.data_needs()
ds = DrivingDataset(["/work/main/data/train_a"], spec=needs.spec, history=needs.history, rig=needs.rig, scenes=False)
log = {"prepare": task.prepare(ds), "steps": []}
_, wam = load_checkpoint("models/wamdiff_small")
p.net.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in wam.items() if k.startswith("encoder.")})
p.net.encoder.eval().requires_grad_(False)
t0 = time.time()
tokens = []
with torch.no_grad():
    for b in range(0, len(ds), 64):
        items = [ds[i] for i in range(b, min(b + 64, len(ds)))]
        bt = task.collate(items, [np.random.default_rng(0)] * len(items))
        tokens.append(p.net.encode(bt["images"], bt["ego"]))
tokens = torch.cat(tokens)
futures = torch.from_numpy(logged_futures(ds)[:, :, :2] / [50.0, 20.0]).float()
log["encode_minutes"] = round((time.time() - t0) / 60, 2)
test = DrivingDataset(["/work/main/data/test"], spec=needs.spec, history=0, rig=needs.rig, scenes=False)
log["test_coverage"] = coverage(p.cfg.anchor_array, logged_futures(test))
print(json.dumps(log), flush=True)
params = [q for q in task.trainable_parameters() if q.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
rng = np.random.default_rng(0)
batch_size, t_start, step = 64, time.time(), 0
k, tp = p.cfg.num_anchors, p.cfg.spec.num_poses


def save(tag: str) -> None:
    with staged_dir(f"{out}/{tag}") as tmp:
        p.save(tmp, {"train": {"steps": step, "minutes": round((time.time() - t_start) / 60, 2)}})


p.net.train()
p.net.encoder.eval()
while time.time() - t_start < 60 * minutes:
    frac = (time.time() - t_start) / (60 * minutes)
    for g in opt.param_groups:
        g["lr"] = 1e-3 * (min(1.0, (step + 1) / 30) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))))
    idx = rng.choice(len(ds), batch_size, replace=False)
    g = torch.Generator().manual_seed(step)
    batch = {
        "target": futures[idx],
        "t": torch.randint(0, p.cfg.diffusion.train_t_max, (batch_size,), generator=g),
        "noise": torch.randn((batch_size, k, tp, 2), generator=g),
    }
    loss, parts = task.loss_on_scene(tokens[idx], batch)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    step += 1
    if step % 50 == 0:
        rec = {"step": step, "min": round((time.time() - t_start) / 60, 2), "loss": float(loss), **parts}
        log["steps"].append(rec)
        print(rec, flush=True)
    if step % 500 == 0:
        save("last")
p.net.eval()
save("supervised")

# selector: labels = scorer PDMS of the model's own slow-path candidates on training frames
scored = DrivingDataset(["/work/main/data/train_a"], spec=needs.spec, history=needs.history, rig=needs.rig)
t_sel, data = time.time(), []
order = np.random.default_rng(1).permutation(len(scored))
for i in order:
    if time.time() - t_sel > 30 * sel_minutes:
        break
    s = scored[int(i)]
    with torch.no_grad():
        images, ego = p.inputs(s.observation())
        scene = p.net.encode(images, ego)
        sel = p.cfg.selector
        x0, _ = p.denoise(
            scene,
            sel.copies + 1,
            p.cfg.diffusion.slow_steps,
            sel.eta,
            torch.Generator().manual_seed(int(i)),
            "step_slow",
        )
    labels = score(to_poses(x0.numpy()), s.scene).columns()["PDMS"]
    data.append((scene[0], x0, torch.from_numpy(labels).float()))
print({"selector_frames": len(data), "label_minutes": round((time.time() - t_sel) / 60, 2)}, flush=True)
heads = [
    *p.net.score_in.parameters(),
    *p.net.coarse_head.parameters(),
    *p.net.fine_layer.parameters(),
    *p.net.fine_head.parameters(),
]
hopt = torch.optim.AdamW(heads, lr=1e-3)
p.net.train()
t_fit = time.time()
epoch = 0
while time.time() - t_fit < 30 * sel_minutes and data:
    perm = np.random.default_rng(epoch).permutation(len(data))
    tot = 0.0
    for b in range(0, len(data), 16):
        chunk = [data[k] for k in perm[b : b + 16]]
        scene = torch.stack([c[0] for c in chunk])
        cand = torch.stack([c[1] for c in chunk])
        lab = torch.stack([c[2] for c in chunk])
        coarse = F.binary_cross_entropy_with_logits(p.net.coarse_scores(scene, cand), lab)
        fine = F.binary_cross_entropy_with_logits(p.net.fine_scores(scene, cand), lab)
        hopt.zero_grad()
        (coarse + fine).backward()
        hopt.step()
        tot += float(coarse + fine) * len(chunk)
    epoch += 1
    print({"selector_epoch": epoch, "bce": tot / len(data)}, flush=True)
p.net.eval()
save("final")
with open(f"{out}/train_log.json", "w") as f:
    json.dump(log, f)
