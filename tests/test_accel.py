"""Mixed precision: what each setting gives on each device."""
import torch


def test_precision_names_what_autocast_does_on_each_device(monkeypatch):
    from distillbench import accel
    monkeypatch.setattr(accel, "cpu_has_native_bf16", lambda: False)
    assert [accel.precision("cuda:0", amp) for amp in (True, "bf16", "fp16", False, "fp32")] == [
        "bf16-autocast", "bf16-autocast", "fp16-autocast", "fp32", "fp32"]
    assert [accel.precision("cpu", amp) for amp in (True, "fp16", "fp32")] == ["fp32", "fp32", "fp32"]
    with accel.autocast("cpu", "fp16"):
        assert not torch.is_autocast_enabled("cpu")
