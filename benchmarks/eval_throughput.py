"""Student-training throughput: distillbench's on-device loop vs a straightforward DataLoader loop.

Both train the same student with the same teacher, batch size, CutMix, loss,
optimiser and number of steps on the same distilled set (IPC images per class
of the chosen dataset).  The reference is what most codebases do: a Dataset
applying torchvision transforms per image (RandomResizedCrop, flip,
normalise), a DataLoader, fp32, and a loss read back every step.

    python benchmarks/eval_throughput.py [--student conv3] [--ipc 10] [--epochs 30] [--device cpu]

Prints images/s (teacher forward included) of both and their ratio.
"""
import argparse
import random

import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader, Dataset

from distillbench.plugins import registry
from distillbench.augment import draw_mix, mix
from distillbench_eval.protocols import Settings, batch_size
from distillbench.accel import precision, timed
from distillbench.datasets import TensorImageSet
from distillbench.teachers import Normalizer
from distillbench_eval.training import kd_loss, make_optimizer, train_model


class PerSample(Dataset):
    def __init__(self, images, labels, spec):
        self.images, self.labels = images, labels
        self.transform = T.Compose([T.RandomResizedCrop(spec.image_size, antialias=True), T.RandomHorizontalFlip(),
                                    T.ConvertImageDtype(torch.float32), T.Normalize(spec.mean, spec.std)])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def reference_loop(student, teacher, images, labels, spec, settings, batch, lr, epochs, device):
    optimizer = make_optimizer(student, settings, lr)
    loader = DataLoader(PerSample(images, labels, spec), batch_size=batch, shuffle=True)
    rng, generator = random.Random(0), torch.Generator(device=device).manual_seed(0)
    for _ in range(epochs):
        student.train()
        for x, _y in loader:
            x = x.to(device)
            x = mix(x, *draw_mix("cutmix", len(x), x.shape[-1], generator, rng, 1.0))
            with torch.no_grad():
                target = teacher(x)
            loss = kd_loss(student(x), target, settings.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()


def throughputs(model, images, labels, spec, epochs: int, device: str) -> tuple[float, float, int]:
    """images/s of the reference loop and of ours (the same student, teacher, batch, steps and loss), and
    the batch size."""
    from dataclasses import replace
    num_classes = int(labels.max()) + 1
    settings = Settings()  # crops, flips, CutMix, an online teacher at T=20 (no RDED-only extra forward)
    batch = batch_size("rded", spec, len(images) // num_classes, num_classes, len(images))

    def fresh(seed):
        torch.manual_seed(seed)
        return model.build(num_classes, spec.image_size).to(device)

    teacher = fresh(1).eval()
    tiny_test = TensorImageSet(images[:1], labels[:1], ["any"])  # the final evaluation is not measured
    reference = timed(lambda: reference_loop(fresh(0), teacher, images, labels, spec, settings, batch, model.adamw_lr,
                                             epochs, device), device)
    ours = timed(lambda: train_model(
        fresh(0), (images, labels), tiny_test, replace(settings, epochs=epochs, eval_every=10**9), batch_size=batch,
        lr=model.adamw_lr, normalize=Normalizer(spec.mean, spec.std, device), device=device, seed=0,
        teacher=teacher.to(memory_format=torch.channels_last), show_progress=False), device)
    return epochs * len(images) / reference, epochs * len(images) / ours, batch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--student", default="conv3")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    spec, model = registry("dataset").get(args.dataset), registry("model").get(args.student)
    train = spec.load("train")
    index = torch.cat([train.indices_of(c)[: args.ipc] for c in range(train.num_classes)])
    reference, ours, batch = throughputs(model, train.load(index), train.targets[index], spec, args.epochs, args.device)
    print(f"{args.student} on {args.dataset} IPC {args.ipc}, {args.epochs} epochs, batch {batch}, {args.device} "
          f"({torch.get_num_threads()} threads)")
    print(f"reference (DataLoader + per-sample transforms, fp32): {reference:8.1f} images/s")
    print(f"distillbench (on-device batches, {precision(args.device, True)}, channels_last): {ours:8.1f} images/s")
    print(f"ratio: {ours / reference:.2f}x")


if __name__ == "__main__":
    main()
