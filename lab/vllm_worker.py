"""The vLLM side of lab/vllm_backend.py: a child process, run with vLLM's own interpreter
(`python -m lab.vllm_worker`), that holds one engine and answers sampling requests.

It imports nothing but the standard library and vllm, since it runs in vLLM's environment, not the
project's. Protocol, one JSON object per line (stdin in, stdout out; vLLM's own output goes to stderr):
  -> {"model": dir, "dtype": "bfloat16", "max_lora_rank": 16, "gpu_memory_utilization": 0.4,
      "max_model_len": 4096, "seed": 0}
  <- {"ready": true, "vllm": version}
  -> {"adapter": LoRA adapter dir or null, "requests": [{"prompt", "seed", "temperature", "top_p",
      "max_tokens", "stop": [...], "stop_token_ids": [...]}, ...]}
  <- {"outputs": [`output_record` of each request, in request order]}
Closing stdin ends it. Any failure is answered {"error": text} before it exits.

Not covered here: choosing the backend, formatting prompts, turning records into candidates
(vllm_backend.py).
"""
from __future__ import annotations

import json
import os
import sys
import traceback

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The max_lora_rank values vLLM accepts."""


def sampling_params(vllm, request: dict):
    """vLLM's SamplingParams for one candidate: its own seed, the problem's stop strings and the end
    tokens, raw log-probs of the sampled tokens (logprobs=0), special tokens kept in the text as the
    hand-written decoder keeps them."""
    greedy = request["temperature"] == 0
    return vllm.SamplingParams(
        n=1, temperature=request["temperature"], top_p=1.0 if greedy else request["top_p"], seed=request["seed"],
        max_tokens=request["max_tokens"], stop=request["stop"], stop_token_ids=request["stop_token_ids"],
        include_stop_str_in_output=False, skip_special_tokens=False, logprobs=0)


def output_record(request_output) -> dict:
    """The fields of a vLLM RequestOutput (one completion) the candidate is built from: the generated
    token ids (up to and including the one that stopped it) and each one's log-prob."""
    completion = request_output.outputs[0]
    token_ids = list(completion.token_ids)
    if completion.logprobs is None:
        raise ValueError("vLLM returned no log-probs: the request must set logprobs=0")
    logprobs = [float(entry[token].logprob) for entry, token in zip(completion.logprobs, token_ids)]
    return {"token_ids": token_ids, "logprobs": logprobs, "finish_reason": completion.finish_reason,
            "stop_reason": completion.stop_reason}


def lora_rank(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of rank `rank`."""
    return next((r for r in LORA_RANKS if r >= rank), rank)


def serve(lines, reply) -> None:
    import vllm
    from vllm.lora.request import LoRARequest

    setup = json.loads(next(lines))
    engine = vllm.LLM(model=setup["model"], tokenizer=setup["model"], dtype=setup["dtype"], seed=setup["seed"],
                      enable_lora=True, max_loras=1, max_lora_rank=lora_rank(setup["max_lora_rank"]),
                      gpu_memory_utilization=setup["gpu_memory_utilization"], max_model_len=setup["max_model_len"],
                      logprobs_mode="raw_logprobs")
    reply({"ready": True, "vllm": vllm.__version__})
    adapters: dict[str, int] = {}
    for line in lines:
        call = json.loads(line)
        lora = None
        if call["adapter"]:
            adapter_id = adapters.setdefault(call["adapter"], len(adapters) + 1)
            lora = LoRARequest(f"adapter-{adapter_id}", adapter_id, call["adapter"])
        requests = call["requests"]
        outputs = engine.generate([r["prompt"] for r in requests], [sampling_params(vllm, r) for r in requests],
                                  lora_request=lora, use_tqdm=False)
        reply({"outputs": [output_record(output) for output in outputs]})


def main() -> None:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever vLLM prints goes to stderr

    def reply(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    try:
        serve(iter(sys.stdin), reply)
    except Exception:
        reply({"error": traceback.format_exc()})
        sys.exit(1)


if __name__ == "__main__":
    main()
