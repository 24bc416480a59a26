"""DD-Ranking's metrics (Li et al., 2025, "DD-Ranking: Rethinking the Evaluation of Dataset Distillation").

All accuracies are fractions in [0, 1]:
- HLR = Acc(real, hard) - Acc(syn, hard): how far hard-label training on the set falls below the full data;
- IOR = Acc(syn) - Acc(random): the gain over a random real subset of the same IPC under the same protocol;
- alpha = w * IOR - (1 - w) * HLR, and LRS = (e^alpha - e^-1) / (e - e^-1), in [0, 1] since alpha is in [-1, 1];
- ARS, the Augmentation Robust Score (NUS-HPC-AI-Lab/DD-Ranking@b8b0966 ``ddranking/metrics/aug_robust.py``
  L577-580): beta = lambda * (Acc(syn, aug) - Acc(random, aug)) + (1 - lambda) * (Acc(syn, no aug) -
  Acc(random, no aug)), ARS = (e^beta - e^-1) / (e - e^-1), lambda = 0.5; "no aug" is the same evaluation
  without its augmentation (``--set mix=none --set augment=none``: L89-93 and L320, no transform but the
  resize, no mixing).  DD-Ranking's code puts accuracies in percent into the exponent; here they are fractions,
  so that beta stays in [-1, 1] and ARS in [0, 1] as its definition intends.
"""
import math

from distillbench.distilled import FULL_METHOD

RANDOM_METHOD = "random"
NO_AUGMENTATION = {"mix": "none", "augment": "none"}  # the overrides of an evaluation "without augmentation"


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


def ars(with_aug: float, without_aug: float, lam: float = 0.5) -> float:
    beta = lam * with_aug + (1 - lam) * without_aug
    return (math.exp(beta) - math.exp(-1)) / (math.e - math.exp(-1))


def ars_table(df, metric: str = "final_acc", lam: float = 0.5):
    """One row per (dataset, student, ipc, protocol, method) evaluated with and without augmentation, with
    ``random`` evaluated both ways too: its gains over random with and without augmentation, and ARS.  ``df``:
    the store's rows (with ``protocol_overrides``), before the table labels them."""
    import pandas as pd

    from distillbench.labels import protocol_label, with_variants
    soft = with_variants(df[df.get("labels", pd.Series(None, index=df.index)) != "hard"])
    if soft.empty or "protocol_overrides" not in soft:
        return pd.DataFrame()
    bare = soft["protocol_overrides"].map(lambda o: all(o.get(k) == v for k, v in NO_AUGMENTATION.items()))
    version = soft["protocol_version"] if "protocol_version" in soft else 0
    base = [protocol_label(p, {k: v for k, v in o.items() if not (b and k in NO_AUGMENTATION)}, f"{v}")
            for p, o, b, v in zip(soft["protocol"], soft["protocol_overrides"], bare, version)]
    means = soft.assign(base=base, bare=bare).groupby(["dataset", "student", "ipc", "base", "method", "bare"])[
        metric].mean()
    rows = []
    for (dataset, student, ipc, protocol, method), _ in means.groupby(level=[0, 1, 2, 3, 4]):
        key = (dataset, student, ipc, protocol)
        accs = {(m, b): means.get(key + (m, b)) for m in (method, RANDOM_METHOD) for b in (False, True)}
        if method == RANDOM_METHOD or any(a is None for a in accs.values()):
            continue
        with_aug = accs[(method, False)] - accs[(RANDOM_METHOD, False)]
        without_aug = accs[(method, True)] - accs[(RANDOM_METHOD, True)]
        rows.append(dict(dataset=dataset, student=student, ipc=ipc, protocol=protocol, method=method,
                         gain_aug=with_aug, gain_no_aug=without_aug, ARS=ars(with_aug, without_aug, lam)))
    return pd.DataFrame(rows)
