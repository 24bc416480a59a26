"""FKD-style stored soft labels: SRe2L's ImageNet relabelling, replayed by every student.

SRe2L (VILA-Lab/SRe2L@8d00cba, ``SRe2L/relabel/generate_soft_label.py`` L176-224, ``utils_fkd.py`` L10-85 and
L184-217) draws the whole student training once, from a fixed seed (``--fkd-seed 42``): every epoch's batch
order, each image's crop box and flip, each batch's CutMix partner and box, and the teacher's logits on the
resulting batch, stored in fp16.  ``validate/train_FKD.py`` then replays them: a student trains on exactly the
crops the labels were computed on, so every crop and every CutMix region has its own label.

Here the plan is one file per epoch under ``fkd-<key>/`` beside the set, keyed by the teachers and the
settings that shape the batches, so every student and seed of the set shares it.  Each epoch is drawn from its
own seed, so an interrupted relabelling resumes at the first missing epoch and torchrun ranks share the epochs.
"""
from dataclasses import asdict
from pathlib import Path

import torch

from distillbench.api import UsageError, atomic, autocast, derive_seed, distributed, json_digest
from distillbench_eval.training import BatchMaker, epoch_file

PLAN_SETTINGS = ("epochs", "batch_size", "augment", "shuffle_patches", "crop_scale_min", "shift", "flip", "mix",
                 "mix_alpha", "normalization", "teacher_train_mode", "amp", "fkd_seed")


def plan_folder(set_path, settings, teacher_infos) -> Path:
    if set_path is None:
        raise UsageError("FKD labels are stored with a distilled set on disk; use the rded protocol for 'full'")
    if settings.shuffle_patches != 1:
        raise UsageError("FKD labels replay crops and flips only; set shuffle_patches=1 (--set shuffle_patches=1)")
    settings_used = {key: value for key, value in asdict(settings).items() if key in PLAN_SETTINGS}
    key = json_digest({"teachers": [info["sha256"] for info in teacher_infos], "settings": settings_used})
    return Path(set_path) / f"fkd-{key[:16]}"


def relabel(folder: Path, images_u8, labels, teacher, settings, normalize, device: str) -> Path:
    """Draw and label every epoch not yet in ``folder``; under torchrun each rank draws its share of the epochs."""
    from safetensors.torch import save
    missing = [e for e in range(settings.epochs) if not epoch_file(folder, e).is_file()]
    teacher.train(settings.teacher_train_mode)
    for epoch in distributed.progress(distributed.shard(missing), desc="FKD relabelling (epochs)"):
        maker = BatchMaker(images_u8, labels, settings, normalize, device,
                           derive_seed(settings.fkd_seed, f"fkd/epoch {epoch}") % 2**63)
        batches = list(maker.epoch(epoch, settings.batch_size))
        with torch.inference_mode(), autocast(device, settings.amp):
            logits = [teacher(batch.x).half().cpu() for batch in batches]
        plan = {"order": torch.cat([b.index for b in batches]), "crops": torch.cat([b.crops for b in batches]),
                "perm": torch.cat([b.perm for b in batches]), "logits": torch.cat(logits),
                "lam": torch.tensor([b.lam for b in batches], dtype=torch.float64),
                "box": torch.tensor([b.box or (-1, -1, -1, -1) for b in batches], dtype=torch.long)}
        atomic.write_bytes(epoch_file(folder, epoch), save({k: v.cpu().contiguous() for k, v in plan.items()}))
    distributed.barrier()
    return folder
