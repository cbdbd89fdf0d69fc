"""The output layer gets contiguous hidden states on a CPU (a strided slice made a bf16 linear layer allocate several
times its weight for one call): the same logits, and what reaches the layer is contiguous."""

import pytest

torch = pytest.importorskip("torch")
from aopcore_hf.models import DeviceChoice, load_causal_lm  # noqa: E402

from helpers.tiny_models import save_tiny_gpt2  # noqa: E402


def test_the_head_sees_contiguous_input_and_logits_do_not_change(tmp_path):
    folder = save_tiny_gpt2(tmp_path / "gpt2")
    model, _ = load_causal_lm(str(folder), DeviceChoice("cpu", torch.float32))
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].is_contiguous()))
    ids = torch.randint(3, model.config.vocab_size, (3, 12))
    with torch.no_grad():
        kept = model(input_ids=ids, logits_to_keep=5).logits  # transformers slices the hidden states: strided
        full = model(input_ids=ids).logits
    assert seen == [True, True]
    torch.testing.assert_close(kept, full[:, -5:], rtol=0, atol=0)

    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)  # without the hook
    plain_seen = []
    plain.get_output_embeddings().register_forward_hook(lambda m, args, out: plain_seen.append(args[0].is_contiguous()))
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids, logits_to_keep=5).logits, kept, rtol=0, atol=0)
    assert plain_seen == [False]  # what the hook is there for
