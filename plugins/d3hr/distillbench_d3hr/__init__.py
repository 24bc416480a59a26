"""D3HR for distillbench: "Taming Diffusion for Dataset Distillation with High Representativeness"
(Zhao et al., ICML 2025; official code lin-zhao-resoLve/D3HR)."""
__version__ = "0.1.0"
