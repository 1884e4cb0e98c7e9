"""The shared training loop on a toy regression: a stop request (or SIGINT) finishes the step, saves
last/ and returns; a second SIGINT aborts; a resumed run equals the uninterrupted one; validation every
N steps picks best/; the time budget stops the run; history.json and last/ are written."""

import json
import os
import signal
import threading

import numpy as np
import pytest
import torch

from wamdiff_ros.models.checkpoint import load_checkpoint, save_checkpoint
from wamdiff_ros.training.checkpointing import STATE_FILE
from wamdiff_ros.training.loop import BEST, HISTORY, LAST, TrainingLoop, epoch_order
from wamdiff_ros.training.settings import TrainSettings

X = torch.linspace(-1, 1, 32).unsqueeze(1)
Y = 3.0 * X - 0.5


class Toy(torch.nn.Linear):
    def __init__(self):
        super().__init__(1, 1)

    def save(self, folder, meta=None):
        return save_checkpoint(folder, "toy", {"in": 1}, self.state_dict(), meta)


class ToyLoop(TrainingLoop):
    """Steps of 4 samples over a seeded order; ``hook(step)`` runs inside each step (stop requests)."""

    def __init__(self, out, settings, hook=None, **kw):
        torch.manual_seed(0)
        net = Toy()
        super().__init__(out, net, net, torch.optim.SGD(net.parameters(), lr=0.1), settings, len(X) // 4, **kw)
        self.hook = hook
        self.validations = 0

    def epoch_items(self, epoch):
        return epoch_order(len(X), self.settings.seed, epoch)

    def train_step(self, order, j):
        if self.hook is not None:
            self.hook(self.state["step"])
        idx = torch.as_tensor(order[j * 4 : (j + 1) * 4])
        loss = torch.nn.functional.mse_loss(self.net(X[idx]), Y[idx])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    def validate(self, final):
        self.validations += 1
        with torch.no_grad():
            rec = {"step": self.state["step"], "val_loss": float(torch.nn.functional.mse_loss(self.net(X), Y))}
        best = self.state["best"]
        if best is None or rec["val_loss"] < best["val_loss"]:
            self.state["best"] = rec
            self.save_best(rec)
        self.state["history"].append(rec)
        return rec


def _settings(**kw):
    return TrainSettings(**{**dict(epochs=3, batch_size=4, threads=1, save_every_steps=5), **kw})


def _weights(loop):
    return torch.cat([p.detach().flatten() for p in loop.net.parameters()])


def test_validation_cadence_best_and_files(tmp_path):
    loop = ToyLoop(tmp_path, _settings(), val_every_steps=3, val_at_epoch_end=False, progress=False)
    summary = loop.run()
    assert summary["stop_reason"] == "completed" and summary["steps"] == 24
    history = json.loads((tmp_path / HISTORY).read_text())
    assert [h["step"] for h in history] == [3, 6, 9, 12, 15, 18, 21, 24]  # none extra: 24 was validated
    best = min(history, key=lambda h: h["val_loss"])
    assert load_checkpoint(tmp_path / BEST)[0]["meta"] == {}
    assert summary["best"] == best and history[-1]["val_loss"] < history[0]["val_loss"]
    assert json.loads((tmp_path / LAST / STATE_FILE).read_text())["finished"] is True


def test_stop_request_saves_and_resume_equals_uninterrupted(tmp_path):
    full = ToyLoop(tmp_path / "full", _settings(), progress=False)
    full.run()
    part = ToyLoop(tmp_path / "part", _settings(), progress=False)
    part.hook = lambda step: part.request_stop() if step == 9 else None
    summary = part.run()
    assert summary["stop_reason"] == "interrupted" and summary["steps"] == 10  # the step in flight finished
    state = json.loads((tmp_path / "part" / LAST / STATE_FILE).read_text())
    assert state["step"] == 10 and state["finished"] is False
    assert [h["step"] for h in part.state["history"]] == [8]  # epoch 1's end only: no validation on a stop
    resumed = ToyLoop(tmp_path / "part", _settings(), progress=False)
    assert resumed.run(resume=True)["steps"] == 24
    assert torch.equal(_weights(resumed), _weights(full))
    assert [h["step"] for h in resumed.state["history"]] == [8, 16, 24]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_sigint_finishes_the_step_and_a_second_one_aborts(tmp_path):
    previous = signal.getsignal(signal.SIGINT)
    loop = ToyLoop(tmp_path / "one", _settings(), progress=False)
    loop.hook = lambda step: os.kill(os.getpid(), signal.SIGINT) if step == 2 else None
    assert loop.run()["stop_reason"] == "interrupted" and loop.state["step"] == 3
    assert json.loads((tmp_path / "one" / LAST / STATE_FILE).read_text())["step"] == 3
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored

    twice = ToyLoop(tmp_path / "two", _settings(), progress=False)
    twice.hook = lambda step: [os.kill(os.getpid(), signal.SIGINT) for _ in range(2)] if step == 2 else None
    with pytest.raises(KeyboardInterrupt):
        twice.run()
    assert not (tmp_path / "two" / LAST).exists()
    assert signal.getsignal(signal.SIGINT) is previous


def test_time_budget_and_max_steps(tmp_path):
    slow = ToyLoop(tmp_path / "slow", _settings(max_minutes=1e-4), progress=False)
    slow.hook = lambda step: slow.state.update(train_seconds=slow.state["train_seconds"] + 1.0)
    summary = slow.run()
    assert summary["stop_reason"] == "time budget 0.0001 min" and summary["steps"] == 1
    assert [h["step"] for h in slow.state["history"]] == [1]  # a budget stop validates what it has
    capped = ToyLoop(tmp_path / "capped", _settings(max_steps=5), progress=False)
    assert capped.run()["stop_reason"] == "max_steps 5" and capped.state["finished"] is True
    np.testing.assert_array_equal(epoch_order(32, 0, 1), epoch_order(32, 0, 1))
