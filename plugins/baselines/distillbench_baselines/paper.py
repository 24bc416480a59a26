"""Published results of SRe2L, RDED and D4M, each under the distillbench protocol that follows its paper's
evaluation.  Students are distillbench's model names (ResNet-18 on 32-64 px images: ``resnet18_modified``)."""
from distillbench.api import PaperResult

SRE2L = ("SRe2L, NeurIPS 2023: VILA-Lab/SRe2L@8d00cba SRe2L/README.md 'Results' (img/results.png); columns "
         "R18/R50/R101 are the students")
D4M = ("D4M, CVPR 2024, Table 2: suduo94/D4M@da35d10 README.md (misc/D4M_res_imgnt_and_tnimgnt.png); ResNet-18 "
       "teacher, every std < 1")
RDED = ("RDED, CVPR 2024, Table 2, as transcribed in andriotis/RDED@e438f71 scripts/run_table2.sh (the IPC-10 cells "
        "match the paper as quoted in LINs-lab/RDED issues #3 and #6)")
STUDENTS = ("resnet18", "resnet50", "resnet101")


def _rows(method, dataset, students, ipcs, protocol, source, cells):
    """One PaperResult per (student, IPC) cell; ``cells[i][j]`` is student i at IPC j, a value or (value, std)."""
    return [PaperResult(method, dataset, student, ipc, *(cell if isinstance(cell, tuple) else (cell, None)),
                        protocol, source)
            for student, row in zip(students, cells) for ipc, cell in zip(ipcs, row)]


RESULTS = [
    *_rows("sre2l", "imagenet", STUDENTS, (10, 50, 100, 200), "sre2l", SRE2L, [
        [(21.3, 0.6), (46.8, 0.2), (52.8, 0.3), (57.0, 0.4)],
        [(28.4, 0.1), (55.6, 0.3), (61.0, 0.4), (64.6, 0.3)],
        [(30.9, 0.1), (60.8, 0.5), (62.8, 0.2), (65.9, 0.3)]]),
    *_rows("sre2l", "tinyimagenet", [f"{s}_modified" for s in STUDENTS], (50, 100), "sre2l", SRE2L, [
        [(41.1, 0.4), (49.7, 0.3)], [(42.2, 0.5), (51.2, 0.4)], [(42.5, 0.2), (51.5, 0.3)]]),
    *_rows("d4m", "imagenet", STUDENTS, (10, 50, 100, 200), "sre2l", D4M, [
        [27.9, 55.2, 59.3, 62.6], [33.5, 62.4, 65.4, 67.8], [34.2, 63.4, 66.5, 68.1]]),
    *_rows("d4m", "tinyimagenet", [f"{s}_modified" for s in STUDENTS], (50, 100), "sre2l", D4M, [
        [46.2, 51.4], [51.8, 54.8], [51.0, 55.3]]),
    *_rows("rded", "cifar10", ("conv3", "resnet18_modified", "resnet101_modified"), (1, 10, 50), "rded", RDED, [
        [(23.5, 0.3), (50.2, 0.3), (68.4, 0.1)], [(22.9, 0.4), (37.1, 0.3), (62.1, 0.1)],
        [(18.7, 0.1), (33.7, 0.3), (51.6, 0.4)]]),
    *_rows("rded", "cifar100", ("conv3", "resnet18_modified", "resnet101_modified"), (1, 10, 50), "rded", RDED, [
        [(19.6, 0.3), (48.1, 0.3), (57.0, 0.1)], [(11.0, 0.3), (42.6, 0.2), (62.6, 0.1)],
        [(10.8, 0.1), (41.1, 0.2), (63.4, 0.3)]]),
    *_rows("rded", "tinyimagenet", ("conv4", "resnet18_modified", "resnet101_modified"), (1, 10, 50), "rded", RDED, [
        [(12.0, 0.1), (39.6, 0.1), (47.6, 0.2)], [(9.7, 0.4), (41.9, 0.2), (58.2, 0.1)],
        [(3.8, 0.1), (22.9, 3.3), (41.2, 0.4)]]),
    *_rows("rded", "imagenet", ("resnet18", "resnet101"), (1, 10, 50), "rded", RDED, [
        [(6.6, 0.2), (42.0, 0.1), (56.5, 0.1)], [(5.9, 0.4), (48.3, 1.0), (61.2, 0.4)]]),
]
