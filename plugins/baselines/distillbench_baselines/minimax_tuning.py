"""Minimax's fine-tune (:mod:`distillbench_baselines.minimax` cites the official code): its two terms and their
memories, DiffFit's scales, and the :class:`Tuning` that hands them to the core's ``train_dit``."""
from collections import defaultdict, deque
from functools import partial

import torch

from distillbench.api import Tuning

SCALED_BLOCKS = 14  # of DiT-XL's 28: officially fixed; here at most half the blocks


def cosine_matrix(a, b):
    """Cosine similarity of every flattened row of ``a`` with every one of ``b`` (officially without an epsilon)."""
    a, b = a.flatten(1), b.flatten(1)
    return (a @ b.T) / (a.norm(dim=1)[:, None] * b.norm(dim=1)[None, :])


def representativeness(x0, real):
    """1 - the smallest similarity of the class's x0_hat to its real memory: pulls the least similar pair together."""
    return 1 - cosine_matrix(x0, real).min()


def diversity(x0, generated):
    """The largest similarity of the class's x0_hat to its earlier ones: pushes the most similar pair apart."""
    return cosine_matrix(x0, generated).max()


class Memory:
    """Per class, FIFOs of the last ``size`` real latents and generated x0_hat (detached)."""

    def __init__(self, size: int):
        self.real = defaultdict(partial(deque, maxlen=size))
        self.generated = defaultdict(partial(deque, maxlen=size))

    def terms(self, x0, z0, labels):
        """Both terms, each summed over the batch's classes that have a memory and divided by the number of
        classes in the batch; then each class's latents join its memories."""
        classes = labels.unique().tolist()
        pos = neg = x0.new_zeros(())
        for c in classes:
            mine = labels == c
            if self.generated[c]:
                pos = pos + representativeness(x0[mine], torch.stack(tuple(self.real[c])))
                neg = neg + diversity(x0[mine], torch.stack(tuple(self.generated[c])))
            self.real[c].extend(z0[mine].detach())
            self.generated[c].extend(x0[mine].detach())
        return pos / len(classes), neg / len(classes)


class ScaledLinear(torch.nn.Linear):
    """A linear layer whose output DiffFit scales per channel: ``count`` factors, initialised to 1, multiplied
    (two where the official attention projection's scale and its block's branch scale meet)."""

    def __init__(self, linear: torch.nn.Linear, count: int):
        super().__init__(linear.in_features, linear.out_features, linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)
        self.weight, self.bias = linear.weight, linear.bias
        self.scales = torch.nn.ParameterList(torch.ones_like(linear.weight[:, 0]) for _ in range(count))

    def scale(self):
        return torch.stack(tuple(self.scales)).prod(0)

    def forward(self, x):
        return super().forward(x) * self.scale()

    def folded(self) -> torch.nn.Linear:
        """The plain linear layer computing the same function."""
        linear = torch.nn.Linear(self.in_features, self.out_features, self.bias is not None,
                                 device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight * self.scale()[:, None])
            if self.bias is not None:
                linear.bias.copy_(self.bias * self.scale())
        return linear.requires_grad_(self.weight.requires_grad)


def scaled_sites(block):
    """(parent, name, count) of the linear layers DiffFit scales in one diffusers DiT block: q, k, v (the fused
    qkv's scale), the attention's output (its projection's scale and the block's attention-branch scale) and the
    MLP's last linear layer (the block's MLP-branch scale)."""
    attn, net = block.attn1, block.ff.net
    last = max(i for i, m in enumerate(net) if isinstance(m, torch.nn.Linear))
    return [(attn, "to_q", 1), (attn, "to_k", 1), (attn, "to_v", 1), (attn.to_out, "0", 2), (net, str(last), 1)]


def add_scales(dit) -> None:
    blocks = dit.transformer_blocks
    for block in blocks[: min(SCALED_BLOCKS, len(blocks) // 2)]:
        for parent, name, count in scaled_sites(block):
            setattr(parent, name, ScaledLinear(getattr(parent, name), count))


def fold_scales(dit):
    for block in dit.transformer_blocks:
        for parent, name, _ in scaled_sites(block):
            if isinstance(getattr(parent, name), ScaledLinear):
                setattr(parent, name, getattr(parent, name).folded())
    return dit


def difffit_trainable(name: str) -> bool:
    """DiffFit's parameters: every bias, the scales and the label tables (officially "bias", "gamma", "y_embed")."""
    return name.endswith("bias") or ".scales." in name or "class_embedder" in name


class MinimaxTuning(Tuning):
    """The fine-tune: DiffFit's parameters (or all) under the denoising loss and the minimax terms."""

    def __init__(self, options):
        self.options = options
        self.memory = Memory(options.memory_size)

    def trainable(self, dit) -> list:
        if self.options.tuning == "full":
            return list(dit.parameters())
        add_scales(dit)
        for name, param in dit.named_parameters():
            param.requires_grad_(difffit_trainable(name))
        return [p for p in dit.parameters() if p.requires_grad]

    def loss(self, step):
        o = self.options
        if not (o.lambda_pos or o.lambda_neg):
            return super().loss(step)
        pos, neg = self.memory.terms(step.x0(), step.z0, step.labels)
        return super().loss(step) + o.lambda_pos * pos + o.lambda_neg * neg

    def finish(self, dit):
        return fold_scales(dit)

    def record(self) -> dict:
        return {"recipe": "minimax", **self.options.fine_tune()}
