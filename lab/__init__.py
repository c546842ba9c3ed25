"""RewardRanker Lab: a code LLM plus a learned reranker, trained by iterative self-training
(SFT -> reward model -> PPO -> sample/execute -> mine hard negatives -> retrain).

Modules, in the order data flows through them:
  config      presets and dataclass configuration
  problems    HumanEval / MBPP / MultiPL-E / user JSONL -> Problem records
  store       the one SQLite database every stage reads from and writes to
  execution   sandboxed multi-language execution of candidates (MultiPL-E semantics)
  models      model sources (hub, local, package-shipped GGUF, tiny) and loading
  generation  batched sampling of candidates
  reward      the reward model (reranker): Bradley-Terry training and scoring
  sft, ppo    generator training
  mining      hard-negative mining and preference-pair building
  loop        the resumable self-training iteration
  evaluation  pass@1 tables and plots
"""
__version__ = "0.1.0"
