"""Grouping short customer messages by what they say, without a fixed number of groups.

`group_texts(texts)` gives every text a group (or none) and how central it is in its group. It
is the engine of Listen (`bot.analytics.topics`) and knows nothing of the conversation log.

How, and why this way (measured with `python -m bench.topics` on 10,000 and 100,000 generated
messages, and on the seeded set of `tests/test_topics.py`):

1. Each text is normalised (lower case, the log's masking labels such as `[EMAIL]` and digits
   removed, whitespace collapsed) and identical texts are grouped once: customers repeat
   themselves, and the work below grows with the distinct texts, not the messages.
2. TF-IDF of character n-grams within words (`char_wb`, 2 to 5 characters, sublinear term
   frequency): it matches inflections and typos ("bolletta", "bollette", "boleta") in Italian
   and English without a stemmer or a stop-word list per language.
3. TruncatedSVD to at most `COMPONENTS` dimensions, then each row scaled to length one, so
   Euclidean distance ranks pairs as cosine similarity does. A TF-IDF row has length one, so
   the length of its projection says how much of the text the common directions explain; a
   text explained less than `MIN_EXPLAINED` is idiosyncratic and gets no group (scaling it up
   would only make it look like every other poorly explained text).
4. Birch (`BIRCH_THRESHOLD`) compresses the points into sub-clusters in one pass (linear time,
   memory bounded by the sub-clusters), and average-linkage agglomerative clustering on cosine
   distance merges sub-cluster centres closer than `MERGE_DISTANCE`; the number of groups
   follows from that distance. Agglomerative clustering alone needs memory quadratic in the
   distinct texts (tens of GiB at 100,000); DBSCAN with a cosine radius compares every pair;
   HDBSCAN is not in this scikit-learn (1.1); Birch alone splits one theme across many
   sub-clusters. When Birch leaves more than `MAX_SUBCLUSTERS` sub-clusters, their centres are
   compressed again with a wider radius before the merge, which keeps the merge's memory
   bounded (about 400 MiB at 100,000 messages).

The two distances were chosen by measurement. On 10,000 generated messages (24 themes, Birch
radius 0.4), a merge distance of 0.6, 0.7, 0.75 and 0.8 gave a homogeneity of 0.99, 0.94, 0.84
and 0.74 against the themes (the wider ones merge themes that share words); on the seeded set,
at 0.7 one theme ("fotovoltaico" written six ways) splits in two, at 0.72 it does not. A Birch
radius of 0.6 let two unrelated messages sharing a few short words ("avete ... per") into one
sub-cluster, which no merge undoes; 0.4 does not.

Everything is deterministic for the same texts in the same order (fixed random state), so the
same messages give the same groups on every recomputation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

NGRAMS = (2, 5)
COMPONENTS = 100
MIN_EXPLAINED = 0.3
BIRCH_THRESHOLD = 0.4  # a sub-cluster's radius on unit vectors
MAX_SUBCLUSTERS = 4000
MERGE_DISTANCE = 0.72  # average cosine distance between two sub-clusters that are merged
NO_GROUP = -1

_LABEL = re.compile(r"\[[A-Z_]+\]")  # the log's masking labels (bot.analytics.redact)
_DIGITS = re.compile(r"\d+")


def normalise(text: str) -> str:
    """The text as it is compared: lower case, no masking labels, no digits, single spaces."""
    return " ".join(_DIGITS.sub(" ", _LABEL.sub(" ", text or "").lower()).split())


@dataclass
class Grouping:
    """Per input text: its group (`NO_GROUP` for none) and its cosine similarity to the
    centre of its group (0 without a group)."""

    labels: np.ndarray
    centrality: np.ndarray

    @property
    def groups(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


def group_texts(texts: Sequence[str]) -> Grouping:
    """Group `texts` by their character n-grams; see the module's docstring."""
    keys = [normalise(t) for t in texts]
    distinct, position = np.unique(np.array(keys, dtype=object), return_inverse=True)
    labels = np.full(len(texts), NO_GROUP, dtype=int)
    centrality = np.zeros(len(texts))
    usable = np.array([any(ch.isalpha() for ch in k) for k in distinct], dtype=bool)
    if not usable.any():
        return Grouping(labels, centrality)
    points, kept = _points(list(distinct[usable]))
    distinct_labels = np.full(len(distinct), NO_GROUP, dtype=int)
    distinct_centrality = np.zeros(len(distinct))
    if len(points) >= 2:
        found = _cluster(points)
        index = np.flatnonzero(usable)[kept]
        distinct_labels[index] = found
        distinct_centrality[index] = _centrality(points, found)
    elif len(points) == 1:
        distinct_labels[np.flatnonzero(usable)[kept]] = 0
        distinct_centrality[np.flatnonzero(usable)[kept]] = 1.0
    return Grouping(distinct_labels[position], distinct_centrality[position])


def _points(distinct: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of the texts explained well enough, and which texts they are."""
    # scikit-learn is imported when Listen is first used, not with the desk (~35 MiB)
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAMS, sublinear_tf=True,
                            dtype=np.float32).fit_transform(distinct)
    components = min(COMPONENTS, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
    if components < 2:
        reduced = tfidf.toarray()
    else:
        reduced = TruncatedSVD(components, random_state=0).fit_transform(tfidf)
    explained = np.linalg.norm(reduced, axis=1)
    kept = np.flatnonzero(explained >= MIN_EXPLAINED)
    return normalize(reduced[kept]), kept


def _cluster(points: np.ndarray) -> np.ndarray:
    """Birch sub-clusters, compressed until few enough, merged by average linkage."""
    from sklearn.cluster import AgglomerativeClustering, Birch
    from sklearn.preprocessing import normalize

    birch = Birch(threshold=BIRCH_THRESHOLD, n_clusters=None, copy=False).fit(points)
    labels = birch.labels_
    centres = normalize(birch.subcluster_centers_)
    threshold = BIRCH_THRESHOLD
    while len(centres) > MAX_SUBCLUSTERS:
        threshold *= 1.25
        coarser = Birch(threshold=threshold, n_clusters=None, copy=False).fit(centres)
        labels = coarser.labels_[labels]
        centres = normalize(coarser.subcluster_centers_)
    if len(centres) < 2:
        return np.zeros(len(points), dtype=int)
    merged = AgglomerativeClustering(n_clusters=None, distance_threshold=MERGE_DISTANCE,
                                     affinity="cosine", linkage="average").fit_predict(centres)
    return _renumber(merged[labels])


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Groups numbered in the order of their first text, so the numbering depends only on the
    input's order."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[np.searchsorted(np.unique(labels), labels)]


def _centrality(points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cosine similarity of each point to the (unit) mean of its group."""
    from sklearn.preprocessing import normalize

    sums = np.zeros((labels.max() + 1, points.shape[1]))
    np.add.at(sums, labels, points)
    centres = normalize(sums)
    return np.einsum("ij,ij->i", points, centres[labels])
