"""RewardRanker Lab: a code LLM plus a learned reranker, trained by iterative self-training
(SFT -> reward model -> PPO or RLOO -> sample/execute -> mine hard negatives -> retrain).

Modules, in the order data flows through them (each imports only modules above it):
  presets     each preset's values (tiny, cpu, gpu) over the configuration's defaults
  config      presets and dataclass configuration; stored_config reads back the configs runs stored
  languages   the language registry: MultiPL-E codes; toolchains, commands, verdict traps, names
  mbpp_form   MBPP posed in the evaluation's form: prompt and re-indented reference from a row
  problems    HumanEval / MBPP (rendered in HumanEval's form) / MultiPL-E / user JSONL -> Problem
  roles       which MBPP splits train; no problem (nor a near-copy) in two roles
  records     the typed rows that cross modules; measurements keyed by measure and subject
  text        long texts clipped to a bounded size, saying how much was left out
  store       the one SQLite database every stage reads from and writes to; the only SQL (a package)
  examples    a prompt's visible examples and the program checking a completion against them alone
  sandbox     isolation of untrusted programs (bwrap + fork server in exec_helpers/zygote.py,
              light fallback), seccomp, Landlock, cgroups, limits (a package)
  compile_servers   warm javac and TypeScript checker processes, each in a sandbox beside a worker
  execution   running candidates: MultiPL-E semantics, worker pool, cache
  selftest    attacks on the sandbox and the per-language right/wrong check
  tiny        tiny random models and tokenizer built offline, for tests and the tiny preset
  models      model sources (hub, local, package-shipped GGUF, tiny) and loading
  benchmarks  figures the bench scripts measured (benchmarks.json), read by the estimate
  generation  batched sampling of candidates
  vllm_backend, vllm_worker   optional vLLM sampling on CUDA, in its own environment and process
  hidden_states  shared-prefix packed forwards; the disk cache of frozen lower-layer states
  reward      the reward model (reranker): Bradley-Terry training and scoring
  sft         supervised fine-tuning of the generator
  policy      what the policy-optimisation methods share: completions cut, their reward, step logs
  ppo, rloo   policy optimisation of the generator: the lab's PPO, TRL's RLOO
  distinct    duplicate completions of a problem as one candidate, with their count
  mining      preference pairs and hard-negative mining (pure functions over candidate rows)
  measures    one definition of each measure: rankers (the examples filter, the seed ensemble),
              pass@1, pairwise / ranking accuracy and AUC, length correlation, bootstrap and paired CIs
  reports     tables and CSV; plots draws the figures (run artefacts and the app alike)
  replicas    the generator and reward-model replicas that sample and score on Ray nodes
  cluster     Ray fan-out of sampling, execution and scoring (cluster.address; Ray imported only then)
  stages      store-driven work shared by loop and evaluation: run context, model cache,
              versions, checkpoints, resumable sample / execute / score (here or through cluster)
  training_jobs   SFT, reward-model and policy training as `accelerate launch` jobs (cluster.train_processes)
  handoff     export to TRL / OpenRLHF / verl (pairs, prompts, the reward model as an HF classifier)
              and import of a policy trained there as gen-k
  evaluation  held-out measures after every RM training, and the evaluation benchmarks
  temperature the sampling temperature chosen on held-out MBPP validation
  generators  the generator's own progress (greedy, random pick, oracle) and the SFT gate
  sft_choice  the SFT recipe, chosen on held-out MBPP validation
  console, estimate   the main job's terminal (one line per stage, log file) and its time estimate
  problem_check       checks of a user problem file's references and tests in the sandbox
  run_summary what a run did: its stages in order, times, counts, tables (the job's last screen)
  loop        the resumable self-training iteration
  curation    the curated dataset: the pairs training uses (labels applied) and its export
  agreement   overlap assignment of problems to annotators, Cohen's kappa between them
  controls    the hard-negative iteration's controls: equal-compute and fresh reward models
  protocol, study, study_stats   a study over sampling and reward-model seeds: its protocol file, its
              resumable runs and files, its statistics over seeds x problems and study.json
  compare     runs side by side (CLI and app)
  notebook    what the notebooks share: the run's configuration from their parameters, figures inline
  app/, launcher   the Gradio app (a package: views, handlers by tab, layout, static files), background jobs
"""
__version__ = "0.1.0"
