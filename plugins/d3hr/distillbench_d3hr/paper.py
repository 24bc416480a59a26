"""D3HR's published results (Zhao et al., ICML 2025, appendix Tables A6 and A7), under the ``d3hr`` protocol (its
``validation/validate.py``), with the SRe2L rows those tables list.

The values are those issue 17 quotes; the same values, with their standard deviations, appear in a third-party
note on the paper (zhaoyang97/Paper-Notes-en@a87e118, docs/ICML2025/image_generation/taming_diffusion_for_dataset_
distillation_with_high_representativeness.md), which is where the stds and the baseline rows come from.  Neither
was checked against the paper's PDF here.  Table A6 is labelled a 1000-epoch validation; the ``d3hr`` protocol
follows the code's 400 CIFAR epochs, so a measured CIFAR cell sits beside a published one of longer training."""
from distillbench.api import PaperResult

A7 = "D3HR, ICML 2025, Table A7 (ImageNet-1K; as quoted, not checked against the PDF)"
A6 = "D3HR, ICML 2025, Table A6 (CIFAR-10, 1000-epoch validation; as quoted, not checked against the PDF)"
ROWS = [  # method, dataset, student (distillbench's name), source, {IPC: (top-1 %, std)}
    ("d3hr", "imagenet", "resnet18", A7, {10: (44.3, 0.3), 50: (59.4, 0.1), 100: (62.5, 0.0)}),
    ("d3hr", "imagenet", "resnet101", A7, {10: (52.1, 0.4), 50: (66.1, 0.1), 100: (68.1, 0.0)}),
    ("d3hr", "cifar10", "resnet18_modified", A6, {10: (69.8, 0.5), 50: (85.2, 0.4)}),
    ("d3hr", "cifar10", "conv3", A6, {10: (55.2, 0.5), 50: (66.8, 0.4)}),
    ("sre2l", "imagenet", "resnet18", A7, {10: (31.4, 0.5), 50: (51.8, 0.4), 100: (55.7, 0.4)}),
    ("sre2l", "imagenet", "resnet101", A7, {10: (38.2, 0.4), 50: (61.0, 0.4), 100: (63.7, 0.2)}),
    ("sre2l", "cifar10", "resnet18_modified", A6, {10: (53.5, 0.6), 50: (59.2, 0.4)}),
    ("sre2l", "cifar10", "conv3", A6, {10: (46.5, 0.7), 50: (54.3, 0.3)}),
]
RESULTS = [PaperResult(method, dataset, student, ipc, accuracy, std, "d3hr", source)
           for method, dataset, student, source, cells in ROWS for ipc, (accuracy, std) in cells.items()]
