"""Every registered student trains one step at the dataset's size and gives one logit per class."""
import pytest
import torch
import torch.nn.functional as F

from distillbench.errors import UsageError
from distillbench.plugins import registry

SIZE_FOR = {"conv5": 32, "conv6": 64}  # conv6 halves 6 times: it needs >= 64 px


@pytest.mark.parametrize("name", registry("model").names())
def test_forward_backward(name):
    size = SIZE_FOR.get(name, 32)
    torch.manual_seed(0)
    model = registry("model").get(name).build(10, size).train()
    x = torch.randn(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, torch.tensor([1, 2])).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_too_small_image_for_deep_convnet_is_a_clear_error():
    with pytest.raises(UsageError, match="conv6 .* at least 64px"):
        registry("model").get("conv6").build(10, 32)
