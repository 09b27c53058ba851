"""``/tokenize``, ``/detokenize`` and ``/tokenizer_info`` with vLLM's fields: what lm-eval's RemoteTokenizer
reads (it takes the EOS id as ``tokenize(eos_token)[0]``, so special-token text always becomes the special
token), apart from HTTP."""

from __future__ import annotations

from desktop.core.chat_template import render_chat
from desktop.engine.model import Model
from desktop.serve.chat import messages_of
from desktop.serve.errors import ApiError
from desktop.serve.protocol import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse


def tokenize(model: Model, req: TokenizeRequest) -> TokenizeResponse:
    """Blocking. A prompt, or messages rendered with the chat template; ``add_special_tokens`` puts BOS
    first where the model's tokenizer adds one (never twice after a template that writes it)."""
    if (req.prompt is None) == (req.messages is None):
        raise ApiError(400, "Give either \"prompt\" or \"messages\".", "invalid_request")
    add_bos = req.add_special_tokens
    if req.messages is not None:
        if req.add_generation_prompt:
            text = model.render_chat(messages_of(req.messages))
        else:  # the conversation as it stands, without the assistant's opening (vLLM's flag)
            info = model.info
            if not info.chat_template:
                raise ApiError(400, "This model has no chat template: tokenize a \"prompt\" instead.",
                               "no_chat_template")
            text = render_chat(info.chat_template, messages_of(req.messages), bos_token=info.bos_text,
                               eos_token=info.eos_text, add_generation_prompt=False)
        bos = model.info.bos_text
        add_bos = add_bos and not (bos and text.startswith(bos))
    else:
        text = req.prompt
    ids = model.tokenize(text, True, add_bos=add_bos)
    strs = [model.detokenize([t]) for t in ids] if req.return_token_strs else None
    return TokenizeResponse(count=len(ids), max_model_len=int(model.info.n_ctx), tokens=ids, token_strs=strs)


def detokenize(model: Model, req: DetokenizeRequest) -> DetokenizeResponse:
    return DetokenizeResponse(prompt=model.detokenize(req.tokens) if req.tokens else "")


def tokenizer_info(model: Model) -> dict:
    """vLLM's /tokenizer_info: the special tokens as text, the chat template and the context length."""
    info = model.info
    return {
        "tokenizer_class": "LlamaCppTokenizer",
        "bos_token": info.bos_text or None,
        "eos_token": info.eos_text or None,
        "pad_token": None,
        "unk_token": None,
        "bos_token_id": _id(getattr(info, "bos_id", -1)),
        "eos_token_id": _id(getattr(info, "eos_id", -1)),
        "add_bos_token": bool(getattr(info, "add_bos", False)),
        "add_eos_token": False,
        "chat_template": info.chat_template,
        "model_max_length": int(info.n_ctx),
        "vocab_size": int(info.n_vocab),
        "clean_up_tokenization_spaces": False,
    }


def _id(value: int) -> int | None:
    return value if value is not None and value >= 0 else None
