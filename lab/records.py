"""Records: the typed rows that cross modules, as the store returns and takes them.

Rows read from the store are TypedDicts, so `row["passed"]` stays what it was at runtime while a type
checker checks the key and its type. One row type per store read:

  RunRow, StageRow                 runs and their stages (Store.runs, Store.stages)
  NewCandidate, CandidateRow       a candidate to add, and one read back joined with its problem,
                                   execution, score and current label (Store.candidates)
  CandidateText                    id, problem and code only (Store.unexecuted_candidates, Store.unchecked_candidates)
  PairRow, LabelRow                preference pairs with their texts, and label history rows
  AnnotatorLabelRow                one author's own label of a candidate (agreement between annotators)
  CheckpointRow, MetricRow         trained checkpoints and training-step metrics
  PassAt1Row, EvaluationRow        pass@1 of one method on one benchmark/language, to store and stored
  MeasureKey, Measurement,         one measurement: what it measures (measure) of what (subject), its
  MeasurementRow                   value, count and 95% interval
  RankingRow, CandidatePlaceRow, HardNegativeCountRow, RewardScoreRow, CandidateCountRow, PairCountRow
                                   the short rows of the app's and the summary's counting reads

A measurement's key has two fields: `measure` (e.g. 'ranking_accuracy', 'top1', 'lambda') and
`subject` (the ranker, method or pair of them it is about: 'reranker', 'reranker-logprob'; '' when
it has none). `MeasureKey.label` joins them for display ('ranking_accuracy/reranker'); nothing
splits a label back apart.

Not covered here: reading or writing them (lab/store/), computing measurements (measures.py,
evaluation.py). No ORM: these are plain dicts and a frozen dataclass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, NotRequired, TypedDict

RankerKey = Literal["mean_logprob", "reward", "reward_plus_logprob", "previous_reward", "ensemble"]
"""The candidate fields a ranker ranks samples by (measures.RANKERS, and rm-(k-1)'s in evaluation.py)."""


class RunRow(TypedDict):
    id: int
    name: str
    preset: str
    config_json: str
    created_at: str


class StageRow(TypedDict):
    run_id: int
    iteration: int
    name: str
    status: str
    """'running', 'done', 'failed' or 'cancelled'."""
    started_at: str
    finished_at: str | None
    info_json: str | None


class NewCandidate(TypedDict):
    """A candidate for Store.add_candidates; origin defaults to 'sample'."""
    problem_id: str
    model: str
    sample_index: int
    completion: str
    origin: NotRequired[str]
    temperature: NotRequired[float | None]
    top_p: NotRequired[float | None]
    seed: NotRequired[int | None]
    mean_logprob: NotRequired[float | None]
    num_tokens: NotRequired[int | None]


class CandidateRow(TypedDict):
    """A candidate with its problem's language and split, its execution (None where not executed),
    its score under the reward model asked for (`reward`) and its current label."""
    id: int
    run_id: int
    iteration: int
    problem_id: str
    origin: str
    """'sample', 'greedy' or 'reference'."""
    model: str
    sample_index: int
    completion: str
    temperature: float | None
    top_p: float | None
    seed: int | None
    mean_logprob: float | None
    num_tokens: int | None
    created_at: str
    language: str
    split: str
    status: str | None
    exit_code: int | None
    passed: int | None
    """1 passed, 0 failed, None not executed."""
    stdout: str | None
    stderr: str | None
    duration_s: float | None
    reward: float | None
    label: str | None
    label_note: str | None
    label_version: int | None
    """The version of the current label row (None: never labelled); what a label write says it saw."""
    label_author: str | None
    label_at: str | None
    visible_examples: int | None
    """How many of its prompt's visible examples it was checked against (0: the prompt shows none),
    None when not checked yet (Store.add_example_verdicts)."""
    examples_passed: int | None
    """1 passes every visible example, 0 fails one, None when not checked or the prompt shows none."""
    count: NotRequired[int]
    """Added by distinct.distinct_candidates: how many samples of its problem have this text."""
    ensemble: NotRequired[float | None]
    """Added by measures.with_ensemble: the z-scored mean of several reward models' scores."""
    reward_plus_logprob: NotRequired[float | None]
    """Added by evaluation.with_combined_score: reward + λ·mean_logprob."""
    previous_reward: NotRequired[float | None]
    """Added by evaluation.previous_reranker_measurements: the score under rm-(k-1)."""


class CandidateText(TypedDict):
    id: int
    problem_id: str
    completion: str


class CandidateCountRow(TypedDict):
    iteration: int
    role: str
    candidates: int
    executed: int
    passing: int


class PairRow(TypedDict):
    """A preference pair with the texts it compares."""
    id: int
    run_id: int
    iteration: int
    problem_id: str
    chosen_id: int
    rejected_id: int
    kind: str
    """'execution', 'hard_negative' or 'manual'."""
    created_at: str
    prompt: str
    language: str
    chosen: str
    rejected: str
    chosen_origin: str
    rejected_origin: str


class PairCountRow(TypedDict):
    iteration: int
    kind: str
    pairs: int
    with_reference: int


class LabelRow(TypedDict):
    """One appended label (None = cleared); a candidate's current label is its newest row."""
    id: int
    candidate_id: int
    label: str | None
    note: str
    author: str
    created_at: str
    version: int
    """The candidate's label version this row made: 1 for its first row, +1 for each next one."""
    action: int
    """Rows written by one action (a label, a bulk label, an undo) share it."""
    undoes: int | None
    """For the rows of an undo: the action undone."""


class AnnotatorLabelRow(TypedDict):
    """One author's own current label of a candidate (Store.annotator_labels)."""
    candidate_id: int
    problem_id: str
    author: str
    label: str | None


class CheckpointRow(TypedDict):
    id: int
    run_id: int
    iteration: int
    kind: str
    """'generator' or 'reward_model'."""
    variant: str
    """'' for the iteration's own model, else the control it is (lab/controls.py)."""
    version: str
    path: str
    metrics: dict
    created_at: str


class MetricRow(TypedDict):
    id: int
    run_id: int
    iteration: int
    stage: str
    name: str
    step: int
    value: float
    created_at: str


class PassAt1Row(TypedDict):
    """pass@1 of one method on one benchmark/language, as measures.pass_at_1_rows makes it."""
    benchmark: str
    language: str
    generator: NotRequired[str]
    """Whose candidates: 'base' (the untouched model), 'gen-0', 'gen-k', or a reference model's name; ''
    (or absent, when written) for the iteration's own generator, as in rows stored before generators had
    rows of their own."""
    method: str
    pass_at_1: float
    ci_low: NotRequired[float | None]
    ci_high: NotRequired[float | None]
    n_problems: int


class EvaluationRow(PassAt1Row):
    """A stored PassAt1Row (Store.evaluations: generator, ci_low and ci_high always present, '' and None
    where unknown)."""
    run_id: int
    iteration: int
    created_at: str


class MeasureKey(NamedTuple):
    """What a measurement measures (`measure`) of what (`subject`, '' for none)."""
    measure: str
    subject: str = ""

    @property
    def label(self) -> str:
        """'measure/subject' (or the measure alone), for tables and JSON keys; never parsed back."""
        return f"{self.measure}/{self.subject}" if self.subject else self.measure


@dataclass(frozen=True)
class Measurement:
    """A value with the count it is over (pairs, problems, samples; None where none applies) and its
    95% interval where one is defined."""
    value: float | None
    count: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.ci_low is not None or self.ci_high is not None


class MeasurementRow(TypedDict):
    run_id: int
    iteration: int
    eval_set: str
    """Where it was measured: 'mbpp-validation' (held out), 'humaneval-py', ..."""
    measure: str
    subject: str
    name: str
    """MeasureKey.label of (measure, subject), for display."""
    value: float | None
    count: int | None
    ci_low: float | None
    ci_high: float | None
    created_at: str


def measurement_key(row: MeasurementRow) -> MeasureKey:
    return MeasureKey(row["measure"], row["subject"])


class RankingRow(TypedDict):
    """A candidate's short row for the app's problem list (Store.ranking_rows): no code, no outputs."""
    id: int
    problem_id: str
    language: str
    split: str
    origin: str
    passed: int | None
    mean_logprob: float | None
    label: str | None
    label_version: int | None
    mined: int
    """1 when it is the rejected side of a 'hard_negative' pair."""
    ranked_by: str | None
    ranked_by_iteration: int | None
    reward: float | None


class CandidatePlaceRow(TypedDict):
    """Where a candidate is (Store.candidate_places)."""
    id: int
    run_id: int
    iteration: int
    problem_id: str


class HardNegativeCountRow(TypedDict):
    iteration: int
    mined_pairs: int
    mined_candidates: int
    labeled_hard_negatives: int


class RewardScoreRow(TypedDict):
    reward_model: str
    reward: float
    passed: int
