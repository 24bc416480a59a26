"""DD-Ranking's metrics (Li et al., 2025, "DD-Ranking: Rethinking the Evaluation of Dataset Distillation").

All accuracies are fractions in [0, 1]:
- HLR = Acc(real, hard) - Acc(syn, hard): how far hard-label training on the set falls below the full data;
- IOR = Acc(syn) - Acc(random): the gain over a random real subset of the same IPC under the same protocol;
- alpha = w * IOR - (1 - w) * HLR, and LRS = (e^alpha - e^-1) / (e - e^-1), in [0, 1] since alpha is in [-1, 1].
"""
import math

from distillbench.distilled import FULL_METHOD

RANDOM_METHOD = "random"


def hlr(acc_real_hard: float, acc_syn_hard: float) -> float:
    return acc_real_hard - acc_syn_hard


def ior(acc_syn: float, acc_random: float) -> float:
    return acc_syn - acc_random


def lrs(hlr_value: float, ior_value: float, w: float = 0.5) -> float:
    alpha = w * ior_value - (1 - w) * hlr_value
    return (math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1))


def table(df, metric: str = "final_acc", w: float = 0.5):
    """One row per (dataset, student, ipc, protocol, hard-label protocol, method) whose inputs all exist:
    HLR, IOR, LRS.

    Evaluations whose records say ``labels: "hard"`` give HLR, with the ``full`` method (the whole
    training set) as Acc(real, hard); every other protocol's accuracies give IOR.
    """
    import pandas as pd
    keys = ["dataset", "student", "ipc", "protocol", "method"]
    hard_rows = df.get("labels", pd.Series(None, index=df.index, dtype=object)) == "hard"
    soft, hard = (df[~hard_rows].groupby(keys)[metric].mean(), df[hard_rows].groupby(keys)[metric].mean())
    rows = []
    for (dataset, student, ipc, protocol, method), acc in soft.items():
        random_acc = soft.get((dataset, student, ipc, protocol, RANDOM_METHOD))
        if method in (RANDOM_METHOD, FULL_METHOD) or random_acc is None:
            continue
        for hard_protocol in hard.index.unique("protocol"):
            syn_hard = hard.get((dataset, student, ipc, hard_protocol, method))
            real_hard = hard.get((dataset, student, 0, hard_protocol, FULL_METHOD))
            if syn_hard is None or real_hard is None:
                continue
            h, i = hlr(real_hard, syn_hard), ior(acc, random_acc)
            rows.append(dict(dataset=dataset, student=student, ipc=ipc, protocol=protocol,
                             hard_protocol=hard_protocol, method=method, HLR=h, IOR=i, LRS=lrs(h, i, w)))
    return pd.DataFrame(rows)
