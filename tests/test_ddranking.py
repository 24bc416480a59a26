"""DD-Ranking's metrics (HLR, IOR, LRS) and the table built from stored evaluations."""
import math

import pytest

from distillbench import ddranking


def test_ddranking_metrics_on_hand_worked_numbers():
    # real hard 0.99, syn hard 0.80 -> HLR 0.19; syn 0.90, random 0.70 -> IOR 0.20
    assert ddranking.hlr(0.99, 0.80) == pytest.approx(0.19)
    assert ddranking.ior(0.90, 0.70) == pytest.approx(0.20)
    # alpha = 0.5 * 0.20 - 0.5 * 0.19 = 0.005; LRS = (1.0050125 - 0.3678794) / (2.7182818 - 0.3678794) = 0.27107
    assert ddranking.lrs(0.19, 0.20) == pytest.approx((math.exp(0.005) - math.exp(-1)) / (math.e - math.exp(-1)))
    assert ddranking.lrs(0.19, 0.20) == pytest.approx(0.27107, abs=1e-5)
    assert ddranking.lrs(1.0, -1.0) == pytest.approx(0.0) and ddranking.lrs(-1.0, 1.0) == pytest.approx(1.0)


def test_ddranking_table_needs_all_inputs():
    import pandas as pd
    rows = [("full", 0, "hard-label", 0.99), ("d3hr", 10, "hard-label", 0.80), ("d3hr", 10, "rded", 0.90),
            ("random", 10, "rded", 0.70)]
    df = pd.DataFrame([dict(dataset="digits", student="conv3", method=m, ipc=i, protocol=p, seed=0, final_acc=a,
                            labels="hard" if p == "hard-label" else "soft") for m, i, p, a in rows])
    table = ddranking.table(df)
    assert len(table) == 1 and table.iloc[0]["HLR"] == pytest.approx(0.19) and table.iloc[0]["LRS"] == pytest.approx(0.27107, abs=1e-5)
    assert ddranking.table(df[df["method"] != "full"]).empty
