"""Deterministic DDIM inversion and sampling, and ancestral DDPM sampling: pure functions over tensors.

``eps(x, t)`` is the (already guided) noise prediction at integer timestep
``t``; ``timesteps`` and ``alphas`` (the cumulative products of the noise
schedule at those timesteps) describe the path.  One update moves a latent
between two noise levels along the predicted noise:

    x0_hat = (x - sqrt(1 - a_from) * eps) / sqrt(a_from)
    x_to   = sqrt(a_to) * x0_hat + sqrt(1 - a_to) * eps

Inversion runs it upwards (clean -> noisy), sampling downwards.  As in the
official code (``dit_inversion_save_statistic.py`` ``invert``) and diffusers'
``DDIMInverseScheduler``, inversion queries the model at the step it moves
to; the clean latent sits at the grid's t = 0 (alpha = alphas_cumprod[0]).
"""
import torch


def ddim_move(x, eps, a_from, a_to):
    x0_hat = (x - (1 - a_from) ** 0.5 * eps) / a_from ** 0.5
    return a_to ** 0.5 * x0_hat + (1 - a_to) ** 0.5 * eps


def ddim_grid(num_inference_steps: int = 50, train_steps: int = 1000) -> list[int]:
    """The ascending "leading" DDIM grid: 0, 20, ..., 980 for 50 of 1000 steps."""
    step = train_steps // num_inference_steps
    return [i * step for i in range(num_inference_steps)]


def invert(eps, z0, timesteps, alphas, progress=None):
    """DDIM inversion from ``z0`` at ``timesteps[0]`` up to ``timesteps[-1]`` (ascending)."""
    x = z0
    steps = range(1, len(timesteps))
    for i in progress(steps) if progress else steps:
        x = ddim_move(x, eps(x, timesteps[i]), alphas[i - 1], alphas[i])
    return x


def sample(eps, x, timesteps, alphas, progress=None):
    """Deterministic DDIM sampling (eta = 0) from ``timesteps[0]`` down to ``timesteps[-1]`` (descending)."""
    steps = range(len(timesteps) - 1)
    for i in progress(steps) if progress else steps:
        x = ddim_move(x, eps(x, timesteps[i]), alphas[i], alphas[i + 1])
    return x


def sample_floored(eps, x, timesteps, alphas_cumprod, step: int, progress=None):
    """The official D3HR sampling loop (``dit_inversion_save_statistic.py`` ``sample``, L58-109): at every
    grid point t of the descending ``timesteps``, t = 0 included, eps is queried at t and x moves from
    alpha[t] to alpha[max(1, t - step)].  So the last two moves (from 20 and from 0) both end at t = 1: one
    model call more than :func:`sample`, and the result sits at t = 1, not 0."""
    for t in progress(timesteps) if progress else timesteps:
        x = ddim_move(x, eps(x, t), float(alphas_cumprod[t]), float(alphas_cumprod[max(1, t - step)]))
    return x


def respaced_grid(num_steps: int, train_steps: int = 1000) -> list[int]:
    """The ascending grid of IDDPM's ``space_timesteps(1000, "50")`` (DiT's and Minimax's sampler): ``num_steps``
    points spread evenly over 0..999, rounded: 0, 20, 41, ..., 999 for 50.  The position is accumulated, not
    multiplied, as there: the float sums round differently at some sizes."""
    stride, position, grid = (train_steps - 1) / max(1, num_steps - 1), 0.0, set()
    for _ in range(num_steps):
        grid.add(round(position))
        position += stride
    return sorted(grid)


def ancestral_sample(eps, x, timesteps, alphas_cumprod, generator, progress=None):
    """Ancestral DDPM sampling down the descending ``timesteps`` (IDDPM's ``p_sample_loop`` on the respaced
    chain, clip_denoised off, the fixed small variance): each step draws x_s from the posterior q(x_s | x_t, x0_hat)
    of the chain's next point s; the last step returns the posterior mean at the clean end, x0_hat."""
    steps = range(len(timesteps))
    for i in progress(steps) if progress else steps:
        a_t = float(alphas_cumprod[timesteps[i]])
        a_s = float(alphas_cumprod[timesteps[i + 1]]) if i + 1 < len(timesteps) else 1.0
        e = eps(x, timesteps[i])
        x0_hat = (x - (1 - a_t) ** 0.5 * e) / a_t ** 0.5
        beta = 1 - a_t / a_s
        x = a_s ** 0.5 * beta / (1 - a_t) * x0_hat + (1 - beta) ** 0.5 * (1 - a_s) / (1 - a_t) * x
        if i + 1 < len(timesteps):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + (beta * (1 - a_s) / (1 - a_t)) ** 0.5 * noise
    return x


def forward_noise(z0, alpha, generator):
    """DDPM forward noising to one level (the ``mapping=ddpm`` ablation): sqrt(a) z0 + sqrt(1 - a) noise."""
    noise = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    return alpha ** 0.5 * z0 + (1 - alpha) ** 0.5 * noise


def guided(model_eps, labels, null_label: int, guidance: float):
    """``eps(x, t)`` with classifier-free guidance: uncond + g (cond - uncond); one batched call."""
    if guidance == 1.0:
        return lambda x, t: model_eps(x, t, labels)
    both_labels = torch.cat([labels, torch.full_like(labels, null_label)])

    def eps(x, t):
        cond, uncond = model_eps(torch.cat([x, x]), t, both_labels).chunk(2)
        return uncond + guidance * (cond - uncond)
    return eps
