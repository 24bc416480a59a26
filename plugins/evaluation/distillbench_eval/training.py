"""The student training loop of the soft-label protocols, kept on the device.

The distilled set is small: it lives on the device as one uint8 tensor, and
every step crops, flips, normalises and mixes a batch there, without a Python
data loader.  The loop never reads a value back from the device inside an
epoch (loss and accuracy are summed on the device and read once per epoch).
Given a checkpoint path, the loop saves its whole state there every few
minutes, at an epoch's end, and an interrupted training resumes from it with
the same result as an uninterrupted one.
"""
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from distillbench.api import (DistillbenchError, atomic, autocast, distributed, draw_mix, mix, precision,
                              resized_crop_params, shift_params, shuffle_patches, warp)


TEST_IN_MEMORY = 256 * 2**20  # a test split whose decoded images fit is read once; a larger one is streamed


def kd_loss(student_logits, teacher_logits, temperature: float):
    """KL(softmax(teacher/T) || softmax(student/T)), batchmean, no T^2 factor (RDED/SRe2L)."""
    return soft_target_loss(student_logits, F.softmax(teacher_logits / temperature, dim=1), temperature)


def soft_target_loss(student_logits, target_probs, temperature: float):
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), target_probs, reduction="batchmean")


def param_groups(model, weight_decay: float):
    """Weight decay only on weight tensors with ndim > 1 (no decay on biases and norm layers)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if param.ndim > 1 and name.endswith("weight") else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model, settings, lr: float):
    groups = (param_groups(model, settings.weight_decay) if not settings.decay_all else
              [{"params": list(model.parameters()), "weight_decay": settings.weight_decay}])
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=settings.beta1)
    return torch.optim.AdamW(groups, lr=lr, betas=(settings.beta1, settings.beta2))


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate in ``epoch`` (0-based).

    half_cosine is RDED's 0.5(1 + cos(pi e / 2E)): it only falls to 0.5 at the end.
    """
    if schedule == "half_cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / (2 * epochs)))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    return 1.0


def accuracy(model, test, normalize, device, batch: int = 500) -> float:
    """Accuracy on ``test``, an image set in the test view (see ``ImageSet.test_view``), streamed in batches;
    under torchrun each rank scores its share with rank 0's weights and batch-norm statistics."""
    distributed.broadcast_buffers(model)
    correct = _count_correct(model, test, distributed.shard(torch.arange(len(test))), normalize, device, batch)
    return distributed.all_sum(correct.clone()).item() / len(test)  # clone: all_sum writes in place


@torch.inference_mode()
def _count_correct(model, test, indices, normalize, device, batch: int):
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    for images, labels in zip(test.batches(indices, batch), test.targets[indices].split(batch)):
        x = images.to(device).float() / 255
        with autocast(device):
            logits = model(normalize(x).contiguous(memory_format=torch.channels_last))
        correct += (logits.argmax(1) == labels.to(device)).sum()
    return correct


@dataclass
class Batch:
    x: torch.Tensor  # normalised, augmented, mixed, channels_last
    y: torch.Tensor  # each row's label ...
    y_mixed: torch.Tensor  # ... and that of the image mixed into it (CutMix/mixup), weighted 1 - lam
    index: torch.Tensor  # the rows' positions in the set, and those of their mixed-in partners
    index_mixed: torch.Tensor
    lam: float
    crops: torch.Tensor  # the rows' crop boxes and flips (see :func:`augment.warp`)
    perm: torch.Tensor  # each row's mixed-in partner in the batch
    box: Optional[tuple]  # the CutMix box, or None
    target: Optional[torch.Tensor] = None  # stored teacher logits of the rows (FKD replay), else None

    def shard(self) -> "Batch":
        """This rank's rows.  Under torchrun every rank draws the same batch from the same seed and
        trains on its share, so DDP's averaged gradient is the whole batch's (up to batch norm)."""
        if not distributed.active():
            return self
        rows = slice(distributed.rank(), None, distributed.world_size())
        return Batch(self.x[rows], self.y[rows], self.y_mixed[rows], self.index[rows], self.index_mixed[rows],
                     self.lam, self.crops[rows], self.perm[rows], self.box,
                     None if self.target is None else self.target[rows])


class BatchMaker:
    """Draws augmented, mixed batches from a uint8 set held on the device."""

    def __init__(self, images_u8, labels, settings, normalize, device, seed: int):
        self.images = images_u8.to(device)
        self.labels = labels.to(device)
        self.settings = settings
        self.normalize = normalize
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.rng = random.Random(seed)

    def epoch(self, epoch: int, batch_size: int):
        n = len(self.images)
        order = torch.randperm(n, device=self.images.device, generator=self.generator)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            yield self.batch(index)

    def batch(self, index) -> Batch:
        s, n, size = self.settings, len(index), self.images.shape[-1]
        x = self.images[index].float() / 255
        if s.augment == "none":  # DD-Ranking's ARS "without augmentation": the images as they are
            crops = shift_params(n, size, self.generator, x.device, 0, False)
        elif s.augment == "shift":
            crops = shift_params(n, size, self.generator, x.device, s.shift, s.flip)
        else:
            x = shuffle_patches(x, self.generator, s.shuffle_patches)
            crops = resized_crop_params(n, size, self.generator, x.device, s.crop_scale_min, s.flip)
        perm, lam, box = draw_mix(s.mix, n, size, self.generator, self.rng, s.mix_alpha)
        return self.assemble(index, x, crops, perm, lam, box)

    def assemble(self, index, x, crops, perm, lam: float, box, target=None) -> Batch:
        """The batch of rows ``index`` (``x``: their images in [0, 1]) under the drawn crops and mixing."""
        x = mix(self.normalize(warp(x, crops)), perm, lam, box)
        return Batch(x.contiguous(memory_format=torch.channels_last), self.labels[index], self.labels[index[perm]],
                     index, index[perm], lam, crops, perm, box, target)


def epoch_file(folder: Path, epoch: int) -> Path:
    """Where an FKD plan (:mod:`distillbench_eval.fkd`) keeps ``epoch``'s batches and teacher logits."""
    return folder / f"epoch_{epoch:04d}.safetensors"


class Replay(BatchMaker):
    """The batches of an FKD plan: its order, crops and mixing, with the teacher logits of the rows as ``target``."""

    def __init__(self, folder: Path, images_u8, labels, settings, normalize, device, seed: int):
        super().__init__(images_u8, labels, settings, normalize, device, seed)
        self.folder = folder

    def epoch(self, epoch: int, batch_size: int):
        from safetensors.torch import load_file
        plan = load_file(epoch_file(self.folder, epoch))
        device = self.images.device
        order, crops, perm, logits = (plan[k].to(device) for k in ("order", "crops", "perm", "logits"))
        for b, start in enumerate(range(0, len(order), batch_size)):
            rows = slice(start, start + batch_size)
            box = tuple(plan["box"][b].tolist())
            yield self.assemble(order[rows], self.images[order[rows]].float() / 255, crops[rows], perm[rows],
                                float(plan["lam"][b]), None if box[0] < 0 else box, logits[rows])


class Checkpoint:
    """A training's state at the end of an epoch: model, optimiser, every random generator it draws from,
    the evaluations so far and the seconds spent.  Saved atomically by rank 0 at most every
    ``every_seconds`` (default: $DISTILLBENCH_CHECKPOINT_SECONDS, else 300); every rank of a torchrun job
    loads the same file."""

    def __init__(self, path: Path, every_seconds: Optional[float] = None):
        if every_seconds is None:
            every_seconds = float(os.environ.get("DISTILLBENCH_CHECKPOINT_SECONDS", 300))
        self.path, self.every_seconds = Path(path), every_seconds
        self.last_saved = time.perf_counter()

    def load(self, model, optimizer, batches: BatchMaker) -> Optional[dict]:
        """The saved state applied to ``model``, ``optimizer`` and ``batches``; None when there is none, or when
        it was saved on another kind of device (whose random generators this one cannot continue)."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("device") != batches.images.device.type:
            tqdm.write(f"not resuming from {self.path}: it was saved on {state.get('device')}", file=sys.stderr)
            return None
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batches.generator.set_state(state["batch_generator"])
        batches.rng.setstate(state["batch_rng"])
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return state

    def save_due(self, last_epoch: bool) -> bool:
        return not last_epoch and time.perf_counter() - self.last_saved >= self.every_seconds

    def save(self, model, optimizer, batches: BatchMaker, *, next_epoch: int, evaluations: dict, seconds: float,
             resumed_at: list) -> None:
        if distributed.is_main():
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "batch_generator": batches.generator.get_state(), "batch_rng": batches.rng.getstate(),
                     "torch_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                     "device": batches.images.device.type, "next_epoch": next_epoch, "evaluations": evaluations,
                     "seconds": seconds, "resumed_at": resumed_at}
            atomic.write_torch(self.path, state)
        self.last_saved = time.perf_counter()


def batch_loss(logits, batch: Batch, settings, teacher=None, stored_probs=None):
    if settings.labels == "hard":
        return batch.lam * F.cross_entropy(logits, batch.y) + (1 - batch.lam) * F.cross_entropy(logits, batch.y_mixed)
    if settings.labels == "fkd":
        return soft_target_loss(logits, F.softmax(batch.target.float() / settings.temperature, dim=1),
                                settings.temperature)
    if settings.labels == "stored":
        probs = batch.lam * stored_probs[batch.index] + (1 - batch.lam) * stored_probs[batch.index_mixed]
        return soft_target_loss(logits, probs, settings.temperature)
    with torch.no_grad():
        teacher_logits = teacher(batch.x)
    return kd_loss(logits, teacher_logits.float(), settings.temperature)


def train_model(model, train, test, settings, *, batch_size: int, lr: float, normalize, device: str, seed: int,
                teacher=None, stored_probs=None, replay: Optional[Path] = None, name: str = "model",
                show_progress: bool = True, checkpoint: Optional[Checkpoint] = None) -> dict:
    """Train ``model`` on ``train`` = (uint8 images, labels) and report its accuracy on ``test`` (an image set).

    Returns the final-epoch accuracy and the best accuracy seen at the periodic evaluations (which
    selects on the test set: flagged in the record).  Under torchrun the model trains with
    DistributedDataParallel, each rank on its share of every batch (see :meth:`Batch.shard`).
    With a ``checkpoint``, training starts from the state saved there, if any, and saves its own.  With
    ``replay`` (an FKD plan's folder), the batches and their soft labels are the plan's.
    """
    start_time = time.perf_counter()
    torch.manual_seed(seed)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, settings, lr)
    batches = (Replay(replay, *train, settings, normalize, device, seed) if replay else
               BatchMaker(*train, settings, normalize, device, seed))
    epochs, start, evaluations, earlier_seconds, resumed_at = settings.epochs, 0, {}, 0.0, []
    saved = checkpoint.load(model, optimizer, batches) if checkpoint else None
    if saved is not None:
        start, evaluations, earlier_seconds = saved["next_epoch"], saved["evaluations"], saved["seconds"]
        resumed_at = saved["resumed_at"] + [start]
        if show_progress and distributed.is_main():
            tqdm.write(f"{name}: resuming at epoch {start + 1} of {epochs} from {checkpoint.path}", file=sys.stderr)
    trained = data_parallel(model, device)
    per_epoch = math.ceil(len(train[0]) / batch_size)
    bar = tqdm(desc=name, unit="batch", total=epochs * per_epoch, initial=start * per_epoch, leave=False,
               dynamic_ncols=True, disable=not (show_progress and distributed.is_main()))
    for epoch in range(start, epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(settings.schedule, epoch, epochs)
        model.train()
        total = torch.zeros((), device=device)
        for batch in batches.epoch(epoch, batch_size):
            batch = batch.shard()
            if settings.extra_train_forward:  # RDED's and D3HR's logging forward: BN statistics move twice
                with torch.no_grad(), autocast(device, settings.amp):
                    trained(batch.x)
            with autocast(device, settings.amp):
                logits = trained(batch.x)
                loss = batch_loss(logits.float(), batch, settings, teacher, stored_probs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            bar.update()
        check_loss(total.item(), name, epoch)
        last = epoch == epochs - 1
        if settings.evaluates_after(epoch):
            evaluations[epoch + 1] = accuracy(model, test, normalize, device)
        bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{total.item() / per_epoch:.3f}",
                        **({"acc": f"{evaluations[max(evaluations)]:.3f}"} if evaluations else {}))
        if checkpoint and checkpoint.save_due(last):
            checkpoint.save(model, optimizer, batches, next_epoch=epoch + 1, evaluations=evaluations,
                            seconds=earlier_seconds + time.perf_counter() - start_time, resumed_at=resumed_at)
    bar.close()
    best_epoch = max(evaluations, key=evaluations.get)
    return {"final_acc": evaluations[epochs], "best_acc": evaluations[best_epoch], "best_epoch": best_epoch,
            "evaluated_epochs": sorted(evaluations), "best_selects_on_test_set": True,
            "precision": precision(device, settings.amp), "distributed": distributed_facts(device),
            "seconds": earlier_seconds + time.perf_counter() - start_time, "resumed_at_epochs": resumed_at}


def check_loss(value: float, name: str, epoch: int) -> None:
    """Stop at the first epoch whose loss is NaN or Inf, before any result is recorded."""
    if not math.isfinite(value):
        raise DistillbenchError(f"the training loss of {name} became {value} in epoch {epoch + 1}; lower the "
                                "learning rate (--set lr=...) or check the set's images and the teacher")


def data_parallel(model, device: str):
    """``model`` wrapped in DistributedDataParallel under torchrun (synchronised batch norm on CUDA;
    torch's SyncBatchNorm has no CPU kernel, so on gloo each rank normalises with its own rows)."""
    if not distributed.active():
        return model
    from torch.nn.parallel import DistributedDataParallel
    if device.startswith("cuda"):
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[torch.device(device).index])
    return DistributedDataParallel(model)


def distributed_facts(device: str):
    if not distributed.active():
        return None
    return {"world_size": distributed.world_size(), "backend": distributed.backend(),
            "sync_batchnorm": device.startswith("cuda")}


def teacher_seed(seed: int, dataset: str, arch: str) -> int:
    """The seed a teacher trains with (its metadata's ``seed``) for ``train-teacher --seed``'s ``seed``."""
    from distillbench.api import derive_seed
    return derive_seed(seed, f"teacher/{dataset}/{arch}") % 2**31


def train_teacher(spec, model_spec, train, test, protocol, seed: int, device: str, path: Path):
    """Train ``model_spec`` on the whole ``train`` split under the teacher ``protocol``, resuming from a
    checkpoint beside ``path``; rank 0 saves it at ``path`` with its metadata.  Returns (result, checksum)."""
    from distillbench.api import json_digest, normalizer, save_teacher
    seed = teacher_seed(seed, spec.name, model_spec.name)
    torch.manual_seed(seed)
    model = model_spec.build(train.num_classes, spec.image_size)
    settings = protocol.settings
    inputs = {"protocol": protocol.resolved(), "seed": seed, "train_fingerprint": train.fingerprint()}
    checkpoint = Checkpoint(path.with_name(f"{path.stem}-{json_digest(inputs)[:16]}.checkpoint.pt"))
    result = train_model(model, (train.load(torch.arange(len(train))), train.targets),
                         test.test_view().resident(TEST_IN_MEMORY), settings,
                         batch_size=settings.batch_size, lr=settings.lr,
                         normalize=normalizer(spec, settings.normalization, device), device=device, seed=seed,
                         name=f"teacher {model_spec.name}", checkpoint=checkpoint)
    if not distributed.is_main():
        return result, None
    meta = {"arch": model_spec.name, "dataset": spec.name, "num_classes": train.num_classes,
            "image_size": spec.image_size, "normalization": settings.normalization, "accuracy": result["final_acc"],
            **inputs}
    checksum = save_teacher(path, model.cpu(), meta)
    checkpoint.path.unlink(missing_ok=True)
    return result, checksum
