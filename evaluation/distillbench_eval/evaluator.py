"""The ``students`` evaluator's work: train students on a set under a protocol, report test accuracy."""
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from distillbench import atomic, distributed
from distillbench.errors import UsageError
from distillbench.evaluator import identity
from distillbench.method import derive_seed
from distillbench.plugins import registry
from distillbench_eval.plugin import StudentsEvaluator
from distillbench_eval.protocols import batch_size, for_dataset, resolve
from distillbench_eval.teachers import load_ensemble, resolve_teachers
from distillbench_eval.training import Checkpoint, Normalizer, train_model

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalizer(spec, settings, device) -> Normalizer:
    if settings.normalization == "imagenet":
        return Normalizer(IMAGENET_MEAN, IMAGENET_STD, device)
    return Normalizer(spec.mean, spec.std, device)


@torch.inference_mode()
def soft_labels(teacher, images_u8, normalize, temperature: float, device: str, batch: int = 500):
    """softmax(teacher(x)/T) of every (un-augmented) image."""
    chunks = [F.softmax(teacher(normalize(images_u8[i:i + batch].to(device).float() / 255)).float() / temperature, 1)
              for i in range(0, len(images_u8), batch)]
    return torch.cat(chunks)


def stored_soft_labels(distilled, teacher, teacher_infos, images_u8, normalize, temperature, device):
    """Soft labels computed once and kept beside the set's images (FKD-style), keyed by teacher checksums."""
    from safetensors.torch import load_file, save
    if distilled.path is None:
        raise UsageError("stored labels need a distilled set on disk; use the rded protocol for 'full'")
    key = "-".join(info["sha256"].split(":")[1][:12] for info in teacher_infos)
    path = Path(distilled.path) / f"soft_labels-{key}-T{temperature:g}.safetensors"
    if path.is_file():
        return load_file(path)["probs"].to(device)
    probs = soft_labels(teacher, images_u8, normalize, temperature, device)
    atomic.write_bytes(path, save({"probs": probs.cpu().contiguous()}))
    return probs


def labeller(settings, student: str, request, num_classes: int, distilled, images, normalize):
    """(teacher ensemble or None, teacher descriptions, stored soft labels or None) for one student."""
    if settings.labels == "hard":
        return None, [], None
    teacher, infos = load_ensemble(request.teachers, settings.teacher_arch or student, request.spec, num_classes,
                                   request.cache_dir, request.device)
    stored = None
    if settings.labels == "stored":
        stored = stored_soft_labels(distilled, teacher, infos, images, normalize, settings.temperature,
                                    request.device)
    return teacher, infos, stored


def check_request(request) -> None:
    """The protocol resolves and every student's teacher loads (where the class count is known up front)."""
    settings = resolve(request.protocol, request.overrides).settings
    if settings.labels == "hard" or request.spec.num_classes is None:
        return
    for student in request.students:
        resolve_teachers(request.teachers, settings.teacher_arch or student, request.spec, request.spec.num_classes,
                         request.cache_dir)


def checkpoint_for(request, record_id: str):
    """Where the training of the record ``record_id`` keeps its state until the record is stored."""
    if request.checkpoints is None:
        return None
    return Checkpoint(_scratch(request, record_id, ".pt"))


@contextmanager
def seed_held(request, record_id: str, wait: bool):
    """Held while a seed is looked up, trained and recorded, so that a second process sharing the root
    never trains the same seed.  The block is given whether it holds the seed: with ``wait`` it waits for
    the holder (then finds its record), without it it is told at once.  The lock file goes with the
    record; a crash leaves it for the next holder (the kernel has dropped the lock)."""
    if request.checkpoints is None:
        yield True
        return
    lock = _scratch(request, record_id, ".lock")
    with distributed.exclusive(lock, wait) as held:
        yield held
        if held and distributed.is_main():
            lock.unlink(missing_ok=True)


def _scratch(request, record_id: str, suffix: str) -> Path:
    return Path(request.checkpoints) / f"{record_id.split(':')[-1][:32]}{suffix}"


def evaluate_students(distilled, request, on_result) -> list[dict]:
    protocol = for_dataset(resolve(request.protocol, request.overrides), request.spec)
    settings, spec, device = protocol.settings, request.spec, request.device
    images, labels = distilled.load()
    test_split = request.load_split("test")
    test = (test_split.load(torch.arange(len(test_split))), test_split.targets)
    num_classes = test_split.num_classes
    normalize = normalizer(spec, settings, device)
    batch = settings.batch_size or batch_size(distilled.manifest["ipc"] or len(images), num_classes, len(images))
    checksum, test_fingerprint = distilled.checksum(), test_split.fingerprint()
    results = []
    for student in request.students:
        model_spec = registry("model").get(student)
        teacher, teacher_infos, stored = labeller(settings, student, request, num_classes, distilled, images,
                                                  normalize)
        lr = settings.lr or model_spec.adamw_lr
        seeds = {}  # repeat -> (record identity, inputs)
        for repeat in range(request.repeats):
            inputs = {"student": student, "protocol": protocol.name, "protocol_resolved": protocol.resolved(),
                      "seed": repeat, "train_seed": derive_seed(request.seed, f"{student}/{repeat}") % 2**31,
                      "teachers": teacher_infos, "batch_size": batch, "lr": lr, "distilled_checksum": checksum,
                      "test_fingerprint": test_fingerprint}
            seeds[repeat] = (identity({"evaluator": StudentsEvaluator.name, "run_id": distilled.manifest.get("run_id"),
                                       "method": distilled.manifest["method"], **inputs}), inputs)

        def trained(repeat: int, record_id: str, inputs: dict) -> dict:
            """Train this student's seed ``repeat``, report its record and return it."""
            torch.manual_seed(inputs["train_seed"])
            model = model_spec.build(num_classes, spec.image_size)
            checkpoint = checkpoint_for(request, record_id)
            result = train_model(model, (images, labels), test, settings, batch_size=batch, lr=lr,
                                 normalize=normalize, device=device, seed=inputs["train_seed"], teacher=teacher,
                                 stored_probs=stored, name=f"{student} seed {repeat}", checkpoint=checkpoint)
            record = {**inputs, "identity": record_id, "device": device,
                      "skipped_test_images": len(test_split.skipped), **result}
            on_result(record)
            if checkpoint is not None:
                checkpoint.path.unlink(missing_ok=True)
            return record

        records = {}
        for wait in (False, True):  # first the seeds no other process is training, then wait for those
            for repeat, (record_id, inputs) in seeds.items():
                if repeat in records:
                    continue
                with seed_held(request, record_id, wait) as held:
                    if held:
                        records[repeat] = request.recorded(record_id) or trained(repeat, record_id, inputs)
        results += [records[repeat] for repeat in range(request.repeats)]
    return results
