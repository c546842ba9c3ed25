"""The reads behind the app's pages and figures (lab/app/): short rows computed in SQL, so
a page of a large run reads only what it shows. Nothing here writes.

  candidate_iterations   the iterations of a run that have candidates
  candidate_problem_ids  the problems a run has candidates for
  candidate_places       the run, iteration and problem of candidates by id
  ranking_rows           one short row per candidate of an iteration (no code, no outputs), with the
                         reward-model version that ranks its problem and its score under it
  hard_negative_counts   per iteration: hard negatives mined, and labelled by hand
  reward_scores          every score of an iteration's executed candidates, per reward-model version

Not covered here: the full candidate rows (candidates.py), pairs (pairs.py), what the app makes of
these rows (lab/app/views.py).
"""
from __future__ import annotations

from typing import Any

from lab.records import CandidatePlaceRow, HardNegativeCountRow, RankingRow, RewardScoreRow
from lab.store.core import StoreCore


class AppQueries(StoreCore):
    def candidate_iterations(self, run_id: int) -> list[int]:
        """The iterations of a run that have candidates, in order."""
        rows = self._query("SELECT DISTINCT iteration FROM candidates WHERE run_id = ? ORDER BY iteration", (run_id,))
        return [row["iteration"] for row in rows]

    def candidate_places(self, candidate_ids: list[int]) -> list[CandidatePlaceRow]:
        """Where candidates are: id, run_id, iteration, problem_id (unknown ids left out)."""
        marks = ",".join("?" * len(candidate_ids))
        return self._query(f"SELECT id, run_id, iteration, problem_id FROM candidates WHERE id IN ({marks}) "
                           "ORDER BY id", candidate_ids) if candidate_ids else []

    def candidate_problem_ids(self, run_id: int) -> list[str]:
        """The problems a run has candidates for, by id."""
        rows = self._query("SELECT DISTINCT problem_id FROM candidates WHERE run_id = ? ORDER BY problem_id", (run_id,))
        return [row["problem_id"] for row in rows]

    def ranking_rows(self, run_id: int, iteration: int, *, problem_id: str | None = None, language: str | None = None,
                     split: str | None = None, search: str = "") -> list[RankingRow]:
        """One short row per candidate of the iteration (no code, no outputs), by problem then id:
        id, problem_id, language, split, origin, passed, mean_logprob, label (current), mined (rejected
        side of a 'hard_negative' pair), ranked_by (the reward-model version that ranks its problem:
        the one that scored most of its candidates, the later-trained on a tie; None = none scored
        any), ranked_by_iteration (where that version was trained) and reward (its score under it).
        `search` matches the problem id or prompt as plain text."""
        where: list[str] = ["c.run_id = :run", "c.iteration = :iteration"]
        params: dict[str, Any] = {"run": run_id, "iteration": iteration}
        for column, value in (("c.problem_id", problem_id), ("p.language", language), ("p.split", split)):
            if value is not None:
                name = column.split(".")[1]
                where.append(f"{column} = :{name}")
                params[name] = value
        if search.strip():
            escaped = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("(c.problem_id LIKE :search ESCAPE '\\' OR p.prompt LIKE :search ESCAPE '\\')")
            params["search"] = f"%{escaped}%"
        selected = " AND ".join(where)
        return self._query(
            f"""
            WITH version_counts AS (
                SELECT c.problem_id, s.reward_model, COUNT(*) AS n, MAX(k.iteration) AS trained_in
                FROM candidates c JOIN problems p ON p.id = c.problem_id
                LEFT JOIN scores s ON s.candidate_id = c.id LEFT JOIN checkpoints k ON k.version = s.reward_model
                WHERE {selected} GROUP BY c.problem_id, s.reward_model
            ),
            ranking AS (
                SELECT problem_id, reward_model, trained_in FROM (
                    SELECT *, ROW_NUMBER() OVER (PARTITION BY problem_id
                        ORDER BY reward_model IS NULL, n DESC, trained_in DESC, reward_model DESC) AS position
                    FROM version_counts) WHERE position = 1
            )
            SELECT c.id, c.problem_id, p.language, p.split, c.origin, e.passed, c.mean_logprob, cl.label,
                   cl.version AS label_version,
                   c.id IN (SELECT rejected_id FROM pairs WHERE run_id = :run AND kind = 'hard_negative') AS mined,
                   r.reward_model AS ranked_by, r.trained_in AS ranked_by_iteration, s.score AS reward
            FROM candidates c JOIN problems p ON p.id = c.problem_id JOIN ranking r ON r.problem_id = c.problem_id
            LEFT JOIN executions e ON e.candidate_id = c.id
            LEFT JOIN current_labels cl ON cl.candidate_id = c.id
            LEFT JOIN scores s ON s.candidate_id = c.id AND s.reward_model = r.reward_model
            WHERE {selected} ORDER BY c.problem_id, c.id
            """,
            params,
        )

    def hard_negative_counts(self, run_id: int) -> list[HardNegativeCountRow]:
        """Per iteration: hard-negative pairs mined, the distinct candidates they reject, and candidates
        whose current label is 'hard_negative'."""
        return self._query(
            """
            WITH mined AS (
                SELECT iteration, COUNT(*) AS mined_pairs, COUNT(DISTINCT rejected_id) AS mined_candidates
                FROM pairs WHERE run_id = :run AND kind = 'hard_negative' GROUP BY iteration
            ),
            labelled AS (
                SELECT c.iteration, COUNT(*) AS labeled_hard_negatives
                FROM candidates c JOIN current_labels cl ON cl.candidate_id = c.id
                WHERE c.run_id = :run AND cl.label = 'hard_negative' GROUP BY c.iteration
            ),
            iterations AS (SELECT iteration FROM mined UNION SELECT iteration FROM labelled)
            SELECT i.iteration, COALESCE(m.mined_pairs, 0) AS mined_pairs,
                   COALESCE(m.mined_candidates, 0) AS mined_candidates,
                   COALESCE(l.labeled_hard_negatives, 0) AS labeled_hard_negatives
            FROM iterations i LEFT JOIN mined m ON m.iteration = i.iteration
            LEFT JOIN labelled l ON l.iteration = i.iteration ORDER BY i.iteration
            """,
            {"run": run_id},
        )

    def reward_scores(self, run_id: int, iteration: int) -> list[RewardScoreRow]:
        """(reward_model, reward, passed) of every score of the iteration's executed candidates, under
        every reward-model version that scored them."""
        return self._query(
            "SELECT s.reward_model, s.score AS reward, e.passed FROM candidates c "
            "JOIN scores s ON s.candidate_id = c.id JOIN executions e ON e.candidate_id = c.id "
            "WHERE c.run_id = ? AND c.iteration = ? ORDER BY c.id",
            (run_id, iteration),
        )
