"""Each user's training items, from RecBole's training split.

RecBole's ``history_item_matrix`` pads every user to the heaviest user's length (n_users x
max_len, which one heavy user can blow up); students and the teacher recorder keep the
items in CSR instead and pad one batch of users at a time.
"""

import torch


def training_items_csr(dataset):
    """Each user's training items as CSR arrays, in RecBole's ``history_item_matrix`` order.

    Args:
        dataset (Dataset): the training split.

    Returns:
        tuple: ``indptr`` long [n_users + 1] and ``indices`` long [n_interactions]; user u's
        items are ``indices[indptr[u]:indptr[u + 1]]``.
    """
    def column(field):  # a torch tensor once RecBole has split the data, pandas before
        values = dataset.inter_feat[field]
        return torch.as_tensor(values.to_numpy() if hasattr(values, "to_numpy") else values).long()

    users, items = column(dataset.uid_field), column(dataset.iid_field)
    # RecBole's history_item_matrix, which students and the recorder used before, shuffles
    # the interactions first with torch's global generator: the same draw keeps the order
    # within each user and every later random number (a student's initialisation, a
    # teacher's training, so its recorded trajectory) as they were.
    shuffled = torch.randperm(len(users))
    users, items = users[shuffled], items[shuffled]
    order = torch.sort(users, stable=True).indices
    counts = torch.bincount(users, minlength=dataset.user_num)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)]), items[order]


def padded_rows(indptr, indices, users):
    """Training items of ``users``, in CSR order, 0-padded to the batch's heaviest user.

    Args:
        indptr (torch.LongTensor): [n_users + 1] from :func:`training_items_csr`.
        indices (torch.LongTensor): [n_interactions] from :func:`training_items_csr`.
        users (torch.LongTensor): [B] user ids.

    Returns:
        torch.LongTensor: [B, max(1, longest history in the batch)], 0 where a row is shorter.
    """
    starts, lengths = indptr[users], indptr[users + 1] - indptr[users]
    width = max(int(lengths.max()) if len(users) else 0, 1)
    position = torch.arange(width, device=users.device)
    inside = position < lengths[:, None]
    index = (starts[:, None] + position).masked_fill(~inside, 0)
    if not len(indices):  # nothing to gather from: every row is padding
        return index
    return indices[index].masked_fill(~inside, 0)
