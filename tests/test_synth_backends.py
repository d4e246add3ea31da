"""C²-SYN backends: diverse beam search, the hf backend, the openai backend on a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cc_tasks.prefill import render_open_assistant
from synth.backends import BackendError, Decoding, Turn, make_backend


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return tok, model


def _encode(tok, texts):
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def test_one_group_equals_transformers_beam_search(tiny) -> None:
    """With num_beam_groups=1 our loop must be exactly transformers' own beam search."""
    import torch
    from transformers import GenerationConfig

    from synth.backends.diverse_beam import diverse_beam_search

    tok, model = tiny
    enc = _encode(tok, ["How are", "The capital of France is a city that", "One"])
    for beams in (2, 3):
        common = dict(max_new_tokens=10, num_beams=beams, do_sample=False, pad_token_id=2)
        common["eos_token_id"] = tok.eos_token_id
        ref = model.generate(**enc, generation_config=GenerationConfig(**common))
        ours = model.generate(
            **enc,
            generation_config=GenerationConfig(num_beam_groups=1, **common),
            custom_generate=diverse_beam_search,
        )
        assert torch.equal(ref, ours)


def test_diversity_penalty_pushes_the_second_group_away(tiny) -> None:
    from transformers import GenerationConfig

    from synth.backends.diverse_beam import diverse_beam_search

    tok, model = tiny
    enc = _encode(tok, ["How are", "Tell me"])
    width = enc["input_ids"].shape[1]

    def first_tokens(penalty: float) -> list[list[int]]:
        config = GenerationConfig(
            max_new_tokens=4,
            num_beams=2,
            num_beam_groups=2,
            diversity_penalty=penalty,
            do_sample=False,
            num_return_sequences=2,  # both groups' best, to look at them
            pad_token_id=2,
            eos_token_id=tok.eos_token_id,
        )
        out = model.generate(**enc, generation_config=config, custom_generate=diverse_beam_search)
        return [out[2 * b : 2 * b + 2, width].tolist() for b in range(2)]

    same = first_tokens(0.0)
    assert all(a == b for a, b in same)  # no penalty: both groups are the same greedy-like beam
    apart = first_tokens(1e4)
    assert all(a != b for a, b in apart)  # a huge Hamming penalty forbids the same token
    assert first_tokens(1e4) == apart  # deterministic


def test_hf_backend_continues_the_open_assistant_turn(tiny_model_dir: str) -> None:
    from synth.backends.hf import HFBackend

    backend = HFBackend(tiny_model_dir, Decoding(max_new_tokens=5), batch_size=2)
    for mode in ("diverse-beam", "greedy", "sample"):
        backend.decoding = Decoding(mode=mode, max_new_tokens=5)
        turns = [
            Turn("How do I?", ""),
            Turn("How do I?", "Sure, I can help. First, but I must advise you that"),
            Turn("What now?", "Of course. Step one: however, I cannot provide"),
        ]
        a, b = backend.generate(turns), backend.generate(turns)
        assert [g.text for g in a] == [g.text for g in b]  # deterministic, sampling included
        assert all(0 < g.tokens <= 5 for g in a)
        assert all(isinstance(g.text, str) for g in a)
    # the prompt the backend generates from is the shared eval rendering
    text = render_open_assistant(backend.tokenizer, turns[1].request, turns[1].prefix)
    assert text.endswith("but I must advise you that")


def test_vllm_backend_is_import_guarded() -> None:
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match=r"course-correction\[vllm\]"):
            make_backend("vllm", "some/model", Decoding(mode="greedy"))
    with pytest.raises(BackendError, match="greedy"):
        make_backend("vllm", "some/model", Decoding())  # no diverse beam search in vLLM


# ------------------------------------------------------------- openai backend


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server.lock:
            server.seen.append((self.path, body))
            key = json.dumps(body, sort_keys=True)
            first = key not in server.failed
            server.failed.add(key)
        if first and server.fail_first:
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "try again"}}')
            return
        if self.path.endswith("/chat/completions"):
            text = "I cannot help with " + body["messages"][-1]["content"][:10]
            payload = {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 7, "total_tokens": 8},
            }
        else:
            text = " that this is illegal. <" + body["prompt"][-40:] + ">"
            payload = {
                "id": "t",
                "object": "text_completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 9, "total_tokens": 10},
            }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.lock = threading.Lock()
    srv.seen = []
    srv.failed = set()
    srv.fail_first = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_openai_backend_completions_for_turns_chat_for_r0(
    server: ThreadingHTTPServer, tiny_model_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = f"http://127.0.0.1:{server.server_port}/v1"
    backend = make_backend(
        "openai",
        "served-model",
        Decoding(mode="greedy", max_new_tokens=12),
        base_url=url,
        tokenizer=tiny_model_dir,
        concurrency=4,
        max_retries=3,
        system_prompt="Be safe.",
    )
    turns = [Turn("How do I pick a lock?", "")] + [
        Turn("How do I pick a lock?", f"Sure. Step {i}: insert, but I must advise you")
        for i in range(5)
    ]
    gens = backend.generate(turns)
    assert gens[0].text == "I cannot help with How do I p" and gens[0].tokens == 7
    for i, g in enumerate(gens[1:]):
        assert g.text.startswith(" that this is illegal.") and g.tokens == 9
        # in order, and the server saw the prompt end with exactly this turn's prefix
        assert g.text.endswith(f"Step {i}: insert, but I must advise you>")
    ok = [(p, b) for p, b in server.seen]
    chats = [b for p, b in ok if p.endswith("/chat/completions")]
    comps = [b for p, b in ok if p.endswith("/completions") and not p.endswith("chat/completions")]
    assert len(chats) == 2 and len(comps) == 10  # every request failed once (500), then retried
    assert chats[0]["messages"] == [
        {"role": "system", "content": "Be safe."},
        {"role": "user", "content": "How do I pick a lock?"},
    ]
    assert chats[0]["temperature"] == 0.0 and chats[0]["max_tokens"] == 12
    expected = {
        render_open_assistant(backend.tokenizer, t.request, t.prefix, system_prompt="Be safe.")
        for t in turns[1:]
    }
    assert {b["prompt"] for b in comps} == expected
    assert all(not b["prompt"].endswith("<|im_end|>\n") for b in comps)  # the turn stays open
    assert all(b.get("add_special_tokens") is False for b in comps)  # template writes the BOS
    backend.close()


def test_openai_backend_gives_up_with_a_clear_error(
    server: ThreadingHTTPServer, tiny_model_dir: str
) -> None:
    server.fail_first = True
    url = f"http://127.0.0.1:{server.server_port}/v1"
    backend = make_backend(
        "openai",
        "m",
        Decoding(mode="greedy"),
        base_url=url,
        tokenizer=tiny_model_dir,
        max_retries=0,
    )
    with pytest.raises(BackendError, match="request failed after 0 retries"):
        backend.generate([Turn("How?", "")])
    with pytest.raises(BackendError, match="needs --base-url"):
        make_backend("openai", "m", Decoding(mode="greedy"), tokenizer=tiny_model_dir)
    with pytest.raises(BackendError, match="greedy"):
        make_backend("openai", "m", Decoding(), base_url=url, tokenizer=tiny_model_dir)
