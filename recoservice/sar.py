"""SAR (Smart Adaptive Recommendations): the engine behind recoservice's recommendations.

The math follows the Recommendations v4 reference (``docs`` section "SAR"):

- co-occurrence ``C = AᵀA`` over the binary user×item matrix ``A`` (or, with
  ``cooccurrence_unit="timestamp"``, over (user, timestamp) baskets); the diagonal holds each
  item's occurrence count, exposed as :attr:`SarModel.popularity`;
- pairs with ``c_ij < support_threshold`` count as zero;
- similarity ``cooccurrence`` (``c_ij``), ``lift`` (``c_ij / (c_ii·c_jj)``) or ``jaccard``
  (``c_ij / (c_ii + c_jj − c_ij)``);
- user affinity: sum over a user's events of ``weight · 2^(−(t_now − t)/T)``, half-life ``T``;
  events later than ``t_now`` count with factor 1 (as in Microsoft Recommenders' SAR);
- item-to-item: pseudo affinity 1 at each seed × similarity; user-to-item: affinity × similarity.

Everything is vectorised with numpy and scipy.sparse; the only Python loops run over blocks of
requests (and over the few seed slots of a block), never over items or single requests.

Storage. The similarity is one CSR matrix without its diagonal (``_sim``) plus the diagonal as
a vector (``_self_sim``), both float64: scores are summed in float64, then ranked and returned
as float32, so equal sums tie whatever the order of addition. With
``SarParams.max_neighbors = M > 0`` each row keeps only its M most similar items (ties: lower
item index). A single-seed request then gets exactly the same top-k as without pruning for
every ``k ≤ M``; with several seeds an item that is a top-M neighbour of one seed but not of
another loses the second contribution, so multi-seed lists are an approximation (measured in
``bench/recoservice_scoring.py``). With the exact model scoring is already fast, so 0 is the
default.

Scoring paths, all exact and all giving the same lists:

- one seed of weight 1: the first k valid entries of the seed's row, pre-ranked once;
- a few positive weights on long rows: Fagin's threshold algorithm over the pre-ranked rows
  (candidates from each row's head, scored by key lookup, decided when the k-th beats the
  bound on anything unlisted); undecided rows fall through to
- the sparse product ``weights @ similarity`` in blocks, a float partition keeping the top
  ``k + exclusions`` per row, then exact ranking of those candidates.

Ranking. Results are items with a positive score ``≥ minimal_score``, ordered by score
(float32) descending, ties by lower item index. Rows with fewer than ``k`` results are
backfilled (when ``enable_backfilling``) with the most popular items that are not seeds (or
seen items) and not already listed; backfilled entries carry score 0.0 and are reported by
``return_backfill=True`` as a boolean matrix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["EVENT_WEIGHTS", "SarModel", "SarParams"]

# Weights of the v4 usage event types (the reference's table). Callers map names to weights.
EVENT_WEIGHTS: dict[str, float] = {
    "Click": 1.0,
    "RecommendationClick": 2.0,
    "AddShopCart": 3.0,
    "RemoveShopCart": -1.0,
    "Purchase": 4.0,
}

SIMILARITIES = ("cooccurrence", "lift", "jaccard")
COOCCURRENCE_UNITS = ("user", "timestamp")
_SECONDS_PER_DAY = 86_400.0
_FORMAT_VERSION = 1
# Padded score cells per scoring block (float32), bounds the memory of scoring.
_BLOCK_CELLS = 8_000_000
_MAX_BLOCK_ROWS = 8_192
# Up to this many exclusions per row, compare slot by slot; above, use a sorted-key lookup.
_SLOT_LOOP_MAX = 16
# Threshold algorithm: rows of up to this many seeds; list depth k + exclusions + this.
_THRESHOLD_MAX_SEEDS = 8
_THRESHOLD_EXTRA_DEPTH = 10
# ... used where the product would touch this many times more entries than lookups it needs.
_THRESHOLD_WORK_RATIO = 8.0
_LOW32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class SarParams:
    """Build parameters of a SAR model (the v4 SAR build parameters, snake_case).

    Parameters
    ----------
    support_threshold : int
        Co-occurrence counts below this are treated as zero (at least 1).
    similarity : str
        ``cooccurrence``, ``lift`` or ``jaccard`` (case-insensitive).
    cooccurrence_unit : str
        ``user`` (an item pair co-occurs when one user used both) or ``timestamp`` (when both
        appear in the same (user, timestamp) basket). Case-insensitive.
    half_life_days : float
        Half-life of the affinity time decay, in days.
    enable_backfilling : bool
        Fill short result lists with popular items.
    allow_seed_items : bool
        Let seed items (and, for users, seen items) appear in results.
    enable_u2i : bool
        Keep the user affinity matrix so :meth:`SarModel.recommend_users` works.
    max_neighbors : int
        Keep only the top-M similar items per item (0 keeps all). Exact for single-seed
        requests with ``k ≤ M``; see the module docstring for several seeds.
    """

    support_threshold: int = 3
    similarity: str = "jaccard"
    cooccurrence_unit: str = "user"
    half_life_days: float = 30.0
    enable_backfilling: bool = True
    allow_seed_items: bool = False
    enable_u2i: bool = True
    max_neighbors: int = 0

    def validated(self) -> SarParams:
        """Return a copy with normalised (lower-case) names; raise ValueError if invalid."""
        similarity = self.similarity.lower()
        unit = self.cooccurrence_unit.lower()
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, not {self.similarity!r}")
        if unit not in COOCCURRENCE_UNITS:
            raise ValueError(
                f"cooccurrence_unit must be one of {COOCCURRENCE_UNITS}, "
                f"not {self.cooccurrence_unit!r}"
            )
        if int(self.support_threshold) < 1:
            raise ValueError("support_threshold must be at least 1")
        if not self.half_life_days > 0:
            raise ValueError("half_life_days must be positive")
        if int(self.max_neighbors) < 0:
            raise ValueError("max_neighbors must be 0 (keep all) or positive")
        return SarParams(
            support_threshold=int(self.support_threshold),
            similarity=similarity,
            cooccurrence_unit=unit,
            half_life_days=float(self.half_life_days),
            enable_backfilling=bool(self.enable_backfilling),
            allow_seed_items=bool(self.allow_seed_items),
            enable_u2i=bool(self.enable_u2i),
            max_neighbors=int(self.max_neighbors),
        )


class SarModel:
    """A fitted SAR model: item similarity, popularity and (optionally) user affinity.

    Build with :meth:`fit` or :meth:`load`; the constructor only assembles fitted parts.

    Attributes
    ----------
    params : SarParams
        The (validated) build parameters.
    n_items, n_users : int
        Size of the item and user index spaces.
    popularity : numpy.ndarray
        Occurrence count per item (the co-occurrence diagonal before the threshold), int64.
    now : float
        The affinity reference time (epoch seconds).
    """

    def __init__(
        self,
        params: SarParams,
        sim: sp.csr_matrix,
        self_sim: np.ndarray,
        popularity: np.ndarray,
        affinity: sp.csr_matrix | None,
        n_users: int,
        now: float,
    ) -> None:
        self.params = params
        self._sim = sim
        self._self_sim = self_sim
        self.popularity = popularity
        self._affinity = affinity
        self.n_items = int(sim.shape[0])
        self.n_users = int(n_users)
        self.now = float(now)
        # Most popular first, ties by lower index; never-used items are not "popular".
        order = np.lexsort((np.arange(self.n_items), -popularity))
        self._popular = order[popularity[order] > 0].astype(np.int64)
        self._sim.sort_indices()  # lookups by (row, column) key rely on sorted rows
        self._ranked: np.ndarray | None = None
        self._keys: np.ndarray | None = None

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(
        cls,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        timestamps: np.ndarray,
        weights: np.ndarray,
        n_users: int,
        n_items: int,
        params: SarParams | None = None,
        now: float | None = None,
    ) -> SarModel:
        """Fit a model on usage events (one array row per event).

        Parameters
        ----------
        user_idx, item_idx : numpy.ndarray
            Integer user and item indices, in ``[0, n_users)`` and ``[0, n_items)``.
        timestamps : numpy.ndarray
            Event times, float epoch seconds.
        weights : numpy.ndarray
            Event weights (see :data:`EVENT_WEIGHTS`).
        n_users, n_items : int
            Sizes of the index spaces (items without events are allowed).
        params : SarParams, optional
            Build parameters; defaults to ``SarParams()``.
        now : float, optional
            Reference time of the decay; defaults to ``max(timestamps)`` (deterministic).

        Returns
        -------
        SarModel
        """
        params = (params or SarParams()).validated()
        users = np.asarray(user_idx, dtype=np.int64).ravel()
        items = np.asarray(item_idx, dtype=np.int64).ravel()
        times = np.asarray(timestamps, dtype=np.float64).ravel()
        wts = np.asarray(weights, dtype=np.float64).ravel()
        if not (len(users) == len(items) == len(times) == len(wts)):
            raise ValueError("user_idx, item_idx, timestamps and weights must have equal length")
        if len(users) and (users.min() < 0 or users.max() >= n_users):
            raise ValueError("user_idx out of range [0, n_users)")
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise ValueError("item_idx out of range [0, n_items)")
        if now is None:
            now = float(times.max()) if len(times) else 0.0

        cooc = _cooccurrence(users, items, times, n_users, n_items, params.cooccurrence_unit)
        popularity = np.asarray(cooc.diagonal(), dtype=np.int64)
        sim, self_sim = _similarity(cooc, popularity, params)
        if params.max_neighbors:
            sim = _keep_top_neighbors(sim, params.max_neighbors)
        affinity = None
        if params.enable_u2i:
            affinity = _affinity(users, items, times, wts, n_users, n_items, now, params)
        return cls(params, sim, self_sim, popularity, affinity, n_users, now)

    def similarity(self) -> sp.csr_matrix:
        """The item×item similarity as stored, with its diagonal (for inspection and tests)."""
        return (self._sim + sp.diags(self._self_sim)).tocsr()

    @property
    def affinity(self) -> sp.csr_matrix | None:
        """User×item time-decayed affinity (None when ``enable_u2i`` is off)."""
        return self._affinity

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path) -> None:
        """Write the model to ``path`` as an uncompressed ``.npz`` (no pickle)."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(_FORMAT_VERSION),
            "params_json": np.array(json.dumps(asdict(self.params))),
            "n_users": np.array(self.n_users),
            "now": np.array(self.now),
            "sim_indptr": self._sim.indptr,
            "sim_indices": self._sim.indices,
            "sim_data": self._sim.data,
            "self_sim": self._self_sim,
            "popularity": self.popularity,
        }
        if self._affinity is not None:
            arrays |= {
                "aff_indptr": self._affinity.indptr,
                "aff_indices": self._affinity.indices,
                "aff_data": self._affinity.data,
            }
        with open(path, "wb") as fh:  # a file object keeps numpy from appending ".npz"
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle

    @classmethod
    def load(cls, path: Path) -> SarModel:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as npz:
            version = int(npz["format_version"])
            if version != _FORMAT_VERSION:
                raise ValueError(f"unsupported SAR model format {version} in {path}")
            params = SarParams(**json.loads(str(npz["params_json"])))
            n_items = len(npz["popularity"])
            n_users = int(npz["n_users"])
            sim = sp.csr_matrix(
                (npz["sim_data"], npz["sim_indices"], npz["sim_indptr"]), shape=(n_items, n_items)
            )
            affinity = None
            if "aff_indptr" in npz.files:
                affinity = sp.csr_matrix(
                    (npz["aff_data"], npz["aff_indices"], npz["aff_indptr"]),
                    shape=(n_users, n_items),
                )
            return cls(params, sim, npz["self_sim"], npz["popularity"], affinity, n_users,
                       float(npz["now"]))

    # ------------------------------------------------------------------ scoring
    def recommend_items(
        self,
        seed_indptr: np.ndarray,
        seed_indices: np.ndarray,
        k: int,
        minimal_score: float = 0.0,
        return_backfill: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Item-to-item recommendations for many requests at once.

        Parameters
        ----------
        seed_indptr, seed_indices : numpy.ndarray
            The seeds as CSR: request ``r`` has seeds ``seed_indices[seed_indptr[r]:
            seed_indptr[r + 1]]`` (known item indices; callers drop unknown seeds first).
        k : int
            Number of results per request.
        minimal_score : float
            Results scoring below this are dropped (before backfilling).
        return_backfill : bool
            Also return a boolean ``[n_req, k]`` matrix marking backfilled entries.

        Returns
        -------
        idx : numpy.ndarray
            int32 ``[n_req, k]`` item indices, padded with -1.
        score : numpy.ndarray
            float32 ``[n_req, k]`` scores, padded (and backfilled) with 0.0.
        backfilled : numpy.ndarray
            Only with ``return_backfill=True``.
        """
        indptr = np.asarray(seed_indptr, dtype=np.int64)
        indices = np.asarray(seed_indices, dtype=np.int64)
        n_req = len(indptr) - 1
        if len(indices) and (indices.min() < 0 or indices.max() >= self.n_items):
            raise ValueError("seed item index out of range [0, n_items)")
        seeds = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float64), indices, indptr),
            shape=(n_req, self.n_items),
        )
        seeds.sum_duplicates()  # a seed given twice still counts once
        seeds.data[:] = 1.0
        return self._recommend(seeds, seeds, k, minimal_score, return_backfill)

    def recommend_one(
        self, seeds: Sequence[int], k: int, minimal_score: float = 0.0
    ) -> tuple[list[int], list[float], list[bool]]:
        """One item-to-item request, as row 0 of :meth:`recommend_items` would be, but fast.

        The bulk path pays ~1 ms of sparse-matrix set-up per call, most of a single call's
        time. Here the seeds' similarity rows are summed directly (float64, in ascending seed
        order: the same additions, in the same order, as the sparse product) and the few
        candidates ranked in Python, so the results are identical, bit for bit (the property
        tests compare both paths) at ~10 numpy calls per request.

        Returns
        -------
        (idx, score, backfilled)
            Plain lists of at most ``k`` entries (no padding): item indices, float32 scores
            as Python floats, and whether each entry was backfilled.
        """
        k = int(k)
        seed_list = sorted({int(s) for s in seeds})
        if seed_list and (seed_list[0] < 0 or seed_list[-1] >= self.n_items):
            raise ValueError("seed item index out of range [0, n_items)")
        if k <= 0:
            return [], [], []
        sim = self._sim
        spans = [(int(sim.indptr[i]), int(sim.indptr[i + 1])) for i in seed_list]
        allow_seeds = self.params.allow_seed_items
        if 1 < len(spans) and not allow_seeds \
                and sum(b - a for a, b in spans) <= _SMALL_REQUEST_ENTRIES:
            # Few entries: plain Python sums them (same additions, same order) faster than
            # numpy can be called.
            sums_by_col: dict[int, float] = {}
            for a, b in spans:
                for col, value in zip(sim.indices[a:b].tolist(), sim.data[a:b].tolist(),
                                      strict=True):
                    sums_by_col[col] = sums_by_col.get(col, 0.0) + value
            for seed in seed_list:
                sums_by_col.pop(seed, None)
            small_cols = np.fromiter(sums_by_col.keys(), dtype=np.int64,
                                     count=len(sums_by_col))
            small_values = np.fromiter(sums_by_col.values(), dtype=np.float64,
                                       count=len(sums_by_col)).astype(np.float32)
            ok = (small_values > 0) & (small_values >= minimal_score)
            return self._ranked_one(small_values[ok], small_cols[ok], seed_list, k)
        if len(spans) == 1 and not allow_seeds:
            # One row holds no duplicate columns and never its own seed (no diagonal), and
            # its run in the ranked positions is already best first: its first k entries
            # are the answer (all positive; stop at the first below minimal_score).
            a, b = spans[0]
            top = self._ranked_positions()[a:min(b, a + k)]
            cols, values = sim.indices[top], sim.data[top].astype(np.float32)
            ok = (values > 0) & (values >= minimal_score)
            return self._ranked_one(values[ok], cols[ok], seed_list, k)
        total = sum(b - a for a, b in spans)
        if not allow_seeds and total * _DENSE_RATIO > self.n_items:
            # Long rows (popular seeds): add them into one dense vector, row by row in
            # ascending seed order (the same float64 additions as the sparse product).
            dense = np.zeros(self.n_items)
            for a, b in spans:
                dense[sim.indices[a:b]] += sim.data[a:b]
            dense[seed_list] = 0.0
            cols = np.flatnonzero(dense > 0)  # on a bool mask: ~8x faster than on floats
            values = dense[cols].astype(np.float32)
            ok = (values > 0) & (values >= minimal_score)
            return self._ranked_one(values[ok], cols[ok], seed_list, k)
        else:
            cols = np.concatenate([sim.indices[a:b] for a, b in spans] or [np.zeros(0, int)])
            vals = np.concatenate([sim.data[a:b] for a, b in spans] or [np.zeros(0)])
            cols, inverse = np.unique(cols, return_inverse=True)
            sums = np.bincount(inverse, weights=vals.astype(np.float64),
                               minlength=len(cols)).astype(np.float64, copy=False)
            if allow_seeds and seed_list:
                # The diagonal is added after the product, as ``scores + weights @ diag``.
                seed_arr = np.asarray(seed_list, dtype=np.int64)
                at = np.searchsorted(cols, seed_arr)
                present = at < len(cols)
                present[present] = cols[at[present]] == seed_arr[present]
                sums[at[present]] += self._self_sim[seed_arr[present]]
                cols = np.concatenate((cols, seed_arr[~present]))
                sums = np.concatenate((sums, self._self_sim[seed_arr[~present]]))
        values = sums.astype(np.float32)
        ok = (values > 0) & (values >= minimal_score)
        if not allow_seeds and len(seed_list) > 1:
            ok &= ~np.isin(cols, seed_list)
        values, cols = values[ok], cols[ok]
        return self._ranked_one(values, cols, seed_list, k)

    def _ranked_one(self, values: np.ndarray, cols: np.ndarray, seed_list: list[int],
                    k: int) -> tuple[list[int], list[float], list[bool]]:
        """Top ``k`` of one request's candidates (float32 ``values``), then backfill."""
        allow_seeds = self.params.allow_seed_items
        if len(values) > 4 * k + 64:
            # Keep the k best scores and every tie of the k-th; rank those exactly below.
            kth = np.partition(values, len(values) - k)[len(values) - k]
            keep = values >= kth
            values, cols = values[keep], cols[keep]
        # Score descending, lower item index first among equal scores (as ``_rank_keys``).
        ranked = sorted(zip(values.tolist(), cols.tolist(), strict=True),
                        key=lambda pair: (-pair[0], pair[1]))[:k]
        out_idx = [col for _, col in ranked]
        out_score = [value for value, _ in ranked]
        fill = [False] * len(out_idx)
        need = k - len(out_idx)
        if need > 0 and self.params.enable_backfilling and len(self._popular):
            # As _backfill: popular items, neither excluded (seeds) nor listed, in order.
            most_excluded = 0 if allow_seeds else len(seed_list)
            taken = set(out_idx) | (set() if allow_seeds else set(seed_list))
            for item in self._popular[: 2 * k + most_excluded].tolist():
                if need == 0:
                    break
                if item not in taken:
                    out_idx.append(item)
                    out_score.append(0.0)
                    fill.append(True)
                    need -= 1
        return out_idx, out_score, fill

    def recommend_users(
        self,
        user_indices: np.ndarray,
        k: int,
        minimal_score: float = 0.0,
        exclude_seen: bool = True,
        return_backfill: bool = False,
    ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """User-to-item recommendations: time-decayed affinity × similarity.

        Parameters
        ----------
        user_indices : numpy.ndarray
            User indices; -1 marks an unknown user (popular items if backfilling, else empty).
        k, minimal_score, return_backfill
            As in :meth:`recommend_items`.
        exclude_seen : bool
            Leave out items the user already has events for (``allow_seed_items`` overrides:
            seen items then stay, scored with their self-similarity).

        Returns
        -------
        tuple
            As :meth:`recommend_items`.
        """
        if self._affinity is None:
            raise ValueError("user recommendations are disabled for this model (enable_u2i)")
        users = np.asarray(user_indices, dtype=np.int64).ravel()
        if len(users) and users.max() >= self.n_users:
            raise ValueError("user index out of range [0, n_users)")
        known = users >= 0
        # Unknown users get an empty affinity row: nothing scores, backfill decides.
        picker = sp.csr_matrix(
            (np.ones(int(known.sum()), dtype=np.float64), users[known],
             np.concatenate(([0], np.cumsum(known)))),
            shape=(len(users), self.n_users),
        )
        affinity = (picker @ self._affinity).tocsr()
        affinity.sort_indices()
        seen = affinity if exclude_seen else _empty_rows(len(users), self.n_items)
        return self._recommend(affinity, seen, k, minimal_score, return_backfill)

    # ------------------------------------------------------------------ internals
    def _recommend(
        self,
        weights: sp.csr_matrix,
        exclude: sp.csr_matrix,
        k: int,
        minimal_score: float,
        return_backfill: bool,
    ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score ``weights @ similarity`` in blocks, rank, drop ``exclude``, backfill."""
        n_req = weights.shape[0]
        k = int(k)
        if k < 0:
            raise ValueError("k must not be negative")
        out_idx = np.full((n_req, k), -1, dtype=np.int32)
        out_score = np.zeros((n_req, k), dtype=np.float32)
        out_fill = np.zeros((n_req, k), dtype=bool)
        if n_req == 0 or k == 0:
            return (out_idx, out_score, out_fill) if return_backfill else (out_idx, out_score)
        if self.params.allow_seed_items:
            exclude = _empty_rows(n_req, self.n_items)
        # The diagonal only scores seeds (or seen items): needed only when they may be listed.
        with_diagonal = exclude.nnz == 0
        per_row = np.diff(weights.indptr)
        starts = np.minimum(weights.indptr[:-1], weights.nnz)
        first = np.append(weights.data, 0)[starts]
        lowest = np.minimum.reduceat(np.append(weights.data, 0), starts)
        # One seed of weight 1 (most item-to-item requests): its similarity row, already ranked.
        single = (per_row == 1) & (first == 1) & (not with_diagonal)
        # Upper bound of candidates per row: the similarity row lengths of its weights.
        row_nnz = np.diff(self._sim.indptr)
        bound = np.add.reduceat(np.append(row_nnz[weights.indices], 0), starts)
        bound = bound * (per_row > 0) + per_row
        # A few positive weights on long rows: the threshold algorithm on the ranked rows
        # usually decides with per_row² × depth lookups, cheaper than the product there.
        depth = k + int(np.diff(exclude.indptr).max(initial=0)) + _THRESHOLD_EXTRA_DEPTH
        few = (per_row >= 2) & (per_row <= _THRESHOLD_MAX_SEEDS) & (lowest > 0)
        few &= bound >= _THRESHOLD_WORK_RATIO * per_row * per_row * depth
        few &= not with_diagonal
        step = _MAX_BLOCK_ROWS
        singles = np.flatnonzero(single)
        for req in (singles[i : i + step] for i in range(0, len(singles), step)):
            seeds = weights.indices[weights.indptr[req]].astype(np.int64)
            out_idx[req], out_score[req] = self._rank_single(seeds, exclude[req], k,
                                                             minimal_score)
        rest = [np.flatnonzero(~single & ~few)]
        fews = np.flatnonzero(few)
        fews = fews[np.argsort(per_row[fews], kind="stable")]  # equal seed counts share blocks
        for req in (fews[i : i + step // 2] for i in range(0, len(fews), step // 2)):
            idx, score, decided = self._rank_threshold(weights[req], exclude[req], k,
                                                       minimal_score)
            out_idx[req[decided]], out_score[req[decided]] = idx[decided], score[decided]
            rest.append(req[~decided])
        # Everything else: the full sparse product, in blocks of rows of similar width.
        multi = np.concatenate(rest)
        order = multi[np.argsort(bound[multi], kind="stable")]
        for rows in _blocks(bound[order]):
            req = order[rows]
            out_idx[req], out_score[req] = self._rank_block(weights[req], exclude[req], k,
                                                            minimal_score, with_diagonal)
        if self.params.enable_backfilling:
            for lo in range(0, n_req, step):
                part = slice(lo, min(n_req, lo + step))
                out_idx[part], out_fill[part] = self._backfill(out_idx[part], exclude[part])
        return (out_idx, out_score, out_fill) if return_backfill else (out_idx, out_score)

    def _rank_threshold(
        self, weights: sp.csr_matrix, exclude: sp.csr_matrix, k: int, minimal_score: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact top k for rows of a few positive weights without the full product, if provable.

        Fagin's threshold algorithm, vectorised: the candidates are the first ``depth`` entries
        of each weight's ranked similarity row, scored in full by lookup. An item outside all
        lists scores at most ``bound`` = Σ weight × (entry ``depth`` of that row); a row is
        decided when its k-th candidate beats ``bound`` (or nothing outside can qualify).

        Returns
        -------
        (idx, score, decided)
            Results as :meth:`_rank_block`; ``decided`` marks the rows they are exact for.
        """
        n, sim, n_items = weights.shape[0], self._sim, np.int64(self.n_items)
        per_row = np.diff(weights.indptr)
        width = int(per_row.max())
        slot = np.arange(weights.nnz) - np.repeat(weights.indptr[:-1], per_row)
        owner = np.repeat(np.arange(n), per_row)
        seeds = np.full((n, width), -1, dtype=np.int64)
        seeds[owner, slot] = weights.indices
        wts = np.zeros((n, width))
        wts[owner, slot] = weights.data
        depth = k + int(np.diff(exclude.indptr).max(initial=0)) + _THRESHOLD_EXTRA_DEPTH

        ranked = np.append(self._ranked_positions(), sim.nnz)
        all_cols = np.append(sim.indices.astype(np.int64), -1)
        all_vals = np.append(sim.data, 0.0)
        row = np.maximum(seeds, 0)
        start = sim.indptr[row][..., None] + np.arange(depth + 1)
        inside = (start < sim.indptr[row + 1][..., None]) & (seeds >= 0)[..., None]
        pos = ranked[np.where(inside, start, sim.nnz)]
        bound = (wts * all_vals[pos[..., depth]]).sum(axis=1)
        cols = all_cols[pos[..., :depth]].reshape(n, width * depth)
        listed = inside[..., :depth].reshape(n, width * depth)

        # A sentinel key past every real one keeps lookups in range.
        entry_keys = np.append(self._entry_keys(), np.iinfo(np.int64).max)
        total = np.zeros((n, width * depth))
        for s in range(width):  # score every candidate against every weight (seed slot)
            query = seeds[:, s : s + 1] * n_items + cols
            at = np.searchsorted(entry_keys, query)
            hit = (entry_keys[at] == query) & (seeds[:, s : s + 1] >= 0) & listed
            total += wts[:, s : s + 1] * np.where(hit, all_vals[at], 0.0)
        values = total.astype(np.float32) + np.float32(0.0)
        flat_rows = np.repeat(np.arange(n), width * depth)
        ok = listed & (values > 0) & (values >= minimal_score)
        ok &= ~_excluded(flat_rows, cols.ravel(), exclude).reshape(ok.shape)
        keys = np.where(ok, _rank_keys(values, np.maximum(cols, 0)), np.uint64(0))
        # An item listed under several seeds appears more than once, with equal keys.
        keys = np.sort(keys, axis=1)[:, ::-1]
        keys[:, 1:][keys[:, 1:] == keys[:, :-1]] = 0
        top = np.sort(keys, axis=1)[:, ::-1][:, :k]
        if top.shape[1] < k:
            top = np.pad(top, ((0, 0), (0, k - top.shape[1])))
        idx, score = _decode_keys(top)
        count = (top > 0).sum(axis=1)
        limit = bound.astype(np.float32)
        nothing_outside = (bound <= 0) | (bound < minimal_score)
        decided = nothing_outside | ((count >= k) & (score[:, -1] > limit))
        return idx, score, decided

    def _rank_block(
        self,
        weights: sp.csr_matrix,
        exclude: sp.csr_matrix,
        k: int,
        minimal_score: float,
        with_diagonal: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top k of ``weights @ similarity`` per row: (idx, score), padded with -1 / 0."""
        n = weights.shape[0]
        scores = (weights @ self._sim).tocsr()
        if with_diagonal:
            scores = (scores + weights @ sp.diags(self._self_sim)).tocsr()
        values = scores.data.astype(np.float32)
        counts = np.diff(scores.indptr)
        width = int(counts.max(initial=0))
        # Excluded items are at most `widest` per row, so the top k survivors lie within the
        # top k + widest raw scores: a cheap float partition prunes before exact ranking.
        keep_top = k + int(np.diff(exclude.indptr).max(initial=0))
        if width > keep_top:
            # A boolean mask fills the padded rows in CSR order without per-entry index arrays.
            filled = np.arange(width) < counts[:, None]
            padded = np.full((n, width), -np.inf, dtype=np.float32)
            padded[filled] = values
            kth = np.partition(padded, width - keep_top, axis=1)[:, width - keep_top]
            rows, pos = np.nonzero((padded >= kth[:, None]) & filled)
            cand = scores.indptr[rows] + pos
        else:
            cand = np.arange(len(values))
            rows = np.searchsorted(scores.indptr, cand, side="right") - 1
        cols = scores.indices[cand].astype(np.int64)
        vals = values[cand] + np.float32(0.0)  # -0.0 → +0.0 for the keys
        ok = (vals > 0) & (vals >= minimal_score) & ~_excluded(rows, cols, exclude)
        rows, cols, vals = rows[ok], cols[ok], vals[ok]
        keys = _rank_keys(vals, cols)
        # Exact ranking on the few candidates: pad keys per row, take the k largest.
        per_row = np.bincount(rows, minlength=n)
        starts = np.concatenate(([0], np.cumsum(per_row)[:-1]))
        padded_keys = np.zeros((n, max(int(per_row.max(initial=0)), k)), dtype=np.uint64)
        padded_keys[rows, np.arange(len(rows)) - starts[rows]] = keys
        if padded_keys.shape[1] > k:
            padded_keys = np.partition(padded_keys, padded_keys.shape[1] - k, axis=1)[:, -k:]
        return _decode_keys(np.sort(padded_keys, axis=1)[:, ::-1])

    def _rank_single(
        self, seeds: np.ndarray, exclude: sp.csr_matrix, k: int, minimal_score: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top k for one-seed rows: the first valid entries of each seed's ranked row."""
        sim = self._sim
        # A sentinel entry (column -1, score 0) stands for positions past a row's end.
        ranked = np.append(self._ranked_positions(), sim.nnz)
        all_cols = np.append(sim.indices.astype(np.int64), -1)
        all_vals = np.append(sim.data.astype(np.float32), np.float32(0.0))
        keep_top = k + int(np.diff(exclude.indptr).max(initial=0))
        start = sim.indptr[seeds][:, None] + np.arange(keep_top)
        inside = start < sim.indptr[seeds + 1][:, None]
        pos = ranked[np.where(inside, start, sim.nnz)]
        cols, vals = all_cols[pos], all_vals[pos]
        rows = np.repeat(np.arange(len(seeds)), keep_top)
        ok = inside & (vals > 0) & (vals >= minimal_score)
        ok &= ~_excluded(rows, cols.ravel(), exclude).reshape(ok.shape)
        rank = np.cumsum(ok, axis=1)
        r, c = np.nonzero(ok & (rank <= k))
        idx = np.full((len(seeds), k), -1, dtype=np.int64)
        score = np.zeros((len(seeds), k), dtype=np.float32)
        idx[r, rank[r, c] - 1] = cols[r, c]
        score[r, rank[r, c] - 1] = vals[r, c]
        return idx, score

    def prepare(self) -> None:
        """Compute the lazily built lookup arrays now (each similarity row ranked)."""
        self._ranked_positions()

    def _ranked_positions(self) -> np.ndarray:
        """Positions of the similarity entries, each row's run ordered best first (cached)."""
        if self._ranked is None:
            sim = self._sim
            rows = np.repeat(np.arange(self.n_items), np.diff(sim.indptr))
            keys = _rank_keys(sim.data, sim.indices.astype(np.int64))
            self._ranked = np.lexsort((~keys, rows))
        return self._ranked

    def _entry_keys(self) -> np.ndarray:
        """``row × n_items + column`` of every similarity entry, ascending (cached)."""
        if self._keys is None:
            rows = np.repeat(np.arange(self.n_items, dtype=np.int64), np.diff(self._sim.indptr))
            self._keys = rows * np.int64(self.n_items) + self._sim.indices
        return self._keys

    def _backfill(
        self, idx: np.ndarray, exclude: sp.csr_matrix
    ) -> tuple[np.ndarray, np.ndarray]:
        """Append popular items (not excluded, not listed) after each row's results."""
        n, k = idx.shape
        count = (idx >= 0).sum(axis=1)
        need = k - count
        fill = np.zeros((n, k), dtype=bool)
        if not need.any() or len(self._popular) == 0:
            return idx, fill
        # Enough popular candidates even if every excluded and listed item is among them.
        most_excluded = int(np.diff(exclude.indptr).max(initial=0))
        cand = self._popular[: 2 * k + most_excluded]
        rows = np.repeat(np.arange(n), len(cand))
        cols = np.tile(cand, n)
        ok = ~_excluded(rows, cols, exclude)
        present = idx >= 0
        listed = sp.csr_matrix(
            (np.ones(int(present.sum())), idx[present], np.concatenate(([0], np.cumsum(count)))),
            shape=(n, self.n_items),
        )
        ok &= ~_excluded(rows, cols, listed)
        ok = ok.reshape(n, len(cand))
        rank = np.cumsum(ok, axis=1)
        take = ok & (rank <= need[:, None])
        r, c = np.nonzero(take)
        target = count[r] + rank[r, c] - 1
        idx = idx.copy()
        idx[r, target] = cand[c]
        fill[r, target] = True
        return idx, fill


# recommend_one sums a request's rows in plain Python up to this many similarity entries,
# and into a dense vector when entries × this exceed the number of items.
_SMALL_REQUEST_ENTRIES = 512
_DENSE_RATIO = 8


# ---------------------------------------------------------------------- fit helpers
def _cooccurrence(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int, n_items: int, unit: str
) -> sp.csr_matrix:
    """``C = AᵀA`` with ``A`` binary over users (or (user, timestamp) baskets) × items."""
    if unit == "timestamp":
        _, time_code = np.unique(times, return_inverse=True)
        _, basket = np.unique(users * (int(time_code.max(initial=0)) + 1) + time_code,
                              return_inverse=True)
        rows, n_rows = basket.ravel(), int(basket.max(initial=-1)) + 1
    else:
        rows, n_rows = users, n_users
    hits = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, items)), shape=(n_rows, n_items)
    )
    hits.data[:] = 1  # binary: repeated events of a user on an item count once
    return (hits.T.tocsr() @ hits).tocsr()


def _similarity(
    cooc: sp.csr_matrix, popularity: np.ndarray, params: SarParams
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Thresholded similarity without its diagonal (CSR, float64) and the diagonal apart."""
    coo = cooc.tocoo()
    keep = (coo.data >= params.support_threshold) & (coo.row != coo.col)
    r, c, v = coo.row[keep], coo.col[keep], coo.data[keep].astype(np.float64)
    diag = popularity.astype(np.float64)
    strong = diag >= params.support_threshold
    if params.similarity == "cooccurrence":
        data, self_sim = v, np.where(strong, diag, 0.0)
    elif params.similarity == "lift":
        data = v / (diag[r] * diag[c])
        self_sim = np.where(strong, 1.0 / np.maximum(diag, 1.0), 0.0)
    else:  # jaccard
        data = v / (diag[r] + diag[c] - v)
        self_sim = strong.astype(np.float64)
    n = cooc.shape[0]
    sim = sp.csr_matrix((data, (r, c)), shape=(n, n))
    sim.sort_indices()
    return sim, self_sim


def _keep_top_neighbors(sim: sp.csr_matrix, m: int) -> sp.csr_matrix:
    """Keep each row's ``m`` largest entries (ties: lower column index)."""
    n = sim.shape[0]
    counts = np.diff(sim.indptr)
    if counts.max(initial=0) <= m:
        return sim
    rows = np.repeat(np.arange(n), counts)
    # Within a row, higher key = better: score bits, then lower column.
    order = np.lexsort((~_rank_keys(sim.data, sim.indices.astype(np.int64)), rows))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(sim.indptr[:-1], counts)
    keep = rank < m
    pruned = sp.csr_matrix((sim.data[keep], (rows[keep], sim.indices[keep])), shape=sim.shape)
    pruned.sort_indices()
    return pruned


def _affinity(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    wts: np.ndarray,
    n_users: int,
    n_items: int,
    now: float,
    params: SarParams,
) -> sp.csr_matrix:
    """Sum of ``weight · 2^(−(now − t)/T)`` per (user, item); later-than-now events count 1×."""
    half_life = params.half_life_days * _SECONDS_PER_DAY
    decay = np.minimum(1.0, np.exp2(-(now - times) / half_life))
    aff = sp.csr_matrix((wts * decay, (users, items)), shape=(n_users, n_items))
    aff.sum_duplicates()
    aff.sort_indices()
    return aff


# ---------------------------------------------------------------------- scoring helpers
def _rank_keys(values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """uint64 keys ordering by float32 score descending, then column ascending (bigger = better).

    The high 32 bits map the float32 bit pattern to an order-preserving unsigned integer; the low
    32 bits hold ``0xFFFFFFFF − col``. One integer comparison then ranks exactly, ties included.
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    negative = (bits & np.uint64(0x80000000)) != 0
    ordered = np.where(negative, ~bits & _LOW32, bits | np.uint64(0x80000000))
    return (ordered << np.uint64(32)) | (_LOW32 - cols.astype(np.uint64))


def _decode_keys(top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Item index (-1 where the key is 0) and float32 score (0.0 there) of rank keys."""
    valid = top > 0
    idx = np.where(valid, (_LOW32 - (top & _LOW32)).astype(np.int64), -1)
    score = np.where(valid, _decode_score(top >> np.uint64(32)), np.float32(0.0))
    return idx, score.astype(np.float32)


def _decode_score(high: np.ndarray) -> np.ndarray:
    """Inverse of the high half of :func:`_rank_keys`."""
    high = high.astype(np.uint64)
    positive = (high & np.uint64(0x80000000)) != 0
    bits = np.where(positive, high & np.uint64(0x7FFFFFFF), ~high & _LOW32)
    return bits.astype(np.uint32).view(np.float32)


def _excluded(rows: np.ndarray, cols: np.ndarray, exclude: sp.csr_matrix) -> np.ndarray:
    """Whether ``(rows[i], cols[i])`` is a stored entry of ``exclude`` (row-local CSR)."""
    per_row = np.diff(exclude.indptr)
    widest = int(per_row.max(initial=0))
    if widest == 0 or len(rows) == 0:
        return np.zeros(len(rows), dtype=bool)
    if widest <= _SLOT_LOOP_MAX:
        # Few exclusions per row (seeds): compare slot by slot, a handful of cheap passes.
        slots = np.full((exclude.shape[0], widest), -1, dtype=np.int64)
        r = np.repeat(np.arange(exclude.shape[0]), per_row)
        slots[r, np.arange(exclude.nnz) - np.repeat(exclude.indptr[:-1], per_row)] = exclude.indices
        hit = np.zeros(len(rows), dtype=bool)
        for s in range(widest):
            hit |= slots[rows, s] == cols
        return hit
    n_cols = np.int64(exclude.shape[1])
    ex_keys = np.repeat(np.arange(exclude.shape[0], dtype=np.int64), per_row) * n_cols
    ex_keys += exclude.indices
    return np.isin(rows.astype(np.int64) * n_cols + cols, ex_keys)


def _empty_rows(n_rows: int, n_cols: int) -> sp.csr_matrix:
    return sp.csr_matrix((n_rows, n_cols), dtype=np.float64)


def _blocks(sorted_bound: np.ndarray) -> list[np.ndarray]:
    """Split positions ``0..n`` (ascending row bounds) into blocks of ≤ ``_BLOCK_CELLS`` cells."""
    blocks: list[np.ndarray] = []
    start, n = 0, len(sorted_bound)
    while start < n:
        # The widest row of a block is its last one (ascending order); shrink until it fits.
        stop = min(n, start + _MAX_BLOCK_ROWS)
        width = max(int(sorted_bound[stop - 1]), 1)
        stop = min(stop, start + max(1, _BLOCK_CELLS // width))
        blocks.append(np.arange(start, stop))
        start = stop
    return blocks
