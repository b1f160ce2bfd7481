r"""
NeuMF
################################################
Reference:
    Xiangnan He et al. "Neural Collaborative Filtering." in WWW 2017.

RecBole's NeuMF with a batched ``full_sort_predict``; model, training and defaults
(RecBole's ``NeuMF.yaml``) are unchanged.

Why this exists: RecBole's NeuMF has no ``full_sort_predict``, so RecBole's full-ranking
evaluation falls back to calling ``predict`` on every (user, item) pair of a batch, one
interaction batch at a time; on ml-1m one evaluation took about 49 s, and HetComp
evaluates its teachers many times while recording their trajectories. Here all items of
a batch of users are scored with broadcasting, and the first MLP layer is split into its
user and item halves so that its matrix product runs once per user and once per item
instead of once per pair: scoring all ml-1m users took 6.4 s instead of 90 s for the
pair-by-pair way (1 thread, docs/teachers.md).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole.model.general_recommender.neumf import NeuMF as RecBoleNeuMF


class NeuMF(RecBoleNeuMF):
    r"""RecBole's NeuMF plus a full-sort scorer equal to :meth:`predict` on every pair.

    Note:

        ``full_sort_predict`` is meant for eval mode, as RecBole calls it: in train mode
        the MLP's input dropout would be drawn once per user and once per item rather
        than once per pair.
    """

    # Pairs scored at once by full_sort_predict. Bounds the [pairs, hidden] activations;
    # blocks that stay in CPU cache were fastest (ml-1m, 1 thread: 2**13 pairs about
    # twice as fast as 2**17).
    full_sort_pairs = 2**13

    def _mlp_block(self, user_mlp_e, item_mlp_e):
        r"""MLP output for every pair of the given users and items.

        Args:
            user_mlp_e (torch.FloatTensor): shape: [n_users_in_batch, mlp_embedding_size]
            item_mlp_e (torch.FloatTensor): shape: [n_items_in_chunk, mlp_embedding_size]

        Returns:
            torch.FloatTensor: shape: [n_users_in_batch, n_items_in_chunk, mlp_hidden_size[-1]]
        """
        n_user, n_item = user_mlp_e.shape[0], item_mlp_e.shape[0]
        modules = list(self.mlp_layers.mlp_layers)
        first = next(k for k, m in enumerate(modules) if isinstance(m, nn.Linear))
        if all(isinstance(m, nn.Dropout) for m in modules[:first]):
            # Linear(cat(u, i)) = W_u u + W_i i + b: one product per user and per item.
            for m in modules[:first]:
                user_mlp_e, item_mlp_e = m(user_mlp_e), m(item_mlp_e)
            linear, d = modules[first], user_mlp_e.shape[1]
            user_h = F.linear(user_mlp_e, linear.weight[:, :d], linear.bias)
            item_h = F.linear(item_mlp_e, linear.weight[:, d:])
            h = (user_h.unsqueeze(1) + item_h.unsqueeze(0)).view(n_user * n_item, -1)
            for m in modules[first + 1 :]:
                h = m(h)
        else:
            # unknown layer layout: run the MLP on the concatenated pairs
            pairs = torch.cat(
                (
                    user_mlp_e.unsqueeze(1).expand(-1, n_item, -1),
                    item_mlp_e.unsqueeze(0).expand(n_user, -1, -1),
                ),
                dim=-1,
            )
            h = self.mlp_layers(pairs.reshape(n_user * n_item, -1))
        return h.view(n_user, n_item, -1)

    def _score_block(self, user, item):
        r"""Logits of every pair of the given users and items (``forward`` on the pairs).

        Args:
            user (torch.LongTensor): shape: [n_users_in_batch, ]
            item (torch.LongTensor): shape: [n_items_in_chunk, ]

        Returns:
            torch.FloatTensor: shape: [n_users_in_batch, n_items_in_chunk]
        """
        if not (self.mf_train or self.mlp_train):
            raise RuntimeError("mf_train and mlp_train can not be False at the same time")
        weight, bias = self.predict_layer.weight[0], self.predict_layer.bias
        logits = bias.expand(user.shape[0], item.shape[0])
        offset = 0
        if self.mf_train:
            # predict_layer(u * i) restricted to the MF half = (u * w_mf) . i
            w_mf = weight[: self.mf_embedding_size]
            user_mf_e = self.user_mf_embedding(user) * w_mf
            logits = logits + torch.matmul(user_mf_e, self.item_mf_embedding(item).t())
            offset = self.mf_embedding_size
        if self.mlp_train:
            h = self._mlp_block(self.user_mlp_embedding(user), self.item_mlp_embedding(item))
            logits = logits + torch.matmul(h, weight[offset:])
        return logits

    def full_sort_predict(self, interaction):
        r"""Scores of every item for a batch of users, as :meth:`predict` gives them (sigmoid).

        Args:
            interaction (Interaction): holds the batch's user ids, shape: [n_users_in_batch, ]

        Returns:
            torch.FloatTensor: shape: [n_users_in_batch * n_items]
        """
        user = interaction[self.USER_ID]
        chunk = max(1, self.full_sort_pairs // max(1, user.shape[0]))
        all_items = torch.arange(self.n_items, device=user.device)
        logits = torch.cat([self._score_block(user, item) for item in torch.split(all_items, chunk)], dim=1)
        return self.sigmoid(logits).view(-1)
