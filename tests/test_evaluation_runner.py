"""A third-party evaluator of a few dozen lines gets resume, locks and checkpoints from the core: killed
mid-training it resumes from the checkpoint the core handed it, to the uninterrupted record."""
import json
import shutil

from distillbench.store import Store
from distillbench.testing import install_plugin, invoke, run_subprocess

LINEAR = '''
import os, signal, time
import torch
import torch.nn.functional as F
from distillbench.api import Evaluator, Trial, UsageError, hookimpl


def features(images):
    return F.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)


class Linear(Evaluator):
    """Softmax regression on 4x4 thumbnails, by minibatch SGD: a toy third-party evaluator."""
    name = "linear"
    description = "toy evaluator: softmax regression on thumbnails"

    def check(self, request):
        if set(request.overrides) - {"epochs"}:
            raise UsageError("the linear evaluator has one setting, epochs")

    def trials(self, distilled, request):
        test = request.load("test")
        self.train, self.test = distilled.load(), (test.load(torch.arange(len(test))), test.targets)
        self.epochs, self.classes = int(request.overrides.get("epochs", 30)), test.num_classes
        return [Trial(f"linear seed {seed}", {"student": "linear", "protocol": "sgd", "seed": seed,
                                              "epochs": self.epochs, "set": distilled.checksum()})
                for seed in range(request.repeats)]

    def run_trial(self, trial, ctx):
        start_time, x, y = time.perf_counter(), features(self.train[0]), self.train[1]
        state = {"epoch": 0, "w": torch.zeros(x.shape[1], self.classes), "rng": torch.manual_seed(trial.fields["seed"]).get_state()}
        if ctx.checkpoint.is_file():
            state = torch.load(ctx.checkpoint)
        resumed_from, generator = state["epoch"], torch.Generator().manual_seed(0)
        generator.set_state(state["rng"])
        w = state["w"].requires_grad_(True)
        for epoch in range(state["epoch"], self.epochs):
            for batch in torch.randperm(len(x), generator=generator).split(4):
                loss = F.cross_entropy(x[batch] @ w, y[batch])
                (grad,) = torch.autograd.grad(loss, w)
                w = (w - 0.5 * grad).detach().requires_grad_(True)
            torch.save({"epoch": epoch + 1, "w": w.detach(), "rng": generator.get_state()}, ctx.checkpoint)
            if os.environ.get("LINEAR_DIE_AFTER_EPOCH") == str(epoch + 1):
                os.kill(os.getpid(), signal.SIGKILL)
        accuracy = ((features(self.test[0]) @ w).argmax(1) == self.test[1]).float().mean().item()
        return {"final_acc": accuracy, "best_acc": None, "seconds": time.perf_counter() - start_time,
                "resumed_from_epoch": resumed_from}


@hookimpl
def register_evaluators(register):
    register(Linear)
'''


def test_a_third_party_evaluator_killed_mid_training_resumes_from_its_checkpoint(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "distillbench-linear", "distillbench_linear", LINEAR)
    root = tmp_path / "root"
    assert invoke("run", "--method", "random", "--dataset", "digits", "--ipc", "5", "--root", root).exit_code == 0
    (run_id,) = Store(root).run_ids()
    evaluate = ["evaluate", run_id, "--evaluator", "linear", "--repeats", "1"]
    env = {"PYTHONPATH": str(site)}
    shutil.copytree(root, tmp_path / "whole")
    run_subprocess(*evaluate, "--root", tmp_path / "whole", env=env, check=True)
    (expected,) = Store(tmp_path / "whole").evaluations("digits").to_dict("records")

    killed = run_subprocess(*evaluate, "--root", root, env={**env, "LINEAR_DIE_AFTER_EPOCH": "12"})
    assert killed.returncode == -9, killed.stderr
    scratch = root / "scratch" / "evaluations"
    assert [p.suffix for p in sorted(scratch.iterdir())] == [".lock", ".pt"]  # the core's lock and checkpoint path
    assert Store(root).evaluations("digits").empty

    resumed = run_subprocess(*evaluate, "--root", root, env=env, check=True)
    assert "linear seed=0" in resumed.stdout
    (record,) = Store(root).evaluations("digits").to_dict("records")
    assert record["final_acc"] == expected["final_acc"] and record["identity"] == expected["identity"]
    stored = json.loads(Store(root)._rows("evaluations")[0]["record"])
    assert stored["resumed_from_epoch"] == 12 and stored["evaluator"] == "linear"
    assert list(scratch.iterdir()) == []  # the checkpoint and the lock went with the record

    again = run_subprocess(*evaluate, "--root", root, env=env, check=True)
    assert "stored earlier" in again.stdout and len(Store(root).evaluations("digits")) == 1
