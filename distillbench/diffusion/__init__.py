"""The diffusion backbone, a service of the methods that generate (D3HR, D4M): a class-conditional latent
DiT with its VAE and DDIM scheduler (:mod:`~distillbench.diffusion.backbone`), and the deterministic DDIM
moves over tensors (:mod:`~distillbench.diffusion.ddim`)."""
