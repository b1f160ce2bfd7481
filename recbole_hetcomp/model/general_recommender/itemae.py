r"""
ItemAE
################################################
Reference:
    Suvash Sedhain et al. "AutoRec: Autoencoders Meet Collaborative Filtering." in WWW 2015 (I-AutoRec).

HetComp's item-based autoencoder teacher (Kang et al., WWW 2023); RecBole's autoencoders
(MultiDAE, MultiVAE, RecVAE, ...) are all user-based.

Each item is represented by its vector over users (1 where the user interacted with it in
training, else 0). A one-hidden-layer autoencoder corrupts that vector with dropout and
reconstructs it; the reconstruction of item i at user u is the score of (u, i). I-AutoRec
fits explicit ratings with a squared error on observed entries only; with implicit
feedback every entry is observed (0 or 1), so the loss covers all users of the item.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_normal_initialization
from recbole.utils import InputType

_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


def output_bias_init(user_degree, n_items, loss_type="BCE"):
    r"""Decoder bias that starts each user's output at that user's share of the catalogue.

    An item's target vector holds a 1 at user u with rate p_u = (items of u) / (items),
    which is tiny on sparse, large catalogues (0.3% on 3,000 items at 9 items a user).
    From a zero bias every output starts at 0.5 (BCE logit 0), and the first hundreds of
    Adam steps (each moves a bias by about the learning rate) only push all outputs down
    together: the ranking stays near random level while the step count is small, which is
    what a few large batches per epoch give on sparse data. Starting at p_u removes that
    phase. The bias is constant per user, so it does not rank items by itself.

    Args:
        user_degree (torch.Tensor): distinct training items per user, shape: [n_users, ]
            (0 for RecBole's padding user).
        n_items (int): catalogue size including the padding item.
        loss_type (str): ``BCE`` (bias = log-odds of p_u) or ``MSE`` (bias = p_u).

    Returns:
        torch.FloatTensor: shape: [n_users, ]
    """
    # +0.5: users without items (the padding user) get a finite log-odds.
    p = (user_degree.float() + 0.5) / float(n_items)
    if loss_type == "BCE":
        return torch.log(p) - torch.log1p(-p)
    return p


class ItemAE(GeneralRecommender):
    r"""ItemAE reconstructs every item's user vector through a one-layer autoencoder.

    Note:

        Training batches. RecBole's trainer iterates over training interactions; each batch
        trains the model on the user vectors of the batch's distinct items, so an item
        takes part in an epoch in proportion to (a concave function of) its popularity. No
        negative sampling is needed (``train_neg_sample_args: ~``): the zeros of the user
        vector are the negatives.

        Initialisation. The decoder bias starts at each user's training rate (its log-odds
        for BCE), not at 0: on sparse data with a large catalogue a zero start spends the
        first hundreds of steps pushing every output down together and, with the few
        large batches per epoch such data gives, ranked at or below popularity level
        until early stopping ended it (see :func:`output_bias_init` and docs/teachers.md).

        Full-sort prediction. The scores of a batch of users need every item's
        reconstruction, so in eval mode the whole reconstruction (n_users x n_items) is
        computed once, in item chunks, and cached; :meth:`train` (which RecBole calls
        with ``False`` via ``eval()`` before each evaluation and with ``True`` before each
        training epoch) and :meth:`load_state_dict` drop the cache.
    """

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super(ItemAE, self).__init__(config, dataset)

        # load parameters info
        self.hidden_size = config["hidden_size"]
        self.dropout_prob = config["dropout_prob"]
        self.activation = config["activation"]
        self.loss_type = config["loss_type"]
        self.reg_weight = config["reg_weight"]
        self.eval_chunk_size = config["eval_chunk_size"]

        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if not 0.0 <= self.dropout_prob < 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1), got {self.dropout_prob}")
        if self.loss_type not in ("BCE", "MSE"):
            raise ValueError(f"loss_type must be 'BCE' or 'MSE', got {self.loss_type!r}")

        # load dataset info: the item x user training matrix in CSR form (only its pattern
        # is used, so a repeated interaction counts once); dense rows are built per batch
        # instead of holding a dense n_items x n_users matrix.
        user_item = dataset.inter_matrix(form="csr")
        user_item.sum_duplicates()
        item_user = user_item.transpose().tocsr()
        self.register_buffer(
            "item_ptr", torch.as_tensor(item_user.indptr, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "item_users", torch.as_tensor(item_user.indices, dtype=torch.long), persistent=False
        )

        # define layers: the input is sparse (an item has few users), so the encoder is an
        # EmbeddingBag (the sum of its users' weight rows) rather than a dense Linear.
        self.encoder = nn.EmbeddingBag(self.n_users, self.hidden_size, mode="sum")
        self.encoder_bias = nn.Parameter(torch.zeros(self.hidden_size))
        self.decoder = nn.Linear(self.hidden_size, self.n_users)

        # storage of the full reconstruction for evaluation, [n_users, n_items]
        self.restore_scores = None

        # parameters initialization (RecBole's initializer skips EmbeddingBag)
        self.apply(xavier_normal_initialization)
        nn.init.xavier_normal_(self.encoder.weight)
        with torch.no_grad():
            self.decoder.bias.copy_(
                output_bias_init(torch.as_tensor(np.diff(user_item.indptr)), self.n_items, self.loss_type)
            )

    # --- cache -----------------------------------------------------------------------
    def train(self, mode=True):
        r"""Set the training mode and drop the cached reconstruction (parameters may change)."""
        self.restore_scores = None
        return super(ItemAE, self).train(mode)

    def load_state_dict(self, state_dict, strict=True, **kwargs):
        self.restore_scores = None
        return super(ItemAE, self).load_state_dict(state_dict, strict=strict, **kwargs)

    # --- model -----------------------------------------------------------------------
    def _nonzeros(self, item):
        r"""The training interactions of the given items, as EmbeddingBag input.

        Args:
            item (torch.LongTensor): item ids, shape: [batch_size, ]

        Returns:
            tuple: user id of each interaction (torch.LongTensor, shape: [nnz, ]) and the
            start of each item's users in it (torch.LongTensor, shape: [batch_size, ]).
        """
        start = self.item_ptr[item]
        length = self.item_ptr[item + 1] - start
        offset = torch.cumsum(length, dim=0) - length
        # position of each nonzero inside its CSR row: global index minus the row's offset
        pos = torch.arange(int(offset[-1] + length[-1]) if item.numel() else 0, device=item.device)
        pos = pos - torch.repeat_interleave(offset, length)
        users = self.item_users[torch.repeat_interleave(start, length) + pos]
        return users, offset

    def get_user_vectors(self, item):
        r"""Dense binary training vectors over users of the given items.

        Args:
            item (torch.LongTensor): item ids, shape: [batch_size, ]

        Returns:
            torch.FloatTensor: shape: [batch_size, n_users]
        """
        users, offset = self._nonzeros(item)
        length = torch.diff(offset, append=offset.new_tensor([users.shape[0]]))
        row = torch.repeat_interleave(torch.arange(item.shape[0], device=item.device), length)
        vectors = torch.zeros(item.shape[0], self.n_users, device=self.item_ptr.device)
        vectors[row, users] = 1.0
        return vectors

    def forward(self, item):
        r"""Reconstruct the user vectors of the given items.

        In training mode the input is corrupted by dropout (denoising).

        Args:
            item (torch.LongTensor): item ids, shape: [batch_size, ]

        Returns:
            torch.FloatTensor: reconstruction scores (logits for BCE), shape: [batch_size, n_users]
        """
        users, offset = self._nonzeros(item)
        weight = None
        if self.training and self.dropout_prob > 0:
            # Dropout on the nonzeros only: on a binary vector this is F.dropout's
            # distribution (zeros stay zero) without a random number per user.
            keep = torch.rand(users.shape[0], device=users.device) >= self.dropout_prob
            weight = keep.float() / (1.0 - self.dropout_prob)
        h = self.encoder(users, offset, per_sample_weights=weight) + self.encoder_bias
        h = _ACTIVATIONS[self.activation](h)
        return self.decoder(h)

    def calculate_loss(self, interaction):
        item = torch.unique(interaction[self.ITEM_ID])
        output = self.forward(item)
        target = self.get_user_vectors(item)
        if self.loss_type == "BCE":
            loss = F.binary_cross_entropy_with_logits(output, target, reduction="none")
        else:
            loss = (output - target).pow(2)
        # summed over users (every entry of the item vector counts), averaged over items
        loss = loss.sum(dim=1).mean()
        if self.reg_weight > 0:
            loss = loss + self.reg_weight * (
                self.encoder.weight.pow(2).sum() + self.decoder.weight.pow(2).sum()
            )
        return loss

    def _item_scores(self, item):
        r"""Reconstructions of the given items, computed in chunks without gradients.

        Returns:
            torch.FloatTensor: shape: [len(item), n_users]
        """
        with torch.no_grad():
            parts = [self.forward(chunk) for chunk in torch.split(item, self.eval_chunk_size)]
        return torch.cat(parts, dim=0)

    def _all_scores(self):
        r"""The cached [n_users, n_items] score matrix, computed on first use in eval mode."""
        if self.restore_scores is not None:
            return self.restore_scores
        all_items = torch.arange(self.n_items, device=self.item_ptr.device)
        scores = self._item_scores(all_items).t().contiguous()
        if not self.training:
            self.restore_scores = scores
        return scores

    def predict(self, interaction):
        user = interaction[self.USER_ID]
        item = interaction[self.ITEM_ID]
        if self.restore_scores is not None:
            return self.restore_scores[user, item]
        unique_item, inverse = torch.unique(item, return_inverse=True)
        scores = self._item_scores(unique_item)  # [n_unique, n_users]
        return scores[inverse, user]

    def full_sort_predict(self, interaction):
        user = interaction[self.USER_ID]
        return self._all_scores()[user].view(-1)
