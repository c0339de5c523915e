"""The library's tables, as SQLAlchemy 2 typed ORM classes, one module per concept:

- ``base``: the declarative base, constraint names, label states and run purposes;
- ``images``: import batches, classes and sub-classes, images, their paths, history and tags;
- ``dedup``: duplicate groups, the pairs that prove them, dedup runs;
- ``runs``: split builds and their members, runs, epochs, evaluations, predictions, thresholds;
- ``serving``: the prediction service's transactions;
- ``tallies``: trigger-kept counts;
- ``embeddings`` and ``discovery``: vectors per image and the clusters found among them.

Import from here (``from curator.library.models import Image``); the modules are how the file
is read, not an interface. The schema changes only through an Alembic migration in
``migrations/versions``; ``tests/test_migrations.py`` proves these models and the migrations agree.
"""

from .base import (
    ACTIVE,
    FLAGS,
    HELPER_PURPOSES,
    LABEL_STATES,
    LABELLED,
    NAMING_CONVENTION,
    REJECTED,
    SUSPECTS_PURPOSE,
    SWEEP_PURPOSE,
    TRAIN_PURPOSE,
    UNKNOWN,
    UNLABELLED,
    Base,
    label_text,
    one_of,
    utcnow,
)
from .images import ImageLocation, ImageTag, ImportBatch, Image, LabelClass, LabelEvent, Subclass
from .dedup import DedupRun, DuplicateGroup, DuplicatePair
from .runs import RUN_STATUSES, Evaluation, Prediction, Run, RunEpoch, SplitBuild, SplitMember, Threshold
from .serving import Transaction
from .tallies import ImageTally, PredictionTally, RowTally
from .embeddings import EMBEDDER_KINDS, Embedder, Embedding
from .discovery import CLUSTER_STATES, Cluster, ClusterMember, Discovery

__all__ = [
    "ACTIVE", "FLAGS", "HELPER_PURPOSES", "LABEL_STATES", "LABELLED", "NAMING_CONVENTION", "REJECTED",
    "SUSPECTS_PURPOSE", "SWEEP_PURPOSE", "TRAIN_PURPOSE", "UNKNOWN", "UNLABELLED", "Base", "label_text",
    "one_of", "utcnow",
    "ImageLocation", "ImageTag", "ImportBatch", "Image", "LabelClass", "LabelEvent", "Subclass",
    "DedupRun", "DuplicateGroup", "DuplicatePair",
    "RUN_STATUSES", "Evaluation", "Prediction", "Run", "RunEpoch", "SplitBuild", "SplitMember", "Threshold",
    "Transaction",
    "ImageTally", "PredictionTally", "RowTally",
    "EMBEDDER_KINDS", "Embedder", "Embedding",
    "CLUSTER_STATES", "Cluster", "ClusterMember", "Discovery",
]
