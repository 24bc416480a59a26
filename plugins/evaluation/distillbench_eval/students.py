"""The ``students`` evaluator's work: train students on a set under a protocol, report test accuracy.

One :class:`Session` per evaluated set: it resolves the protocol, loads the set, the test split and each
student's teachers once, names the trials (one per student and seed) and trains one when the core asks.
"""
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from distillbench.api import (Trial, UsageError, atomic, derive_seed, load_ensemble, normalizer, registry,
                              resolve_teachers)
from distillbench_eval import fkd
from distillbench_eval.protocols import for_dataset, resolve, resolve_for
from distillbench_eval.training import TEST_IN_MEMORY, Checkpoint, train_model


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


def cached_teachers(settings, student: str) -> str:
    """The cached teachers a student learns from when no --teacher is given: ``teacher_arch`` (or the student's
    architecture), seeds 0..teachers-1 (``ARCH@K``) where the protocol averages several."""
    arch = settings.teacher_arch or student
    return arch if settings.teachers == 1 else ",".join(f"{arch}@{k}" for k in range(settings.teachers))


def check_request(request) -> None:
    """The protocol resolves and every student's teacher loads (where the class count is known up front)."""
    settings = for_dataset(resolve(request.protocol, request.overrides), request.spec).settings
    if settings.labels == "hard" or request.spec.num_classes is None:
        return
    for student in request.students:
        resolve_teachers(request.teachers, cached_teachers(settings, student), request.spec,
                         request.spec.num_classes, request.cache_dir)


@dataclass
class Student:
    """What every seed of one student shares: its architecture, its protocol resolved for it, its labeller."""

    model_spec: object
    protocol: object  # the Protocol with every setting resolved for this dataset, set and student
    teacher: object  # the teacher ensemble, or None for hard labels
    teacher_infos: list
    stored: object  # stored soft labels, or the folder of an FKD plan, or None


class Session:
    def __init__(self, distilled, request):
        self.request = request
        self.protocol = resolve(request.protocol, request.overrides)
        self.images, self.labels = distilled.load()
        self.ipc = distilled.manifest["ipc"]
        self.test_split = request.load("test").test_view().resident(TEST_IN_MEMORY)
        self.num_classes = self.test_split.num_classes
        self.normalize = normalizer(request.spec, self.protocol.settings.normalization, request.device)
        self.checksum, self.test_fingerprint = distilled.checksum(), self.test_split.fingerprint()
        self.students = {name: self.student(name, distilled) for name in request.students}

    def resolved_for(self, name: str, protocol):
        return resolve_for(protocol, self.request.spec, name, registry("model").get(name).adamw_lr, self.ipc,
                           self.num_classes, len(self.images))

    def changes(self, name: str, protocol) -> dict:
        """The settings that the overrides changed, as resolved for this student (what a table labels a row
        with: ``--set lr=1e-3`` and ``lr=0.001`` alike, ``epochs=300`` where 300 is the rules' not at all)."""
        default = vars(self.resolved_for(name, resolve(self.request.protocol, {})).settings)
        return {k: v for k, v in vars(protocol.settings).items() if v != default[k]}

    def student(self, name: str, distilled) -> Student:
        model_spec, request = registry("model").get(name), self.request
        protocol = self.resolved_for(name, self.protocol)
        settings = protocol.settings
        if settings.labels == "hard":
            return Student(model_spec, protocol, None, [], None)
        teacher, infos = load_ensemble(request.teachers, cached_teachers(settings, name), request.spec,
                                       self.num_classes, request.cache_dir, request.device, settings.normalization)
        stored = None
        if settings.labels == "stored":
            stored = stored_soft_labels(distilled, teacher, infos, self.images, self.normalize, settings.temperature,
                                        request.device)
        if settings.labels == "fkd":
            stored = fkd.relabel(fkd.plan_folder(distilled.path, settings, infos), self.images, self.labels, teacher,
                                 settings, self.normalize, request.device)
        return Student(model_spec, protocol, teacher, infos, stored)

    def trials(self) -> list[Trial]:
        repeats = self.request.repeats or self.protocol.repeats
        return [Trial(f"{name} seed {repeat}", {
            "student": name, "protocol": self.protocol.name, "protocol_resolved": student.protocol.resolved(),
            "seed": repeat, "train_seed": derive_seed(self.request.seed, f"{name}/{repeat}") % 2**31,
            "teachers": student.teacher_infos, "batch_size": student.protocol.settings.batch_size,
            "lr": student.protocol.settings.lr, "distilled_checksum": self.checksum,
            "test_fingerprint": self.test_fingerprint})
            for name, student in self.students.items() for repeat in range(repeats)]

    def run(self, trial: Trial, ctx) -> dict:
        fields = trial.fields
        student = self.students[fields["student"]]
        settings = student.protocol.settings
        torch.manual_seed(fields["train_seed"])
        if student.teacher is not None:
            student.teacher.train(settings.teacher_train_mode)
        model = student.model_spec.build(self.num_classes, self.request.spec.image_size)
        result = train_model(model, (self.images, self.labels), self.test_split, settings,
                             batch_size=settings.batch_size, lr=settings.lr, normalize=self.normalize,
                             device=ctx.device, seed=fields["train_seed"],
                             teacher=student.teacher, name=trial.name,
                             stored_probs=student.stored if settings.labels == "stored" else None,
                             replay=student.stored if settings.labels == "fkd" else None,
                             checkpoint=Checkpoint(ctx.checkpoint))
        reported = result["best_acc"] if settings.report == "best" else result["final_acc"]
        return {"labels": "hard" if settings.labels == "hard" else "soft", "reported_acc": reported,
                "protocol_overrides": self.changes(fields["student"], student.protocol),
                "report": settings.report, "skipped_test_images": len(self.test_split.skipped), **result}
