"""HetCompTrainer: RecBole's Trainer plus HetComp's curriculum schedule.

Every ``dkc_period`` epochs from ``dkc_start`` the trainer runs one DKC step (Kang et
al., WWW 2023, section 4.2): it ranks all users with the student, measures the
discrepancy to each teacher's next checkpoint, advances the (teacher, user) pairs the
rule allows, and rebuilds the targets. When the curriculum has converged (``switch_rule``;
the reference's: for every teacher, the mean checkpoint index over users rounded to 2
decimals equals its last index) DKC stops, the targets stay fixed, and AKT switches once,
globally, from the overall to the detailed ranking loss (section 4.3). Everything else
(optimiser, early stopping on validation, best checkpoint, evaluation) is RecBole's, except
that with
``hold_early_stopping`` early stopping waits for the curriculum: while the targets still
come from intermediate checkpoints the student's validation score can plateau (measured on
ml-1m: flat for 20 epochs mid-curriculum), and stopping there would end training before the
final knowledge is used. Its patience counts from the end of the curriculum.

``switch_patience`` (off by default, as in the reference) ends the overall stage early: once
that many validations in a row bring no gain during it, AKT switches (and DKC ends) as if the
curriculum had converged, and early stopping's patience counts from there. The overall loss
only asks that the targets beat the rest, not in which order; a student with room to spare
fits that set and loses the order it had (measured: docs/hetcomp.md), so waiting out a long
curriculum in the overall stage can cost more than the curriculum brings.
"""

import math
from time import perf_counter

import torch

from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_hetcomp.compat import is_distributed
from recbole_hetcomp.distill.dkc import dkc_step


class HetCompTrainer(Trainer):
    """Trainer for :class:`recbole_hetcomp.model.general_recommender.hetcomp.HetComp`."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.dkc_start = config["dkc_start"]
        self.dkc_period = config["dkc_period"]
        self.dkc_alpha = config["dkc_alpha"]
        self.dkc_decay = config["dkc_decay"]
        self.switch_rule = config["switch_rule"] or "mean_checkpoint"
        self.early_stopping_strict = bool(config["early_stopping_strict"])
        self.akt_mode = config["akt_mode"] or "adaptive"
        self.dkc_history = []  # one dict per DKC step, for logs, plots and benchmarks
        self.hold_early_stopping = bool(config["hold_early_stopping"])
        self.switch_patience = config["switch_patience"] or 0
        self._patience_started = False
        # A one-shot-only teacher set (or the no-DKC ablation) is finished from the start.
        self._maybe_switch(epoch_idx=0)

    def _extra_checkpoint_state(self):
        return {"dkc_history": list(self.dkc_history), "patience_started": self._patience_started}

    def _load_extra_checkpoint_state(self, state):
        self.dkc_history = list(state.get("dkc_history", []))
        self._patience_started = bool(state.get("patience_started", False))

    def _hold_early_stopping(self):
        """No early stop before the curriculum has finished; patience counts from then."""
        if not self.hold_early_stopping or self._patience_started:
            return
        if self.curriculum_done():
            self._patience_started = True
            self.stopping_step = self.config["stopping_step"]
            self.cur_step = 0
        else:
            self.stopping_step = math.inf

    def _dkc_due(self, epoch_idx):
        return (
            self.dkc_period > 0
            and epoch_idx >= self.dkc_start
            and (epoch_idx - self.dkc_start) % self.dkc_period == 0
        )

    def curriculum_done(self, state=None):
        """Whether DKC has ended (``switch_rule``); from then on the targets are fixed.

        ``mean_checkpoint`` (the reference): for every teacher, the mean checkpoint index
        over the users with training items, rounded to 2 decimals, equals its last index.
        ``all_pairs``: every (teacher, user) pair is at its teacher's last checkpoint.
        """
        state = state or self.model.curriculum
        users = self.model.curriculum_users
        if self.switch_rule == "all_pairs":
            return state.finished(1.0, users)
        return state.converged(users)

    def overall_stage_stalled(self):
        """Whether ``switch_patience`` validations in a row brought no gain (RecBole's
        ``cur_step`` counts them); never with ``switch_patience`` off (~ or 0)."""
        return self.switch_patience > 0 and self.cur_step >= self.switch_patience

    def _maybe_switch(self, epoch_idx):
        """Switch AKT to the detailed loss once, when due.

        Returns:
            str or bool: ``"converged"`` or ``"stalled"`` (why it switched now), else False.
        """
        state = self.model.curriculum
        if self.akt_mode == "overall" or state.switched:
            return False  # the overall-loss ablation never switches; the others switch once
        converged = self.akt_mode == "detailed" or self.curriculum_done(state)
        stalled = not converged and self.overall_stage_stalled()
        if not (converged or stalled):
            return False
        state.switched = True
        self.model.store_curriculum(state)
        means = state.mean_checkpoint(self.model.curriculum_users).tolist()
        per_teacher = ", ".join(f"{n} {m:.3f}" for n, m in zip(self.model.teacher_names, means))
        if stalled:
            # The detailed stage gets the whole patience, whatever hold_early_stopping says.
            self._patience_started = True
            self.stopping_step = self.config["stopping_step"]
            self.cur_step = 0
            reason = f"overall stage stalled ({self.switch_patience} validations without gain; mean checkpoint {per_teacher})"
        elif self.akt_mode == "detailed":
            reason = "akt_mode detailed (the ablation: DKC goes on until the curriculum converges)"
        else:
            reason = f"curriculum converged ({self.switch_rule}; mean checkpoint {per_teacher})"
        self.logger.info(
            set_color("AKT", "pink")
            + f": {reason}, switching to the detailed ranking loss at epoch {epoch_idx}"
            + ("" if self.akt_mode == "detailed" else "; targets fixed from now on")
        )
        return "stalled" if stalled else "converged"

    def _valid_epoch(self, valid_data, show_progress=False):
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if self.early_stopping_strict and math.isfinite(self.best_valid_score):
            # RecBole's early_stopping counts a tie with the best as a gain (and keeps the
            # later model); the reference counts only a strict gain. Nudging a tie by one
            # ulp below the best gives the strict rule without replacing RecBole's fit loop.
            bigger = self.valid_metric_bigger
            if valid_score == self.best_valid_score:
                valid_score = math.nextafter(valid_score, -math.inf if bigger else math.inf)
        return valid_score, valid_result

    def dkc(self, epoch_idx):
        """One DKC step and target rebuild; returns its statistics."""
        start = perf_counter()
        state = self.model.curriculum
        # DKC ends for good at the switch (adaptive AKT); the single-loss ablations run it
        # until the curriculum converges.
        ended = state.switched if self.akt_mode == "adaptive" else self.curriculum_done(state)
        if not ended:
            student = self.model.student_topk(self.model.depth)
            before = state.checkpoint.clone()
            stats = dkc_step(
                state, self.model.trajectories, None, student, epoch=epoch_idx,
                alpha=self.dkc_alpha, decay=self.dkc_decay, period=self.dkc_period,
                depth=self.model.depth, chunk_size=self.model.chunk_size,
                temperature=self.model.temperature,
            )
            self.model.store_curriculum(state)
            # Only users whose checkpoint moved get new targets (none after a measuring step).
            moved = (state.checkpoint != before).any(dim=0).nonzero().squeeze(1)
            if len(moved):
                self.model.rebuild_targets(moved)
            if is_distributed():
                check_ranks_agree(state.checkpoint, self.model.targets)
        else:
            stats = {"tau": float("nan"), "frac_advanced": 0.0, "mean_discrepancy": float("nan"), "n_advanced": 0}
        users = self.model.curriculum_users
        stats["mean_checkpoint"] = state.mean_checkpoint(users).tolist()
        stats["frac_at_last"] = state.fraction_at_last(users)
        stats["converged"] = self.curriculum_done(state)
        switch_reason = self._maybe_switch(epoch_idx)
        switched = bool(switch_reason)
        stats.update(epoch=epoch_idx, seconds=perf_counter() - start, stage=int(self.model.akt_stage), switched=switched)
        if switched:
            stats["switch_reason"] = switch_reason
        self.dkc_history.append(stats)
        if not stats.get("first_call") and stats["n_advanced"] == 0 and stats["converged"] and not switched:
            return stats  # the curriculum ended earlier: nothing new to report
        per_teacher = ", ".join(
            f"{name} {c:.2f}" for name, c in zip(self.model.teacher_names, stats["mean_checkpoint"])
        )
        discrepancy = stats["mean_discrepancy"]
        self.logger.info(
            set_color(f"epoch {epoch_idx} DKC", "pink")
            + f" [time: {stats['seconds']:.2f}s, stage: {'detailed' if stats['stage'] else 'overall'},"
            + f" mean discrepancy: {'-' if discrepancy != discrepancy else f'{discrepancy:.4f}'},"
            + f" advanced: {stats['frac_advanced']:.1%}, at last: {stats['frac_at_last']:.1%}]"
            + f" mean checkpoint: {per_teacher}"
        )
        self.tensorboard.add_scalar("DKC/mean_discrepancy", stats["mean_discrepancy"], epoch_idx)
        self.tensorboard.add_scalar("DKC/fraction_at_last", stats["frac_at_last"], epoch_idx)
        self.tensorboard.add_scalar("AKT/stage", stats["stage"], epoch_idx)
        for name, c in zip(self.model.teacher_names, stats["mean_checkpoint"]):
            self.tensorboard.add_scalar(f"DKC/mean_checkpoint/{name}", c, epoch_idx)
        return stats

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._dkc_due(epoch_idx):
            self.dkc(epoch_idx)
        self._hold_early_stopping()
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)


def curriculum_checksum(checkpoint, targets):
    """Two float64 numbers that change when any checkpoint index or target id changes.

    Args:
        checkpoint (torch.Tensor): long [M, U] each (teacher, user) pair's checkpoint.
        targets (torch.Tensor): long [U, K] each user's target list.

    Returns:
        torch.Tensor: float64 [2], position-weighted sums of both.
    """
    def weighted(values):
        flat = values.reshape(-1).double()
        return (flat * torch.arange(1, len(flat) + 1, dtype=torch.float64, device=flat.device)).sum()

    return torch.stack([weighted(checkpoint), weighted(targets)])


def check_ranks_agree(checkpoint, targets):
    """Every rank must hold the same curriculum and targets after a DKC step.

    Ranks no longer re-send the student's buffers to each other before each batch (see
    :func:`recbole_hetcomp.compat.patch_recbole_ddp`); each computes the same DKC step from the
    synchronised student. This makes a divergence loud instead of silent.

    Raises:
        RuntimeError: the ranks disagree.
    """
    local = curriculum_checksum(checkpoint, targets)
    low, high = local.clone(), local.clone()
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError("ranks disagree on the DKC curriculum after a step: the distributed run cannot continue "
                           "(please report it); run without --nproc")
