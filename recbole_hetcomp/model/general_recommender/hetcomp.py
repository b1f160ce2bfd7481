r"""HetComp: the MF student distilled from heterogeneous teachers' trajectories.

Reference:
    SeongKu Kang, Wonbin Kweon, Dongha Lee, Jianxun Lian, Xing Xie, Hwanjo Yu.
    "Distillation from Heterogeneous Models for Top-K Recommendation." WWW 2023.

The student is plain matrix factorisation. What makes it HetComp is the knowledge it
learns from: per user and per teacher, a checkpoint of that teacher's training
trajectory chosen by the student's own learning state (dynamic knowledge construction,
DKC, run by :class:`recbole_hetcomp.trainer.HetCompTrainer`), aggregated into a ranking
target, and losses that move from the overall to the detailed ranking (adaptive
knowledge transfer, AKT). The curriculum state lives in persistent buffers, so it is
part of every RecBole checkpoint and a resumed run continues where it was.
"""

import math

import torch

from recbole_hetcomp.distill.akt import detailed_loss, overall_loss
from recbole_hetcomp.distill.dkc import CurriculumState, build_targets
from recbole_hetcomp.distill.ranking import topk_unobserved
from recbole_hetcomp.errors import ConfigError
from recbole_hetcomp.model.abstract_student import DistillationStudent

STAGE_OVERALL, STAGE_DETAILED = 0, 1


class HetComp(DistillationStudent):
    r"""MF student trained on DKC targets with the AKT losses.

    Scores are ``s_ui = <e_u, e_i>``; :meth:`calculate_loss` takes a batch of training
    interactions and distils into its unique users over the full catalogue.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.k = config["hetcomp_k"]
        self.n_observed = config["observed_k"]
        self.temperature = config["importance_temperature"]
        self.depth = config["discrepancy_depth"]
        self.overall_weight = config["overall_loss_weight"]
        self.detailed_weight = config["detailed_loss_weight"]
        self.detailed_long = config["detailed_long"]
        self.detailed_short = config["detailed_short"]
        self.chunk_size = config["dkc_chunk_size"]
        self.observed_source = config["observed_source"] or "final"
        self.log_floor = None if not config["log_denominator_floor"] else math.log(config["log_denominator_floor"])
        self.check_settings(config, dataset.item_num)

        # teachers' trajectories: loaded from files validated against this split, so
        # they are not part of the checkpoint
        teachers, weights = self._take_teachers(config, dataset)
        topn, observed, n_checkpoints = teachers.stacked(config["hetcomp_checkpoints"])
        if topn.shape[-1] < max(self.k, self.depth):
            raise ConfigError(
                f"teachers' lists hold {topn.shape[-1]} items but hetcomp_k={self.k} and "
                f"discrepancy_depth={self.depth}: record teachers with trajectory_topn >= {max(self.k, self.depth)}"
            )
        # int32 as stored (half of an int64 copy: 64 MB less on ml-1m); the DKC and target
        # code widens only the slices it indexes with.
        self.register_buffer("trajectories", torch.from_numpy(topn), persistent=False)
        # The teachers' weights in every ensemble the student learns from (T_u and O_u).
        self.register_buffer(
            "teacher_weights",
            torch.ones(len(teachers.members)) if weights is None else torch.tensor(weights, dtype=torch.float),
            persistent=False,
        )
        self.register_buffer("observed_trajectories", torch.from_numpy(observed), persistent=False)

        # define layers and loss (MF embeddings, optional BPR term, training items)
        self._build_mf(config, dataset)
        # DKC's convergence is a mean over real users: RecBole's padding user 0 (and any
        # user without training items) has no knowledge to follow.
        self.register_buffer("curriculum_users", self.has_training_items(), persistent=False)

        # curriculum state (persistent: saved in every checkpoint)
        state = CurriculumState.start(torch.from_numpy(n_checkpoints), self.n_users)
        self.register_buffer("dkc_n_checkpoints", state.n_checkpoints)
        self.register_buffer("dkc_checkpoint", state.checkpoint)
        self.register_buffer("dkc_d_ref", state.d_ref)
        self.register_buffer("dkc_calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("akt_stage", torch.tensor(STAGE_OVERALL))
        self.register_buffer("targets", torch.zeros(self.n_users, self.k, dtype=torch.long))
        self.register_buffer("observed_targets", torch.zeros(self.n_users, self.n_observed, dtype=torch.long))

        if self.n_observed and self.observed_source == "final":
            # The reference computes O_u once, outside the curriculum: the teachers' final
            # ranking of the user's training items (fixed for the whole run).
            final = (self.dkc_n_checkpoints - 1)[:, None].expand_as(self.dkc_checkpoint)
            self.observed_targets.copy_(self._observed_at(final))
        self.rebuild_targets()

    @staticmethod
    def check_settings(config, n_items):
        """Refuse bad settings before any teacher or student trains.

        Args:
            config (Config): the run's config.
            n_items (int or None): catalogue size including RecBole's padding item; None
                before the data is loaded (the catalogue checks are then skipped).

        Raises:
            ConfigError: the first problem found, with the key, the value and the rule.
        """
        k, depth, n_observed = config["hetcomp_k"], config["discrepancy_depth"], config["observed_k"]
        problems = []
        if not isinstance(k, int) or k <= 0:
            problems.append(f"hetcomp_k must be a positive integer, got {k!r}")
        elif n_items is not None and k >= n_items:
            problems.append(f"hetcomp_k={k} is not smaller than the catalogue ({n_items - 1} items): lower --hetcomp_k")
        elif not isinstance(depth, int) or not 0 < depth <= k:
            problems.append(f"discrepancy_depth must be in [1, hetcomp_k={k}], got {depth!r}")
        elif config["trajectory_topn"] < k:
            problems.append(
                f"hetcomp_k={k} needs teachers' lists of at least {k} items, trajectory_topn is {config['trajectory_topn']}"
            )
        if not isinstance(n_observed, int) or n_observed < 0:
            problems.append(f"observed_k must be an integer >= 0, got {n_observed!r}")
        for key in ("overall_loss_weight", "detailed_loss_weight"):
            if not isinstance(config[key], (int, float)) or config[key] < 0:
                problems.append(f"{key} must be >= 0, got {config[key]!r}")
        if not isinstance(config["dkc_alpha"], (int, float)) or config["dkc_alpha"] <= 0:
            problems.append(f"dkc_alpha must be > 0, got {config['dkc_alpha']!r}")
        if not isinstance(config["dkc_decay"], (int, float)) or not 0 < config["dkc_decay"] <= 1:
            problems.append(f"dkc_decay must be in (0, 1], got {config['dkc_decay']!r}")
        if config["switch_rule"] not in (None, "mean_checkpoint", "all_pairs"):
            problems.append(f"switch_rule must be mean_checkpoint (the reference) or all_pairs, got {config['switch_rule']!r}")
        if config["observed_source"] not in (None, "final", "curriculum"):
            problems.append(f"observed_source must be final (the reference) or curriculum, got {config['observed_source']!r}")
        floor = config["log_denominator_floor"]
        if floor is not None and (isinstance(floor, bool) or not isinstance(floor, (int, float)) or floor < 0):
            problems.append(f"log_denominator_floor must be a number >= 0 (0 or ~ for none), got {floor!r}")
        for key in ("dkc_start", "dkc_period"):
            if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 0:
                problems.append(f"{key} must be an integer >= 0, got {config[key]!r}")
        patience = config["switch_patience"]
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 0):
            problems.append(f"switch_patience must be an integer >= 0 (~ or 0: switch only when the curriculum converges), got {patience!r}")
        if config["akt_mode"] not in (None, "adaptive", "overall", "detailed"):
            problems.append(f"akt_mode must be adaptive, overall or detailed, got {config['akt_mode']!r}")
        if problems:
            raise ConfigError(problems[0])
        DistillationStudent.check_student_settings(config)  # bpr_loss_weight, student_init and its std

    # --- curriculum -------------------------------------------------------------------
    @property
    def curriculum(self):
        """The DKC state as a :class:`CurriculumState` sharing this model's buffers."""
        return CurriculumState(
            n_checkpoints=self.dkc_n_checkpoints,
            checkpoint=self.dkc_checkpoint,
            d_ref=self.dkc_d_ref,
            n_calls=int(self.dkc_calls),
            switched=bool(self.akt_stage == STAGE_DETAILED),
        )

    def store_curriculum(self, state):
        self.dkc_checkpoint.copy_(state.checkpoint)
        self.dkc_d_ref.copy_(state.d_ref)
        self.dkc_calls.fill_(state.n_calls)
        self.akt_stage.fill_(STAGE_DETAILED if state.switched else STAGE_OVERALL)

    @torch.no_grad()
    def rebuild_targets(self, users=None):
        """Rebuild T_u and O_u from each teacher's list at the user's current checkpoint.

        Args:
            users (torch.Tensor, optional): long [S] ids of the users whose checkpoints
                moved; only their rows are rebuilt (the others' are unchanged). None: all.
        """
        targets = build_targets(
            self.trajectories, self.dkc_checkpoint, self.n_items, self.k, self.temperature,
            weights=self.teacher_weights, chunk_size=self.chunk_size, users=users,
        )
        if users is None:
            self.targets.copy_(targets)
        else:
            self.targets[users] = targets
        if self.n_observed and self.observed_source == "curriculum":
            observed = self._observed_at(self.dkc_checkpoint, users)
            if users is None:
                self.observed_targets.copy_(observed)
            else:
                self.observed_targets[users] = observed

    def _observed_at(self, checkpoint, users=None):
        """O_u: the rank ensemble of the teachers' observed lists at ``checkpoint`` [M, U]."""
        return build_targets(
            self.observed_trajectories, checkpoint, self.n_items, self.n_observed,
            self.temperature, weights=self.teacher_weights, chunk_size=self.chunk_size, users=users,
        )

    def train_mask(self, users):
        """Bool [B, n_items], True at each user's training items (and the padding item)."""
        mask = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=users.device)
        mask[self.train_items_of(users)] = True
        mask[:, 0] = True
        return mask

    # Scores per chunk of users in student_topk: about 4 MB on a CPU (fits its caches); on a
    # GPU each chunk is a few kernel launches, so chunks as large as memory comfortably allows.
    SCORE_BUDGET = {"cpu": 1_000_000, "cuda": 32_000_000}

    @torch.no_grad()
    def student_topk(self, depth):
        """The student's top-``depth`` unobserved items for every user: [n_users, depth]."""
        out = torch.zeros(self.n_users, depth, dtype=torch.long, device=self.dkc_checkpoint.device)
        item_e = self.item_embedding.weight
        budget = self.SCORE_BUDGET.get(out.device.type, self.SCORE_BUDGET["cpu"])
        step = max(1, min(self.chunk_size, budget // self.n_items))
        for start in range(0, self.n_users, step):
            users = torch.arange(start, min(start + step, self.n_users), device=out.device)
            scores = self.user_embedding(users) @ item_e.T
            out[start : start + len(users)] = topk_unobserved(scores, self.train_mask(users), depth, overwrite=True)
        return out

    # --- AKT -------------------------------------------------------------------------
    def kd_loss(self, scores, users):
        """The current AKT stage's loss on the users' current targets (summed, weighted)."""
        train_items = self.train_items_of(users)
        observed = self.observed_targets[users]
        target = self.targets[users]
        if int(self.akt_stage) == STAGE_OVERALL:
            return self.overall_weight * overall_loss(
                scores, observed, observed != 0, target, train_items, log_floor=self.log_floor
            ).sum()
        return self.detailed_weight * detailed_loss(
            scores, observed, observed != 0, target, train_items,
            n_observed=self.n_observed, n_long=self.detailed_long, n_short=self.detailed_short,
            log_floor=self.log_floor,
        ).sum()
