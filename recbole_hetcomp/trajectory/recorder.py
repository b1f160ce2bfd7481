"""Record a teacher's training trajectory: its rankings for every user at each validation.

HetComp (Kang et al., WWW 2023, section 4.1) builds easy-to-hard targets from the
teachers' intermediate checkpoints. We do not keep model weights: at every validation we
keep, for every user, the teacher's top-N *unobserved* items (training items masked)
and its ranking of the user's *training* items (first L), as int32 item ids.

Which validations become the T kept checkpoints (the last is always the teacher at its
best validation score) is decided when training ends, by :func:`select_checkpoints`.
"""

import random
from time import perf_counter

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.history import padded_rows, training_items_csr

CHECKPOINT_RULES = ("progress", "even", "epochs")


def select_checkpoints(scores, n_checkpoints, rule="progress", epochs=None, explicit_epochs=None, bigger=True):
    """Choose which validations become the teacher's checkpoints.

    The last checkpoint is the best validation, with RecBole's tie rule (a later equal
    score replaces the best). The earlier ones, by ``rule``:

    * ``progress`` (default): for t = 1..T-1, the first validation whose score reaches
      t/T of the best score: evenly spaced in learning progress, not in time, so a
      teacher that learns fast early gets its checkpoints early.
    * ``even``: validations evenly spaced in time between the first and the best.
    * ``epochs``: for each epoch in ``explicit_epochs``, the first validation at or
      after it (epochs at or after the best one are ignored).

    Duplicates collapse, so a teacher can end with fewer than T checkpoints (a one-shot
    model such as EASE, validated once, has exactly one).

    Args:
        scores (list of float): validation score at each validation, in order.
        n_checkpoints (int): T, the number of checkpoints wanted (>= 1).
        rule (str): one of ``progress``, ``even``, ``epochs``.
        epochs (list of int, optional): the epoch of each validation (for ``epochs``).
        explicit_epochs (list of int, optional): epochs asked for by the ``epochs`` rule.
        bigger (bool): whether a bigger validation score is better.

    Returns:
        list of int: ascending indices into ``scores``; the last is the best validation.
    """
    if not scores:
        raise ConfigError("no validation happened, so no trajectory was recorded: set eval_step >= 1 and give validation data")
    if n_checkpoints < 1:
        raise ConfigError(f"trajectory_checkpoints must be >= 1, got {n_checkpoints}")
    if rule not in CHECKPOINT_RULES:
        raise ConfigError(f"trajectory_checkpoint_rule must be one of {', '.join(CHECKPOINT_RULES)}, got {rule!r}")
    sign = 1.0 if bigger else -1.0
    best, best_value = 0, sign * scores[0]
    for i, s in enumerate(scores):
        if sign * s >= best_value:
            best, best_value = i, sign * s
    chosen = []
    if rule == "progress" and bigger and scores[best] > 0:
        for t in range(1, n_checkpoints):
            target = scores[best] * t / n_checkpoints
            chosen.append(next(i for i in range(best + 1) if scores[i] >= target))
    elif rule == "epochs":
        if epochs is None or explicit_epochs is None:
            raise ConfigError("trajectory_checkpoint_rule 'epochs' needs trajectory_checkpoint_epochs: a list of epochs")
        for wanted in sorted(explicit_epochs):
            later = [i for i in range(best) if epochs[i] >= wanted]
            if later:
                chosen.append(later[0])
    else:
        # 'even', and 'progress' where fractions of the best score mean nothing.
        for t in range(n_checkpoints - 1):
            chosen.append(int(round(t * best / max(n_checkpoints - 1, 1))))
    chosen.append(best)
    return sorted(set(chosen))


class TrajectoryRecorder:
    """Ranks every user's items with the model under training, at each validation.

    Args:
        train_dataset (Dataset): RecBole's training dataset (its history masks training items).
        top_n (int): N, unobserved items kept per user (>= the student's K).
        n_observed (int): L, ranked training items kept per user.
        batch_scores (int): scores per scoring batch (users x items), like eval_batch_size.
        keep (str): ``"new_best"`` keeps only validations that can be selected by the
            ``progress``/``epochs`` rules (each one a new running best); ``"all"`` keeps all.
    """

    def __init__(self, train_dataset, top_n=100, n_observed=10, batch_scores=1_000_000, keep="new_best"):
        if top_n < 1 or n_observed < 0:
            raise ConfigError(f"trajectory_topn must be >= 1 and trajectory_observed >= 0, got {top_n}, {n_observed}")
        self.uid_field = train_dataset.uid_field
        self.n_users = int(train_dataset.user_num)
        self.n_items = int(train_dataset.item_num)
        self.top_n = min(top_n, self.n_items - 1)
        self.n_observed = n_observed
        # [n_users + 1], [n_interactions]: no users x heaviest-user matrix (RecBole's
        # history_item_matrix); one scoring batch is padded at a time.
        self.train_indptr, self.train_indices = training_items_csr(train_dataset)
        self.users_per_batch = max(1, batch_scores // self.n_items)
        self.keep = keep
        self.evaluations = []  # (epoch, valid score) of every validation, in order
        self.snapshots = {}  # validation index -> (topn, observed) int32 arrays
        self._running_best = None
        self.recording_time = 0.0

    # --- scoring --------------------------------------------------------------------
    def _scores(self, model, users):
        interaction = Interaction({self.uid_field: users})
        try:
            scores = model.full_sort_predict(interaction.to(model.device))
        except NotImplementedError:
            # Same fallback as RecBole's evaluation: every (user, item) pair through predict.
            items = torch.arange(self.n_items, device=model.device)
            pairs = Interaction(
                {self.uid_field: users.repeat_interleave(self.n_items), model.ITEM_ID: items.repeat(len(users))}
            )
            scores = model.predict(pairs.to(model.device))
        return scores.view(len(users), self.n_items).float().cpu()

    def observed_ranking(self, users, raw_scores):
        """Each user's training items by score, first L, 0-padded: int64 [B, L].

        Args:
            users (torch.LongTensor): [B] user ids.
            raw_scores (torch.Tensor): [B, n_items] scores before any masking.
        """
        history = padded_rows(self.train_indptr, self.train_indices, users.cpu())
        hist_scores = raw_scores.float().cpu().gather(1, history).masked_fill(history == 0, -torch.inf)
        order = torch.sort(hist_scores, dim=1, descending=True, stable=True).indices[:, : self.n_observed]
        ranked = history.gather(1, order).masked_fill(hist_scores.gather(1, order) == -torch.inf, 0)
        if ranked.shape[1] < self.n_observed:  # every user has fewer training items than L
            ranked = torch.nn.functional.pad(ranked, (0, self.n_observed - ranked.shape[1]))
        return ranked

    def unobserved_topn(self, masked_scores):
        """Top-N of scores whose training items and item 0 are already -inf: int64 [B, N]."""
        values, items = torch.topk(masked_scores.float().cpu(), self.top_n, dim=1)
        return items.masked_fill(values == -torch.inf, 0)

    @torch.no_grad()
    def rank_all_users(self, model, skip=None):
        """Rank every user's items with ``model`` as it is now.

        Args:
            model (AbstractRecommender): the model.
            skip (set of int, optional): users already ranked elsewhere (left as 0 here).

        Returns:
            tuple: ``topn`` int32 [n_users, N] best unobserved items (0 where a user has
            fewer than N unobserved items), ``observed`` int32 [n_users, L] training items
            by the model's score (0-padded); row 0 (padding user) is all 0.
        """
        was_training = model.training
        model.eval()
        topn = np.zeros((self.n_users, self.top_n), dtype=np.int32)
        observed = np.zeros((self.n_users, self.n_observed), dtype=np.int32)
        todo = torch.arange(1, self.n_users)
        if skip:
            todo = todo[~torch.isin(todo, torch.tensor(sorted(skip), dtype=torch.long))]
        for start in range(0, len(todo), self.users_per_batch):
            users = todo[start : start + self.users_per_batch]
            scores = self._scores(model, users)
            if self.n_observed:
                observed[users.numpy()] = self.observed_ranking(users, scores).numpy()
            scores[:, 0] = -torch.inf
            scores.scatter_(1, padded_rows(self.train_indptr, self.train_indices, users), -torch.inf)
            topn[users.numpy()] = self.unobserved_topn(scores).numpy()
        model.train(was_training)
        return topn, observed

    # --- hooks ----------------------------------------------------------------------
    def start_capture(self):
        """Collect rankings from the validation pass that is about to run (no re-scoring)."""
        self._captured = {"users": [], "topn": [], "observed": []}

    def capture(self, users, raw_observed, masked_scores):
        """Called per validation batch with the batch's observed ranking and RecBole's masked scores."""
        if getattr(self, "_captured", None) is None:
            return
        start = perf_counter()
        self._captured["users"].append(users.cpu())
        self._captured["observed"].append(raw_observed)
        self._captured["topn"].append(self.unobserved_topn(masked_scores))
        self.recording_time += perf_counter() - start

    def _snapshot(self, model):
        captured, self._captured = getattr(self, "_captured", None), None
        seen = set()
        if captured and captured["users"]:
            users = torch.cat(captured["users"])
            seen = set(users.tolist())
        topn, observed = self.rank_all_users(model, skip=seen)
        if seen:
            topn[users.numpy()] = torch.cat(captured["topn"]).numpy()
            if self.n_observed:
                observed[users.numpy()] = torch.cat(captured["observed"]).numpy()
        return topn, observed

    def on_validation(self, model, epoch, valid_score, bigger=True):
        """Called after each validation (RecBole's ``callback_fn``)."""
        start = perf_counter()
        index = len(self.evaluations)
        self.evaluations.append((int(epoch), float(valid_score)))
        signed = valid_score if bigger else -valid_score
        new_best = self._running_best is None or signed >= self._running_best
        if new_best:
            self._running_best = signed
        if new_best or self.keep == "all":
            # Recording must not change training: keep every random stream as it was.
            states = (torch.get_rng_state(), np.random.get_state(), random.getstate())
            self.snapshots[index] = self._snapshot(model)
            torch.set_rng_state(states[0])
            np.random.set_state(states[1])
            random.setstate(states[2])
        else:
            self._captured = None
        self.recording_time += perf_counter() - start

    def checkpoints(self, n_checkpoints, rule="progress", explicit_epochs=None, bigger=True):
        """Select the checkpoints and stack their rankings.

        Returns:
            tuple: ``topn`` [T, n_users, N], ``observed`` [T, n_users, L] (int32),
            and the list of (epoch, valid score) of each kept checkpoint.
        """
        scores = [s for _, s in self.evaluations]
        epochs = [e for e, _ in self.evaluations]
        chosen = select_checkpoints(scores, n_checkpoints, rule, epochs, explicit_epochs, bigger)
        missing = [i for i in chosen if i not in self.snapshots]
        if missing:
            raise ConfigError("the 'even' checkpoint rule needs every validation kept: set trajectory_keep to 'all'")
        topn = np.stack([self.snapshots[i][0] for i in chosen])
        observed = np.stack([self.snapshots[i][1] for i in chosen])
        return topn, observed, [self.evaluations[i] for i in chosen]


def full_sort_inference_time(model, train_dataset, k=50, batch_scores=1_000_000):
    """Seconds to serve every user: score the catalogue, mask training items, take the top-k.

    The same measure for teachers, ensemble and student, so their costs compare.

    Args:
        model (AbstractRecommender): a trained model.
        train_dataset (Dataset): the training split (its items are masked).
        k (int): list length served.
        batch_scores (int): scores per batch (users x items).

    Returns:
        float: wall seconds for all users, at the current torch thread count.
    """
    timer = TrajectoryRecorder(train_dataset, top_n=k, n_observed=0, batch_scores=batch_scores)
    start = perf_counter()
    timer.rank_all_users(model)
    return perf_counter() - start
