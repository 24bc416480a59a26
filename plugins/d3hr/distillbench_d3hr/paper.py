"""D3HR's published results (Zhao et al., ICML 2025), evaluated as its ``validation/validate.py`` does (the
``d3hr`` protocol).  The values are those issue 17 quotes from the paper's Tables A6 and A7; the baselines'
rows of those tables (SRe2L, RDED, D4M) are still to be added from the paper itself."""
from distillbench.api import PaperResult

SOURCE = "D3HR, ICML 2025, Tables A6/A7"
ROWS = [  # dataset, student (distillbench's name), {IPC: top-1 %}
    ("imagenet", "resnet18", {10: 44.3, 50: 59.4, 100: 62.5}),
    ("imagenet", "resnet101", {10: 52.1, 50: 66.1, 100: 68.1}),
    ("cifar10", "resnet18_modified", {10: 69.8, 50: 85.2}),
    ("cifar10", "conv3", {10: 55.2, 50: 66.8}),
]
RESULTS = [PaperResult("d3hr", dataset, student, ipc, accuracy, None, "d3hr", SOURCE)
           for dataset, student, cells in ROWS for ipc, accuracy in cells.items()]
