"""RewardRanker Lab: a code LLM plus a learned reranker, trained by iterative self-training
(SFT -> reward model -> PPO -> sample/execute -> mine hard negatives -> retrain).

Modules, in the order data flows through them:
  config      presets and dataclass configuration
  problems    HumanEval / MBPP / MultiPL-E / user JSONL -> Problem records
  store       the one SQLite database every stage reads from and writes to
  execution   running candidates: MultiPL-E semantics, worker pool, cache, compile servers
  languages   the per-language table: toolchains, commands, verdict traps
  sandbox     isolation of untrusted programs (bwrap + fork server in exec_helpers/zygote.py,
              light fallback), cgroups, limits
  selftest    attacks on the sandbox and the per-language right/wrong check
  models      model sources (hub, local, package-shipped GGUF, tiny) and loading
  tiny        tiny random models and tokenizer built offline, for tests and the tiny preset
  generation  batched sampling of candidates
  reward      the reward model (reranker): Bradley-Terry training and scoring
  sft, ppo    generator training
  mining      hard-negative mining and preference-pair building
  loop        the resumable self-training iteration
  evaluation  pass@1 tables with bootstrap intervals; plots draws them
  app, app_views, launcher   the Gradio app, its queries and HTML, background jobs
"""
__version__ = "0.1.0"
